"""The sample store: every candidate and every score ever computed, keyed by content.

One SQLite file in WAL mode. Candidates are keyed by a *request key* — a hash of the problem
(id and text), the policy, the sampling parameters and the seed — plus the sample index; scores
by candidate key and reward name. Writes are append-only (``INSERT OR IGNORE``) and happen in
one transaction per batch, so a process killed with SIGKILL at any moment loses at most the
batch in flight and can never store a candidate twice. Re-running the same request returns what
is stored and samples only what is missing.

>>> import tempfile, pathlib
>>> from rewardlab.types import Problem, Sampling, Candidate
>>> store = SampleStore(pathlib.Path(tempfile.mkdtemp()) / "pool.sqlite")
>>> key = request_key(Problem("p1", "1+1?", "2"), "policy-a", Sampling(seed=3))
>>> store.missing(key, 2)
[0, 1]
>>> store.put_candidates(key, [Candidate("p1", "1 + 1 = 2", ("1 + 1 = 2",), "2", index=0)])
1
>>> store.missing(key, 2)
[1]
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rewardlab.types import Candidate, Problem, Sampling, Score

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS candidates (
    request TEXT NOT NULL,
    idx INTEGER NOT NULL,
    problem_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (request, idx)
);
CREATE INDEX IF NOT EXISTS candidates_problem ON candidates (problem_id);
CREATE TABLE IF NOT EXISTS scores (
    request TEXT NOT NULL,
    idx INTEGER NOT NULL,
    reward TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (request, idx, reward)
);
"""


def _digest(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def request_key(problem: Problem, policy: str, sampling: Sampling, extra: Any = None) -> str:
    """Content key of one sampling request: same problem, policy, params and seed → same key."""
    return _digest(
        {
            "problem": [problem.id, problem.question, problem.answer, problem.task],
            "policy": policy,
            "sampling": asdict(sampling),
            "extra": extra,
        }
    )


def candidate_to_json(c: Candidate) -> str:
    return json.dumps(
        {
            "problem_id": c.problem_id,
            "text": c.text,
            "steps": list(c.steps),
            "answer": c.answer,
            "prompt_tokens": c.prompt_tokens,
            "generated_tokens": c.generated_tokens,
            "logprobs": None if c.logprobs is None else list(c.logprobs),
            "segmentation": c.segmentation,
            "index": c.index,
            "meta": dict(c.meta),
        },
        ensure_ascii=False,
    )


def candidate_from_json(blob: str) -> Candidate:
    d = json.loads(blob)
    return Candidate(
        problem_id=d["problem_id"],
        text=d["text"],
        steps=tuple(d["steps"]),
        answer=d["answer"],
        prompt_tokens=d["prompt_tokens"],
        generated_tokens=d["generated_tokens"],
        logprobs=None if d["logprobs"] is None else tuple(d["logprobs"]),
        segmentation=d["segmentation"],
        index=d["index"],
        meta=d["meta"],
    )


def score_to_json(s: Score) -> str:
    return json.dumps({"value": s.value, "steps": list(s.steps), "info": dict(s.info)}, default=str)


def score_from_json(blob: str) -> Score:
    d = json.loads(blob)
    return Score(value=d["value"], steps=tuple(d["steps"]), info=d["info"])


class SampleStore:
    """Append-only, crash-safe pool of candidates and scores in one SQLite file (WAL mode).

    Safe to use from several threads (one connection per thread) and several processes
    (SQLite's locking). Nothing is ever overwritten: a second write of the same key is ignored.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as db:
            db.executescript(_SCHEMA)
            db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        found = (
            self._conn()
            .execute("SELECT value FROM meta WHERE key = 'schema_version'")
            .fetchone()[0]
        )
        if int(found) != SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path}: store schema version {found}, this rewardlab reads {SCHEMA_VERSION}"
            )

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ------------------------------------------------------------------------ candidates
    def put_candidates(self, request: str, candidates: Sequence[Candidate]) -> int:
        """Store a batch atomically; returns how many were new (duplicates are ignored)."""
        rows = [(request, c.index, c.problem_id, candidate_to_json(c)) for c in candidates]
        with self._conn() as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO candidates VALUES (?, ?, ?, ?)", rows)
            return db.total_changes - before

    def put_many(self, batches: Mapping[str, Sequence[Candidate]]) -> int:
        """Store candidates of several requests in ONE transaction (all or nothing)."""
        rows = [
            (req, c.index, c.problem_id, candidate_to_json(c))
            for req, cands in batches.items()
            for c in cands
        ]
        with self._conn() as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO candidates VALUES (?, ?, ?, ?)", rows)
            return db.total_changes - before

    def candidates(self, request: str, n: int | None = None) -> list[Candidate]:
        """Stored candidates of a request, by index (only indices < n when n is given)."""
        sql = "SELECT payload FROM candidates WHERE request = ?"
        args: tuple[Any, ...] = (request,)
        if n is not None:
            sql += " AND idx < ?"
            args = (request, n)
        rows = self._conn().execute(sql + " ORDER BY idx", args).fetchall()
        return [candidate_from_json(r[0]) for r in rows]

    def missing(self, request: str, n: int) -> list[int]:
        """Indices in ``0..n-1`` not yet stored for ``request``."""
        have = {
            r[0]
            for r in self._conn().execute(
                "SELECT idx FROM candidates WHERE request = ? AND idx < ?", (request, n)
            )
        }
        return [i for i in range(n) if i not in have]

    def count(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM candidates").fetchone()[0])

    def iter_all(self) -> Iterator[tuple[str, Candidate]]:
        for req, payload in self._conn().execute(
            "SELECT request, payload FROM candidates ORDER BY request, idx"
        ):
            yield req, candidate_from_json(payload)

    # ---------------------------------------------------------------------------- scores
    def put_scores(self, reward: str, items: Iterable[tuple[str, int, Score]]) -> int:
        """Store ``(request, index, score)`` triples for ``reward`` atomically."""
        rows = [(req, idx, reward, score_to_json(s)) for req, idx, s in items]
        with self._conn() as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO scores VALUES (?, ?, ?, ?)", rows)
            return db.total_changes - before

    def scores(self, reward: str, keys: Sequence[tuple[str, int]]) -> list[Score | None]:
        """Stored scores for ``(request, index)`` keys, None where not yet scored."""
        found: dict[tuple[str, int], Score] = {}
        requests = sorted({k[0] for k in keys})
        for i in range(0, len(requests), 500):
            chunk = requests[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for req, idx, payload in self._conn().execute(
                "SELECT request, idx, payload FROM scores "
                f"WHERE reward = ? AND request IN ({marks})",
                (reward, *chunk),
            ):
                found[(req, idx)] = score_from_json(payload)
        return [found.get((k[0], k[1])) for k in keys]

    def rewards(self) -> list[str]:
        return [r[0] for r in self._conn().execute("SELECT DISTINCT reward FROM scores")]
