"""Pairwise judges: a model that sees both responses and says which one is better.

A :class:`PairwiseJudge` returns P(first shown ≻ second shown) for each (problem, first,
second). Position bias (does the verdict depend on which response is shown first?) is only
defined for such judges; :mod:`rewardlab.evaluate.trust` measures it by asking twice.

- :class:`ScalarPairwise` wraps any scalar :class:`~rewardlab.rewards.base.Reward`:
  P = σ(r(first) − r(second)). Each response is scored alone, so swapping the pair gives
  1 − P exactly: a scalar RM has **no position bias by construction** (σ(d) + σ(−d) = 1).
- :class:`LMPairwiseJudge` prompts a causal LM with both responses and reads the next-token
  probabilities of " A" and " B" after the question "Which response is better, A or B?"
  (the LLM-as-a-judge pairwise format of Zheng et al. 2023), P = p(A) / (p(A) + p(B)). The
  two options must differ in their first token (checked when the judge is made);
  :func:`load_judge` moves the space into the prompt for tokenizers that split " A".

``rewardlab eval position --judge lm:tiny`` (an LM judge on a policy spec) or ``--judge SPEC``
(a scalar reward) runs the diagnostic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rewardlab.rewards.base import values
from rewardlab.steps import split_lines
from rewardlab.types import Candidate, Problem

PAIRWISE_PROMPT = (
    "Question: {question}\nResponse A:\n{first}\nResponse B:\n{second}\n"
    "Which response is better, A or B? Answer:"
)
"""The LM judge's prompt; the verdict is read as the next token (" A" or " B")."""


@runtime_checkable
class PairwiseJudge(Protocol):
    """P(first ≻ second) per (problem, first, second); NaN where the judge could not say."""

    name: str

    def prefer(
        self, problems: Sequence[Problem], firsts: Sequence[str], seconds: Sequence[str]
    ) -> np.ndarray: ...


def _candidate(problem: Problem, text: str) -> Candidate:
    return Candidate(problem.id, text, tuple(split_lines(text)), None)


def _check_lengths(problems: Sequence[Any], firsts: Sequence[str], seconds: Sequence[str]) -> None:
    if not len(problems) == len(firsts) == len(seconds):
        raise ValueError(
            f"{len(problems)} problems, {len(firsts)} first and {len(seconds)} second responses"
        )


@dataclass(frozen=True)
class ScalarPairwise:
    """A scalar reward read as a pairwise judge: P(first ≻ second) = σ(r(first) − r(second))."""

    reward: Any
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", str(getattr(self.reward, "name", "reward")))

    def prefer(
        self, problems: Sequence[Problem], firsts: Sequence[str], seconds: Sequence[str]
    ) -> np.ndarray:
        """σ(r_first − r_second); NaN where either side is ungraded."""
        _check_lengths(problems, firsts, seconds)
        both = values(
            self.reward.score(
                [*problems, *problems],
                [
                    _candidate(p, t)
                    for p, t in zip([*problems, *problems], [*firsts, *seconds], strict=True)
                ],
            )
        )
        d = both[: len(problems)] - both[len(problems) :]
        out: np.ndarray = 1.0 / (1.0 + np.exp(-d))
        return out


@dataclass(frozen=True)
class LMPairwiseJudge:
    """A causal LM prompted with both responses; the verdict is p(" A") vs p(" B").

    Args:
        policy: an HF policy (``load_policy("tiny")``, a model dir, a .gguf).
        template: the prompt, with ``{question}``, ``{first}``, ``{second}``.
        options: the two verdict strings (their first tokens are read).
    """

    policy: Any
    template: str = PAIRWISE_PROMPT
    options: tuple[str, str] = (" A", " B")
    batch_size: int = 16
    name: str = ""

    def __post_init__(self) -> None:
        from rewardlab.policies.hf_scoring import require_hf

        require_hf(self.policy, "an LM pairwise judge")
        for key in ("{question}", "{first}", "{second}"):
            if key not in self.template:
                raise ValueError(f"pairwise judge template lacks {key}")
        firsts = self.first_tokens()
        if firsts[0] == firsts[1]:
            raise ValueError(
                f"pairwise judge options {self.options!r} start with the same token "
                f"({firsts[0]}) for this tokenizer: the verdict could not be read; pass options "
                "that differ in their first token (e.g. end the template with a space and use "
                "('A', 'B'))"
            )
        if not self.name:
            object.__setattr__(self, "name", f"lm-judge[{getattr(self.policy, 'name', 'lm')}]")

    def first_tokens(self) -> tuple[int, int]:
        """The token ids read for the two options (after a prompt of this template)."""
        from rewardlab.policies.hf_scoring import continuation_ids

        probe = self.template.format(question="q", first="a", second="b")
        a, b = (continuation_ids(self.policy, probe, o)[1][0] for o in self.options)
        return a, b

    def prefer(
        self, problems: Sequence[Problem], firsts: Sequence[str], seconds: Sequence[str]
    ) -> np.ndarray:
        """p(A) / (p(A) + p(B)) read after the prompt; NaN when both are 0."""
        from rewardlab.policies.hf_scoring import next_token_probs

        _check_lengths(problems, firsts, seconds)
        prompts = [
            self.template.format(question=p.question, first=a, second=b)
            for p, a, b in zip(problems, firsts, seconds, strict=True)
        ]
        probs = next_token_probs(self.policy, prompts, self.options, self.batch_size).probs
        total = probs.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out: np.ndarray = np.where(total > 0, probs[:, 0] / total, np.nan)
        return out


def load_judge(spec: str, **kwargs: Any) -> Any:
    """``lm:<policy spec>`` → :class:`LMPairwiseJudge`; anything else is a reward spec wrapped
    in :class:`ScalarPairwise` (checkpoint dirs and registry names, see ``rewards.registry``)."""
    if spec.startswith("lm:"):
        from rewardlab.policies.registry import load_policy

        policy_spec = spec[3:]
        if not policy_spec:
            raise ValueError("judge 'lm:' needs a policy spec, e.g. lm:tiny")
        policy = load_policy(policy_spec, **kwargs)
        try:
            return LMPairwiseJudge(policy)
        except ValueError as e:
            if "same token" not in str(e):
                raise
            # a tokenizer that splits " A" into " " + "A": the space goes into the prompt
            return LMPairwiseJudge(policy, template=PAIRWISE_PROMPT + " ", options=("A", "B"))
    from rewardlab.rewards.registry import load_reward

    return ScalarPairwise(load_reward(spec, **kwargs))
