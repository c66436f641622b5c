"""Trainers of the preference objectives that need more than a scalar pairwise loss.

Each ``train_*`` has the signature of an objective trainer (see ``Objective.trainer`` in
:mod:`rewardlab.train.preference`): ``(backbone, cfg, pairs, seed, log) -> TrainedRM``, and runs
:func:`rewardlab.train.loop.fit` with its own ``fit`` objective; the formulas are in
:mod:`rewardlab.train.pref_objectives`.

- ``gpm``: an :class:`~rewardlab.rewards.pref_models.EmbeddingModel` with ``gpm_dim`` outputs,
  L2-normalised, trained with the GPM loss (τ = ``gpm_tau``); saved as kind ``gpm``.
- ``vpl``: a :class:`~rewardlab.rewards.pref_models.VPLModel`. Rows need a ``user`` column.
  Each batch holds ``vpl_groups`` groups; a group is ``vpl_context`` + ``vpl_targets`` pairs of
  one user (drawn without replacement). The encoder reads the K context pairs, z is sampled
  once per group by the reparameterisation trick, and the loss is the negative ELBO on all
  K + T pairs of the group (the ELBO is over the user's labelled set; the T pairs the encoder
  does not see make z carry the user's preference rather than those pairs' labels); β =
  ``vpl_beta``. Saved as kind ``vpl``.
- ``ctrl-u``: the scalar reward model; every step scores the batch twice, each pass with an
  independent random ``ctrl_u_drop`` fraction of the tokens masked out of attention (the last
  token, where the score is read, always kept), and weighs each pair's BT loss by exp(−u),
  u = |Δ¹ − Δ²| (:func:`~rewardlab.train.pref_objectives.ctrl_u_loss`). Saved as a
  ``preference-rm``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rewardlab.rewards.pref_models import (
    VPLModel,
    build_embedding_model,
    gpm_embed,
    save_embedding_checkpoint,
    save_vpl,
)
from rewardlab.rewards.preference_rm import build_reward_model, encode_texts, pad_right
from rewardlab.train.loop import fit
from rewardlab.train.pref_batches import pair_batches
from rewardlab.train.pref_io import PairRow
from rewardlab.train.pref_objectives import ctrl_u_loss, gpm_loss, gpm_score, vpl_loss
from rewardlab.train.preference import PreferenceConfig

if TYPE_CHECKING:
    from rewardlab.train.pref_trainer import TrainedRM

Log = Callable[[dict[str, Any]], None]


def _pairs(rows: Sequence[PairRow], tok: Any, cfg: PreferenceConfig, seed: int) -> list[Any]:
    return pair_batches(
        rows,
        tok,
        cfg.template,
        batch_size=cfg.batch_size,
        max_length=cfg.max_length,
        n_batches=cfg.loop.steps * cfg.loop.grad_accum,
        seed=seed,
    )


def _trained(model: Any, tok: Any, history: list[Any], info: dict[str, Any], saver: Any) -> Any:
    from rewardlab.train.pref_trainer import TrainedRM

    model.eval()
    return TrainedRM(model, tok, tuple(history), info, saver)


# ------------------------------------------------------------------------------ GPM


def gpm_fit_objective(cfg: PreferenceConfig) -> Callable[..., Any]:
    """``fit`` objective: GPM loss on [chosen; rejected] embeddings; accuracy = P(s > 0)."""

    def fn(model: Any, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        v = gpm_embed(model(batch["input_ids"], batch["attention_mask"]))
        b = v.shape[0] // 2
        loss = gpm_loss(v[:b], v[b:], cfg.gpm_tau)
        with torch.no_grad():
            acc = float((gpm_score(v[:b], v[b:]) > 0).float().mean())
        return loss, {"accuracy": acc}

    return fn


def train_gpm(
    backbone: str | Path,
    cfg: PreferenceConfig,
    pairs: Sequence[PairRow],
    seed: int,
    log: Log | None,
) -> TrainedRM:
    """Train a General Preference Model (see the module docstring)."""
    model, tok = build_embedding_model(backbone, cfg.gpm_dim, seed)
    loop = replace(cfg.loop, seed=seed)
    hist = fit(model, _pairs(pairs, tok, cfg, seed), gpm_fit_objective(cfg), loop, on_log=log)

    def saver(trained: Any, out: Path, meta: dict[str, Any]) -> Path:
        return save_embedding_checkpoint(
            trained.model,
            trained.tokenizer,
            out,
            kind="gpm",
            loader="rewardlab.rewards.pref_models:load_gpm",
            tau=cfg.gpm_tau,
            **meta,
        )

    info = {"objective": "gpm", "seed": seed, "backbone": str(backbone), "dim": cfg.gpm_dim}
    return _trained(model, tok, hist, info, saver)  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------ VPL


def user_groups(rows: Sequence[PairRow]) -> dict[str, list[int]]:
    """Row indices by the ``user`` column; a row without one is an error naming its index."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        u = r.extra.get("user")
        if u is None:
            raise ValueError(f"vpl needs a 'user' column on every row; row {i} has none")
        groups.setdefault(str(u), []).append(i)
    return groups


