"""The ``Reward`` and ``StepReward`` contracts, and a conformance check every reward passes.

A reward maps (problem, candidate) pairs to :class:`~rewardlab.types.Score` objects. ``None``
means "could not grade" (reason in ``info``), never a silent 0.0 — a grader's own failure must
not turn into a wrong reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from rewardlab.types import Candidate, Problem, Score


@runtime_checkable
class Reward(Protocol):
    """Outcome reward: one :class:`Score` per candidate (batched)."""

    name: str

    def score(
        self, problems: Sequence[Problem], candidates: Sequence[Candidate]
    ) -> list[Score]: ...


@runtime_checkable
class StepReward(Protocol):
    """Process reward: one value per step of each candidate, from one forward pass each."""

    name: str

    def score_steps(
        self, problems: Sequence[Problem], candidates: Sequence[Candidate]
    ) -> list[Score]: ...


def values(scores: Sequence[Score], missing: float = np.nan) -> np.ndarray:
    """Score values as a float array, ``missing`` where a candidate could not be graded."""
    return np.array([missing if s.value is None else s.value for s in scores], dtype=float)


def check_reward(
    reward: Reward, problems: Sequence[Problem], candidates: Sequence[Candidate]
) -> None:
    """Conformance: right length, Score objects, no NaN values, ungraded only with a reason,
    deterministic, and inputs left untouched. Raises AssertionError naming the failure."""
    if len(problems) != len(candidates):
        raise ValueError("problems and candidates must have the same length")
    before = (list(problems), list(candidates))
    first = reward.score(problems, candidates)
    assert len(first) == len(candidates), (
        f"{reward.name}: {len(first)} scores for {len(candidates)}"
    )
    for s in first:
        assert isinstance(s, Score), f"{reward.name}: returned {type(s).__name__}, not Score"
        if s.value is None:
            assert s.info.get("reason"), f"{reward.name}: ungraded score without a reason"
        else:
            assert np.isfinite(s.value), f"{reward.name}: non-finite value {s.value}"
    assert reward.score(problems, candidates) == first, f"{reward.name}: not deterministic"
    assert (list(problems), list(candidates)) == before, f"{reward.name}: mutated its inputs"
