"""A pool sampled by a process killed with SIGKILL mid-run resumes to the uninterrupted pool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from rewardlab.policies.hf import HFPolicy
from rewardlab.search.pool import PoolSpec, sample_pool, summarize
from rewardlab.store import SampleStore
from rewardlab.tasks import arith
from rewardlab.types import Sampling

SPEC = PoolSpec(
    n=3, sampling=Sampling(temperature=1.0, max_new_tokens=24, seed=5), chunk_problems=1
)
PROBLEMS = arith.generate(8, seed=2, n_ops=(1, 3))

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from rewardlab.policies.hf import HFPolicy
    from rewardlab.search.pool import PoolSpec, sample_pool
    from rewardlab.store import SampleStore
    from rewardlab.tasks import arith
    from rewardlab.types import Sampling
    spec = PoolSpec(n=3, sampling=Sampling(temperature=1.0, max_new_tokens=24, seed=5),
                    chunk_problems=1)
    problems = arith.generate(8, seed=2, n_ops=(1, 3))
    policy = HFPolicy.from_dir(sys.argv[1], device="cpu")
    def tick(done, total):
        print(done, flush=True)
        time.sleep(0.3)  # widen the window in which the kill can land mid-chunk
    sample_pool(problems, arith.ArithTask(), policy, spec, SampleStore(sys.argv[2]), progress=tick)
    print("finished", flush=True)
    """
)


def _texts(pool: list) -> list[list[str]]:  # type: ignore[type-arg]
    return [[c.text for c in row] for row in pool]


def test_sigkill_then_resume_equals_uninterrupted(tiny_llama_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    crashed = tmp_path / "crashed.sqlite"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tiny_llama_dir), str(crashed)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.stdout is not None
    while True:  # kill once a few chunks are in, while the next one is being sampled
        line = proc.stdout.readline()
        assert line, "sampler exited before it could be killed"
        if line.strip() == "3":
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    partial = SampleStore(crashed)
    stored = partial.count()
    assert 9 <= stored < 24 and stored % 3 == 0, "chunks must be all-or-nothing"

    policy = HFPolicy.from_dir(tiny_llama_dir, device="cpu")
    task = arith.ArithTask()
    resumed = sample_pool(PROBLEMS, task, policy, SPEC, partial)
    clean = sample_pool(PROBLEMS, task, policy, SPEC, SampleStore(tmp_path / "clean.sqlite"))
    assert _texts(resumed) == _texts(clean)
    assert partial.count() == 24  # no duplicates
    for row in resumed:
        assert [c.index for c in row] == [0, 1, 2]
        for c in row:
            assert "first_error" in c.meta and isinstance(c.meta["correct"], bool)
    assert summarize(PROBLEMS, resumed).rows[-1][0] == "all"
    # a second call samples nothing new
    again = sample_pool(PROBLEMS, task, policy, SPEC, partial)
    assert _texts(again) == _texts(clean) and partial.count() == 24


def test_growing_n_samples_only_the_missing_indices(tiny_llama_dir: Path, tmp_path: Path) -> None:
    policy = HFPolicy.from_dir(tiny_llama_dir, device="cpu")
    store = SampleStore(tmp_path / "s.sqlite")
    task = arith.ArithTask()
    small = sample_pool(PROBLEMS[:2], task, policy, SPEC, store)
    big = sample_pool(PROBLEMS[:2], task, policy, PoolSpec(5, SPEC.sampling, 1), store)
    assert store.count() == 10
    assert [row[:3] for row in big] == small
