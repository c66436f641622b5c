"""Work leases in the store: one claimant wins, leases expire, dead workers' leases are free —
on both backends (``store_at``: SQLite, then a real PostgreSQL server on loopback)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from rewardlab.store import claim_each, new_owner, open_store, owner_is_dead


def test_one_claimant_wins_until_the_lease_expires(store_at: str) -> None:
    store = open_store(store_at, lease_ttl=0.5)
    a, b = new_owner(), new_owner()
    assert store.claim(["w1", "w2"], a) == ["w1", "w2"]
    assert store.claim(["w3", "w1", "w3"], b) == ["w3"]  # w1 is a's and live
    assert store.claim(["w1"], a) == ["w1"]  # the owner may claim again (a renewal)
    time.sleep(0.6)
    assert store.claim(["w1"], b) == ["w1"]  # expired: b takes it over
    assert store.renew(["w1", "w2"], a) == ["w1"]  # a learns it lost w1, still holds w2
    store.release(["w1", "w2"], a)  # releasing w1 is a no-op: it is b's now
    assert [(w, o) for w, o, _ in store.leases()] == [("w1", b), ("w3", b)]


def test_a_bad_ttl_is_refused(store_at: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="lease_ttl must be > 0"):
        open_store(store_at, lease_ttl=0)
    monkeypatch.setenv("REWARDLAB_LEASE_TTL", "soon")
    with pytest.raises(ValueError, match="REWARDLAB_LEASE_TTL must be a number"):
        open_store(store_at)
    monkeypatch.setenv("REWARDLAB_LEASE_TTL", "7.5")
    assert open_store(store_at).lease_ttl == 7.5


def test_the_heartbeat_keeps_a_long_lease_alive(store_at: str) -> None:
    store = open_store(store_at, lease_ttl=0.3)
    with store.holding(["w"]) as got:
        assert got == ["w"]
        time.sleep(1.0)  # > 3 ttl: only the heartbeat keeps it
        assert store.claim(["w"], new_owner()) == []
    assert store.leases() == []  # released on exit
    with pytest.raises(RuntimeError), store.holding(["w"]):
        raise RuntimeError("work failed")
    assert store.leases() == []  # released on error too


CLAIM_AND_DIE = textwrap.dedent(
    """
    import os, sys
    from rewardlab.store import new_owner, open_store
    store = open_store(sys.argv[1], lease_ttl=3600)
    assert store.claim(["w"], new_owner()) == ["w"]
    os._exit(0)  # dies holding the lease, as a killed worker does
    """
)


def test_a_dead_local_workers_lease_is_free_at_once(store_at: str) -> None:
    subprocess.run([sys.executable, "-c", CLAIM_AND_DIE, store_at], check=True, timeout=60)
    store = open_store(store_at, lease_ttl=3600)
    ((work, owner, expires),) = store.leases()
    assert work == "w" and expires > time.time() + 3000 and owner_is_dead(owner)
    assert store.claim(["w"], new_owner()) == ["w"]
    assert not owner_is_dead(new_owner())  # this process
    assert not owner_is_dead("other-host/1/abc")  # other hosts: expiry only


def test_claim_each_divides_items_between_threads(store_at: str) -> None:
    store = open_store(store_at, lease_ttl=30)
    done: dict[int, str] = {}
    twice: list[int] = []
    lock = threading.Lock()
    stats = {}

    def worker(name: str) -> None:
        def run(item: int) -> None:
            time.sleep(0.05)
            with lock:
                if item in done:
                    twice.append(item)
                done[item] = name

        stats[name] = claim_each(
            store, list(range(12)), lambda i: f"item{i}", lambda i: i in done, run, poll=0.01
        )

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert twice == [] and sorted(done) == list(range(12))
    assert stats["a"].computed + stats["b"].computed == 12
    assert stats["a"].computed >= 1 and stats["b"].computed >= 1
    assert stats["a"].computed + stats["a"].found_done == 12
    assert store.leases() == []


def test_the_wal_switch_is_retried_while_another_connection_holds_the_file(
    tmp_path: Path,
) -> None:
    """SQLite may answer the switch to WAL with "database is locked" at once (it failed two
    `rewardlab sample` workers starting together on a fresh store in CI). With the busy
    handler off (timeout 0) every attempt fails at once while another connection holds an
    exclusive lock; ``_enable_wal`` must keep trying until it is released, and give up with the
    error at its deadline."""
    from rewardlab.store import _enable_wal

    path = tmp_path / "s.sqlite"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("CREATE TABLE t (x)")
    waiter = sqlite3.connect(path, timeout=0.0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        waiter.execute("PRAGMA journal_mode=WAL")  # what the store did before: fails at once
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _enable_wal(waiter, timeout=0.2)  # still held at the deadline: the error, not a hang
    release = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    _enable_wal(waiter, timeout=10.0)
    release.join()
    assert 0.2 < time.monotonic() - started < 5.0
    assert waiter.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
