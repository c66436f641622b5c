"""The sample store: content keys, append-only writes, crash safety — on both backends
(``store_at``: a SQLite file, then a database on a real PostgreSQL server on loopback)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from rewardlab.store import open_store, request_key
from rewardlab.types import Candidate, Problem, Sampling, Score


def _cand(i: int, pid: str = "p") -> Candidate:
    return Candidate(
        pid,
        f"text {i}",
        (f"text {i}",),
        str(i),
        3,
        4,
        (-0.5,) * 4,
        index=i,
        meta={"correct": i % 2 == 0},
    )


def test_request_key_is_content_addressed() -> None:
    p = Problem("p", "q", "1")
    k = request_key(p, "pol", Sampling(seed=1))
    assert k == request_key(Problem("p", "q", "1"), "pol", Sampling(seed=1))
    assert k != request_key(p, "pol", Sampling(seed=2))
    assert k != request_key(p, "pol", Sampling(seed=1, temperature=0.7))
    assert k != request_key(p, "other", Sampling(seed=1))
    assert k != request_key(Problem("p", "q2", "1"), "pol", Sampling(seed=1))


def test_round_trip_and_no_duplicates(store_at: str) -> None:
    store = open_store(store_at)
    assert store.put_candidates("r", [_cand(0), _cand(1)]) == 2
    assert store.put_candidates("r", [_cand(1), _cand(2)]) == 1  # 1 is ignored, never doubled
    got = store.candidates("r")
    assert [c.index for c in got] == [0, 1, 2]
    assert got[1] == _cand(1)
    assert store.missing("r", 5) == [3, 4]
    assert [c.index for c in store.candidates("r", 2)] == [0, 1]
    assert store.put_scores("orm", [("r", 0, Score(0.5, (0.1, 0.9), {"a": 1}))]) == 1
    assert store.put_scores("orm", [("r", 0, Score(0.9))]) == 0  # append-only
    assert store.scores("orm", [("r", 0), ("r", 1)]) == [Score(0.5, (0.1, 0.9), {"a": 1}), None]
    assert store.scores("orm", [("r", 0)])[0] == Score(0.5, (0.1, 0.9), {"a": 1})
    assert store.rewards() == ["orm"]
    assert store.put_candidates("r", []) == 0 and store.put_scores("orm", []) == 0
    assert store.scores("orm", []) == []
    # a batch with a key twice stores it once (the first copy)
    assert store.put_many({"r2": [_cand(0), _cand(5), _cand(0, pid="other")]}) == 2
    assert store.candidates("r2")[0] == _cand(0)
    assert [(r, c.index) for r, c in store.iter_all()] == [
        ("r", 0),
        ("r", 1),
        ("r", 2),
        ("r2", 0),
        ("r2", 5),
    ]
    assert list(store.iter_scores()) == [("orm", "r", 0, Score(0.5, (0.1, 0.9), {"a": 1}))]
    # a second handle on the same store sees everything
    assert open_store(store_at).count() == 5


WRITER = textwrap.dedent(
    """
    import sys, time
    from rewardlab.store import open_store
    from rewardlab.types import Candidate
    store = open_store(sys.argv[1])
    for chunk in range(10_000):
        cands = [Candidate("p", "x" * 200, ("x",), "1", index=i) for i in range(50)]
        batch = {f"req{chunk}": cands}
        store.put_many(batch)
        print(chunk, flush=True)
    """
)


def test_sigkill_mid_write_loses_at_most_the_batch_in_flight(tmp_path: Path, store_at: str) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen(
        [sys.executable, str(script), store_at], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    for _ in range(20):  # let it commit a few batches, then kill it hard mid-stream
        proc.stdout.readline()
    time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    store = open_store(store_at)
    per_request: dict[str, list[int]] = {}
    for req, c in store.iter_all():
        per_request.setdefault(req, []).append(c.index)
    assert len(per_request) >= 20
    for req, idx in per_request.items():
        assert idx == list(range(50)), f"{req} is partial: batches must be all-or-nothing"
