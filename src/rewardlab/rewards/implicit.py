"""Implicit PRM: process rewards from an outcome-trained log-likelihood ratio (Yuan et al. 2024).

"Free Process Rewards without Process Labels": parameterise the outcome reward as
``r(y) = beta * log(pi(y) / pi_ref(y))`` and train it on outcome labels only (cross-entropy:
``L = -[l log sigmoid(r) + (1 - l) log(1 - sigmoid(r))]``). Then the partial sums
``q_t = sum_{i <= t} beta * log(pi(y_i | y_<i) / pi_ref(y_i | y_<i))`` are soft Q-values and
the reward of step ``t`` is ``q_t - q_{t-1}``: ``beta`` times the log-ratio summed over the
step's tokens. Here a step's tokens are its own tokens and the separator after it (the span
``(boundaries[t-1], boundaries[t]]`` of :mod:`rewardlab.rewards.step_format`), so the step
rewards add up to ``r(y)`` over the whole response. One forward pass of each model per batch.

``aggregate="sum"`` (the default) gives ``value = r(y)``, the trained outcome logit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rewardlab.rewards.prm import OnePassScorer, batch_tensors, model_device, param_count
from rewardlab.rewards.step_format import Encoded, StepFormat


def token_logprobs(model: Any, ids: Any, mask: Any) -> Any:
    """``[B, T]`` token log-probs: ``out[b, j] = log p(ids[b, j] | ids[b, <j])``; column 0 is 0."""
    import torch

    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    picked = torch.gather(logits.log_softmax(-1), 2, ids[:, 1:, None])[..., 0]
    return torch.cat([torch.zeros_like(picked[:, :1]), picked], dim=1)


def step_masks(batch: Sequence[Encoded], width: int) -> Any:
    """``[S, T]`` float mask, one row per step of the batch: 1 on that step's tokens and the
    separator after it. ``rows`` of :func:`~rewardlab.rewards.step_format.boundary_index`
    says which sequence each row belongs to."""
    import torch

    n = sum(len(e.boundaries) for e in batch)
    out = torch.zeros((n, width))
    k = 0
    for e in batch:
        start = e.prompt_len
        for b in e.boundaries:
            out[k, start : b + 1] = 1.0
            start, k = b + 1, k + 1
    return out


def response_mask(batch: Sequence[Encoded], width: int) -> Any:
    """``[B, T]`` float mask of every response token (all steps and separators)."""
    import torch

    out = torch.zeros((len(batch), width))
    for r, e in enumerate(batch):
        out[r, e.prompt_len : e.boundaries[-1] + 1] = 1.0
    return out


def log_ratio(model: Any, ref: Any, ids: Any, mask: Any) -> Any:
    """``[B, T]`` per-token ``log pi - log pi_ref`` (the reference gets no gradient)."""
    import torch

    dev = model_device(ref)
    with torch.no_grad():
        ref_lp = token_logprobs(ref, ids.to(dev), mask.to(dev))
    return token_logprobs(model, ids, mask) - ref_lp.to(ids.device)


@dataclass(frozen=True, eq=False)
class ImplicitPRM(OnePassScorer):
    """Implicit PRM: step reward = ``beta * sum over the step's tokens of log(pi / pi_ref)``.

    Args:
        model: the trained causal LM (pi), in eval mode.
        ref: the reference causal LM (pi_ref, usually the backbone it was trained from); same
            tokenizer.
        tokenizer: the shared tokenizer.
        beta: the reward scale used in training.
        fmt: the step format it was trained with.
        aggregate: ``sum`` (default: ``r(y)``), or ``last``/``min``/``mean``/``prod``.
        name, batch_size: reward name and candidates per forward pass.

    ``score_steps`` gives the per-step rewards ``r_t`` in ``Score.steps``; ``value`` = their
    aggregate (one pass of each model per batch, :class:`~rewardlab.rewards.prm.OnePassScorer`).
    """

    model: Any
    ref: Any
    tokenizer: Any
    beta: float = 0.05
    fmt: StepFormat = field(default_factory=StepFormat)
    aggregate: str = "sum"
    name: str = "implicit-prm"
    batch_size: int = 32
    fingerprint: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")

    @property
    def params(self) -> int:
        """Both models run on every token: the scaling job charges their sum."""
        return param_count(self.model) + param_count(self.ref)

    def read(self, batch: Sequence[Encoded]) -> list[np.ndarray]:
        ids, mask, rows, _ = batch_tensors(self.model, self.tokenizer, batch)
        ratio = log_ratio(self.model, self.ref, ids, mask)
        steps = step_masks(batch, ids.shape[1]).to(ratio.device)
        per_step = self.beta * (ratio[rows] * steps).sum(-1)
        counts = np.cumsum([len(e.boundaries) for e in batch])[:-1]
        return list(np.split(per_step.cpu().numpy(), counts))
