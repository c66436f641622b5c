"""The sample store: every candidate and every score ever computed, keyed by content.

One SQLite file in WAL mode. Candidates are keyed by a *request key* — a hash of the problem
(id and text), the policy, the sampling parameters and the seed — plus the sample index; scores
by candidate key and reward name. Writes are append-only (``INSERT OR IGNORE``) and happen in
one transaction per batch, so a process killed with SIGKILL at any moment loses at most the
batch in flight and can never store a candidate twice. Re-running the same request returns what
is stored and samples only what is missing.

Two backends implement one contract, :class:`Store`: this module's :class:`SampleStore` (SQLite,
the embedded default: every writer on one host) and :class:`rewardlab.store_pg.PostgresStore`
(a PostgreSQL server that workers on many hosts share). :func:`open_store` picks one from a
location: a ``postgresql://`` URL or a file path.

Work leases keep workers that share a store from computing the same thing twice. A job cuts its
work into chunks named by content (:func:`claim_each`); a worker claims a chunk's lease
(:meth:`SampleStore.claim`: one ``BEGIN IMMEDIATE`` transaction, so only one claimant wins),
renews it from a heartbeat thread while it computes, and releases it once the results are
stored. Other workers skip a chunk whose lease is live and come back to it; a lease left behind
by a crashed worker expires (``lease_ttl`` seconds, ``REWARDLAB_LEASE_TTL``) or, when the dead
worker ran on this host, is free at once. Whether a chunk is *done* is always read from the
stored data, never from a lease, so a finished chunk is never redone and a chunk whose worker
died is redone from whatever it had stored.

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
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

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
CREATE TABLE IF NOT EXISTS leases (
    work TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires REAL NOT NULL
);
"""


DEFAULT_LEASE_TTL = 60.0
"""Seconds a work lease lives without a heartbeat (``REWARDLAB_LEASE_TTL`` overrides)."""

HOST = socket.gethostname()

T = TypeVar("T")


def _digest(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def work_digest(parts: Any) -> str:
    """A content digest naming a chunk of work (a lease name), e.g. of its request keys."""
    return _digest(parts)


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


def _enable_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch ``conn``'s database to WAL, retrying while another process holds it.

    SQLite answers ``database is locked`` to the journal-mode switch without waiting on the
    busy timeout when another connection is creating the same new file (two workers started
    together on one fresh store: seen in CI), so the switch is retried with backoff here.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, 0.25)


class Store(Protocol):
    """What every sample store guarantees (SQLite: :class:`SampleStore`; PostgreSQL:
    :class:`rewardlab.store_pg.PostgresStore`).

    - **Content-keyed, append-only**: candidates by ``(request, index)``, scores by
      ``(request, index, reward)``; a second write of a key is ignored, never an overwrite
      and never a duplicate. ``put_*`` return how many rows were new.
    - **One transaction per call**: a batch is stored whole or not at all, so a worker killed
      at any moment loses at most the batch in flight.
    - **Leases** (``claim``/``renew``/``release``/``holding``): of several claimants of one
      free lease exactly one wins; a lease is free when absent, expired, owned by a dead
      process of this host, or already the claimant's. A lease never says work is done:
      that is read from the stored data.
    - Usable from several threads (one connection per thread; ``close`` closes the calling
      thread's) and several processes.
    """

    lease_ttl: float

    @property
    def location(self) -> str:
        """Where the store lives (a file path, or a URL without its password)."""
        ...

    def close(self) -> None: ...

    def put_candidates(self, request: str, candidates: Sequence[Candidate]) -> int: ...

    def put_many(self, batches: Mapping[str, Sequence[Candidate]]) -> int: ...

    def candidates(self, request: str, n: int | None = None) -> list[Candidate]: ...

    def missing(self, request: str, n: int) -> list[int]: ...

    def count(self) -> int: ...

    def count_scores(self) -> int: ...

    def iter_all(self) -> Iterator[tuple[str, Candidate]]: ...

    def put_scores(self, reward: str, items: Iterable[tuple[str, int, Score]]) -> int: ...

    def scores(self, reward: str, keys: Sequence[tuple[str, int]]) -> list[Score | None]: ...

    def rewards(self) -> list[str]: ...

    def iter_scores(self) -> Iterator[tuple[str, str, int, Score]]:
        """Every stored score as ``(reward, request, index, score)``, by request and index."""
        ...

    def claim(self, works: Sequence[str], owner: str, ttl: float | None = None) -> list[str]: ...

    def renew(self, works: Sequence[str], owner: str, ttl: float | None = None) -> list[str]: ...

    def release(self, works: Sequence[str], owner: str) -> None: ...

    def leases(self) -> list[tuple[str, str, float]]: ...

    def holding(
        self, works: Sequence[str], ttl: float | None = None
    ) -> AbstractContextManager[list[str]]: ...


