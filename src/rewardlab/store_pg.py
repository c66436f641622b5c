"""The sample store on a PostgreSQL server: one pool that workers on many hosts share.

Same contract as the SQLite :class:`~rewardlab.store.SampleStore` (:class:`~rewardlab.store.Store`):
candidates keyed by ``(request, index)``, scores by ``(request, index, reward)``, both
append-only (``INSERT ... ON CONFLICT DO NOTHING``), one transaction per batch (a worker
killed at any moment loses at most the batch in flight), and work leases with expiry.

What differs, and why:

- **The lease clock is the server's.** Expiry times are written and compared as
  ``clock_timestamp()`` of the server (seconds since the epoch), never a worker's
  ``time.time()``, so hosts with skewed clocks still agree on when a lease has expired.
- **A claim is one statement**: ``INSERT .. ON CONFLICT (work) DO UPDATE .. WHERE`` the held
  lease is expired, already the claimant's, or owned by a process of this host that is gone
  (:func:`rewardlab.store.owner_is_dead`). PostgreSQL evaluates that condition on the latest
  row version under its row lock, so of two claimants exactly one wins. Works are claimed in
  sorted order, so two claimants of overlapping sets never deadlock.
- **Connections run in autocommit** (no transaction is left open between calls) and every
  write is an explicit transaction; one connection per thread, as for SQLite.
- **Schema creation** is serialised by an advisory lock, so workers that start together on a
  fresh database do not race on ``CREATE TABLE IF NOT EXISTS``.

One database holds one pool namespace; because every row is keyed by content, several runs
may share a database safely (as they could share one SQLite file).

The driver is ``psycopg`` 3 (``pip install 'rewardlab[postgres]'``), imported when a store is
opened, so the rest of rewardlab never needs it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from rewardlab.store import (
    SCHEMA_VERSION,
    LeaseHolding,
    candidate_from_json,
    candidate_to_json,
    env_lease_ttl,
    owner_is_dead,
    score_from_json,
    score_to_json,
)
from rewardlab.types import Candidate, Score

if TYPE_CHECKING:
    import psycopg

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS candidates (
        request TEXT NOT NULL,
        idx INTEGER NOT NULL,
        problem_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        PRIMARY KEY (request, idx)
    )""",
    "CREATE INDEX IF NOT EXISTS candidates_problem ON candidates (problem_id)",
    """CREATE TABLE IF NOT EXISTS scores (
        request TEXT NOT NULL,
        idx INTEGER NOT NULL,
        reward TEXT NOT NULL,
        payload TEXT NOT NULL,
        PRIMARY KEY (request, idx, reward)
    )""",
    """CREATE TABLE IF NOT EXISTS leases (
        work TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires DOUBLE PRECISION NOT NULL
    )""",
)

_SCHEMA_LOCK = 0x7265776172646C62  # "rewardlb": the advisory lock that serialises schema setup

PAGE = 5000
"""Rows per query when iterating a whole table (``iter_all``, ``iter_scores``)."""

_NOW = "extract(epoch from clock_timestamp())::double precision"


