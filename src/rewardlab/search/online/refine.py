"""Refinement from the first flagged step (GLoRe's local refinement, Havrilla et al. 2024).

A sequential strategy on the same budget as best-of-N: attempt 1 samples a whole solution,
scoring each step with the process reward. If some step scores below ``threshold``, the next
attempt keeps the steps before the FIRST flagged one and re-samples from there to the end
(a fresh draw: the sampling seed moves with the attempt); a solution with no flagged step is
accepted at once. After ``n`` attempts (or on acceptance) the outcome verifier picks among all
finished attempts (``select="bon"`` by the last step's score: GLoRe's ORM reranking).
"""

from __future__ import annotations

from dataclasses import dataclass

from rewardlab.search.online.base import Partial, SearchResult
from rewardlab.search.online.beam import finish_result
from rewardlab.search.online.engine import BudgetExhausted, StepExpander
from rewardlab.types import Problem


def first_flagged(scores: tuple[float, ...], threshold: float) -> int:
    """Index of the first step scoring below ``threshold`` (NaN counts as flagged), or -1.

    >>> first_flagged((0.9, 0.4, 0.2), 0.5)
    1
    >>> first_flagged((0.9, 0.8), 0.5)
    -1
    """
    for i, s in enumerate(scores):
        if s != s or s < threshold:
            return i
    return -1


@dataclass(frozen=True)
class Refine:
    """Up to ``n`` attempts, each restarting from the first step the verifier flags."""

    reward: str
    threshold: float = 0.5
    select: str = "bon"
    label: str = ""  # options shown in the name (set by parse_online)

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")

    @property
    def name(self) -> str:
        return f"refine[{self.reward}{'@' + self.label if self.label else ''}]"

    def search(self, problem: Problem, engine: StepExpander, n: int) -> SearchResult:
        engine.reset()
        attempts: list[Partial] = []
        trace: list[Partial] = [Partial()]  # the current attempt's partial after each step
        start = 0
        stopped = ""
        accepted = -1
        try:
            for attempt in range(n):
                current = trace[start]
                history = trace[: start + 1]
                while not current.finished:
                    current = engine.expand(problem, [current], 1, seed_offset=attempt * 7919)[0][0]
                    history.append(current)
                attempts.append(current)
                flagged = first_flagged(current.scores, self.threshold)
                if flagged < 0:
                    accepted = attempt
                    break
                trace, start = history, flagged  # keep steps before the flagged one
        except BudgetExhausted as e:
            stopped = str(e)
        info: dict[str, object] = {"attempts": len(attempts), "accepted": accepted}
        if stopped:
            info["budget_stop"] = stopped
        return finish_result(
            self.name, problem, engine, n, attempts, max(1, len(attempts)), self.select, info
        )
