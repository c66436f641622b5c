"""Policy calls run by a :class:`CallRunner` (how ``--backend ray`` samples and rolls out):
the same calls as the local path, so the same pool and rollouts, whatever order the calls
finish in; each chunk stored as it completes, so a run stopped mid-way resumes without
redoing a stored chunk; a chunk another worker holds is left to it.

The runners here are real: the calls run on the real tiny model in this process (Ray's actor
pool is tested in tests/pipelines/test_ray_jobs.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from raytools import assert_same_pool
from rewardlab.label.rollouts import RolloutEstimator
from rewardlab.policies.hf import HFPolicy
from rewardlab.search.pool import (
    LocalCalls,
    PolicyCall,
    PoolSpec,
    chunk_calls,
    pool_chunks,
    pool_keys,
    sample_pool,
    sample_pool_counted,
    sample_work,
)
from rewardlab.store import SampleStore
from rewardlab.tasks import arith
from rewardlab.types import Completion, Sampling

SPEC = PoolSpec(
    n=3, sampling=Sampling(temperature=1.0, max_new_tokens=20, seed=7), chunk_problems=2
)
PROBLEMS = arith.generate(7, seed=3, n_ops=(1, 3))


class Backwards:
    """Runs every call, then yields the results last call first (a pool whose last actor
    finishes first); counts the calls it ran. ``stop_after`` raises after that many results
    (a driver that dies mid-job)."""

    def __init__(self, policy: HFPolicy, stop_after: int | None = None) -> None:
        self.policy = policy
        self.stop_after = stop_after
        self.calls = 0

    def run(self, calls: Sequence[PolicyCall]) -> Iterator[tuple[int, list[list[Completion]]]]:
        done = list(LocalCalls(self.policy).run(calls))
        self.calls += len(calls)
        for n, item in enumerate(reversed(done)):
            if self.stop_after is not None and n == self.stop_after:
                raise KeyboardInterrupt("driver stopped")
            yield item


@pytest.fixture
def policy(tiny_llama_dir: Path) -> HFPolicy:
    return HFPolicy.from_dir(tiny_llama_dir, device="cpu")


@pytest.fixture
def fresh(tiny_llama_dir: Path) -> Callable[[], HFPolicy]:
    """Another replica of the policy: a policy's prefix cache, warm after a run, changes the
    last bits of later log-probabilities, so each run compared gets a cold replica (as each
    Ray actor has)."""
    return lambda: HFPolicy.from_dir(tiny_llama_dir, device="cpu")


def test_chunk_calls_ask_only_for_what_the_store_lacks(policy: HFPolicy, tmp_path: Path) -> None:
    store = SampleStore(tmp_path / "s.sqlite")
    keys = pool_keys(PROBLEMS, policy.name, SPEC)
    full = chunk_calls([0, 1], PROBLEMS, keys, SPEC, policy.format_prompt, store)
    assert [c.n for c in full.calls] == [3] and full.members == ((0, 1),)
    sample_pool(PROBLEMS[:1], arith.ArithTask(), policy, PoolSpec(2, SPEC.sampling, 2), store)
    part = chunk_calls([0, 1], PROBLEMS, keys, SPEC, policy.format_prompt, store)
    # problem 0 has indices 0, 1 stored: one call for its 1 missing, one for problem 1's 3
    assert [(c.n, m, f) for c, m, f in zip(part.calls, part.members, part.first, strict=True)] == [
        (3, (1,), 0),
        (1, (0,), 2),
    ]
    assert part.calls[0].sampling.seed != part.calls[1].sampling.seed


def test_a_runner_samples_the_pool_of_the_local_path(
    policy: HFPolicy, fresh: Callable[[], HFPolicy], tmp_path: Path
) -> None:
    task = arith.ArithTask()
    local = sample_pool(PROBLEMS, task, fresh(), SPEC, SampleStore(tmp_path / "l.sqlite"))
    runner = Backwards(policy)
    seen: list[int] = []
    store = SampleStore(tmp_path / "r.sqlite")
    remote, stats = sample_pool_counted(
        PROBLEMS, task, policy, SPEC, store, lambda d, t: seen.append(d), runner
    )
    assert remote == local  # every field of every candidate (calls in the same order, one replica)
    assert runner.calls == len(pool_chunks(len(PROBLEMS), 2)) == 4
    assert (stats.computed, stats.found_done) == (4, 0)
    assert sorted(seen) == seen and seen[-1] == len(PROBLEMS)
    assert store.leases() == []
    again = Backwards(policy)
    _, stats = sample_pool_counted(PROBLEMS, task, policy, SPEC, store, None, again)
    assert again.calls == 0 and (stats.computed, stats.found_done) == (0, 4)


def test_a_stopped_runner_resumes_without_redoing_a_stored_chunk(
    policy: HFPolicy, fresh: Callable[[], HFPolicy], tmp_path: Path
) -> None:
    task = arith.ArithTask()
    store = SampleStore(tmp_path / "s.sqlite")
    with pytest.raises(KeyboardInterrupt):
        sample_pool(PROBLEMS, task, policy, SPEC, store, runner=Backwards(policy, stop_after=2))
    assert store.count() == (1 + 2) * 3  # the last two chunks (they came back first), whole
    assert store.leases() == []  # released on the way out
    resumed = Backwards(policy)
    pool = sample_pool(PROBLEMS, task, policy, SPEC, store, runner=resumed)
    assert resumed.calls == 2  # only the two missing chunks
    clean = sample_pool(PROBLEMS, task, fresh(), SPEC, SampleStore(tmp_path / "c.sqlite"))
    assert_same_pool(pool, clean)
    assert store.count() == len(PROBLEMS) * 3


def test_a_chunk_another_worker_holds_is_left_to_it(
    policy: HFPolicy, fresh: Callable[[], HFPolicy], tmp_path: Path
) -> None:
    task = arith.ArithTask()
    store = SampleStore(tmp_path / "s.sqlite")
    keys = pool_keys(PROBLEMS, policy.name, SPEC)
    held = sample_work([keys[0], keys[1]])
    assert store.claim([held], "elsewhere/1/worker", ttl=1.0) == [held]  # another host's
    runner = Backwards(policy)
    pool, stats = sample_pool_counted(PROBLEMS, task, policy, SPEC, store, None, runner)
    # the held chunk was taken once its lease expired (its worker never stored it)
    assert stats.computed == 4 and stats.waited_s > 0
    assert runner.calls == 4
    clean = sample_pool(PROBLEMS, task, fresh(), SPEC, SampleStore(tmp_path / "c.sqlite"))
    assert_same_pool(pool, clean)


def test_rollouts_through_a_runner_equal_the_local_rollouts(
    policy: HFPolicy, fresh: Callable[[], HFPolicy], tmp_path: Path
) -> None:
    task = arith.ArithTask()
    sampling = Sampling(temperature=1.0, max_new_tokens=16, seed=2)
    queries = [
        (p, tuple(f"{a} {op} {b} = {c}" for a, op, b, c in p.meta["ops"])[:t])
        for p in PROBLEMS[:4]
        for t in (0, 1)
    ]
    local = RolloutEstimator(fresh(), task, sampling, SampleStore(tmp_path / "l.sqlite"))
    runner = Backwards(policy)
    store = SampleStore(tmp_path / "r.sqlite")
    remote = RolloutEstimator(policy, task, sampling, store, max_prompts=3, runner=runner)
    local.max_prompts = 3
    assert remote.estimate(queries, 4) == local.estimate(queries, 4)
    assert runner.calls == 3  # 8 prefixes, 3 per call
    for p, steps in queries:
        key = local.key(p, steps)
        assert store.candidates(key, 4) == local.store.candidates(key, 4)