def without_password(url: str) -> str:
    """``url`` with its password (if any) removed: safe to print or record in a run
    directory; libpq then takes the password from ``PGPASSWORD`` or ``~/.pgpass``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"{user}@{host}{port}"))


def _driver() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ImportError(
            "a postgresql:// store needs the psycopg driver: pip install 'rewardlab[postgres]'"
        ) from None
    return psycopg


class PostgresStore(LeaseHolding):
    """Append-only, crash-safe pool of candidates and scores in a PostgreSQL database.

    ``url`` is a libpq URL (``postgresql://user[:password]@host:port/dbname``; any libpq
    parameter works, e.g. ``?sslmode=require``; a password is better given by ``PGPASSWORD``
    or ``~/.pgpass`` than in the URL). The database must exist; the tables are created on
    first use. Raises ConnectionError naming the server when it cannot be reached.
    """

    def __init__(self, url: str, lease_ttl: float | None = None) -> None:
        self.url = url
        self.lease_ttl = lease_ttl if lease_ttl is not None else env_lease_ttl()
        if not self.lease_ttl > 0:
            raise ValueError(f"lease_ttl must be > 0 seconds, got {self.lease_ttl}")
        self._psycopg = _driver()
        self._local = threading.local()
        conn = self._conn()
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for stmt in _SCHEMA:
                conn.execute(stmt)
            conn.execute(
                "INSERT INTO meta VALUES ('schema_version', %s) ON CONFLICT DO NOTHING",
                (str(SCHEMA_VERSION),),
            )
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        assert row is not None
        if int(row[0]) != SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.location}: store schema version {row[0]}, "
                f"this rewardlab reads {SCHEMA_VERSION}"
            )

    @property
    def location(self) -> str:
        return without_password(self.url)

    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = self._psycopg.connect(self.url, autocommit=True, connect_timeout=30)
            except self._psycopg.OperationalError as e:
                detail = " ".join(str(e).split())
                raise ConnectionError(f"PostgreSQL store {self.location}: {detail}") from None
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ------------------------------------------------------------------------ candidates
    def _insert_candidates(self, rows: list[tuple[str, int, str, str]]) -> int:
        if not rows:
            return 0
        cols = [list(c) for c in zip(*rows, strict=True)]
        conn = self._conn()
        with conn.transaction():
            cur = conn.execute(
                "INSERT INTO candidates (request, idx, problem_id, payload) "
                "SELECT * FROM unnest(%s::text[], %s::int[], %s::text[], %s::text[]) "
                "ON CONFLICT DO NOTHING",
                cols,
            )
            return max(cur.rowcount, 0)

    def put_candidates(self, request: str, candidates: Sequence[Candidate]) -> int:
        """Store a batch atomically; returns how many were new (duplicates are ignored)."""
        return self._insert_candidates(
            [(request, c.index, c.problem_id, candidate_to_json(c)) for c in candidates]
        )

    def put_many(self, batches: Mapping[str, Sequence[Candidate]]) -> int:
        """Store candidates of several requests in ONE transaction (all or nothing)."""
        return self._insert_candidates(
            [
                (req, c.index, c.problem_id, candidate_to_json(c))
                for req, cands in batches.items()
                for c in cands
            ]
        )

    def candidates(self, request: str, n: int | None = None) -> list[Candidate]:
        """Stored candidates of a request, by index (only indices < n when n is given)."""
        sql = "SELECT payload FROM candidates WHERE request = %s"
        args: tuple[Any, ...] = (request,)
        if n is not None:
            sql += " AND idx < %s"
            args = (request, n)
        rows = self._conn().execute(sql + " ORDER BY idx", args).fetchall()
        return [candidate_from_json(r[0]) for r in rows]

    def missing(self, request: str, n: int) -> list[int]:
        """Indices in ``0..n-1`` not yet stored for ``request``."""
        rows = self._conn().execute(
            "SELECT idx FROM candidates WHERE request = %s AND idx < %s", (request, n)
        )
        have = {int(r[0]) for r in rows}
        return [i for i in range(n) if i not in have]

    def count(self) -> int:
        row = self._conn().execute("SELECT COUNT(*) FROM candidates").fetchone()
        assert row is not None
        return int(row[0])

    def count_scores(self) -> int:
        row = self._conn().execute("SELECT COUNT(*) FROM scores").fetchone()
        assert row is not None
        return int(row[0])

    def iter_all(self) -> Iterator[tuple[str, Candidate]]:
        """Every candidate, by ``(request, index)`` in the database's collation (request keys
        are hex digests: the same order as SQLite's). Read in pages of :data:`PAGE` rows along
        the primary key, so a large pool is never held in memory at once."""
        for req, _, payload in self._pages("candidates", ("request", "idx"), "payload"):
            yield str(req), candidate_from_json(payload)

    def _pages(self, table: str, key: tuple[str, ...], value: str) -> Iterator[tuple[Any, ...]]:
        cols = ", ".join(key)
        marks = ", ".join(["%s"] * len(key))
        last: tuple[Any, ...] | None = None
        while True:
            where = "" if last is None else f"WHERE ({cols}) > ({marks}) "
            rows = (
                self._conn()
                .execute(
                    f"SELECT {cols}, {value} FROM {table} {where}ORDER BY {cols} LIMIT %s",
                    (*(last or ()), PAGE),
                )
                .fetchall()
            )
            yield from rows
            if len(rows) < PAGE:
                return
            last = tuple(rows[-1][: len(key)])

    # ---------------------------------------------------------------------------- scores
    def put_scores(self, reward: str, items: Iterable[tuple[str, int, Score]]) -> int:
        """Store ``(request, index, score)`` triples for ``reward`` atomically."""
        rows = [(req, idx, score_to_json(s)) for req, idx, s in items]
        if not rows:
            return 0
        reqs, idxs, payloads = (list(c) for c in zip(*rows, strict=True))
        conn = self._conn()
        with conn.transaction():
            cur = conn.execute(
                "INSERT INTO scores (request, idx, reward, payload) "
                "SELECT r, i, %s, p FROM unnest(%s::text[], %s::int[], %s::text[]) AS t(r, i, p) "
                "ON CONFLICT DO NOTHING",
                (reward, reqs, idxs, payloads),
            )
            return max(cur.rowcount, 0)

    def scores(self, reward: str, keys: Sequence[tuple[str, int]]) -> list[Score | None]:
        """Stored scores for ``(request, index)`` keys, None where not yet scored."""
        requests = sorted({k[0] for k in keys})
        found: dict[tuple[str, int], Score] = {}
        if requests:
            rows = self._conn().execute(
                "SELECT request, idx, payload FROM scores WHERE reward = %s AND request = ANY(%s)",
                (reward, requests),
            )
            for req, idx, payload in rows:
                found[(str(req), int(idx))] = score_from_json(payload)
        return [found.get((k[0], k[1])) for k in keys]

    def rewards(self) -> list[str]:
        return [str(r[0]) for r in self._conn().execute("SELECT DISTINCT reward FROM scores")]

    def iter_scores(self) -> Iterator[tuple[str, str, int, Score]]:
        """Every score as ``(reward, request, index, score)``, by ``(request, index, reward)``
        (the primary key), in pages of :data:`PAGE` rows."""
        for req, idx, reward, payload in self._pages(
            "scores", ("request", "idx", "reward"), "payload"
        ):
            yield str(reward), str(req), int(idx), score_from_json(payload)

    # ---------------------------------------------------------------------------- leases
    def server_time(self) -> float:
        """The server's clock, seconds since the epoch: the clock every lease is read by."""
        row = self._conn().execute(f"SELECT {_NOW}").fetchone()
        assert row is not None
        return float(row[0])

    def claim(self, works: Sequence[str], owner: str, ttl: float | None = None) -> list[str]:
        """Take the leases on ``works`` that nobody holds; returns those ``owner`` now holds.

        Free means: absent, expired by the server's clock, already ``owner``'s (renewed), or
        held by a process of this host that no longer runs. One ``INSERT .. ON CONFLICT DO
        UPDATE .. WHERE`` statement, so two workers never both win the same lease.
        """
        ttl = self.lease_ttl if ttl is None else ttl
        wanted = sorted(set(works))
        if not wanted:
            return []
        conn = self._conn()
        held = conn.execute(
            "SELECT DISTINCT owner FROM leases WHERE work = ANY(%s) AND owner <> %s",
            (wanted, owner),
        ).fetchall()
        dead = [str(r[0]) for r in held if owner_is_dead(str(r[0]))]
        with conn.transaction():
            rows = conn.execute(
                "INSERT INTO leases (work, owner, expires) "
                f"SELECT w, %s, {_NOW} + %s FROM unnest(%s::text[]) AS w "
                "ON CONFLICT (work) DO UPDATE SET owner = EXCLUDED.owner, "
                "expires = EXCLUDED.expires "
                f"WHERE leases.owner = EXCLUDED.owner OR leases.expires <= {_NOW} "
                "OR leases.owner = ANY(%s) "
                "RETURNING work",
                (owner, ttl, wanted, dead),
            ).fetchall()
        won = {str(r[0]) for r in rows}
        return [w for w in dict.fromkeys(works) if w in won]

    def renew(self, works: Sequence[str], owner: str, ttl: float | None = None) -> list[str]:
        """Push the expiry of ``owner``'s leases on ``works``; returns the ones it lost."""
        ttl = self.lease_ttl if ttl is None else ttl
        wanted = list(dict.fromkeys(works))
        conn = self._conn()
        with conn.transaction():
            rows = conn.execute(
                f"UPDATE leases SET expires = {_NOW} + %s WHERE work = ANY(%s) AND owner = %s "
                "RETURNING work",
                (ttl, sorted(wanted), owner),
            ).fetchall()
        kept = {str(r[0]) for r in rows}
        return [w for w in wanted if w not in kept]

    def release(self, works: Sequence[str], owner: str) -> None:
        """Drop ``owner``'s leases on ``works`` (those another worker took over stay)."""
        conn = self._conn()
        with conn.transaction():
            conn.execute(
                "DELETE FROM leases WHERE work = ANY(%s) AND owner = %s", (list(works), owner)
            )

    def leases(self) -> list[tuple[str, str, float]]:
        """Every lease as ``(work, owner, expires)``; ``expires`` is on the server's clock."""
        rows = self._conn().execute(
            'SELECT work, owner, expires FROM leases ORDER BY work COLLATE "C"'
        )
        return [(str(w), str(o), float(e)) for w, o, e in rows]
