"""Monte-Carlo step labels (Math-Shepherd: Wang et al. 2024, "Math-Shepherd: verify and
reinforce LLMs step-by-step without human annotations").

For every step ``t`` of a sample, ``k`` rollouts continue the prefix ``s_{1..t}`` (steps 0..t,
see :mod:`rewardlab.label.rollouts`). With ``c_t`` correct rollouts:

- hard label ``y_t = 1[c_t > 0]`` (the step can still lead to a right answer);
- soft label ``y_t = c_t / k``.

The last step of a finished sample (its text holds a final answer) needs no rollouts: its value
is the sample's own correctness. Every step is estimated (all prefixes in one batch: "full MC");
the first-error estimate is the first step with no correct rollout. Cost: ``k`` rollouts per
step, ``k * n`` per ``n``-step sample (``k * (n - 1)`` when it is finished).

>>> from rewardlab.label.mc import MonteCarloLabeler  # doctest: +SKIP
>>> MonteCarloLabeler(estimator, k=8).label(problems, samples)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

from rewardlab.label.base import Label, StepLabels, first_false
from rewardlab.label.common import ChunkedLabeler, estimate_prefixes, step_labels
from rewardlab.label.rollouts import Estimate, RolloutEstimator
from rewardlab.types import Candidate, Problem


@dataclass(frozen=True)
class MonteCarloLabeler(ChunkedLabeler):
    """Math-Shepherd labels from ``k`` rollouts per step prefix.

    Args:
        estimator: rolls out the policy (and caches rollouts in the store).
        k: rollouts per prefix.
        soft: emit the fraction of correct rollouts instead of the any-correct bit.
        truncate: stop the record after the first bad step (default); False keeps every step's
            raw MC label, as Math-Shepherd's released data does.
        chunk: samples per batch of rollouts (one progress update each).
    """

    estimator: RolloutEstimator
    k: int = 8
    soft: bool = False
    truncate: bool = True
    chunk: int = 16

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")

    @property
    def name(self) -> str:
        return "mc-soft" if self.soft else "mc-hard"

    def _label_chunk(self, problems: list[Problem], samples: list[Candidate]) -> list[StepLabels]:
        per_sample = estimate_prefixes(  # every prefix s_{1..t}, but a finished sample's whole
            self.estimator, self.k, problems, samples, lambda n, done: range(1, n + 1 - done)
        )
        return [
            self._record(p, s, est, final)
            for p, s, (est, final) in zip(problems, samples, per_sample, strict=True)
        ]

    def _record(
        self, problem: Problem, sample: Candidate, est: dict[int, Estimate], final: float | None
    ) -> StepLabels:
        """``est`` maps a prefix length ``t + 1`` to the estimate after step ``t``."""
        after = range(1, len(sample.steps) + 1)
        values = [est[j].value if j in est else final for j in after]
        assert all(v is not None for v in values)
        good = [v is not None and v > 0 for v in values]
        first_error = first_false(good)
        labels: list[Label] = [float(v or 0.0) for v in values] if self.soft else list(good)
        return step_labels(
            self.name,
            problem,
            sample,
            labels,
            first_error,
            truncate=self.truncate,
            estimates=est.values(),
            values=values,
            info={
                "k": self.k,
                "successes": [est[j].successes if j in est else None for j in after],
            },
        )
