"""Benchmark: the sample store's write and lease throughput, SQLite beside PostgreSQL.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_store.py [--requests 200] [--n 16]

One batch of work, the same for every backend: ``--requests`` requests x ``--n`` candidates
(64-token candidates with their log-probabilities, as ``rewardlab sample`` stores them),
written the way ``search.pool.sample_pool`` writes them — a lease claimed on each chunk of 4
requests, the chunk's candidates in one ``put_many`` transaction, the lease released — then
one score per candidate (``put_scores``, one transaction per chunk), then every request read
back (``candidates``) and every score looked up (``scores``). Backends:

- ``sqlite``: ``SampleStore`` in a temp file (WAL, ``synchronous=NORMAL``: a commit is not
  fsynced; safe against a killed process, not against power loss);
- ``postgres``: ``PostgresStore`` on a server started here on loopback (tests/pgserver.py)
  with PostgreSQL's durable defaults (``fsync=on``, ``synchronous_commit=on``: each commit
  waits for its WAL flush);
- ``postgres-async``: the same server, ``synchronous_commit=off`` for the session (a commit
  returns before the flush: like SQLite's NORMAL, a server crash may lose the last commits but
  never leaves a partial batch).

Each backend runs ``--repeats`` times on a fresh store/database, interleaved; the fastest
repeat is reported. Writes benchmarks/results/store.json and store.md. Not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _machine import MachineProbe, machine_line

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests"))

from pgserver import PgServer, find_bin, start_server  # noqa: E402
from rewardlab.store import Store, new_owner, open_store, work_digest  # noqa: E402
from rewardlab.types import Candidate, Score  # noqa: E402

CHUNK = 4


def _batch(requests: int, n: int) -> dict[str, list[Candidate]]:
    out = {}
    for r in range(requests):
        out[f"req{r:05d}"] = [
            Candidate(
                f"p{r}",
                f"step one {r}\nstep two {i}\nThe answer is {r + i}",
                (f"step one {r}", f"step two {i}", f"The answer is {r + i}"),
                str(r + i),
                prompt_tokens=80,
                generated_tokens=64,
                logprobs=tuple(-0.123456789 * (j % 7) for j in range(64)),
                index=i,
                meta={"correct": (r + i) % 3 == 0, "finish_reason": "stop"},
            )
            for i in range(n)
        ]
    return out


def _run(store: Store, batch: dict[str, list[Candidate]]) -> dict[str, float]:
    reqs = list(batch)
    chunks = [reqs[i : i + CHUNK] for i in range(0, len(reqs), CHUNK)]
    rows = sum(len(v) for v in batch.values())
    t0 = time.perf_counter()
    for chunk in chunks:
        owner = new_owner()
        work = "sample:" + work_digest(chunk)
        assert store.claim([work], owner) == [work]
        store.put_many({k: batch[k] for k in chunk})
        store.release([work], owner)
    t1 = time.perf_counter()
    for chunk in chunks:
        store.put_scores("orm", [(k, c.index, Score(0.5)) for k in chunk for c in batch[k]])
    t2 = time.perf_counter()
    got = sum(len(store.candidates(k)) for k in reqs)
    t3 = time.perf_counter()
    keys = [(k, c.index) for k in reqs for c in batch[k]]
    found = sum(s is not None for s in store.scores("orm", keys))
    t4 = time.perf_counter()
    assert got == rows and found == rows and store.count() == rows
    return {
        "candidates_per_s": rows / (t1 - t0),
        "chunks_per_s": len(chunks) / (t1 - t0),
        "scores_per_s": rows / (t2 - t1),
        "read_candidates_per_s": rows / (t3 - t2),
        "read_scores_per_s": rows / (t4 - t3),
        "write_s": (t1 - t0) + (t2 - t1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if find_bin() is None:
        raise SystemExit("PostgreSQL binaries (initdb, pg_ctl, postgres) not found")
    probe = MachineProbe()
    batch = _batch(args.requests, args.n)
    t = time.perf_counter()
    server: PgServer = start_server({"fsync": "on", "synchronous_commit": "on"})
    startup = time.perf_counter() - t
    best: dict[str, dict[str, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for rep in range(args.repeats):
                locations = {
                    "sqlite": str(Path(tmp) / f"s{rep}.sqlite"),
                    "postgres": server.create_db("bench"),
                    "postgres-async": server.create_db("bench")
                    + "?options=-csynchronous_commit%3Doff",
                }
                for name, loc in locations.items():
                    res = _run(open_store(loc), batch)
                    if name not in best or res["write_s"] < best[name]["write_s"]:
                        best[name] = res
                    print(name, rep, {k: round(v, 1) for k, v in res.items()}, flush=True)
    finally:
        server.stop()
    import psycopg

    record = {
        "requests": args.requests,
        "n": args.n,
        "rows": args.requests * args.n,
        "chunk_requests": CHUNK,
        "repeats": args.repeats,
        "server_start_s": round(startup, 2),
        "results": {k: {m: round(v, 2) for m, v in r.items()} for k, r in best.items()},
        "machine": probe.record(
            postgres=str(server.bindir), psycopg=psycopg.__version__, sqlite=_sqlite()
        ),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "store.json").write_text(json.dumps(record, indent=2) + "\n")
    md = _markdown(record)
    (RESULTS / "store.md").write_text(md)
    print(md)


def _sqlite() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def _markdown(rec: dict[str, Any]) -> str:
    lines = [
        "# Sample store: SQLite vs PostgreSQL",
        "",
        f"{rec['rows']} candidates ({rec['requests']} requests x {rec['n']}), written as "
        f"`sample_pool` writes them: a lease claimed per chunk of {rec['chunk_requests']} "
        "requests, one transaction per chunk, the lease released; then one score per "
        f"candidate (a transaction per chunk); then everything read back. Fastest of "
        f"{rec['repeats']} interleaved repeats, one process, server on loopback "
        f"(started in {rec['server_start_s']} s).",
        "",
        "| backend | candidates/s | chunks/s (claim + write + release) | scores/s "
        "| read candidates/s | read scores/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rec["results"].items():
        lines.append(
            f"| {name} | {r['candidates_per_s']:.0f} | {r['chunks_per_s']:.1f} | "
            f"{r['scores_per_s']:.0f} | {r['read_candidates_per_s']:.0f} | "
            f"{r['read_scores_per_s']:.0f} |"
        )
    lines += ["", machine_line(rec["machine"]), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
