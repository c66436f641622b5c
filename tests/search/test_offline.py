"""Offline strategies: the pool container, the parser, and curve <-> choose consistency."""

from __future__ import annotations

import dataclasses
import doctest
import itertools

import numpy as np
import pytest

from rewardlab.evaluate.estimators import (
    aggregate_steps,
    bon_at_k,
    majority_at_k,
    pass_at_k,
    weighted_majority_at_k,
)
from rewardlab.search import offline
from rewardlab.search.offline import (
    BestOfN,
    MajorityVote,
    PassAtK,
    PoolArrays,
    Selector,
    Strategy,
    WeightedMajority,
    curves,
    parse_strategy,
)


def make_pool(seed: int = 0, p: int = 6, n: int = 7) -> PoolArrays:
    """Continuous scores (no ties), two answers plus no-answer, ragged step scores."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(-1, 2, size=(p, n))
    correct = (ids == 0) & (rng.random(p) < 0.7)[:, None]
    orm = rng.random((p, n))
    steps = [[rng.random(rng.integers(1, 5)) for _ in range(n)] for _ in range(p)]
    return PoolArrays(correct, ids, scores={"orm": orm}, step_scores={"prm": steps})


ALL: list[Strategy] = [
    MajorityVote(),
    PassAtK(),
    BestOfN("orm"),
    WeightedMajority("orm"),
    *(BestOfN("prm", a) for a in ("last", "min", "prod", "mean")),
    *(WeightedMajority("prm", a) for a in ("last", "min", "prod", "mean")),
]


# ---------------------------------------------------------------- PoolArrays


def test_pool_validation_errors() -> None:
    c = np.zeros((2, 3), dtype=bool)
    ids = np.zeros((2, 3), dtype=int)
    with pytest.raises(ValueError, match="answer_ids has shape"):
        PoolArrays(c, ids[:, :2])
    with pytest.raises(TypeError, match="bool"):
        PoolArrays(c.astype(float), ids)
    with pytest.raises(ValueError, match="reward 'orm': scores has shape"):
        PoolArrays(c, ids, scores={"orm": np.zeros((3, 2))})
    with pytest.raises(TypeError, match="reward 'orm': scores must be floats"):
        PoolArrays(c, ids, scores={"orm": ids})
    with pytest.raises(ValueError, match="2 rows of 3 step arrays"):
        PoolArrays(c, ids, step_scores={"prm": [[np.ones(2)] * 3]})
    with pytest.raises(ValueError, match="both an outcome and a step"):
        PoolArrays(c, ids, {"r": np.zeros((2, 3))}, {"r": [[np.ones(1)] * 3] * 2})


def test_pool_reward_lookup() -> None:
    pool = make_pool()
    assert pool.shape == (6, 7)
    np.testing.assert_array_equal(pool.reward("orm"), pool.scores["orm"])
    flat = [s for row in pool.step_scores["prm"] for s in row]
    np.testing.assert_array_equal(
        pool.reward("prm", "min"), aggregate_steps(flat, "min").reshape(6, 7)
    )
    with pytest.raises(KeyError, match="did you mean 'orm'"):
        pool.reward("omr")
    with pytest.raises(ValueError, match="step reward: give aggregate"):
        pool.reward("prm")
    with pytest.raises(ValueError, match="outcome reward"):
        pool.reward("orm", "last")


# ---------------------------------------------------------------- names, parser, protocols


def test_names_and_parser_round_trip() -> None:
    assert [s.name for s in ALL[:4]] == ["maj", "pass", "bon[orm]", "wmaj[orm]"]
    assert BestOfN("prm", "last").name == "bon[prm:last]"
    for s in ALL:
        assert parse_strategy(s.name) == s
    assert parse_strategy("bon:prm:min") == BestOfN("prm", "min")
    assert parse_strategy(" Majority ") == MajorityVote()
    assert parse_strategy("weighted_sc:orm") == WeightedMajority("orm")
    assert parse_strategy("pass@k") == PassAtK()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("bno:orm", "did you mean 'bon'"),
        ("majority_vote", "did you mean 'majority'"),
        ("bon:prm:mni", "did you mean 'min'"),
        ("bon", "expected 'bon:reward:aggregate'"),
        ("maj:orm", "expected 'maj'"),
        ("bon:prm:min:x", "expected"),
        ("bon::min", "expected"),
        ("zzz", "choose one of"),
    ],
)
def test_parser_errors(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_strategy(spec)


def test_protocols_frozen_hashable() -> None:
    for s in ALL:
        assert isinstance(s, Strategy)
        assert isinstance(s, Selector) != isinstance(s, PassAtK)  # the oracle cannot choose
        hash(s)
    with pytest.raises(dataclasses.FrozenInstanceError):
        BestOfN("orm").reward = "x"  # type: ignore[misc]
    with pytest.raises(ValueError, match="non-empty"):
        BestOfN("")


# ---------------------------------------------------------------- curves


def test_curves_are_the_estimators() -> None:
    pool = make_pool()
    ks = [1, 2, 3, 7]
    out = curves(ALL, pool, ks, rng=0, n_resamples=50)
    assert list(out) == [s.name for s in ALL]
    prm_last = pool.reward("prm", "last")
    np.testing.assert_array_equal(out["pass"], pass_at_k(pool.correct, ks))
    np.testing.assert_array_equal(out["bon[orm]"], bon_at_k(pool.scores["orm"], pool.correct, ks))
    np.testing.assert_array_equal(out["bon[prm:last]"], bon_at_k(prm_last, pool.correct, ks))
    maj = majority_at_k(pool.answer_ids, pool.correct, ks, 50, 0)
    np.testing.assert_array_equal(out["maj"], maj)
    wmaj = weighted_majority_at_k(pool.answer_ids, prm_last, pool.correct, ks, 50, 0)
    np.testing.assert_array_equal(out["wmaj[prm:last]"], wmaj)
    with pytest.raises(ValueError, match="duplicate"):
        curves([MajorityVote(), MajorityVote()], pool, ks)


@pytest.mark.parametrize("strategy", [s for s in ALL if isinstance(s, Selector)], ids=str)
def test_curve_is_the_mean_of_choose_over_subsets(strategy: Selector) -> None:
    # Continuous scores: no score ties, so a deterministic choose gives the curve's value. Votes
    # between answers 0 (right or wrong per problem) and 1 (wrong) can tie in plain majority;
    # the curve then averages the tie-break, so that case is worked out by hand below.
    pool = make_pool(seed=3, p=5, n=7)
    for k in (1, 3, 5, 7):
        got = strategy.curve(pool, [k], n_resamples=100)[:, 0]  # C(7, k) <= 35: enumerated
        for p in range(pool.shape[0]):
            vals = []
            for sub in itertools.combinations(range(pool.shape[1]), k):
                ids = pool.answer_ids[p, list(sub)]
                answered = ids[ids != -1]
                counts = np.bincount(answered, minlength=2) if answered.size else np.zeros(2)
                if isinstance(strategy, MajorityVote) and counts[0] == counts[1] > 0:
                    vals.append(0.5 * pool.correct[p][pool.answer_ids[p] == 0].any())
                    continue  # a tie between the two answers: the curve averages it
                i = strategy.select(pool, p, sub)
                vals.append(0.0 if i is None else float(pool.correct[p, i]))
            np.testing.assert_allclose(got[p], np.mean(vals), atol=1e-12, err_msg=f"{p=} {k=}")


# ---------------------------------------------------------------- choose


def test_choose_best_of_n() -> None:
    s = BestOfN("orm")
    ids = np.array([0, 1, 2, 3])
    assert s.choose(ids, np.array([0.1, np.nan, 0.7, 0.3])) == 2  # NaN ranks last
    assert s.choose(ids, np.array([0.7, 0.1, 0.7, 0.3])) == 0  # tie: lowest index
    picks = {
        s.choose(ids, np.array([0.7, 0.1, 0.7, 0.3]), rng=np.random.default_rng(i))
        for i in range(40)
    }
    assert picks == {0, 2}  # with a rng: uniform among the tied
    assert s.choose(ids, np.full(4, np.nan)) == 0  # all ungraded: still a pick
    with pytest.raises(ValueError, match="needs scores"):
        s.choose(ids)


def test_choose_votes() -> None:
    maj, wmaj = MajorityVote(), WeightedMajority("orm")
    # ids: -1 is most frequent but never wins; 4 has two votes
    ids = np.array([-1, -1, -1, 4, 4, 9])
    assert maj.choose(ids) == 3
    # weights: 4 -> 0.1 + 0.2 = 0.3 ; 9 -> 0.5 ; -1 ignored although 0.9 each
    assert wmaj.choose(ids, np.array([0.9, 0.9, 0.9, 0.1, 0.2, 0.5])) == 5
    # NaN weighs 0: 4 -> 0 + 0.2 = 0.2 < 9 -> 0.25
    assert wmaj.choose(ids, np.array([0, 0, 0, np.nan, 0.2, 0.25])) == 5
    assert maj.choose(np.array([-1, -1])) is None  # abstain
    assert maj.choose(np.array([8, 3, 3, 8])) == 0  # tie: the answer seen first
    seen = {maj.choose(np.array([8, 3, 3, 8]), rng=np.random.default_rng(i)) for i in range(40)}
    assert seen == {0, 1, 2, 3}
    with pytest.raises(ValueError, match=">= 0"):
        wmaj.choose(ids, -np.ones(6))


def test_select_maps_back_to_pool_index() -> None:
    pool = PoolArrays(
        correct=np.array([[False, True, False, True]]),
        answer_ids=np.array([[1, 2, 1, 2]]),
        scores={"orm": np.array([[0.9, 0.1, 0.2, 0.3]])},
    )
    assert BestOfN("orm").select(pool, 0) == 0
    assert BestOfN("orm").select(pool, 0, [1, 2, 3]) == 3
    assert MajorityVote().select(pool, 0, [0, 1, 3]) == 1


def test_doctests() -> None:
    assert doctest.testmod(offline).failed == 0


def test_weighted_majority_names_itself_on_negative_rewards() -> None:
    pool = PoolArrays(
        correct=np.array([[True, False]]),
        answer_ids=np.array([[0, 1]]),
        scores={"logprob": np.array([[-0.3, -1.2]])},
    )
    with pytest.raises(ValueError, match=r"wmaj\[logprob\]: .*>= 0"):
        WeightedMajority("logprob").curve(pool, [2])
    assert BestOfN("logprob").curve(pool, [2]).tolist() == [[1.0]]  # any real score is fine
