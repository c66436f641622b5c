"""Several workers on one store divide the sampling between them through work leases.

Two real ``rewardlab sample`` processes on one output directory: together they sample each
chunk once (what one process alone samples), and both write the pool a single run writes.
A worker that stops while holding a chunk (frozen: SIGSTOP) loses it when its lease expires,
and another worker samples it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from rewardlab.policies.hf import HFPolicy
from rewardlab.search.pool import PoolSpec, sample_pool, sample_pool_counted
from rewardlab.store import SampleStore, Store, open_store, request_key
from rewardlab.tasks import arith
from rewardlab.types import Sampling

SRC = Path(__file__).resolve().parents[2] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
SAMPLED = re.compile(r"this process sampled (\d+) of (\d+) chunks")


def _sample_cli(
    out: Path, policy: Path, store: str | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    args = ["sample", "--out", str(out), "--policy", str(policy), "--problems", "16"]
    args += ["--n", "2", "--max-new-tokens", "24", "--difficulty", "1-3", "--seed", "3"]
    args += ["--store", store] if store else []
    return subprocess.Popen(
        [sys.executable, "-m", "rewardlab.cli.main", *args],
        env=env or ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _chunks(proc: subprocess.Popen[str]) -> tuple[int, int]:
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    found = SAMPLED.search(stdout)
    assert found, stdout
    return int(found[1]), int(found[2])


@pytest.fixture(scope="module")
def solo(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `rewardlab sample` alone on a SQLite store: the run the workers must reproduce."""
    out = tmp_path_factory.mktemp("solo")
    assert _chunks(_sample_cli(out, tiny_llama_dir)) == (4, 4)
    return out


def test_two_sample_processes_sample_each_chunk_once(
    tiny_llama_dir: Path, tmp_path: Path, solo: Path
) -> None:
    """So that both get a share however the machine schedules their start-up (under load one
    could finish everything before the other had loaded its model), the first is paused
    (SIGSTOP) while it holds a chunk until the second holds another."""
    shared = tmp_path / "shared"
    shared.mkdir()
    env = {**ENV, "REWARDLAB_LEASE_TTL": "600"}  # the paused worker keeps its chunk
    store = SampleStore(shared / "pool.sqlite")
    a = _sample_cli(shared, tiny_llama_dir, env=env)
    _wait_for_lease(store, a)
    os.kill(a.pid, signal.SIGSTOP)
    b = _sample_cli(shared, tiny_llama_dir, env=env)
    try:
        _wait_for_lease(store, b)
    finally:
        os.kill(a.pid, signal.SIGCONT)
    (done_a, total_a), (done_b, total_b) = _chunks(a), _chunks(b)
    assert total_a == total_b == 4
    assert done_a + done_b == 4  # together, the model calls of one run (the solo run's 4)
    assert done_a >= 1 and done_b >= 1  # and both did a share
    assert (shared / "pool.jsonl").read_text() == (solo / "pool.jsonl").read_text()
    assert SampleStore(shared / "pool.sqlite").count() == 32
    assert SampleStore(shared / "pool.sqlite").leases() == []


def test_two_sample_processes_on_a_postgres_store_split_the_work(
    tiny_llama_dir: Path, tmp_path: Path, pg_url: str, solo: Path
) -> None:
    """Two workers with their own --out (as on two hosts) and one --store postgresql://...:
    each chunk is sampled once between them, and each writes the pool a lone SQLite run
    writes. So that both get a share however the machine schedules their start-up, the first
    is paused (SIGSTOP) while it holds a chunk until the second holds another."""
    env = {**ENV, "REWARDLAB_LEASE_TTL": "600"}  # the paused worker keeps its chunk
    pg = open_store(pg_url)
    a = _sample_cli(tmp_path / "host-a", tiny_llama_dir, pg_url, env)
    _wait_for_lease(pg, a)
    os.kill(a.pid, signal.SIGSTOP)
    b = _sample_cli(tmp_path / "host-b", tiny_llama_dir, pg_url, env)
    try:
        _wait_for_lease(pg, b)
    finally:
        os.kill(a.pid, signal.SIGCONT)
    (done_a, total_a), (done_b, total_b) = _chunks(a), _chunks(b)
    assert total_a == total_b == 4
    assert done_a + done_b == 4 and done_a >= 1 and done_b >= 1
    lone = (solo / "pool.jsonl").read_text()
    assert (tmp_path / "host-a" / "pool.jsonl").read_text() == lone
    assert (tmp_path / "host-b" / "pool.jsonl").read_text() == lone
    assert not (tmp_path / "host-a" / "pool.sqlite").exists()
    assert json.loads((tmp_path / "host-a" / "store.json").read_text()) == {"store": pg_url}
    assert pg.count() == 32 and pg.leases() == []
    solo_store = SampleStore(solo / "pool.sqlite")
    rows, solo_rows = list(pg.iter_all()), list(solo_store.iter_all())
    assert [(r, replace(c, logprobs=None)) for r, c in rows] == [
        (r, replace(c, logprobs=None)) for r, c in solo_rows
    ]  # the same rows; log-probs agree to float noise between processes (measured <= 1e-6)
    for (_, c), (_, d) in zip(rows, solo_rows, strict=True):
        assert c.logprobs is not None and d.logprobs is not None
        assert max(abs(x - y) for x, y in zip(c.logprobs, d.logprobs, strict=True)) < 1e-5


