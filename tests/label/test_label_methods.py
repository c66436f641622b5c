"""The labelers on hand-built testbed samples whose labels are known exactly (GoldPolicy)."""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

import pytest
from gold_policy import GoldPolicy, make_bed, sample_of
from hypothesis import given
from hypothesis import strategies as st

from rewardlab.label.base import Labeler, StepLabels, labels_from_first_error
from rewardlab.label.binary import BinarySearchLabeler, _Search
from rewardlab.label.consensus import ConsensusLabeler
from rewardlab.label.mc import MonteCarloLabeler
from rewardlab.label.progress import ProgressLabeler, best_of_k_value
from rewardlab.label.rollouts import Estimate, RolloutEstimator
from rewardlab.label.truth import TruthLabeler
from rewardlab.tasks import arith
from rewardlab.tasks.math_check import MathTask

TASK = arith.ArithTask()


def estimator(problems, rate: float = 1.0) -> RolloutEstimator:
    return RolloutEstimator(GoldPolicy(problems, rate), TASK)


@pytest.fixture(scope="module")
def bed():
    return make_bed()


def test_every_labeler_is_a_labeler(bed) -> None:
    est = estimator(bed[0])
    for lab in (
        MonteCarloLabeler(est),
        BinarySearchLabeler(est),
        ProgressLabeler(est),
        TruthLabeler(TASK),
        ConsensusLabeler(TruthLabeler(TASK), MonteCarloLabeler(est)),
    ):
        assert isinstance(lab, Labeler)


def test_truth_labels(bed) -> None:
    problems, samples, truth = bed
    records = TruthLabeler(TASK).label(problems, samples)
    assert [r.first_error for r in records] == truth
    for r, s, fe in zip(records, samples, truth, strict=True):
        assert r.labels == labels_from_first_error(len(s.steps), fe)
        assert r.completions == s.steps[: len(r.labels)] and r.rollouts == 0
    full = TruthLabeler(TASK, truncate=False).label(problems[2:3], samples[2:3])[0]
    assert full.labels == (False,) * len(samples[2].steps)  # error at step 0: all bad after


def test_truth_needs_step_truth() -> None:
    p = arith.generate(1, seed=0)[0]
    with pytest.raises(ValueError, match="no step truth"):
        TruthLabeler(MathTask(name="m")).label([p], [sample_of(p, arith.gold_steps(p))])


def test_mc_hard_equals_truth_and_counts_rollouts(bed) -> None:
    problems, samples, _ = bed
    k = 4
    records = MonteCarloLabeler(estimator(problems), k=k).label(problems, samples)
    exact = TruthLabeler(TASK).label(problems, samples)
    for r, t, s in zip(records, exact, samples, strict=True):
        assert (r.first_error, r.labels, r.completions) == (t.first_error, t.labels, t.completions)
        finished = s.answer is not None
        assert r.rollouts == k * (len(s.steps) - finished)
        assert r.fresh_rollouts <= r.rollouts
        assert r.generated_tokens > 0


def test_mc_soft_values_are_exact_fractions(bed) -> None:
    problems, samples, truth = bed
    rec = MonteCarloLabeler(estimator(problems, rate=0.5), k=4, soft=True, truncate=False)
    records = rec.label(problems, samples)
    for r, s, fe in zip(records, samples, truth, strict=True):
        finished = s.answer is not None
        want = [0.5 if fe == -1 or t < fe else 0.0 for t in range(len(s.steps))]
        if finished:
            want[-1] = 1.0 if fe == -1 else 0.0
        assert list(r.labels) == want and r.first_error == fe
        assert r.labeler == "mc-soft"


def test_mc_with_a_hopeless_policy_flags_step_zero(bed) -> None:
    problems, samples, _ = bed
    records = MonteCarloLabeler(estimator(problems, rate=0.0), k=2).label(problems, samples)
    assert all(r.first_error == 0 and r.labels == (False,) for r in records)


def test_binary_search_finds_the_exact_first_error(bed) -> None:
    problems, samples, truth = bed
    k = 2
    records = BinarySearchLabeler(estimator(problems), k=k).label(problems, samples)
    for r, s, fe in zip(records, samples, truth, strict=True):
        assert r.first_error == fe
        assert r.labels == labels_from_first_error(len(s.steps), fe, truncate=True)
        if s.answer is not None and fe == -1:
            assert r.rollouts == 0  # a right answer: all good, nothing to search
        else:
            assert 0 < r.rollouts <= k * (math.ceil(math.log2(len(s.steps))) + 1)
            assert r.rollouts == k * len(r.info["visited"])


@given(n=st.integers(1, 40), data=st.data())
def test_search_state_machine(n: int, data: st.DataObject) -> None:
    """On any monotone good/bad pattern the search finds the boundary in <= ceil(log2 n) asks."""
    first_error = data.draw(st.integers(0, n - 1))
    state = _Search(n=n, hi=n)
    if n == 1:
        state.first_error = 0
    asks = 0
    while (j := state.query()) is not None:
        asks += 1
        good = j <= first_error
        state.update(j, Estimate(successes=int(good), k=1))
    assert state.first_error == first_error
    assert asks <= max(0, math.ceil(math.log2(n)))


