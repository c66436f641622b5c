"""Compute-optimal selection: choices worked by hand, the efficiency multiple on hand-made
curves, cross-validation that never reads the evaluated fold, bins, the saved selector.

Run: .venv/bin/python -m pytest -q tests/search/test_compute_optimal.py
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.search.compute_optimal import (
    FittedSelector,
    Table,
    applied,
    bin_of,
    choose,
    compute_to_match,
    cross_validated_choices,
    efficiency_multiple,
    evaluate_groups,
    fit_selector,
    oracle_difficulty,
    predicted_difficulty,
    quantile_bins,
    two_folds,
)


def hand_table() -> Table:
    """Two problems, best-of-N (10 FLOPs per sample) and beam (20 FLOPs per N).

    bon  acc p0 [.2, .4, .5]  p1 [.0, .2, .3]  -> means [.1, .3, .4], cost [10, 20, 40]
    beam acc p0 [.3, .6, .9]  p1 [.1, .4, .5]  -> means [.2, .5, .7], cost [20, 40, 80]
    """
    acc = np.array(
        [
            [[0.2, 0.4, 0.5], [0.0, 0.2, 0.3]],
            [[0.3, 0.6, 0.9], [0.1, 0.4, 0.5]],
        ]
    )
    cost = np.array([[[10.0, 20.0, 40.0]] * 2, [[20.0, 40.0, 80.0]] * 2])
    return Table(("bon", "beam"), (1, 2, 4), acc, cost)


def test_choice_worked_by_hand_flops_matched() -> None:
    # level N=1, 10 FLOPs allowed: only bon@1 fits (beam@1 costs 20)       -> bon@1
    # level N=2, 20 FLOPs: bon@1 .1, bon@2 .3, beam@1 .2                    -> bon@2
    # level N=4, 40 FLOPs: bon@1..4 (.1/.3/.4), beam@1 .2, beam@2 .5        -> beam@2
    t = hand_table()
    got = [t.option_name(o) for o in choose(t, np.array([0, 1]), ref=0)]
    assert got == ["bon@1", "bon@2", "beam@2"]


def test_choice_worked_by_hand_same_n() -> None:
    # same budget N: beam beats bon at every N (.2 > .1, .5 > .3, .7 > .4)
    t = hand_table()
    got = [t.option_name(o) for o in choose(t, np.array([0, 1]), ref=0, match="n")]
    assert got == ["beam@1", "beam@2", "beam@4"]


def test_choice_on_one_problem_and_ties_go_to_the_cheaper() -> None:
    t = hand_table()
    # on problem 1 alone, at 40 FLOPs: bon@4 .3 vs beam@2 .4 -> beam@2
    assert t.option_name(choose(t, np.array([1]), 0)[2]) == "beam@2"
    acc = np.array([[[0.5, 0.5]], [[0.5, 0.5]]])
    cost = np.array([[[2.0, 4.0]], [[1.0, 3.0]]])
    tie = Table(("a", "b"), (1, 2), acc, cost)
    # all reach .5: the cheapest option in the allowance wins (b@1 at 1 FLOP)
    assert [tie.option_name(o) for o in choose(tie, np.array([0]), 0)] == ["b@1", "b@1"]


def test_missing_options_are_unavailable() -> None:
    t = hand_table()
    acc, cost = t.acc.copy(), t.cost.copy()
    acc[1, 0, 1] = cost[1, 0, 1] = np.nan  # beam@2 not run on problem 0
    t2 = Table(t.configs, t.budgets, acc, cost)
    # level N=4 without beam@2: bon@4 .4 vs beam@1 .2 -> bon@4
    assert t2.option_name(choose(t2, np.array([0, 1]), 0)[2]) == "bon@4"
    # fitted on problem 1 only, beam@2 is complete again
    assert t2.option_name(choose(t2, np.array([1]), 0)[2]) == "beam@2"


def test_multiple_on_hand_made_curves() -> None:
    cost, acc = np.array([1.0, 2.0, 4.0, 8.0]), np.array([0.1, 0.2, 0.3, 0.4])
    # best-of-N reaches .3 at 4 FLOPs; the other curve spends 1 -> 4x
    assert efficiency_multiple(cost, acc, 1.0, 0.3).value == pytest.approx(4.0)
    # .25 lies half-way between (2, .2) and (4, .3): log-linear -> sqrt(2 * 4) = 2.828
    assert compute_to_match(cost, acc, 0.25) == (pytest.approx(math.sqrt(8.0)), "")
    # beyond best-of-N's best: a lower bound at its largest budget
    m = efficiency_multiple(cost, acc, 2.0, 0.5)
    assert (m.value, m.censored) == (4.0, ">")
    # below its smallest: an upper bound
    m = efficiency_multiple(cost, acc, 0.5, 0.05)
    assert (m.value, m.censored) == (2.0, "<")
    # not monotone: the running maximum [.1, .3, .3, .4]; .35 sits half-way between 4 and 8
    bumpy = np.array([0.1, 0.3, 0.2, 0.4])
    assert compute_to_match(cost, bumpy, 0.35)[0] == pytest.approx(math.sqrt(32.0))
    # unsorted input is sorted by compute first
    assert compute_to_match(cost[::-1], acc[::-1], 0.25)[0] == pytest.approx(math.sqrt(8.0))


def test_cv_applies_the_other_folds_choice() -> None:
    """Fold 0 problems are best served by config A, fold 1 by B: cross-validation must give
    fold 0 the choice fitted on fold 1 (B) and vice versa."""
    p = 8
    folds = np.array([0, 1] * 4)
    acc = np.zeros((2, p, 1))
    acc[0, folds == 0, 0] = 1.0  # A is right on fold 0
    acc[1, folds == 1, 0] = 1.0  # B is right on fold 1
    t = Table(("A", "B"), (1,), acc, np.ones((2, p, 1)))
    ch = cross_validated_choices(t, np.zeros(p, dtype=int), folds, ref=0)
    names = [t.option_name(o) for o in ch[:, 0]]
    assert names == ["B@1", "A@1"] * 4
    # so CV accuracy is 0 everywhere, where the in-sample choice would look perfect
    assert applied(t, ch)[0].sum() == 0.0


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_cv_never_reads_the_evaluated_folds_labels(seed: int) -> None:
    """Changing every accuracy of fold 0 changes no choice applied to fold 0."""
    rng = np.random.default_rng(seed)
    c, p, b = 4, 30, 3
    acc = rng.random((c, p, b))
    cost = np.cumsum(rng.random((c, p, b)) + 0.1, axis=2)
    bins = rng.integers(0, 3, p)
    folds = two_folds(bins, seed)
    t1 = Table(tuple("abcd"), (1, 2, 4), acc, cost)
    acc2 = acc.copy()
    acc2[:, folds == 0] = rng.random((c, int((folds == 0).sum()), b))
    t2 = Table(tuple("abcd"), (1, 2, 4), acc2, cost)
    ch1 = cross_validated_choices(t1, bins, folds, ref=0)
    ch2 = cross_validated_choices(t2, bins, folds, ref=0)
    assert np.array_equal(ch1[folds == 0], ch2[folds == 0])


def test_two_folds_split_every_bin() -> None:
    bins = np.repeat(np.arange(5), 7)
    folds = two_folds(bins, seed=3)
    for j in range(5):
        assert abs(int(folds[bins == j].sum()) - 7 / 2) <= 0.5
    assert np.array_equal(folds, two_folds(bins, seed=3))


def test_quantile_bins_easiest_first_and_equal_sized() -> None:
    bins, thr = quantile_bins(np.array([0.9, 0.1, 0.5, 0.7, 0.3]), 5)
    assert bins.tolist() == [0, 4, 2, 1, 3]
    assert thr.tolist() == pytest.approx([0.8, 0.6, 0.4, 0.2])
    ties = quantile_bins(np.array([1.0] * 6 + [0.0] * 4), 5)[0]
    assert np.bincount(ties).tolist() == [2, 2, 2, 2, 2]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=5, max_size=60, unique=True))
def test_bin_of_agrees_with_quantile_bins(values: list[float]) -> None:
    v = np.array(values)
    bins, thr = quantile_bins(v, 5)
    assert [bin_of(x, thr) for x in v] == bins.tolist()
    assert np.bincount(bins).max() - np.bincount(bins, minlength=5).min() <= 1


def test_difficulties() -> None:
    correct = np.array([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=bool)
    assert oracle_difficulty(correct).tolist() == [0.5, 0.0]
    scores = np.array([[0.8, np.nan, 0.4], [np.nan, np.nan, np.nan], [0.1, 0.1, 0.1]])
    # the ungraded row gets the mean of all graded scores, (0.8 + 0.4 + 0.3) / 5
    assert predicted_difficulty(scores).tolist() == pytest.approx([0.6, 0.3, 0.1])


def test_evaluate_groups_on_the_reference_alone_is_one() -> None:
    t = hand_table()
    only_bon = Table(("bon",), t.budgets, t.acc[:1], t.cost[:1])
    ch = cross_validated_choices(only_bon, np.zeros(2, dtype=int), np.array([0, 1]), ref=0)
    rows = evaluate_groups(only_bon, ch, 0, {"all": np.arange(2)}, n_boot=200)
    assert [r.multiple for r in rows] == pytest.approx([1.0, 1.0, 1.0])
    assert all(r.ci_low <= r.multiple <= r.ci_high for r in rows)


def test_evaluate_groups_numbers_by_hand() -> None:
    """In-sample choices of the hand table applied to both problems: at level N=4 the choice is
    beam@2 (.5 at 40 FLOPs); best-of-N reaches .5 nowhere (best .4): censored '>' with
    multiple 40 / 40 = 1. At N=2, bon@2 (.3 at 20) equals the reference: 1."""
    t = hand_table()
    best = choose(t, np.array([0, 1]), 0)
    ch = np.tile(best, (2, 1))
    rows = evaluate_groups(t, ch, 0, {"all": np.arange(2)}, n_boot=100)
    assert [r.opt_acc for r in rows] == pytest.approx([0.1, 0.3, 0.5])
    assert [r.opt_cost for r in rows] == pytest.approx([10.0, 20.0, 40.0])
    assert rows[2].censored == ">" and rows[2].multiple == pytest.approx(1.0)
    assert rows[2].chosen == {"beam@2": 2}


def test_fitted_selector_round_trip_and_pick() -> None:
    t = hand_table()
    sel = fit_selector(t, np.array([0, 0]), [], 0, verifier="prm")
    again = FittedSelector.from_json(json.loads(json.dumps(sel.to_json())))
    assert again == sel
    assert (sel.pick(0, n=4).config, sel.pick(0, n=4).n) == ("beam", 2)
    # 25 FLOPs allow level N=2 (20) but not N=4 (40)
    assert sel.pick(0, max_flops=25.0).level == 2
    with pytest.raises(ValueError, match="below the cheapest level"):
        sel.pick(0, max_flops=5.0)
    with pytest.raises(ValueError, match="not a level"):
        sel.pick(0, n=3)
    with pytest.raises(ValueError, match="not a saved selector"):
        FittedSelector.from_json({"reference": "bon"})


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a, c: (a * 2, c), "in \\[0, 1\\]"),
        (lambda a, c: (a, -c), "> 0"),
        (lambda a, c: (a[:, :, :2], c), "must both be"),
    ],
)
def test_bad_tables_are_refused(change: object, message: str) -> None:
    t = hand_table()
    acc, cost = change(t.acc, t.cost)  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        Table(t.configs, t.budgets, acc, cost)


def test_bin_of_with_adjacent_floats() -> None:
    """The midpoint of 5e-324 and 0.0 rounds to 0.0 (found by hypothesis): the threshold must
    still separate the two, so 0.0 lands in the harder bin."""
    v = np.array([0.0, 1.0, 0.5, 0.75, 5e-324])
    bins, thr = quantile_bins(v, 5)
    assert bins.tolist() == [4, 0, 2, 1, 3]
    assert [bin_of(x, thr) for x in v] == bins.tolist()
