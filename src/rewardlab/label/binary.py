"""Binary search for the first error (OmegaPRM: Luo et al. 2024, "Improve mathematical reasoning
in language models by automated process supervision").

Call a prefix of ``j`` steps *good* when at least one of ``k`` rollouts from it reaches a
correct answer (its MC estimate is above 0), *bad* otherwise. If goodness is monotone along a
solution (once bad, always bad), the first error is the step whose inclusion turns the prefix
bad, found with MC estimates at only ``O(log n)`` prefixes:

- a finished sample with a right answer is all good (no rollouts);
- otherwise the whole solution is bad: known for a finished wrong sample, estimated for one
  without an answer (if that estimate is good, the sample is all good);
- with ``lo = 0`` (the empty prefix, assumed good: the question alone contains no error) and
  ``hi = n`` (bad), repeat ``mid = (lo + hi) // 2``: good -> ``lo = mid``, bad -> ``hi = mid``,
  until ``hi = lo + 1``; the first error is step ``hi - 1`` (0-based).

Emitted labels: steps before the first error good, the first error bad; the record is
truncated after it (what follows is undetermined: the search never looks there). Samples are
searched in lockstep so each round's prefixes go to the policy in one batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rewardlab.label.base import StepLabels, labels_from_first_error, terminal_value
from rewardlab.label.common import ChunkedLabeler, step_labels
from rewardlab.label.rollouts import Estimate, RolloutEstimator
from rewardlab.types import Candidate, Problem


@dataclass
class _Search:
    """Mutable state of one sample's search (internal)."""

    n: int
    lo: int = 0
    hi: int = 0
    first_error: int | None = None  # set when done
    visited: dict[int, Estimate] = field(default_factory=dict)  # prefix length -> estimate

    def query(self) -> int | None:
        """The prefix length to estimate next, None when done."""
        if self.first_error is not None:
            return None
        if self.hi == 0:  # unfinished sample: is the whole solution bad?
            return self.n
        return (self.lo + self.hi) // 2

    def update(self, j: int, e: Estimate) -> None:
        self.visited[j] = e
        if self.hi == 0:
            if e.any_correct:
                self.first_error = -1
            else:
                self.hi = self.n
        elif e.any_correct:
            self.lo = j
        else:
            self.hi = j
        if self.first_error is None and self.hi and self.hi - self.lo <= 1:
            self.first_error = self.hi - 1


@dataclass(frozen=True)
class BinarySearchLabeler(ChunkedLabeler):
    """OmegaPRM's binary search: hard labels up to the first error, MC only where it looks.

    Args:
        estimator: rolls out the policy (and caches rollouts in the store).
        k: rollouts per visited prefix.
        chunk: samples searched in lockstep (one progress update each).
    """

    estimator: RolloutEstimator
    k: int = 8
    chunk: int = 16

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")

    @property
    def name(self) -> str:
        return "binary"

    def _label_chunk(self, problems: list[Problem], samples: list[Candidate]) -> list[StepLabels]:
        searches = self._search(problems, samples)
        return [self._record(p, s, q) for p, s, q in zip(problems, samples, searches, strict=True)]

    def _search(self, problems: list[Problem], samples: list[Candidate]) -> list[_Search]:
        task = self.estimator.task
        searches = []
        for p, s in zip(problems, samples, strict=True):
            state = _Search(n=len(s.steps))
            final = terminal_value(task, p, s)
            if final == 1.0:
                state.first_error = -1
            elif final == 0.0:
                state.hi = state.n
                if state.n == 1:
                    state.first_error = 0
            searches.append(state)
        while True:
            asks = [(i, j) for i, q in enumerate(searches) if (j := q.query()) is not None]
            if not asks:
                return searches
            queries = [(problems[i], samples[i].steps[:j]) for i, j in asks]
            for (i, j), e in zip(asks, self.estimator.estimate(queries, self.k), strict=True):
                searches[i].update(j, e)

    def _record(self, problem: Problem, sample: Candidate, search: _Search) -> StepLabels:
        assert search.first_error is not None
        fe = search.first_error
        values = [
            search.visited[j + 1].value if j + 1 in search.visited else None
            for j in range(search.n)
        ]
        return step_labels(
            self.name,
            problem,
            sample,
            labels_from_first_error(search.n, fe, truncate=True),
            fe,
            estimates=search.visited.values(),
            values=values,
            info={"k": self.k, "visited": sorted(search.visited)},
        )
