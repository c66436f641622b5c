"""score_pool reuses stored scores; a text-only reward scores each distinct candidate once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest

from rewardlab.search.pool import score_pool
from rewardlab.store import SampleStore
from rewardlab.tasks import arith
from rewardlab.types import Candidate, Problem, Score


@dataclass
class LengthReward:
    """Score = number of characters of the text (+ the mean logprob when it is not text-only);
    records every candidate it was asked to score."""

    name: str = "length"
    text_only: ClassVar[bool] = True
    seen: list[str] = field(default_factory=list)

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        self.seen += [c.text for c in candidates]
        return [Score(float(len(c.text))) for c in candidates]


@dataclass
class LogprobLengthReward(LengthReward):
    name: str = "length+logprob"
    text_only: ClassVar[bool] = False

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        self.seen += [c.text for c in candidates]
        return [Score(len(c.text) + (c.mean_logprob or 0.0)) for c in candidates]


def _pool() -> tuple[list[Problem], list[list[Candidate]], list[str]]:
    problems = arith.generate(2, seed=3, n_ops=(1, 2))
    texts = [["a", "bb", "a", "a"], ["a", "ccc", "ccc", "a"]]  # "a" in both problems
    pool = [
        [
            Candidate(p.id, t, (t,), None, index=k, logprobs=(-0.1 * (k + 1),))
            for k, t in enumerate(row)
        ]
        for p, row in zip(problems, texts, strict=True)
    ]
    return problems, pool, [f"req{i}" for i in range(len(problems))]


@pytest.mark.parametrize("batch_size", [1, 2, 64])
def test_text_only_reward_scores_each_distinct_candidate_of_a_problem_once(
    tmp_path: Path, batch_size: int
) -> None:
    problems, pool, keys = _pool()
    store = SampleStore(tmp_path / "s.sqlite")
    reward = LengthReward()
    seen: list[tuple[int, int]] = []
    out = score_pool(
        reward,
        problems,
        pool,
        keys,
        store,
        batch_size=batch_size,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert [[s.value for s in row] for row in out] == [[1, 2, 1, 1], [1, 3, 3, 1]]
    assert sorted(reward.seen) == ["a", "a", "bb", "ccc"]  # distinct per problem, not globally
    assert seen[0] == (0, 8) and seen[-1] == (8, 8)  # progress counts candidates, not calls
    again, cached = LengthReward(), []
    reused = score_pool(again, problems, pool, keys, store, progress=lambda d, t: cached.append(d))
    assert reused == out and again.seen == [] and cached == [8]


def test_a_reward_that_reads_logprobs_scores_every_copy(tmp_path: Path) -> None:
    problems, pool, keys = _pool()
    reward = LogprobLengthReward()
    out = score_pool(reward, problems, pool, keys, SampleStore(tmp_path / "s.sqlite"))
    assert len(reward.seen) == 8
    assert [s.value for s in out[0]] == pytest.approx([0.9, 1.8, 0.7, 0.6])
