"""Step statistics of RL solutions: hand-counted cases and properties over random texts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.evaluate.rl_metrics import SolutionStats, solution_stats, summarise
from rewardlab.tasks import arith

PROBLEM = arith.generate(n=1, seed=3, n_ops=(3, 3))[0]
GOLD = arith.gold_steps(PROBLEM)


def test_gold_has_no_empty_steps() -> None:
    s = solution_stats(PROBLEM, "\n".join(GOLD))
    assert s == SolutionStats(
        steps=4, empty=0, repeated=0, unparsed=0, identity=0, extra=0, correct=True
    )


def test_hand_counted_padding() -> None:
    a = int(PROBLEM.meta["states"][1])
    text = "\n".join(
        [
            "Let me solve this.",  # unparsed
            GOLD[0],
            f"{a} + 0 = {a}",  # identity (and the 2nd equation: not extra, 3 ops)
            GOLD[0],  # repeated
            GOLD[1],  # 4th equation: extra
            GOLD[2],  # 5th equation: extra
            GOLD[3],
            GOLD[3],  # a second answer line: extra (a correct answer line: not "repeated")
        ]
    )
    s = solution_stats(PROBLEM, text)
    assert (s.steps, s.unparsed, s.identity, s.repeated, s.extra) == (8, 1, 1, 1, 3)
    # empty: unparsed, identity, repeated GOLD[0], GOLD[1] (extra), GOLD[2] (extra), last line
    assert s.empty == 6
    assert s.correct  # correctness is the final answer's


def test_summarise_hand_worked() -> None:
    rows = [SolutionStats(4, 2, 1, 1, 0, 0, True), SolutionStats(6, 1, 0, 0, 1, 0, False)]
    out = summarise(rows)
    assert out["steps"] == 5.0 and out["empty"] == 1.5 and out["repeated"] == 0.5
    assert out["empty_frac"] == pytest.approx(3 / 10)
    assert out["accuracy"] == 0.5
    with pytest.raises(ValueError, match="at least one"):
        summarise([])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([*GOLD, "filler", "1 * 1 = 1", ""]), max_size=12))
def test_counts_are_consistent(lines: list[str]) -> None:
    s = solution_stats(PROBLEM, "\n".join(lines))
    parts = (s.repeated, s.unparsed, s.identity, s.extra)
    assert all(0 <= x <= s.empty for x in parts)
    assert s.empty <= min(s.steps, sum(parts))
    assert s.steps == len([x for x in lines if x.strip()])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 8))
def test_any_gold_solution_is_clean(seed: int, n_ops: int) -> None:
    p = arith.generate(n=1, seed=seed, n_ops=(n_ops, n_ops))[0]
    s = solution_stats(p, arith.gold_solution(p))
    assert s.correct and s.empty == 0 and s.steps == n_ops + 1
