"""A real step reward for search tests: the arith testbed's exact step truth (no noise)."""

from __future__ import annotations

from collections.abc import Sequence

from rewardlab.tasks.arith import check_steps
from rewardlab.types import Candidate, Problem, Score


class TruthStepReward:
    """Step score 1.0 while every step so far is right, else 0.0 (ProcessBench semantics)."""

    name = "truth"
    params = 0
    text_only = True

    def score_steps(
        self, problems: Sequence[Problem], candidates: Sequence[Candidate]
    ) -> list[Score]:
        out = []
        for p, c in zip(problems, candidates, strict=True):
            report = check_steps(p, "\n".join(c.steps))
            fe = report.first_error
            n = len(c.steps)
            steps = tuple(1.0 if fe < 0 or i < fe else 0.0 for i in range(n))
            out.append(Score(steps[-1] if steps else 0.0, steps))
        return out

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        return self.score_steps(problems, candidates)
