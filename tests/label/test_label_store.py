"""Rollouts live in the sample store: keyed by prefix content, reused, resumable after a crash."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from gold_policy import GoldPolicy, make_bed

from rewardlab.label.binary import BinarySearchLabeler
from rewardlab.label.mc import MonteCarloLabeler
from rewardlab.label.rollouts import RolloutEstimator
from rewardlab.store import SampleStore
from rewardlab.tasks.arith import ArithTask

TASK = ArithTask()


def strip(records):
    """Records without the per-run count of freshly generated rollouts."""
    return [replace(r, fresh_rollouts=0) for r in records]


def test_rerun_reuses_every_rollout(tmp_path: Path) -> None:
    problems, samples, _ = make_bed(n=2)
    store = SampleStore(tmp_path / "pool.sqlite")
    first_policy = GoldPolicy(problems, rate=0.5)
    first = MonteCarloLabeler(RolloutEstimator(first_policy, TASK, store=store), k=2).label(
        problems, samples
    )
    again_policy = GoldPolicy(problems, rate=0.5)
    again = MonteCarloLabeler(RolloutEstimator(again_policy, TASK, store=store), k=2).label(
        problems, samples
    )
    assert again_policy.calls == [] and sum(r.fresh_rollouts for r in again) == 0
    assert strip(again) == strip(first)
    # prefixes shared between samples (gold, gold without answer, errors late) are rolled out once
    assert sum(r.fresh_rollouts for r in first) == first_policy.rollouts
    assert first_policy.rollouts < sum(r.rollouts for r in first)


def test_larger_k_samples_only_the_missing_indices(tmp_path: Path) -> None:
    problems, samples, _ = make_bed(n=1)
    store = SampleStore(tmp_path / "pool.sqlite")
    MonteCarloLabeler(RolloutEstimator(GoldPolicy(problems), TASK, store=store), k=2).label(
        problems, samples
    )
    policy = GoldPolicy(problems)
    records = MonteCarloLabeler(RolloutEstimator(policy, TASK, store=store), k=5).label(
        problems, samples
    )
    assert {n for _, n in policy.calls} == {3}
    assert sum(r.rollouts for r in records) > policy.rollouts > 0


def test_store_and_memory_give_the_same_labels(tmp_path: Path) -> None:
    problems, samples, _ = make_bed(n=2)
    store = SampleStore(tmp_path / "pool.sqlite")
    on_disk = BinarySearchLabeler(
        RolloutEstimator(GoldPolicy(problems, 0.5), TASK, store=store), k=3
    ).label(problems, samples)
    in_memory = BinarySearchLabeler(RolloutEstimator(GoldPolicy(problems, 0.5), TASK), k=3).label(
        problems, samples
    )
    assert on_disk == in_memory


class Crashing(GoldPolicy):
    """Raises on its ``crash_at``-th sample() call (a killed run)."""

    def __init__(self, problems, crash_at: int) -> None:
        super().__init__(problems, rate=0.5)
        self.crash_at = crash_at

    def sample(self, prompts, n, params):
        if len(self.calls) + 1 == self.crash_at:
            raise KeyboardInterrupt("killed")
        return super().sample(prompts, n, params)


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    problems, samples, _ = make_bed(n=3)
    store = SampleStore(tmp_path / "pool.sqlite")
    crashing = RolloutEstimator(Crashing(problems, crash_at=3), TASK, store=store, max_prompts=4)
    with pytest.raises(KeyboardInterrupt):
        MonteCarloLabeler(crashing, k=2, chunk=4).label(problems, samples)
    assert store.count() > 0  # two committed calls survived
    resumed_policy = GoldPolicy(problems, rate=0.5)
    resumed = MonteCarloLabeler(
        RolloutEstimator(resumed_policy, TASK, store=store, max_prompts=4), k=2, chunk=4
    ).label(problems, samples)
    clean = MonteCarloLabeler(RolloutEstimator(GoldPolicy(problems, rate=0.5), TASK), k=2).label(
        problems, samples
    )
    assert strip(resumed) == strip(clean)
    assert 0 < resumed_policy.rollouts < sum(r.fresh_rollouts for r in clean) + 1


def test_rollouts_are_keyed_by_prefix_text() -> None:
    problems, samples, _ = make_bed(n=1)
    est = RolloutEstimator(GoldPolicy(problems), TASK)
    p, s = problems[0], samples[0]
    assert est.prompt(p, s.steps[:2]).endswith(s.steps[1] + "\n")
    assert est.key(p, s.steps[:2]) == est.key(p, list(s.steps[:2]))
    assert est.key(p, s.steps[:2]) != est.key(p, s.steps[:1])
    assert est.prompt(p, ()) == est.policy.format_prompt(p.question)
    twice = est.estimate([(p, s.steps[:1]), (p, s.steps[:1])], 2)
    assert [e.fresh for e in twice] == [2, 0] and twice[0].successes == twice[1].successes == 2