def vpl_batches(
    rows: Sequence[PairRow],
    tokenizer: Any,
    cfg: PreferenceConfig,
    n_batches: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Batches of ``vpl_groups`` user groups, each ``vpl_context + vpl_targets`` pairs of one
    user: ``input_ids``/``attention_mask`` [2·G·(K+T), L] (all chosen, then all rejected, group
    by group) and the ints ``groups``, ``context``, ``targets``."""
    groups = user_groups(rows)
    k, t = cfg.vpl_context, cfg.vpl_targets
    small = {u: len(ix) for u, ix in groups.items() if len(ix) < k + t}
    if small:
        raise ValueError(f"vpl needs >= {k + t} pairs per user (context + targets); {small}")
    chosen = encode_texts(
        tokenizer,
        [cfg.template.format(prompt=r.prompt, response=r.chosen) for r in rows],
        cfg.max_length,
    )
    rejected = encode_texts(
        tokenizer,
        [cfg.template.format(prompt=r.prompt, response=r.rejected) for r in rows],
        cfg.max_length,
    )
    rng = random.Random(seed)
    users = sorted(groups)
    out = []
    for _ in range(n_batches):
        idx: list[int] = []
        for _g in range(cfg.vpl_groups):
            idx += rng.sample(groups[rng.choice(users)], k + t)
        ids, mask = pad_right(
            [chosen[i] for i in idx] + [rejected[i] for i in idx], tokenizer.pad_token_id
        )
        out.append(
            {
                "input_ids": ids,
                "attention_mask": mask,
                "groups": cfg.vpl_groups,
                "context": k,
                "targets": t,
            }
        )
    return out


def vpl_fit_objective(cfg: PreferenceConfig) -> Callable[..., Any]:
    """``fit`` objective: the negative ELBO of VPL on each group's K + T pairs."""

    def fn(model: Any, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        g, k, t = int(batch["groups"]), int(batch["context"]), int(batch["targets"])
        e = model(batch["input_ids"], batch["attention_mask"])
        n = e.shape[0] // 2
        e_c, e_r = e[:n].reshape(g, k + t, -1), e[n:].reshape(g, k + t, -1)
        mu, logvar = model.posterior(e_c[:, :k], e_r[:, :k])
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        r_c = model.reward(e_c, z[:, None, :])  # the likelihood of all K + T pairs of the user
        r_r = model.reward(e_r, z[:, None, :])
        loss, nll, kl = vpl_loss(r_c, r_r, mu, logvar, cfg.vpl_beta)
        with torch.no_grad():
            acc = float((r_c > r_r).float().mean())
        return loss, {"accuracy": acc, "nll": float(nll.detach()), "kl": float(kl.detach())}

    return fn


def train_vpl(
    backbone: str | Path,
    cfg: PreferenceConfig,
    pairs: Sequence[PairRow],
    seed: int,
    log: Log | None,
) -> TrainedRM:
    """Train a Variational Preference Learning model (see the module docstring)."""
    embedder, tok = build_embedding_model(backbone, cfg.vpl_dim, seed)
    torch.manual_seed(seed)
    model = VPLModel(embedder, cfg.vpl_latent, cfg.vpl_hidden)
    loop = replace(cfg.loop, seed=seed)
    batches = vpl_batches(pairs, tok, cfg, loop.steps * loop.grad_accum, seed)
    hist = fit(model, batches, vpl_fit_objective(cfg), loop, on_log=log)

    def saver(trained: Any, out: Path, meta: dict[str, Any]) -> Path:
        return save_vpl(trained.model, trained.tokenizer, out, **meta)

    info = {
        "objective": "vpl",
        "seed": seed,
        "backbone": str(backbone),
        "users": sorted(user_groups(pairs)),
    }
    return _trained(model, tok, hist, info, saver)  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------ Ctrl-U


def drop_tokens(mask: torch.Tensor, p: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """A copy of the right-padded ``mask`` with each real token dropped with probability ``p``,
    except the first and the last real token of every row."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"the drop probability must be in [0, 1), got {p}")
    keep = torch.rand(mask.shape, generator=gen, device=mask.device) >= p
    last = mask.long().sum(dim=1) - 1
    rows = torch.arange(mask.shape[0], device=mask.device)
    keep[rows, last] = True
    keep[:, 0] = True
    return mask * keep.to(mask.dtype)


def ctrl_u_fit_objective(cfg: PreferenceConfig) -> Callable[..., Any]:
    """``fit`` objective: two token-dropped passes, exp(−|Δ¹ − Δ²|)-weighted BT."""

    def fn(model: Any, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        r1 = model(ids, drop_tokens(mask, cfg.ctrl_u_drop))
        r2 = model(ids, drop_tokens(mask, cfg.ctrl_u_drop))
        b = r1.shape[0] // 2
        d1, d2 = r1[:b] - r1[b:], r2[:b] - r2[b:]
        loss = ctrl_u_loss(d1, d2)
        with torch.no_grad():
            u = (d1 - d2).abs()
            acc = float(((d1 + d2) > 0).float().mean())
        return loss, {"accuracy": acc, "uncertainty": float(u.mean())}

    return fn


def train_ctrl_u(
    backbone: str | Path,
    cfg: PreferenceConfig,
    pairs: Sequence[PairRow],
    seed: int,
    log: Log | None,
) -> TrainedRM:
    """Train a scalar RM with the Ctrl-U uncertainty-weighted loss (module docstring)."""
    model, tok = build_reward_model(backbone, cfg.head, seed)
    loop = replace(cfg.loop, seed=seed)
    hist = fit(model, _pairs(pairs, tok, cfg, seed), ctrl_u_fit_objective(cfg), loop, on_log=log)
    info = {"objective": "ctrl-u", "seed": seed, "backbone": str(backbone)}
    return _trained(model, tok, hist, info, None)  # type: ignore[no-any-return]
