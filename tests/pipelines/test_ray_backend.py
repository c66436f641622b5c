"""Scoring on a local Ray cluster gives the scores of the local run; a killed Ray job resumes.

Skipped where Ray is not installed (``pip install 'rewardlab[ray]'``). One local cluster
(``ray.init(num_cpus=2)``, tests/pipelines/conftest.py) serves every Ray test of the session;
the killed job is a second driver connected to it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("ray.data")

from raytools import one_torch_thread
from rewardlab.pipelines.ray_backend import RayScoring, score_pool_ray
from rewardlab.rewards.registry import load_reward
from rewardlab.search.pool import score_chunks, score_pool
from rewardlab.store import SampleStore
from rewardlab.tasks import arith
from rewardlab.types import Candidate, Problem

pytestmark = pytest.mark.slow
SRC = Path(__file__).resolve().parents[2] / "src"
TEST_DIRS = [str(Path(__file__).parent), str(Path(__file__).parents[1])]  # for the driver


def _pool(n_problems: int) -> tuple[list[Problem], list[list[Candidate]], list[str]]:
    """Arithmetic problems with four candidates each: the reference solution, a copy of it
    (text-only rewards score it once), and two with a wrong last step."""
    problems = arith.generate(n_problems, seed=4, n_ops=(1, 3))
    pool = []
    for p in problems:
        ops = [f"{a} {op} {b} = {c}" for a, op, b, c in p.meta["ops"]]
        steps = (*ops, f"The answer is {p.answer}")
        bad = (*ops, f"The answer is {int(p.answer) + 1}")
        texts = [steps, steps, bad, (*bad, "Check: done")]
        pool.append(
            [
                Candidate(p.id, "\n".join(s), s, s[-1].split()[-1], index=k)
                for k, s in enumerate(texts)
            ]
        )
    return problems, pool, [f"req-{p.id}" for p in problems]


@pytest.mark.parametrize("spec", ["orm", "prm", "exact"])
def test_ray_scores_equal_the_local_run(cluster: object, tmp_path: Path, spec: str) -> None:
    problems, pool, keys = _pool(10)
    reward = load_reward(spec)
    step = callable(getattr(reward, "score_steps", None))
    local_store, ray_store = SampleStore(tmp_path / "l.sqlite"), SampleStore(tmp_path / "r.sqlite")
    with one_torch_thread():  # as the actors run: float sums differ with the thread count
        local = score_pool(reward, problems, pool, keys, local_store, step=step, batch_size=8)
    seen: list[int] = []
    remote = score_pool_ray(
        reward,
        spec,
        problems,
        pool,
        keys,
        ray_store,
        RayScoring(actors=2),
        step=step,
        batch_size=8,
        progress=lambda done, total: seen.append(done),
    )
    assert remote == local
    assert seen[0] == 0 and seen[-1] == 40
    assert any(s.value is not None for row in remote for s in row)
    label = next(iter(local_store.rewards()))
    every = [(k, c.index) for k, row in zip(keys, pool, strict=True) for c in row]
    assert ray_store.scores(label, every) == local_store.scores(label, every)
    assert ray_store.leases() == []


DRIVER = textwrap.dedent(
    """
    import sys, time
    import ray
    sys.path[:0] = [sys.argv[3], sys.argv[4]]
    from test_ray_backend import _pool
    from rewardlab.pipelines.ray_backend import RayScoring, ray_session, score_pool_ray
    from rewardlab.rewards.registry import load_reward
    from rewardlab.store import SampleStore
    problems, pool, keys = _pool(24)
    def tick(done, total):
        print(done, flush=True)
    with ray_session(RayScoring(address=sys.argv[1])):
        score_pool_ray(load_reward("orm"), "orm", problems, pool, keys, SampleStore(sys.argv[2]),
                       RayScoring(actors=1), batch_size=4, progress=tick)
    print("finished", flush=True)
    """
)


def test_a_killed_ray_job_resumes_where_it_stopped(cluster: object, tmp_path: Path) -> None:
    db = tmp_path / "pool.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(cluster), str(db), *TEST_DIRS],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"},
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # kill the driver once some chunks are stored
        if line.strip() not in ("0", "finished"):
            break
    else:
        pytest.fail("the driver ended before it stored a chunk")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    problems, pool, keys = _pool(24)
    reward = load_reward("orm")
    store = SampleStore(db)
    flat = [(i, c) for i, row in enumerate(pool) for c in row]
    chunks = score_chunks(flat, True, 4)
    label = next(iter(store.rewards()))
    every = [(keys[i], c.index) for i, c in flat]
    kept = sum(s is not None for s in store.scores(label, every))
    assert 0 < kept < len(flat) and len(chunks) > 2
    seen: list[int] = []
    resumed = score_pool_ray(
        reward,
        "orm",
        problems,
        pool,
        keys,
        store,
        RayScoring(actors=2),
        batch_size=4,
        progress=lambda done, total: seen.append(done),
    )
    assert seen[0] >= kept  # what the killed job stored is not scored again
    with one_torch_thread():  # as the actors run: float sums differ with the thread count
        clean = score_pool(
            reward, problems, pool, keys, SampleStore(tmp_path / "c.sqlite"), batch_size=4
        )
    assert resumed == clean
