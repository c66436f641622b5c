"""Core value types shared by every layer: problems, candidates, scores, budgets.

Everything here is a frozen dataclass: nothing in rewardlab mutates its inputs. These types are
the bottom layer; they import nothing from the rest of the package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One question with its reference answer.

    Attributes:
        id: stable identifier, unique within a task (used as part of store keys).
        question: the text shown to the policy.
        answer: the reference final answer as text (e.g. ``"42"`` or ``"\\frac{1}{2}"``).
        task: name of the task the problem came from (``"arith"``, ``"gsm8k"``, ...).
        meta: task-specific extras (difficulty, gold steps, source ...); JSON-serialisable.
    """

    id: str
    question: str
    answer: str
    task: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters; part of the store key, so two pools with other params never mix."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass(frozen=True)
class Completion:
    """What a policy returns for one sample: text plus its cost and (optionally) logprobs."""

    text: str
    prompt_tokens: int
    generated_tokens: int
    logprobs: tuple[float, ...] | None = None
    finish_reason: str = "stop"  # "stop" (eos or stop string) | "length"


@dataclass(frozen=True)
class Candidate:
    """A candidate solution to a problem, split into steps.

    Attributes:
        problem_id: the :class:`Problem` it answers.
        text: the full solution text.
        steps: the text split by ``segmentation`` (see :mod:`rewardlab.steps`).
        answer: the extracted final answer, or None if none could be found.
        prompt_tokens / generated_tokens: cost of producing it.
        logprobs: per generated token, if the backend gave them.
        segmentation: name of the step segmentation used (recorded for reproducibility).
        index: position of the sample in its pool (0..n-1).
        meta: extras (policy name, step truth on the testbed, imported labels ...).
    """

    problem_id: str
    text: str
    steps: tuple[str, ...]
    answer: str | None
    prompt_tokens: int = 0
    generated_tokens: int = 0
    logprobs: tuple[float, ...] | None = None
    segmentation: str = "lines"
    index: int = 0
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def mean_logprob(self) -> float | None:
        """Mean token log-probability of the generated text, or None without logprobs."""
        if not self.logprobs:
            return None
        return float(sum(self.logprobs) / len(self.logprobs))


@dataclass(frozen=True)
class Score:
    """A reward's verdict on one candidate.

    ``value`` is None when the reward could not grade the candidate; the reason is then in
    ``info["reason"]``. A grader never turns its own failure into a fake 0.0.
    """

    value: float | None
    steps: tuple[float, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def ungraded(cls, reason: str, **info: Any) -> Score:
        return cls(value=None, info={"reason": reason, **info})


@dataclass(frozen=True)
class Budget:
    """A test-time compute budget: candidates to sample and/or FLOPs to spend."""

    n: int = 1
    max_flops: float | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"budget n must be >= 1, got {self.n}")
        if self.max_flops is not None and self.max_flops <= 0:
            raise ValueError(f"max_flops must be > 0, got {self.max_flops}")


def as_tuple(xs: Sequence[float] | None) -> tuple[float, ...] | None:
    """Normalise an optional float sequence to a tuple (for frozen fields)."""
    return None if xs is None else tuple(float(x) for x in xs)
