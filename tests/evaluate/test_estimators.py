"""Estimators against brute force: every k-subset enumerated with itertools.combinations."""

from __future__ import annotations

import doctest
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.evaluate import bootstrap, estimators
from rewardlab.evaluate.estimators import (
    aggregate_steps,
    bon_at_k,
    bootstrap_ci,
    default_ks,
    majority_at_k,
    pass_at_k,
    weighted_majority_at_k,
)

# ---------------------------------------------------------------- brute force, one row at a time


def brute_pass(correct: np.ndarray, k: int) -> float:
    subsets = list(itertools.combinations(range(correct.size), k))
    return float(np.mean([correct[list(s)].any() for s in subsets]))


def brute_bon(scores: np.ndarray, correct: np.ndarray, k: int) -> float:
    """Per subset: the drawn maxima tie, the tie-break is uniform -> mean correctness of them."""
    s = np.where(np.isnan(scores), -np.inf, scores)
    vals = []
    for sub in itertools.combinations(range(s.size), k):
        sub_s = s[list(sub)]
        tied = [i for i, v in zip(sub, sub_s, strict=True) if v == sub_s.max()]
        vals.append(np.mean(correct[tied]))
    return float(np.mean(vals))


def brute_bon_orders(scores: np.ndarray, correct: np.ndarray, k: int) -> float:
    """Tie-break by enumerating every priority order of the candidates (no exact reasoning)."""
    s = np.where(np.isnan(scores), -np.inf, scores)
    vals = []
    for order in itertools.permutations(range(s.size)):
        for sub in itertools.combinations(range(s.size), k):
            best = max(sub, key=lambda i: (s[i], order[i]))
            vals.append(correct[best])
    return float(np.mean(vals))


def brute_vote(ids: np.ndarray, weights: np.ndarray, correct: np.ndarray, k: int) -> float:
    """Per subset: sum weights per answer; the top answers tie; value = mean of their
    correctness, an answer's correctness being the fraction of its pool members that are right."""
    vals = []
    for sub in itertools.combinations(range(ids.size), k):
        totals: dict[int, float] = {}
        for i in sub:
            if ids[i] != -1:
                totals[ids[i]] = totals.get(ids[i], 0.0) + weights[i]
        if not totals:
            vals.append(0.0)
            continue
        top = max(totals.values())
        tied = [a for a, t in totals.items() if t >= top - 1e-9 * abs(top)]
        vals.append(np.mean([correct[ids == a].mean() for a in tied]))
    return float(np.mean(vals))


