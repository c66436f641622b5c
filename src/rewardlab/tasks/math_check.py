"""General math tasks (GSM8K, MATH-500, imported pools) checked by Math-Verify.

Answers are extracted and compared by the ``math-verify`` package through
:mod:`rewardlab.rewards.math_answer` (thread-safe path, bounded time per check); no answer
normaliser is written here. (``tasks`` and ``rewards`` are the same layer: a task's checker is
the same code as the reward that grades it.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rewardlab.types import Problem


@dataclass(frozen=True)
class MathTask:
    """A :class:`~rewardlab.tasks.base.Task` for free-form math answers."""

    name: str = "math"
    segmentation: str = "paragraphs"
    timeout_s: float = 5.0

    def extract_answer(self, text: str) -> str | None:
        from rewardlab.rewards.math_answer import extract_answer

        return extract_answer(text, timeout_s=self.timeout_s)

    def same_answer(self, a: str, b: str) -> bool:
        from rewardlab.rewards.math_answer import equivalent

        return equivalent(a, b, timeout_s=self.timeout_s)

    def is_correct(self, problem: Problem, answer: str | None) -> bool:
        if answer is None:
            return False
        from rewardlab.rewards.math_answer import equivalent

        return equivalent(problem.answer, answer, timeout_s=self.timeout_s)

    def annotate(self, problem: Problem, text: str) -> dict[str, Any]:
        return {}
