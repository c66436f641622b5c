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

from collections.abc import Sequence
from dataclasses import dataclass

from rewardlab.label.base import (
    Label,
    Progress,
    StepLabels,
    check_inputs,
    chunks,
    first_false,
    terminal_value,
)
from rewardlab.label.rollouts import Estimate, RolloutEstimator
from rewardlab.types import Candidate, Problem


@dataclass(frozen=True)
class MonteCarloLabeler:
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

    def label(
        self,
        problems: Sequence[Problem],
        samples: Sequence[Candidate],
        progress: Progress | None = None,
    ) -> list[StepLabels]:
        check_inputs(problems, samples)
        out: list[StepLabels] = []
        for part in chunks(len(samples), self.chunk):
            out += self._label_chunk([problems[i] for i in part], [samples[i] for i in part])
            if progress is not None:
                progress(part.stop, len(samples))
        return out

    def _label_chunk(self, problems: list[Problem], samples: list[Candidate]) -> list[StepLabels]:
        task = self.estimator.task
        terminal = [terminal_value(task, p, s) for p, s in zip(problems, samples, strict=True)]
        queries: list[tuple[Problem, Sequence[str]]] = []
        owners: list[tuple[int, int]] = []  # (sample, step)
        for i, (p, s) in enumerate(zip(problems, samples, strict=True)):
            last = len(s.steps) - (terminal[i] is not None)
            for t in range(last):
                queries.append((p, s.steps[: t + 1]))
                owners.append((i, t))
        estimates = self.estimator.estimate(queries, self.k) if queries else []
        per_sample: list[dict[int, Estimate]] = [{} for _ in samples]
        for (i, t), e in zip(owners, estimates, strict=True):
            per_sample[i][t] = e
        return [
            self._record(p, s, per_sample[i], terminal[i])
            for i, (p, s) in enumerate(zip(problems, samples, strict=True))
        ]

    def _record(
        self, problem: Problem, sample: Candidate, est: dict[int, Estimate], final: float | None
    ) -> StepLabels:
        n = len(sample.steps)
        values = [est[t].value if t in est else final for t in range(n)]
        assert all(v is not None for v in values)
        good = [v is not None and v > 0 for v in values]
        first_error = first_false(good)
        labels: list[Label] = [float(v or 0.0) for v in values] if self.soft else list(good)
        keep = first_error + 1 if self.truncate and first_error >= 0 else n
        return StepLabels(
            problem=problem,
            sample_index=sample.index,
            completions=tuple(sample.steps[:keep]),
            labels=tuple(labels[:keep]),
            labeler=self.name,
            first_error=first_error,
            n_steps=n,
            rollouts=sum(e.k for e in est.values()),
            prompt_tokens=sum(e.prompt_tokens for e in est.values()),
            generated_tokens=sum(e.generated_tokens for e in est.values()),
            fresh_rollouts=sum(e.fresh for e in est.values()),
            values=tuple(values),
            info={
                "k": self.k,
                "successes": [est[t].successes if t in est else None for t in range(n)],
            },
        )