def random_pool(
    rng: np.random.Generator, p: int, n: int, levels: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Small pool with many ties: discrete scores (some NaN), few answers (some -1)."""
    ids = rng.integers(-1, 3, size=(p, n))
    right = rng.integers(0, 3, size=p)  # answer id that is right, per problem
    correct = (ids == right[:, None]) & (ids != -1)
    scores = rng.integers(0, levels, size=(p, n)) / levels
    scores[rng.random((p, n)) < 0.15] = np.nan
    return ids, correct, scores


# ---------------------------------------------------------------- pass@k


def test_pass_at_k_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    for n in range(1, 9):
        correct = rng.random((6, n)) < rng.random((6, 1))
        ks = list(range(1, n + 1))
        got = pass_at_k(correct, ks)
        want = [[brute_pass(row, k) for k in ks] for row in correct]
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_pass_at_k_large_n_is_stable() -> None:
    # C(1000, 500) overflows a float; the product form does not. c=1: pass@k = k/N exactly.
    correct = np.zeros((1, 1000), dtype=bool)
    correct[0, 3] = True
    np.testing.assert_allclose(pass_at_k(correct, [1, 10, 500, 1000])[0], [0.001, 0.01, 0.5, 1.0])


# ---------------------------------------------------------------- best-of-N@k


def test_bon_at_k_matches_brute_force_with_ties_and_nan() -> None:
    rng = np.random.default_rng(1)
    for n in range(1, 8):
        _, correct, scores = random_pool(rng, 8, n)
        ks = list(range(1, n + 1))
        got = bon_at_k(scores, correct, ks)
        want = [[brute_bon(s, c, k) for k in ks] for s, c in zip(scores, correct, strict=True)]
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_bon_ties_equal_average_over_tie_break_orders() -> None:
    rng = np.random.default_rng(2)
    for n in (3, 4, 5):
        _, correct, scores = random_pool(rng, 4, n, levels=2)
        for k in range(1, n + 1):
            want = [brute_bon_orders(s, c, k) for s, c in zip(scores, correct, strict=True)]
            np.testing.assert_allclose(bon_at_k(scores, correct, [k])[:, 0], want, atol=1e-12)


def test_bon_hand_worked() -> None:
    # scores 0.9(right) 0.9(wrong) 0.5(right) 0.1(wrong), N=4, k=2: C(4,2)=6 pairs.
    # Block {0.9, 0.9} holds the max unless the pair is {0.5, 0.1}: P = 1 - 1/6 = 5/6, mean c 1/2.
    # Block {0.5} holds it for {0.5, 0.1} only: 1/6, c = 1. Total = 5/12 + 1/6 = 7/12.
    s = np.array([[0.9, 0.9, 0.5, 0.1]])
    c = np.array([[True, False, True, False]])
    np.testing.assert_allclose(bon_at_k(s, c, [2]), [[7 / 12]])
    # every candidate ungraded: a uniform pick among all -> mean correctness
    np.testing.assert_allclose(bon_at_k(np.full((1, 4), np.nan), c, [1, 2, 4]), [[0.5] * 3])


# ---------------------------------------------------------------- (weighted) majority@k


@pytest.mark.parametrize("weighted", [False, True])
def test_votes_exact_path_matches_brute_force(weighted: bool) -> None:
    # n_resamples >= C(N, k) for every k: all subsets are enumerated, so equality is exact.
    rng = np.random.default_rng(3)
    for n in range(1, 7):
        ids, correct, scores = random_pool(rng, 10, n)
        w = np.nan_to_num(scores) if weighted else np.ones(ids.shape)
        ks = list(range(1, n + 1))
        if weighted:
            got = weighted_majority_at_k(ids, scores, correct, ks, n_resamples=20, rng=0)
        else:
            got = majority_at_k(ids, correct, ks, n_resamples=20, rng=0)
        want = [[brute_vote(*row, k) for k in ks] for row in zip(ids, w, correct, strict=True)]
        np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_votes_resampled_within_tolerance(weighted: bool) -> None:
    # N=10, k=4: C(10, 4)=210 > R=150, so subsets are sampled. Each replicate's value is in
    # [0, 1], so a problem's estimate has std <= 0.5/sqrt(R) = 0.041 and the mean over P=40
    # problems std <= 0.0065 (replicates are independent across problems). Bounds: 5 sigma.
    rng = np.random.default_rng(4)
    p, n, k, r = 40, 10, 4, 150
    ids, correct, scores = random_pool(rng, p, n)
    w = np.nan_to_num(scores) if weighted else np.ones(ids.shape)
    if weighted:
        got = weighted_majority_at_k(ids, scores, correct, [k], n_resamples=r, rng=5)[:, 0]
    else:
        got = majority_at_k(ids, correct, [k], n_resamples=r, rng=5)[:, 0]
    want = np.array([brute_vote(*row, k) for row in zip(ids, w, correct, strict=True)])
    sigma = 0.5 / math.sqrt(r)
    assert np.abs(got - want).max() < 5 * sigma
    assert abs(got.mean() - want.mean()) < 5 * sigma / math.sqrt(p)


def test_majority_exact_at_k1_and_kn_with_few_resamples() -> None:
    rng = np.random.default_rng(6)
    ids, correct, _ = random_pool(rng, 20, 12)
    got = majority_at_k(ids, correct, [1, 12], n_resamples=1, rng=0)
    np.testing.assert_allclose(got[:, 0], correct.mean(axis=1), atol=1e-12)  # k=1: mean c
    want = [brute_vote(i, np.ones(12), c, 12) for i, c in zip(ids, correct, strict=True)]
    np.testing.assert_allclose(got[:, 1], want, atol=1e-12)


def test_weighted_majority_hand_worked() -> None:
    # answers   A     A     B     B     B     -1
    # scores    0.9   0.8   0.3   0.4   nan   0.99 ; A is right
    # k=6 (all): A = 0.9+0.8 = 1.7, B = 0.3+0.4+0 (nan -> 0) = 0.7, -1 does not vote -> A: 1.0
    # plain majority at k=6: B has 3 votes, A 2 -> 0.0
    ids = np.array([[0, 0, 1, 1, 1, -1]])
    scores = np.array([[0.9, 0.8, 0.3, 0.4, np.nan, 0.99]])
    correct = np.array([[True, True, False, False, False, False]])
    assert weighted_majority_at_k(ids, scores, correct, [6]).tolist() == [[1.0]]
    assert majority_at_k(ids, correct, [6]).tolist() == [[0.0]]
    # k=2 (15 pairs, enumerated): A wins any pair holding an A; pairs with no A: C(4,2)=6:
    #   {B,B} (3 pairs) B wins; {B, -1} (3 pairs) B wins (-1 never wins, even with weight .99).
    #   A-pairs: 15 - 6 = 9 -> 9/15 = 0.6
    np.testing.assert_allclose(weighted_majority_at_k(ids, scores, correct, [2]), [[0.6]])


def test_weighted_majority_all_ungraded_is_a_uniform_vote_among_answers() -> None:
    # totals all 0 -> the three present answers tie -> 1/3; the no-answer candidate is no choice
    ids = np.array([[5, 6, 7, -1]])
    correct = np.array([[True, False, False, False]])
    scores = np.full((1, 4), np.nan)
    np.testing.assert_allclose(weighted_majority_at_k(ids, scores, correct, [4]), [[1 / 3]])


def test_no_answer_never_wins_and_all_no_answer_counts_wrong() -> None:
    ids = np.array([[-1, -1, -1, 2], [-1, -1, -1, -1]])
    correct = np.array([[False, False, False, True], [False] * 4])
    np.testing.assert_allclose(majority_at_k(ids, correct, [4]), [[1.0], [0.0]])
    # k=1: only the one answered candidate can win -> 1/4
    np.testing.assert_allclose(majority_at_k(ids, correct, [1]), [[0.25], [0.0]])


def test_inconsistent_answer_class_counts_fraction_of_members() -> None:
    # answer 3 has members (right, wrong): its value is 1/2 (documented policy)
    ids = np.array([[3, 3, 4]])
    correct = np.array([[True, False, False]])
    np.testing.assert_allclose(majority_at_k(ids, correct, [3]), [[0.5]])


# ---------------------------------------------------------------- step aggregation


def test_aggregate_steps_hand_worked() -> None:
    steps = [np.array([0.9, 0.5, 0.8]), np.array([0.2, 1.0]), np.array([]), np.array([0.7])]
    # last: 0.8, 1.0, nan (no steps), 0.7
    np.testing.assert_allclose(aggregate_steps(steps, "last"), [0.8, 1.0, np.nan, 0.7])
    # min: min(.9,.5,.8)=.5, min(.2,1)=.2
    np.testing.assert_allclose(aggregate_steps(steps, "min"), [0.5, 0.2, np.nan, 0.7])
    # prod: .9*.5*.8=.36, .2*1=.2
    np.testing.assert_allclose(aggregate_steps(steps, "prod"), [0.36, 0.2, np.nan, 0.7])
    # mean: (.9+.5+.8)/3=2.2/3, (.2+1)/2=.6
    np.testing.assert_allclose(aggregate_steps(steps, "mean"), [2.2 / 3, 0.6, np.nan, 0.7])
    # sum: .9+.5+.8=2.2, .2+1=1.2
    np.testing.assert_allclose(aggregate_steps(steps, "sum"), [2.2, 1.2, np.nan, 0.7])


@pytest.mark.parametrize("how", ["last", "min", "prod", "mean", "sum"])
def test_aggregate_nan_step_makes_candidate_ungraded(how: str) -> None:
    out = aggregate_steps([np.array([np.nan, 0.5]), np.array([0.5])], how)  # type: ignore[arg-type]
    assert np.isnan(out[0]) and out[1] == 0.5


def test_aggregate_edge_cases() -> None:
    assert aggregate_steps([], "last").shape == (0,)
    assert np.isnan(aggregate_steps([np.array([])] * 2, "mean")).all()
    with pytest.raises(ValueError, match="choose one of"):
        aggregate_steps([np.array([1.0])], "median")  # type: ignore[arg-type]


# ---------------------------------------------------------------- errors


def test_clear_errors_on_bad_input() -> None:
    c = np.zeros((2, 3), dtype=bool)
    ids = np.zeros((2, 3), dtype=int)
    s = np.zeros((2, 3))
    with pytest.raises(TypeError, match="bool"):
        pass_at_k(c.astype(int), [1])
    with pytest.raises(ValueError, match="2-D"):
        pass_at_k(c[0], [1])
    with pytest.raises(ValueError, match="1 <= k <= N=3"):
        pass_at_k(c, [4])
    with pytest.raises(ValueError, match="1 <= k"):
        bon_at_k(s, c, [0])
    with pytest.raises(TypeError, match="integers"):
        pass_at_k(c, [1.5])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="scores has shape"):
        bon_at_k(s[:, :2], c, [1])
    with pytest.raises(ValueError, match="answer_ids has shape"):
        majority_at_k(ids.T, c, [1])
    with pytest.raises(ValueError, match=">= -1"):
        majority_at_k(ids - 2, c, [1])
    with pytest.raises(ValueError, match="no answer"):
        majority_at_k(ids - 1, ~c, [1])
    with pytest.raises(ValueError, match=">= 0"):
        weighted_majority_at_k(ids, s - 1, c, [1])
    with pytest.raises(ValueError, match=">= 0"):
        weighted_majority_at_k(ids, s + np.inf, c, [1])
    with pytest.raises(ValueError, match="n_resamples"):
        majority_at_k(ids, c, [1], n_resamples=0)
    with pytest.raises(ValueError, match="non-empty"):
        pass_at_k(c, [])


# ---------------------------------------------------------------- properties


@st.composite
def pools(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = draw(st.integers(1, 5))
    n = draw(st.integers(1, 9))
    seed = draw(st.integers(0, 2**32 - 1))
    ids, correct, scores = random_pool(np.random.default_rng(seed), p, n, draw(st.integers(1, 6)))
    return ids, correct, scores


@settings(max_examples=60, deadline=None)
@given(pools())
def test_properties(pool: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, correct, scores = pool
    n = ids.shape[1]
    ks = list(range(1, n + 1))
    pk = pass_at_k(correct, ks)
    bk = bon_at_k(scores, correct, ks)
    mk = majority_at_k(ids, correct, ks, n_resamples=200)
    wk = weighted_majority_at_k(ids, scores, correct, ks, n_resamples=200)
    for curve in (pk, bk, mk, wk):
        assert curve.shape == (ids.shape[0], n)
        assert ((curve >= 0) & (curve <= 1)).all()
    assert (pk >= bk - 1e-12).all()  # the oracle bounds any selection
    assert (np.diff(pk, axis=1) >= -1e-12).all()  # pass@k is monotone in k
    # k=1: every strategy is one random candidate
    for curve in (pk, bk, mk, wk):
        np.testing.assert_allclose(curve[:, 0], correct.mean(axis=1), atol=1e-12)
    # bon@N = correctness of the argmax, ties averaged
    s = np.where(np.isnan(scores), -np.inf, scores)
    top = s == s.max(axis=1, keepdims=True)
    np.testing.assert_allclose(bk[:, -1], (top & correct).sum(1) / top.sum(1), atol=1e-12)
    # N <= 9 so C(N, k) <= 126 <= 200 resamples: votes are enumerated, exact, below the oracle
    assert (pk >= mk - 1e-12).all() and (pk >= wk - 1e-12).all()


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 60),
    st.integers(1, 4),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.05, 0.1, 0.5]),
)
def test_bootstrap_ci_contains_mean(p: int, k: int, seed: int, alpha: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.random((p, k)) ** 3  # skewed
    mean, low, high = bootstrap_ci(x, n_boot=200, alpha=alpha, rng=rng)
    np.testing.assert_allclose(mean, x.mean(axis=0))
    assert mean.shape == low.shape == high.shape == (k,)
    assert (low <= mean + 1e-12).all() and (mean <= high + 1e-12).all()
    assert (low >= x.min(axis=0) - 1e-12).all() and (high <= x.max(axis=0) + 1e-12).all()


def test_bootstrap_ci_width_and_determinism() -> None:
    rng = np.random.default_rng(7)
    x = (rng.random((400, 1)) < 0.5).astype(float)
    _, low, high = bootstrap_ci(x, rng=0)
    # normal approximation: half-width ~ 1.96 * sqrt(.25/400) = 0.049
    assert 0.035 < (high - low)[0] / 2 < 0.065
    again = bootstrap_ci(x, rng=0)
    np.testing.assert_array_equal(again[1], low)
    with pytest.raises(ValueError, match="P >= 1"):
        bootstrap_ci(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci(x, alpha=1.5)


def test_default_ks() -> None:
    assert default_ks(64) == [1, 2, 4, 8, 16, 32, 64]
    assert default_ks(1) == [1]
    assert default_ks(100)[-2:] == [64, 100]


@pytest.mark.parametrize("module", [estimators, bootstrap])
def test_doctests(module: object) -> None:
    assert doctest.testmod(module).failed == 0  # type: ignore[arg-type]


# ---------------------------------------------------------------- resampling machinery


def test_random_prefixes_are_uniform_distinct_draws() -> None:
    rng = np.random.default_rng(8)
    draws = bootstrap.random_prefixes(rng, 60_000, 5, 3)  # [k, rows]
    assert draws.shape == (3, 60_000)
    assert (np.sort(draws, axis=0)[1:] != np.sort(draws, axis=0)[:-1]).all()  # no repeats
    # 5*4*3 = 60 ordered prefixes, 1000 expected each: binomial std ~ 31.4
    counts = np.bincount(draws[0] * 25 + draws[1] * 5 + draws[2], minlength=125)
    assert (counts > 0).sum() == 60 and np.abs(counts[counts > 0] - 1000).max() < 160


def test_seeds_reproduce_and_inputs_are_untouched() -> None:
    rng = np.random.default_rng(9)
    ids, correct, scores = random_pool(rng, 30, 16)
    before = (ids.copy(), correct.copy(), scores.copy())
    a = weighted_majority_at_k(ids, scores, correct, [4, 8], n_resamples=20, rng=3)
    b = weighted_majority_at_k(ids, scores, correct, [4, 8], n_resamples=20, rng=3)
    np.testing.assert_array_equal(a, b)
    gen = np.random.default_rng(3)
    c = majority_at_k(ids, correct, [4], n_resamples=20, rng=gen)
    d = majority_at_k(ids, correct, [4], n_resamples=20, rng=gen)  # the generator moved on
    assert not np.array_equal(c, d)
    bon_at_k(scores, correct, [3])
    for x, y in zip(before, (ids, correct, scores), strict=True):
        np.testing.assert_array_equal(x, y)


def test_empty_pool_gives_empty_curves() -> None:
    ids = np.zeros((0, 4), dtype=int)
    correct = np.zeros((0, 4), dtype=bool)
    scores = np.zeros((0, 4))
    assert pass_at_k(correct, [1, 4]).shape == (0, 2)
    assert bon_at_k(scores, correct, [1, 4]).shape == (0, 2)
    assert majority_at_k(ids, correct, [2, 4]).shape == (0, 2)
    assert weighted_majority_at_k(ids, scores, correct, [2, 4]).shape == (0, 2)