def test_a_sigkilled_worker_on_postgres_resumes_without_redoing_stored_chunks(
    tiny_llama_dir: Path, tmp_path: Path, pg_url: str, solo: Path
) -> None:
    """SIGKILL a `rewardlab sample --store postgresql://...` once it has stored a chunk; the
    rerun samples only the chunks that were not stored (chunks are all-or-nothing) and the
    pool equals an uninterrupted SQLite run's."""
    out = tmp_path / "run"
    proc = _sample_cli(out, tiny_llama_dir, pg_url)  # 4 chunks of 4 problems x 2
    pg = open_store(pg_url)
    deadline = time.monotonic() + 300
    while pg.count() == 0:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    pg.close()  # (our own session; it reconnects when next used)
    _wait_for_dead_backends(pg_url)  # a COMMIT the worker sent before dying may still land
    stored = pg.count()
    before = list(pg.iter_all())
    assert stored % 8 == 0 and 1 <= stored // 8 < 4, stored  # whole chunks, killed mid-way
    done, total = _chunks(_sample_cli(out, tiny_llama_dir, pg_url))
    assert (total, done) == (4, 4 - stored // 8), stored  # nothing stored is sampled again
    after = dict(((r, c.index), c) for r, c in pg.iter_all())
    assert all(after[(r, c.index)] == c for r, c in before)  # and nothing stored changed
    assert len(after) == 32 and pg.leases() == []
    assert (out / "pool.jsonl").read_text() == (solo / "pool.jsonl").read_text()


def _wait_for_lease(store: Store, proc: subprocess.Popen[str]) -> None:
    """Wait until the worker process ``proc`` holds a lease (owners are host/pid/random)."""
    deadline = time.monotonic() + 300
    while not any(owner.split("/")[1] == str(proc.pid) for _, owner, _ in store.leases()):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the worker never claimed a chunk"
        time.sleep(0.02)


def _wait_for_dead_backends(url: str) -> None:
    """Wait until the server has no session on ``url``'s database but this one: the killed
    client's backend has finished (committed what it had been told to commit, or rolled
    back), so what is stored no longer changes."""
    import psycopg

    deadline = time.monotonic() + 60
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            assert time.monotonic() < deadline, "the killed worker's sessions did not end"
            time.sleep(0.05)


def _exists(location: str) -> bool:
    """A SQLite store is left for the worker to create; a PostgreSQL database exists."""
    return location.startswith("postgresql://") or Path(location).exists()


FROZEN_WORKER = textwrap.dedent(
    """
    import sys, time
    from rewardlab.policies.hf import HFPolicy
    from rewardlab.search.pool import PoolSpec, sample_pool
    from rewardlab.store import open_store, request_key
    from rewardlab.tasks import arith
    from rewardlab.types import Sampling
    spec = PoolSpec(n=2, sampling=Sampling(temperature=1.0, max_new_tokens=24, seed=5),
                    chunk_problems=2)
    problems = arith.generate(8, seed=2, n_ops=(1, 3))
    policy = HFPolicy.from_dir(sys.argv[1], device="cpu")
    sample_pool(problems, arith.ArithTask(), policy, spec, open_store(sys.argv[2], lease_ttl=6))
    """
)


def test_a_frozen_workers_chunk_is_taken_over_after_its_lease_expires(
    tiny_llama_dir: Path, tmp_path: Path, store_at: str
) -> None:
    """On both backends (``store_at``); on PostgreSQL the expiry is the server's clock."""
    db = store_at
    script = tmp_path / "worker.py"
    script.write_text(FROZEN_WORKER)
    spec = PoolSpec(
        n=2, sampling=Sampling(temperature=1.0, max_new_tokens=24, seed=5), chunk_problems=2
    )
    problems = arith.generate(8, seed=2, n_ops=(1, 3))
    policy = HFPolicy.from_dir(tiny_llama_dir, device="cpu")
    task = arith.ArithTask()
    worker = subprocess.Popen([sys.executable, str(script), str(tiny_llama_dir), db], env=ENV)
    try:
        deadline = time.monotonic() + 300
        while not (_exists(db) and open_store(db).leases()):  # it holds its first chunk
            assert worker.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(worker.pid, signal.SIGSTOP)  # alive, holding the lease, making no progress
        held = open_store(db).leases()
        stored_by_worker = open_store(db).count()
        store = open_store(db)
        first_key = request_key(problems[0], policy.name, spec.sampling)
        seen: list[tuple[float, bool]] = []  # (when, is the frozen worker's chunk stored?)

        def tick(done: int, total: int) -> None:
            seen.append((time.time(), not store.missing(first_key, spec.n)))

        pool, stats = sample_pool_counted(problems, task, policy, spec, store, tick)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    assert len(held) == 1 and stored_by_worker == 0  # frozen inside its first chunk
    assert stats.computed == 4 and stats.found_done == 0  # every chunk sampled once, here
    assert [stored for _, stored in seen] == [False, False, False, True]  # skipped, then
    assert seen[-1][0] >= held[0][2]  # sampled once the frozen worker's lease ran out
    clean = sample_pool(problems, task, policy, spec, SampleStore(tmp_path / "clean.sqlite"))
    assert [[c.text for c in row] for row in pool] == [[c.text for c in row] for row in clean]
    assert open_store(db).count() == 16
