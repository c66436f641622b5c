"""Follow-up likelihood as reward (FLR; Zhang et al. 2024, "Aligning Language Models Using
Follow-up Likelihood as Reward Signal"), from any causal LM.

A training-free reward: after the response, how likely is the user to say something pleased
rather than something displeased? With positive follow-ups F⁺ and negative ones F⁻,

    FLR(x, y) = mean_{f ∈ F⁺} ℓ(f | x, y) − mean_{f ∈ F⁻} ℓ(f | x, y)

where ℓ(f | x, y) is the log-likelihood of the follow-up's tokens read after
``template.format(question=x, response=y)``: their **mean** per-token log-probability by default
(``normalize="mean"``; follow-ups of different lengths then weigh alike), or their sum
(``normalize="sum"``). The paper's exact templates and normalisation are unverified
(papers.md §26); both are parameters here. The defaults below are short, generic follow-ups in
the paper's spirit, not its list.

The LM is any :func:`~rewardlab.policies.registry.load_policy` spec with a transformers model
(``"tiny"``, ``"smollm2"``, a model directory, a ``.gguf``) or an already-loaded HF policy; the
log-probabilities come from :func:`rewardlab.policies.hf_scoring.continuation_logprobs`.

>>> flr = FollowUpReward(load_policy("smollm2"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rewardlab.types import Candidate, Problem, Score

DEFAULT_POSITIVE = (
    "Thank you, that is exactly what I needed.",
    "Great, that answers my question.",
    "Perfect, that helps a lot.",
)
DEFAULT_NEGATIVE = (
    "That is wrong.",
    "That does not answer my question.",
    "You misunderstood what I asked.",
)
DEFAULT_TEMPLATE = "User: {question}\nAssistant: {response}\nUser:"


class FollowUpReward:
    """FLR on a causal LM (see the module docstring)."""

    def __init__(
        self,
        policy: Any,
        *,
        positive: Sequence[str] = DEFAULT_POSITIVE,
        negative: Sequence[str] = DEFAULT_NEGATIVE,
        template: str = DEFAULT_TEMPLATE,
        normalize: str = "mean",
        batch_size: int = 16,
        name: str = "flr",
    ) -> None:
        from rewardlab.policies.hf_scoring import require_hf

        require_hf(policy, "follow-up likelihood")
        if not positive or not negative:
            raise ValueError("FLR needs at least one positive and one negative follow-up")
        if any(not f.strip() for f in (*positive, *negative)):
            raise ValueError("follow-ups must be non-empty")
        if normalize not in ("mean", "sum"):
            raise ValueError(f"normalize must be 'mean' or 'sum', got {normalize!r}")
        if "{question}" not in template or "{response}" not in template:
            raise ValueError("the template needs {question} and {response}")
        self.policy = policy
        self.positive = tuple(positive)
        self.negative = tuple(negative)
        self.template = template
        self.normalize = normalize
        self.batch_size = batch_size
        self.name = name

    def followup_loglik(self, prefixes: Sequence[str], followups: Sequence[str]) -> np.ndarray:
        """ℓ(f | prefix) for every prefix × follow-up: float [len(prefixes), len(followups)]."""
        from rewardlab.policies.hf_scoring import continuation_logprobs

        pre = [p for p in prefixes for _ in followups]
        cont = [" " + f.strip() for _ in prefixes for f in followups]
        lps = continuation_logprobs(self.policy, pre, cont, batch_size=self.batch_size)
        agg = np.mean if self.normalize == "mean" else np.sum
        return np.array([float(agg(lp)) for lp in lps]).reshape(len(prefixes), len(followups))

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        if len(problems) != len(candidates):
            raise ValueError(f"{len(problems)} problems for {len(candidates)} candidates")
        if not candidates:
            return []
        prefixes = [
            self.template.format(question=p.question, response=c.text)
            for p, c in zip(problems, candidates, strict=True)
        ]
        ll = self.followup_loglik(prefixes, self.positive + self.negative)
        pos, neg = ll[:, : len(self.positive)], ll[:, len(self.positive) :]
        out = []
        for i in range(len(candidates)):
            p_mean, n_mean = float(pos[i].mean()), float(neg[i].mean())
            out.append(Score(p_mean - n_mean, info={"positive": p_mean, "negative": n_mean}))
        return out


def load_flr(policy: str = "tiny", device: str | None = None, **kwargs: Any) -> FollowUpReward:
    """Registry entry ``flr``: ``flr:policy=smollm2`` etc. (``policy`` is a load_policy spec)."""
    from rewardlab.policies.registry import load_policy

    pkw: dict[str, Any] = {} if device is None else {"device": device}
    return FollowUpReward(load_policy(str(policy), **pkw), **kwargs)