def test_binary_values_match_full_mc_on_shared_rollouts(bed) -> None:
    problems, samples, _ = bed
    est = estimator(problems, rate=0.5)
    full = MonteCarloLabeler(est, k=4, soft=True).label(problems, samples)
    before = est.policy.rollouts
    binary = BinarySearchLabeler(est, k=4).label(problems, samples)
    assert est.policy.rollouts == before  # every visited prefix was already rolled out
    assert sum(b.fresh_rollouts for b in binary) == 0
    for b, m in zip(binary, full, strict=True):
        for v_b, v_m in zip(b.values, m.values, strict=True):
            assert v_b is None or v_b == v_m
    assert sum(b.rollouts for b in binary) < sum(m.rollouts for m in full)


def test_progress_labels_exact(bed) -> None:
    """rate 1/4, k = 8 -> 2 of 8 rollouts succeed on track: V_BoK4 = 1 - C(6,4)/C(8,4)."""
    problems, samples, truth = bed
    v = 1 - Fraction(15, 70)
    assert best_of_k_value(2, 8, 4) == pytest.approx(float(v))
    records = ProgressLabeler(
        estimator(problems, rate=0.25), k=8, prover_k=4, truncate=False
    ).label(problems, samples)
    for r, s, fe in zip(records, samples, truth, strict=True):
        n, finished = len(s.steps), s.answer is not None
        values = [float(v) if fe == -1 or j <= fe else 0.0 for j in range(n + 1)]
        if finished:
            values[n] = 1.0 if fe == -1 else 0.0
        adv = [values[h + 1] - values[h] for h in range(n)]
        assert list(r.labels) == pytest.approx(adv)
        assert r.first_error == fe
        assert r.rollouts == 8 * (n + (not finished))


def test_progress_with_the_policy_as_prover_uses_the_fallback(bed) -> None:
    """prover_k = 1: the drop at the error is only 1/4 < margin; the end value 0 picks argmin."""
    problems, samples, truth = bed
    lab = ProgressLabeler(estimator(problems, rate=0.25), k=8, prover_k=1, margin=0.5)
    for r, fe in zip(lab.label(problems, samples), truth, strict=True):
        assert r.first_error == fe
        if fe >= 0:
            assert r.labels[fe] == pytest.approx(-0.25)


def test_consensus_keeps_agreements_only(bed) -> None:
    problems, samples, truth = bed
    est = estimator(problems, rate=0.0)  # MC says: every sample fails at step 0
    both = ConsensusLabeler(TruthLabeler(TASK), MonteCarloLabeler(est, k=2))
    seen: list[tuple[int, int]] = []
    records = both.label(problems, samples, lambda d, t: seen.append((d, t)))
    assert [r.kept for r in records] == [fe == 0 for fe in truth]
    assert all(r.labeler == "consensus(truth,mc-hard)" for r in records)
    assert all(
        r.rollouts == 2 * (len(s.steps) - (s.answer is not None))
        for r, s in zip(records, samples, strict=True)
    )
    assert seen[-1] == (2 * len(samples), 2 * len(samples))
    agree = ConsensusLabeler(
        MonteCarloLabeler(estimator(problems)), BinarySearchLabeler(estimator(problems))
    )
    assert all(r.kept for r in agree.label(problems, samples))


def test_progress_callback_and_chunks(bed) -> None:
    problems, samples, _ = bed
    seen: list[tuple[int, int]] = []
    MonteCarloLabeler(estimator(problems), k=1, chunk=5).label(
        problems, samples, lambda d, t: seen.append((d, t))
    )
    n = len(samples)
    assert seen == [(min(i + 5, n), n) for i in range(0, n, 5)]


def test_inputs_are_checked(bed) -> None:
    problems, samples, _ = bed
    lab = MonteCarloLabeler(estimator(problems))
    with pytest.raises(ValueError, match="problems for"):
        lab.label(problems[:1], samples[:2])
    with pytest.raises(ValueError, match="paired with"):
        lab.label([problems[-1]], [samples[0]])
    with pytest.raises(ValueError, match="k must be"):
        MonteCarloLabeler(estimator(problems), k=0)


def test_record_roundtrip(bed) -> None:
    problems, samples, _ = bed
    r = MonteCarloLabeler(estimator(problems, 0.5), k=2, soft=True).label(problems, samples)[3]
    assert r.fresh_rollouts > 0
    assert StepLabels.from_record(r.to_record()) == replace(r, fresh_rollouts=0)
    rec = r.to_record()
    assert list(rec)[:3] == ["prompt", "completions", "labels"]  # TRL's stepwise fields
    with pytest.raises(ValueError, match="labels"):
        StepLabels(problems[0], 0, ("a",), (), "x", -1, 1)
