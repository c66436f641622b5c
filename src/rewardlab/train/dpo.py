"""DPO and T-REG on a local causal LM: the policy whose implicit reward is a reward model (DPORM).

``rewardlab train --objective dpo|t-reg --backbone POLICY --data pairs.jsonl --out DIR`` trains a
copy of POLICY against the frozen POLICY as reference and saves DIR as a ``dpo-implicit``
checkpoint: the policy's weights plus a ``rewardlab.json`` naming the reference directory and β,
so ``load_reward(DIR)`` gives the :class:`~rewardlab.rewards.dpo_implicit.DPOImplicitReward`
r(x, y) = β·log π(y|x)/π_ref(y|x) (Rafailov et al. 2023). Responses are encoded exactly as
that reward scores them (:meth:`DPOImplicitReward.encode`: the prompt template, the response,
eos), so training and scoring read the same tokens.

- ``dpo``: :func:`~rewardlab.train.pref_objectives.dpo_loss` on the summed response log-probs.
- ``t-reg`` (Zhou et al. 2024): DPO + α·T-REG term. The token rewards r̂_t are computed once,
  before training, by contrastive prompting of the reference model: log π_ref(y_t | good
  prompt, x, y_<t) − log π_ref(y_t | bad prompt, x, y_<t) (``treg_good`` / ``treg_bad``
  prepended to the prompt); the weights are n·softmax(r̂/τ) over a chosen response's tokens
  and n·softmax(−r̂/τ) over a rejected one's
  (:func:`~rewardlab.train.pref_objectives.treg_weights`). The paper's exact squashing of r̂
  is unverified here; the weights are exposed through ``treg_tau``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rewardlab.rewards.dpo_implicit import DPOImplicitReward
from rewardlab.rewards.preference_rm import META_FILE, pad_right, param_count
from rewardlab.train.loop import fit
from rewardlab.train.pref_batches import _epoch_orders
from rewardlab.train.pref_io import PairRow
from rewardlab.train.pref_objectives import dpo_loss, treg_regulariser, treg_weights
from rewardlab.train.preference import PreferenceConfig

if TYPE_CHECKING:
    from rewardlab.train.pref_trainer import TrainedRM

Log = Callable[[dict[str, Any]], None]


def prompt_template(cfg: PreferenceConfig) -> str:
    """The prompt part of ``cfg.template`` (it must end with ``{response}``)."""
    if not cfg.template.endswith("{response}"):
        raise ValueError(f"dpo needs a template that ends with {{response}}, got {cfg.template!r}")
    return cfg.template[: -len("{response}")]


def token_logprobs(model: Any, ids: Any, mask: Any) -> Any:
    """log p(token_t | tokens_<t) for t = 1..L−1: [B, L−1] (0 where the mask is 0)."""
    logits = model(input_ids=ids, attention_mask=mask).logits.float()
    logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
    return logp * mask[:, 1:]


def response_mask(lengths: Sequence[int], starts: Sequence[int], width: int) -> torch.Tensor:
    """[B, width−1] float: 1 at positions t−1 for response tokens t in [start, length)."""
    pos = torch.arange(1, width)[None, :]
    ln = torch.tensor(list(lengths))[:, None]
    st = torch.tensor(list(starts))[:, None]
    return ((pos >= st) & (pos < ln)).float()


def _contrastive_rewards(
    ref: Any, tok: Any, scorer: DPOImplicitReward, rows: Sequence[PairRow], cfg: PreferenceConfig
) -> list[tuple[list[float], list[float]]]:
    """r̂ per response token of chosen and rejected: good-prompt minus bad-prompt log-prob."""
    head = prompt_template(cfg)
    out = []
    with torch.inference_mode():
        for r in rows:
            pair = []
            for resp in (r.chosen, r.rejected):
                ids, start = scorer.encode(r.prompt, resp)
                resp_ids = ids[start:]
                seqs, starts = [], []
                for lead in (cfg.treg_good, cfg.treg_bad):
                    p_ids = list(tok(lead + head.format(prompt=r.prompt))["input_ids"])
                    seqs.append(p_ids + resp_ids)
                    starts.append(len(p_ids))
                x, m = pad_right(seqs, tok.pad_token_id)
                lp = token_logprobs(ref, x, m)
                good = lp[0, starts[0] - 1 : starts[0] - 1 + len(resp_ids)]
                bad = lp[1, starts[1] - 1 : starts[1] - 1 + len(resp_ids)]
                pair.append((good - bad).tolist())
            out.append((pair[0], pair[1]))
    return out


def dpo_batches(
    rows: Sequence[PairRow],
    tok: Any,
    scorer: DPOImplicitReward,
    cfg: PreferenceConfig,
    n_batches: int,
    seed: int,
    token_rewards: Sequence[tuple[list[float], list[float]]] | None = None,
) -> list[dict[str, Any]]:
    """Batches of [chosen; rejected]: ``input_ids``, ``attention_mask``, ``resp_mask`` [2B, L−1]
    and, with token rewards, ``token_rewards`` [2B, L−1] (0 off the response)."""
    enc_c = [scorer.encode(r.prompt, r.chosen) for r in rows]
    enc_r = [scorer.encode(r.prompt, r.rejected) for r in rows]
    out = []
    for idx in _epoch_orders(len(rows), cfg.batch_size, n_batches, seed):
        encs = [enc_c[i] for i in idx] + [enc_r[i] for i in idx]
        ids, mask = pad_right([e[0] for e in encs], tok.pad_token_id)
        lengths = [len(e[0]) for e in encs]
        starts = [e[1] for e in encs]
        batch: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": mask,
            "resp_mask": response_mask(lengths, starts, ids.shape[1]),
        }
        if token_rewards is not None:
            tr = torch.zeros(len(encs), ids.shape[1] - 1)
            vals = [token_rewards[i][0] for i in idx] + [token_rewards[i][1] for i in idx]
            for j, (v, st) in enumerate(zip(vals, starts, strict=True)):
                tr[j, st - 1 : st - 1 + len(v)] = torch.tensor(v)
            batch["token_rewards"] = tr
        out.append(batch)
    return out


class _PolicyWithRef(torch.nn.Module):
    """The trained policy and its frozen reference (only the policy's parameters train)."""

    def __init__(self, policy: Any, ref: Any) -> None:
        super().__init__()
        self.policy = policy
        self.ref = [ref]  # a list: not a submodule, so not optimised nor moved by accelerate

    def forward(self, ids: Any, mask: Any) -> tuple[Any, Any]:
        ref = self.ref[0].to(ids.device)
        with torch.no_grad():
            ref_lp = token_logprobs(ref, ids, mask)
        return token_logprobs(self.policy, ids, mask), ref_lp


def dpo_fit_objective(cfg: PreferenceConfig) -> Callable[..., Any]:
    """``fit`` objective: DPO (+ α·T-REG when the batch has ``token_rewards``)."""

    def fn(model: Any, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        lp, ref = model(batch["input_ids"], batch["attention_mask"])
        rm = batch["resp_mask"]
        rho = cfg.dpo_beta * (lp - ref) * rm  # token-level implicit rewards
        b = lp.shape[0] // 2
        seq_lp, seq_ref = (lp * rm).sum(-1), (ref * rm).sum(-1)
        loss = dpo_loss(seq_lp[:b], seq_lp[b:], seq_ref[:b], seq_ref[b:], cfg.dpo_beta)
        metrics: dict[str, float] = {}
        if "token_rewards" in batch:
            tr = batch["token_rewards"]
            w_c = treg_weights(tr[:b], rm[:b], cfg.treg_tau)
            w_r = treg_weights(-tr[b:], rm[b:], cfg.treg_tau)
            reg = treg_regulariser(rho[:b], rho[b:], w_c, w_r)
            metrics["treg"] = float(reg.detach())
            loss = loss + cfg.treg_alpha * reg
        with torch.no_grad():
            r = rho.sum(-1)
            metrics["accuracy"] = float((r[:b] > r[b:]).float().mean())
        return loss, metrics

    return fn


def save_dpo_checkpoint(
    policy: Any, tok: Any, out: str | Path, ref_dir: str | Path, beta: float, **meta: Any
) -> Path:
    """The policy + tokenizer + ``rewardlab.json`` (kind ``dpo-implicit``, ``ref``, ``beta``)."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    policy.save_pretrained(path)
    tok.save_pretrained(path)
    info = {
        "kind": "dpo-implicit",
        "loader": "rewardlab.rewards.dpo_implicit:load_dpo_checkpoint",
        "ref": str(Path(ref_dir).resolve()),
        "beta": beta,
        "params": param_count(policy),
        **meta,
    }
    (path / META_FILE).write_text(json.dumps(info, indent=2, default=str))
    return path


def train_dpo(
    backbone: str | Path,
    cfg: PreferenceConfig,
    pairs: Sequence[PairRow],
    seed: int,
    log: Log | None,
) -> TrainedRM:
    """DPO (``cfg.objective == "dpo"``) or T-REG (``"t-reg"``) from the causal LM ``backbone``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewardlab.train.pref_trainer import TrainedRM

    src = str(backbone)
    tok = AutoTokenizer.from_pretrained(src, local_files_only=True)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    torch.manual_seed(seed)
    policy: Any = AutoModelForCausalLM.from_pretrained(
        src, local_files_only=True, dtype=torch.float32
    )
    ref: Any = AutoModelForCausalLM.from_pretrained(src, local_files_only=True, dtype=torch.float32)
    ref.eval().requires_grad_(False)
    scorer = DPOImplicitReward(ref, tok, beta=cfg.dpo_beta, prompt_template=prompt_template(cfg))
    token_rewards = (
        _contrastive_rewards(ref, tok, scorer, pairs, cfg) if cfg.objective == "t-reg" else None
    )
    loop = replace(cfg.loop, seed=seed)
    batches = dpo_batches(
        pairs, tok, scorer, cfg, loop.steps * loop.grad_accum, seed, token_rewards
    )
    hist = fit(_PolicyWithRef(policy, ref), batches, dpo_fit_objective(cfg), loop, on_log=log)
    policy.eval()

    def saver(trained: Any, out: Path, meta: dict[str, Any]) -> Path:
        return save_dpo_checkpoint(
            trained.model,
            trained.tokenizer,
            out,
            backbone,
            cfg.dpo_beta,
            prompt_template=prompt_template(cfg),
            **meta,
        )

    info = {"objective": cfg.objective, "seed": seed, "backbone": src, "beta": cfg.dpo_beta}
    return TrainedRM(policy, tok, tuple(hist), info, saver)
