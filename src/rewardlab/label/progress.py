"""Progress (advantage) labels under a prover policy (PAV: Setlur et al. 2024, "Rewarding
progress: scaling automated process verifiers for LLM reasoning").

Steps are appended deterministically, so the advantage of step ``h`` under a prover ``mu`` is

    A^mu(s_h, a_h) = V^mu(s_{h+1}) - V^mu(s_h),

where ``s_h`` is the prefix of ``h`` steps (``s_0`` = the question alone) and ``V^mu(s)`` the
probability that the prover reaches a correct answer from ``s``. The label of step ``h`` is
``A_h`` (a float in [-1, 1]): positive when the step made success more likely.

Default prover: Best-of-K of the policy itself (the paper's recommended complementary prover),
computed from the SAME ``k`` rollouts, with no extra samples. A BoK(K) rollout succeeds if any
of K policy samples does, so ``V_BoK = 1 - (1 - p)^K`` with ``p`` the policy's success rate.
From ``c`` correct of ``k`` rollouts we use the unbiased estimate ``1 - C(k-c, K) / C(k, K)``
(Chen et al. 2021's pass@K) when ``k >= K``, else the plug-in ``1 - (1 - c/k)^K``. With
``prover_k = 1`` the prover is the policy (``V = c / k``). A different prover policy can be
given as its own estimator.

The value of a finished sample (its text holds an answer) is its correctness, for any prover.
Cost: ``k`` rollouts at each of ``s_0 .. s_{n-1}`` (and ``s_n`` when unfinished).

First-error estimate (ours; PAV defines none): the first step with ``A_h <= -margin``; if there
is none but the solution's end value ``V(s_n)`` is 0, the step with the lowest advantage (the
first of equals) -- the step that lost the most of the prover's chance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import comb

from rewardlab.label.base import Label, StepLabels
from rewardlab.label.common import ChunkedLabeler, estimate_prefixes, step_labels
from rewardlab.label.rollouts import Estimate, RolloutEstimator
from rewardlab.types import Candidate, Problem


def best_of_k_value(successes: int, k: int, big_k: int) -> float:
    """Estimated success probability of Best-of-K from ``successes`` correct of ``k`` rollouts.

    >>> best_of_k_value(1, 4, 4), best_of_k_value(2, 4, 1), round(best_of_k_value(1, 2, 4), 4)
    (1.0, 0.5, 0.9375)
    """
    if not 0 <= successes <= k or k < 1 or big_k < 1:
        raise ValueError(f"need 0 <= successes <= k, k >= 1, K >= 1; got {successes}, {k}, {big_k}")
    if k >= big_k:
        return 1.0 - comb(k - successes, big_k) / comb(k, big_k)
    return 1.0 - (1.0 - successes / k) ** big_k


def first_error_from_progress(advantages: Sequence[float], end_value: float, margin: float) -> int:
    """First step with advantage <= -margin; else, when the end value is 0, the first step of
    lowest advantage; else -1.

    >>> first_error_from_progress([0.1, -0.7, -0.2], 0.0, 0.5)
    1
    >>> first_error_from_progress([0.0, -0.2, -0.1], 0.0, 0.5)
    1
    >>> first_error_from_progress([0.0, -0.2], 1.0, 0.5)
    -1
    """
    for h, a in enumerate(advantages):
        if a <= -margin:
            return h
    if end_value == 0.0 and advantages:
        low = min(advantages)
        return next(h for h, a in enumerate(advantages) if a == low)
    return -1


@dataclass(frozen=True)
class ProgressLabeler(ChunkedLabeler):
    """PAV progress labels: per-step advantage of a prover, estimated by MC rollouts.

    Args:
        estimator: rolls out the policy.
        k: rollouts per prefix.
        prover_k: K of the Best-of-K prover (1 = the policy itself).
        prover: a separate prover policy's estimator; None = BoK of ``estimator``'s policy.
        margin: advantage at or below ``-margin`` marks a step as the first error.
        truncate: stop the record after the first bad step (default).
        chunk: samples per batch of rollouts.
    """

    estimator: RolloutEstimator
    k: int = 8
    prover_k: int = 4
    prover: RolloutEstimator | None = None
    margin: float = 0.5
    truncate: bool = True
    chunk: int = 16

    def __post_init__(self) -> None:
        if self.k < 1 or self.prover_k < 1:
            raise ValueError(f"k and prover_k must be >= 1, got {self.k}, {self.prover_k}")
        if not 0.0 < self.margin <= 1.0:
            raise ValueError(f"margin must be in (0, 1], got {self.margin}")

    @property
    def name(self) -> str:
        return "progress"

    def _label_chunk(self, problems: list[Problem], samples: list[Candidate]) -> list[StepLabels]:
        per_sample = estimate_prefixes(  # s_0 .. s_{n-1}, and s_n when unfinished
            self.prover or self.estimator,
            self.k,
            problems,
            samples,
            lambda n, done: range(n + 1 - done),
        )
        return [
            self._record(p, s, est, final)
            for p, s, (est, final) in zip(problems, samples, per_sample, strict=True)
        ]

    def _value(self, e: Estimate) -> float:
        return best_of_k_value(e.successes, e.k, self.prover_k)

    def _record(
        self, problem: Problem, sample: Candidate, est: dict[int, Estimate], final: float | None
    ) -> StepLabels:
        n = len(sample.steps)
        v = [self._value(est[j]) if j in est else float(final or 0.0) for j in range(n + 1)]
        advantages = [v[h + 1] - v[h] for h in range(n)]
        first_error = first_error_from_progress(advantages, v[n], self.margin)
        labels: list[Label] = list(advantages)
        return step_labels(
            self.name,
            problem,
            sample,
            labels,
            first_error,
            truncate=self.truncate,
            estimates=est.values(),
            values=v[1:],
            info={
                "k": self.k,
                "prover_k": self.prover_k,
                "prover": (self.prover or self.estimator).policy.name,
                "value_before": v[0],
                "rollout_mc": [est[j].value if j in est else final for j in range(1, n + 1)],
            },
        )
