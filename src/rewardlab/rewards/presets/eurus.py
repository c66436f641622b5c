"""EurusPRM (implicit PRM; Yuan et al. 2024, "Free Process Rewards without Process Labels";
Cui et al. 2025, PRIME): process rewards from the log-likelihood ratio of the trained model
and its reference, ``q_t = beta * sum_{i <= t} log(pi(y_i | y_<i) / pi_ref(y_i | y_<i))``.

The model card's recipe (``PRIME-RL/EurusPRM-Stage2``), repeated token for token:

- ids: the chat template on ``user`` (question), ``assistant`` (steps joined by ``"\\n\\n"``),
  ``add_generation_prompt=False``, tokenized once;
- step ends ``s_k``: for ``k = 0..n`` the chat of the first ``k`` steps, rendered, stripped,
  plus ``"\\n\\n"`` for ``0 < k < n``, tokenized: ``s_k = len(ids) - 2`` (``s_0`` is the last
  prompt token, ``s_k`` the first token after step ``k``; ``s_n`` the last token of step
  ``n``);
- ``q_k = beta * sum of the log-ratios of tokens s_0 .. s_k + 1`` (the card's ``label_mask``
  from ``s_0``, ``cumsum``, ``gather`` at ``s_k`` of the shifted log-probs), ``beta = 0.001``
  (the card's ``coef``; the authors' ProcessBench script uses 0.005).

So ``q_k`` counts the first token after the step's separator, and ``q_n`` the end-of-turn
token; the recipe keeps these off-by-ones because they are what the published numbers used.
``Score.steps`` holds ``q_k`` (``step_values="q"``, the card's output) or the per-step
rewards ``q_k - q_{k-1}`` (``step_values="reward"``, ``q_0 = 0``); ``info["q"]`` always holds
``q``. With ``aggregate="last"`` and ``q`` the value is ``q_n = r(y)``, the trained outcome
logit. Both models run once per batch.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.rewards.implicit import token_logprobs
from rewardlab.rewards.presets.common import (
    StepScorer,
    batch_ids,
    fingerprint,
    load_auto,
    load_tokenizer,
    model_dir,
    param_count,
    render_chat,
    step_score,
)
from rewardlab.rewards.step_format import Encoded
from rewardlab.types import Candidate, Problem, Score

EURUS_BETA = 0.001
STEP_VALUES = ("q", "reward")


def card_positions(tokenizer: Any, question: str, steps: Sequence[str]) -> tuple[int, ...]:
    """``(s_0, ..., s_n)`` exactly as the model card computes them (see the module doc)."""
    out = []
    for k in range(len(steps) + 1):
        chat = [
            {"role": "user", "content": question},
            {"role": "assistant", "content": "\n\n".join(steps[:k])},
        ]
        text = render_chat(tokenizer, chat).strip()
        if 0 < k < len(steps):
            text += "\n\n"
        out.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]) - 2)
    return tuple(out)


@dataclass(frozen=True, eq=False)
class EurusPRM(StepScorer):
    """Implicit PRM read as EurusPRM's card reads it (a ``StepReward``).

    Args:
        model: the trained causal LM (pi); ref: the reference causal LM (pi_ref), same
            tokenizer; both eval mode.
        tokenizer: the shared fast tokenizer with the chat template.
        beta: the card's ``coef``.
        step_values: ``q`` (cumulative, the card's output) or ``reward`` (per step).
        aggregate, name, batch_size, fingerprint, max_length: as every preset.
    """

    model: Any
    ref: Any
    tokenizer: Any
    beta: float = EURUS_BETA
    step_values: str = "q"
    aggregate: str = "last"
    name: str = "eurus-prm"
    batch_size: int = 4
    fingerprint: str = ""
    max_length: int | None = None

    def __post_init__(self) -> None:
        self.check(self.aggregate)
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if self.step_values not in STEP_VALUES:
            raise ValueError(f"step_values must be one of {list(STEP_VALUES)}")
        if len(self.tokenizer) > self.ref.get_input_embeddings().weight.shape[0]:
            raise ValueError(
                f"{self.name}: the reference model's vocabulary is smaller than the "
                "tokenizer's; pi and pi_ref must share one tokenizer"
            )

    @property
    def params(self) -> int:
        """Both models run on every token."""
        return param_count(self.model, self.ref)

    def encode(self, problem: Problem, candidate: Candidate) -> Encoded | Score:
        if not candidate.steps:
            return Score.ungraded("no steps")
        chat = [
            {"role": "user", "content": problem.question},
            {"role": "assistant", "content": "\n\n".join(candidate.steps)},
        ]
        ids = self.tokenizer(render_chat(self.tokenizer, chat), add_special_tokens=False)
        ids = tuple(int(i) for i in ids["input_ids"])
        s = card_positions(self.tokenizer, problem.question, candidate.steps)
        ordered = all(a < b for a, b in itertools.pairwise(s))
        if not ordered or s[0] < 0 or s[-1] + 1 >= len(ids):
            return Score.ungraded(f"step positions {list(s)} do not fit {len(ids)} tokens")
        return Encoded(ids, s[1:], s[0])

    def read(self, batch: Sequence[Encoded]) -> list[Score]:
        import torch

        dev = next(self.model.parameters()).device
        ids, mask = batch_ids(batch, self.tokenizer, self.model, dev)
        ref_dev = next(self.ref.parameters()).device
        ref_lp = token_logprobs(self.ref, ids.to(ref_dev), mask.to(ref_dev)).to(dev)
        ratio = token_logprobs(self.model, ids, mask) - ref_lp  # [B, T]; col j: token j
        start = torch.tensor([e.prompt_len for e in batch], device=dev)
        cols = torch.arange(ids.shape[1], device=dev)
        q_all = (self.beta * ratio * (cols[None, :] >= start[:, None])).cumsum(-1)
        out = []
        for r, e in enumerate(batch):
            q = q_all[r, [b + 1 for b in e.boundaries]].cpu().numpy().astype(float)
            steps = q if self.step_values == "q" else np.diff(q, prepend=0.0)
            out.append(step_score(steps, self.aggregate, q=tuple(float(v) for v in q)))
        return out


def load_eurus_prm(
    path: str | Path,
    ref: str | Path,
    *,
    device: str | None = None,
    dtype: str = "float32",
    name: str | None = None,
    beta: float = EURUS_BETA,
    step_values: str = "q",
    aggregate: str = "last",
    batch_size: int = 4,
) -> EurusPRM:
    """EurusPRM from local directories (``eurus-prm:path=DIR,ref=REF_DIR``; the card's
    reference is Qwen2.5-Math-7B-Instruct); nothing downloads."""
    p, r = model_dir(path), model_dir(ref)
    model = load_auto(p, "AutoModelForCausalLM", device, dtype)
    reference = load_auto(r, "AutoModelForCausalLM", device, dtype)
    limit = getattr(model.config, "max_position_embeddings", None)
    return EurusPRM(
        model=model,
        ref=reference,
        tokenizer=load_tokenizer(p),
        beta=beta,
        step_values=step_values,
        aggregate=aggregate,
        name=name or "eurus-prm",
        batch_size=batch_size,
        fingerprint=fingerprint(p, r),
        max_length=int(limit) if isinstance(limit, int) else None,
    )
