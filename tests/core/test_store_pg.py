"""What only the PostgreSQL store has to show, on a real server on loopback (``pg_server``):
the lease clock is the server's, real processes racing on one fresh database compute each
chunk once, errors name the server, run directories record their store, and pools move
between the two backends. The shared contract runs on both backends in test_store.py and
test_leases.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rewardlab import store as store_mod
from rewardlab.store import (
    STORE_RECORD,
    SampleStore,
    copy_store,
    new_owner,
    open_store,
    recorded_store,
    run_store,
)
from rewardlab.store_pg import PostgresStore, without_password
from rewardlab.types import Candidate, Score

SRC = Path(__file__).resolve().parents[2] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}


def test_leases_run_on_the_servers_clock_not_the_workers(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PostgresStore(pg_url, lease_ttl=30)
    a, b = new_owner(), new_owner()
    before = store.server_time()
    assert store.claim(["w"], a) == ["w"]
    ((_, _, expires),) = store.leases()
    assert before + 30 <= expires <= store.server_time() + 30
    # a worker whose clock runs an hour ahead must not see a's live lease as expired
    monkeypatch.setattr(store_mod.time, "time", lambda: before + 3600)
    assert store.claim(["w"], b) == []
    assert store.renew(["w"], a) == []
    # a lease that has expired on the server's clock is free, whatever the worker's clock says
    monkeypatch.setattr(store_mod.time, "time", lambda: before - 3600)
    assert store.claim(["x"], a, ttl=0.2) == ["x"]
    time.sleep(0.4)
    assert store.claim(["x"], b) == ["x"]


RACER = textwrap.dedent(
    """
    import json, sys, time
    from rewardlab.store import claim_each, open_store
    from rewardlab.types import Candidate, Score
    store = open_store(sys.argv[1], lease_ttl=30)  # all racers create the schema at once
    done = []

    def is_done(i):
        return not store.missing(f"req{i}", 10)

    def run(i):
        time.sleep(0.02)
        cands = [Candidate("p", f"{i}-{j}", ("s",), "1", index=j) for j in range(10)]
        store.put_many({f"req{i}": cands})
        store.put_scores("orm", [(f"req{i}", j, Score(j / 10)) for j in range(10)])
        done.append(i)

    stats = claim_each(store, list(range(30)), lambda i: f"chunk{i}", is_done, run, poll=0.02)
    print(json.dumps({"computed": done, "found": stats.found_done}))
    """
)


def test_racing_processes_compute_each_chunk_once(pg_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, pg_url], env=ENV, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0
        results.append(json.loads(out))
    computed = [i for r in results for i in r["computed"]]
    assert sorted(computed) == list(range(30))  # every chunk, none twice
    assert sum(len(r["computed"]) >= 1 for r in results) >= 2  # the work was shared
    for r in results:
        assert len(r["computed"]) + r["found"] == 30
    store = open_store(pg_url)
    assert store.count() == 300 and store.leases() == []
    assert len(list(store.iter_scores())) == 300


def test_an_unreachable_server_is_a_clear_error(pg_server: object) -> None:
    with pytest.raises(ConnectionError, match=r"PostgreSQL store postgresql://me@127\.0\.0\.1:1/"):
        open_store("postgresql://me:secret@127.0.0.1:1/db")
    with pytest.raises(ValueError, match="unknown scheme 'mysql'"):
        open_store("mysql://me@127.0.0.1/db")
    try:
        open_store("postgresql://me:secret@127.0.0.1:1/db")
    except ConnectionError as e:
        assert "secret" not in str(e)


def test_without_password() -> None:
    assert without_password("postgresql://u:pw@h:5432/db?sslmode=require") == (
        "postgresql://u@h:5432/db?sslmode=require"
    )
    assert without_password("postgresql://u@h/db") == "postgresql://u@h/db"
    assert without_password("postgresql://u:pw@[::1]:5/db") == "postgresql://u@[::1]:5/db"


def test_a_run_directory_records_its_store(tmp_path: Path, pg_url: str) -> None:
    out = tmp_path / "run"
    assert isinstance(run_store(out), SampleStore)  # nothing said: out/pool.sqlite
    assert recorded_store(out) is None
    other = tmp_path / "run2"
    store = run_store(other, pg_url)
    assert isinstance(store, PostgresStore)
    assert json.loads((other / STORE_RECORD).read_text()) == {"store": pg_url}
    assert isinstance(run_store(other), PostgresStore)  # a resume finds it
    assert isinstance(run_store(other, pg_url), PostgresStore)
    with pytest.raises(ValueError, match="was run with --store postgresql://"):
        run_store(other, str(tmp_path / "elsewhere.sqlite"))
    (other / STORE_RECORD).write_text("{}")
    with pytest.raises(ValueError, match="not a store record"):
        run_store(other)


def test_a_pool_moves_between_sqlite_and_postgres(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rewardlab.store_pg.PAGE", 4)  # whole-table reads go page by page
    src = SampleStore(tmp_path / "a.sqlite")
    for r in range(7):
        src.put_many(
            {f"req{r}": [Candidate(f"p{r}", f"t{j}", ("t",), "1", 2, 3, index=j) for j in range(5)]}
        )
    src.put_scores("orm", [(f"req{r}", j, Score(r + j / 10)) for r in range(7) for j in range(5)])
    src.put_scores("prm#steps", [("req0", 0, Score(0.5, (0.1, 0.9)))])
    pg = open_store(pg_url)
    assert copy_store(src, pg, batch=4) == (35, 36)
    assert copy_store(src, pg, batch=4) == (0, 0)  # idempotent: a rerun resumes
    back = SampleStore(tmp_path / "b.sqlite")
    assert copy_store(pg, back) == (35, 36)
    assert list(back.iter_all()) == list(src.iter_all())
    assert list(back.iter_scores()) == list(src.iter_scores())
    with pytest.raises(ValueError, match="batch must be >= 1"):
        copy_store(src, pg, batch=0)