def is_url(location: str | Path) -> bool:
    """True when ``location`` names a PostgreSQL server (``postgresql://`` or ``postgres://``)."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def open_store(location: str | Path, lease_ttl: float | None = None) -> Store:
    """The store at ``location``: a ``postgresql://user@host:port/db`` URL opens a
    :class:`rewardlab.store_pg.PostgresStore` (needs ``pip install 'rewardlab[postgres]'``),
    anything else is the path of a SQLite :class:`SampleStore` (created if absent)."""
    if is_url(location):
        from rewardlab.store_pg import PostgresStore

        return PostgresStore(str(location), lease_ttl=lease_ttl)
    text = str(location)
    if "://" in text:
        scheme = text.partition("://")[0]
        raise ValueError(
            f"store {text!r}: unknown scheme {scheme!r}; give a postgresql:// URL or a file path"
        )
    return SampleStore(Path(location), lease_ttl=lease_ttl)


STORE_RECORD = "store.json"
"""The file in a run directory naming the run's store when it is not ``pool.sqlite`` there."""


def _record_form(location: str | Path) -> str:
    if is_url(location):
        from rewardlab.store_pg import without_password

        return without_password(str(location))
    return str(Path(location).resolve())


def recorded_store(out: Path) -> str | None:
    """The store location recorded in run directory ``out`` (None: its ``pool.sqlite``)."""
    path = out / STORE_RECORD
    if not path.is_file():
        return None
    try:
        location = json.loads(path.read_text())["store"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a store record ({e}); delete it or fix it") from None
    if not isinstance(location, str) or not location:
        raise ValueError(f"{path}: 'store' must be a non-empty string, got {location!r}")
    return location


def run_store(out: Path, location: str | None = None, lease_ttl: float | None = None) -> Store:
    """The store of run directory ``out``: ``location`` when given, else the one recorded in
    ``out/store.json``, else ``out/pool.sqlite``.

    A store other than ``out/pool.sqlite`` is recorded (a URL without its password), so a
    resumed run, ``rewardlab verify`` and ``rewardlab tune`` find it without being told.
    Giving a location other than the recorded one is an error (it would silently start the
    pool over): use a new output directory, or copy the pool (``rewardlab store copy``).
    """
    recorded = recorded_store(out)
    if location is None:
        return open_store(recorded or out / "pool.sqlite", lease_ttl)
    wanted = _record_form(location)
    default = _record_form(out / "pool.sqlite")
    if recorded is not None and wanted != _record_form(recorded):
        raise ValueError(
            f"{out} was run with --store {recorded}, not {wanted}: give the same store "
            "(or a new output directory; `rewardlab store copy` moves a pool)"
        )
    store = open_store(location, lease_ttl)
    if recorded is None and wanted != default:
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f"{STORE_RECORD}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"store": wanted}) + "\n")
        tmp.replace(out / STORE_RECORD)
    return store


def copy_store(
    src: Store,
    dst: Store,
    batch: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Copy every candidate and score of ``src`` into ``dst`` (content-keyed: what ``dst``
    already holds is kept); one transaction per ``batch`` rows, so an interrupted copy
    resumes by running it again. ``progress(rows)`` is called after each batch with the rows
    read so far. Returns ``(new candidates, new scores)`` in ``dst``."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    new_c = new_s = 0
    seen = 0
    pending: dict[str, list[Candidate]] = {}
    rows = 0
    for req, cand in src.iter_all():
        pending.setdefault(req, []).append(cand)
        rows += 1
        if rows >= batch:
            new_c += dst.put_many(pending)
            seen += rows
            pending, rows = {}, 0
            if progress is not None:
                progress(seen)
    if pending:
        new_c += dst.put_many(pending)
    seen += rows
    by_reward: dict[str, list[tuple[str, int, Score]]] = {}
    rows = 0
    for reward, req, idx, score in src.iter_scores():
        by_reward.setdefault(reward, []).append((req, idx, score))
        rows += 1
        if rows >= batch:
            new_s += sum(dst.put_scores(r, items) for r, items in by_reward.items())
            seen += rows
            by_reward, rows = {}, 0
            if progress is not None:
                progress(seen)
    new_s += sum(dst.put_scores(r, items) for r, items in by_reward.items())
    if progress is not None:
        progress(seen + rows)
    return new_c, new_s


class LeaseHolding:
    """:meth:`holding` on top of a store's ``claim`` / ``renew`` / ``release`` (both backends)."""

    lease_ttl: float

    def claim(self, works: Sequence[str], owner: str, ttl: float | None = None) -> list[str]:
        raise NotImplementedError

    def renew(self, works: Sequence[str], owner: str, ttl: float | None = None) -> list[str]:
        raise NotImplementedError

    def release(self, works: Sequence[str], owner: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    @contextmanager
    def holding(self, works: Sequence[str], ttl: float | None = None) -> Iterator[list[str]]:
        """Claim ``works`` under a fresh owner id, keep the claimed leases alive while the
        block runs (a heartbeat thread renews them every ``ttl / 3`` s) and release them at
        the end, also on error. Yields the works claimed (possibly none)."""
        ttl = self.lease_ttl if ttl is None else ttl
        owner = new_owner()
        got = self.claim(works, owner, ttl)
        beat = _Heartbeat(self, got, owner, ttl) if got else None
        try:
            yield got
        finally:
            if beat is not None:
                beat.stop()
            if got:
                self.release(got, owner)


class SampleStore(LeaseHolding):
    """Append-only, crash-safe pool of candidates and scores in one SQLite file (WAL mode).

    Safe to use from several threads (one connection per thread) and several processes
    (SQLite's locking). Nothing is ever overwritten: a second write of the same key is ignored.
    """

    def __init__(self, path: str | Path, lease_ttl: float | None = None) -> None:
        self.path = Path(path)
        self.lease_ttl = lease_ttl if lease_ttl is not None else env_lease_ttl()
        if not self.lease_ttl > 0:
            raise ValueError(f"lease_ttl must be > 0 seconds, got {self.lease_ttl}")
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
            _enable_wal(conn, timeout=60.0)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @property
    def location(self) -> str:
        return str(self.path)

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

    def count_scores(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM scores").fetchone()[0])

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

    def iter_scores(self) -> Iterator[tuple[str, str, int, Score]]:
        """Every score as ``(reward, request, index, score)``, by ``(request, index, reward)``."""
        for reward, req, idx, payload in self._conn().execute(
            "SELECT reward, request, idx, payload FROM scores ORDER BY request, idx, reward"
        ):
            yield reward, req, int(idx), score_from_json(payload)

    # ---------------------------------------------------------------------------- leases
    def claim(self, works: Sequence[str], owner: str, ttl: float | None = None) -> list[str]:
        """Take the leases on ``works`` that nobody holds; returns those ``owner`` now holds.

        A lease is free when absent, expired (``ttl`` seconds after its last heartbeat), held
        by a process of this host that no longer runs (a killed worker: free at once), or
        already ``owner``'s (then it is renewed). One ``BEGIN IMMEDIATE`` transaction, so two
        workers never both win the same lease. A lease says "someone is computing this": it
        never says the work is done; callers check the stored data for that.
        """
        ttl = self.lease_ttl if ttl is None else ttl
        now = time.time()
        got: list[str] = []
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for work in dict.fromkeys(works):
                row = conn.execute(
                    "SELECT owner, expires FROM leases WHERE work = ?", (work,)
                ).fetchone()
                if row is None or row[0] == owner or row[1] <= now or owner_is_dead(row[0]):
                    conn.execute(
                        "INSERT OR REPLACE INTO leases VALUES (?, ?, ?)", (work, owner, now + ttl)
                    )
                    got.append(work)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return got

    def renew(self, works: Sequence[str], owner: str, ttl: float | None = None) -> list[str]:
        """Push the expiry of ``owner``'s leases on ``works``; returns the ones it lost."""
        expires = time.time() + (self.lease_ttl if ttl is None else ttl)
        lost = []
        with self._conn() as db:
            for work in works:
                cur = db.execute(
                    "UPDATE leases SET expires = ? WHERE work = ? AND owner = ?",
                    (expires, work, owner),
                )
                if cur.rowcount == 0:
                    lost.append(work)
        return lost

    def release(self, works: Sequence[str], owner: str) -> None:
        """Drop ``owner``'s leases on ``works`` (those another worker took over stay)."""
        with self._conn() as db:
            db.executemany(
                "DELETE FROM leases WHERE work = ? AND owner = ?", [(w, owner) for w in works]
            )

    def leases(self) -> list[tuple[str, str, float]]:
        """Every lease as ``(work, owner, expires)`` (expired ones included)."""
        rows = self._conn().execute("SELECT work, owner, expires FROM leases ORDER BY work")
        return [(str(w), str(o), float(e)) for w, o, e in rows]


def env_lease_ttl() -> float:
    """``REWARDLAB_LEASE_TTL`` in seconds, else :data:`DEFAULT_LEASE_TTL`."""
    raw = os.environ.get("REWARDLAB_LEASE_TTL", "").strip()
    if not raw:
        return DEFAULT_LEASE_TTL
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"REWARDLAB_LEASE_TTL must be a number of seconds, got {raw!r}") from None


def new_owner() -> str:
    """A lease owner id, unique per claim: ``host/pid/random``."""
    return f"{HOST}/{os.getpid()}/{uuid.uuid4().hex[:12]}"


def owner_is_dead(owner: str) -> bool:
    """True when ``owner`` names a process of THIS host that has exited (or is a zombie).

    Owners on other hosts are never judged dead here: their leases end by expiry only.
    """
    host, _, rest = owner.partition("/")
    pid_text = rest.partition("/")[0]
    if host != HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


class _Heartbeat:
    """Renews leases from a daemon thread until stopped (its own database connection)."""

    def __init__(self, store: LeaseHolding, works: list[str], owner: str, ttl: float) -> None:
        self._store, self._works, self._owner, self._ttl = store, works, owner, ttl
        self._stop = threading.Event()
        self.lost: list[str] = []
        self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self._ttl / 3):
                self.lost = self._store.renew(self._works, self._owner, self._ttl)
        finally:
            self._store.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class ClaimStats:
    """What one worker did in :func:`claim_each`: items it computed, items it found done
    (by an earlier run or by another worker), and seconds it waited on others' leases."""

    computed: int
    found_done: int
    waited_s: float


def claim_each(
    store: Store,
    items: Sequence[T],
    work: Callable[[T], str],
    is_done: Callable[[T], bool],
    run: Callable[[T], None],
    *,
    ttl: float | None = None,
    poll: float = 0.25,
    on_done: Callable[[T], None] | None = None,
) -> ClaimStats:
    """Run ``run(item)`` for every item that is not ``is_done``, each under the lease
    ``work(item)``, so that workers sharing ``store`` never compute the same item at once.

    Returns once every item is done, by this worker or another: items whose lease another
    worker holds are skipped and retried after the others, waiting ``poll`` seconds when a
    whole pass made no progress. A worker that dies leaves its lease behind until it expires
    (at once for a dead process of this host, see :func:`owner_is_dead`); its item is then
    claimed and computed again, from the stored data. ``is_done`` is checked again after
    the claim, so an item finished between the check and the claim is not redone.
    ``on_done(item)`` is called after each item is found or made done (progress).
    """
    pending = list(items)
    computed = found = 0
    waited = 0.0
    while pending:
        left: list[T] = []
        for item in pending:
            if not is_done(item):
                with store.holding([work(item)], ttl) as got:
                    if not got:
                        left.append(item)
                        continue
                    if is_done(item):
                        found += 1
                    else:
                        run(item)
                        computed += 1
            else:
                found += 1
            if on_done is not None:
                on_done(item)
        if left and len(left) == len(pending):
            time.sleep(poll)
            waited += poll
        pending = left
    return ClaimStats(computed, found, waited)
