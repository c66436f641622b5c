r"""Final-answer checking for general math with Math-Verify, safe to call from any thread.

``MathVerifyReward`` (name ``"math-verify"``) gives 1.0 when a candidate's final answer is
equivalent to the problem's reference answer and 0.0 when it is not (or when the candidate has
no answer: info reason ``"no answer"``). It never turns its own failure into a 0.0: a reference
answer Math-Verify cannot parse, a check that errors and a check that runs past its time limit
are ``Score.ungraded`` with the reason ``"gold unparseable"``, ``"error"`` or ``"timeout"``.
All answer handling is ``math_verify.parse`` and ``math_verify.verify``; there is no
hand-written normaliser here.

Timeouts (why there are two paths). Math-Verify 0.9 bounds ``parse`` and ``verify`` with
``signal.alarm`` (``math_verify.utils.timeout``); a signal handler can only be installed in the
main thread, so with a timeout set both functions raise ``ValueError`` in any other thread, and
with ``parsing_timeout=None`` / ``timeout_seconds=None`` they run unbounded. ``isolation``
picks the path:

- ``"signal"``: Math-Verify's own alarm, in the calling thread (main thread only). Each
  ``parse`` and each ``verify`` comparison gets ``ceil(timeout_s)`` seconds. Math-Verify
  cancels the process's one real-time timer when it is done; a caller's own pending alarm
  (``signal.alarm``/``setitimer``, e.g. pytest-timeout's) is saved and re-armed with the time
  it had left, so it still fires (at once, if its deadline passed during the check).
- ``"process"``: the check runs in a small persistent pool of worker processes (plain
  ``python -c`` subprocesses speaking JSON lines on their pipes) with Math-Verify's alarm off;
  the parent measures wall-clock time around the whole check and kills a worker that runs past
  ``timeout_s`` (a fresh one replaces it on the next call). Works from any thread, and bounds
  even code a signal cannot interrupt. POSIX only (``select`` on pipes).
- ``"auto"`` (default): ``"signal"`` in the main thread, ``"process"`` elsewhere.

Both paths call the same :func:`_run` with the same options, so they give the same verdicts.
The worker pool is the one process-wide resource in this module: started on first use (never
at import), at most :data:`POOL_SIZE` workers, stopped at exit or by :func:`shutdown_workers`.

>>> r = MathVerifyReward()
>>> p = Problem("p0", "What is 1/2 + 1/4?", "\\frac{3}{4}")
>>> c = Candidate("p0", "1/2 + 1/4 = 0.75. The answer is $0.75$.", (), None)
>>> r.score([p], [c])[0].value
1.0
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rewardlab.types import Candidate, Problem, Score

Isolation = Literal["auto", "signal", "process"]
Reply = dict[str, Any]

POOL_SIZE = 4  # worker processes at most, shared by every caller in this process
STARTUP_TIMEOUT_S = 120.0  # a worker's first import of math_verify (slow on a loaded machine)


# ------------------------------------------------------------------------ the Math-Verify calls


def _parse(text: str, mv_timeout: int | None) -> list[Any]:
    from math_verify import parse

    return list(parse(text, parsing_timeout=mv_timeout, raise_on_error=True))


def _parse_answer(answer: str, mv_timeout: int | None) -> list[Any]:
    r"""A bare answer (``"18"``, ``"\frac{1}{2}"``) parsed as the content of ``\boxed{}``."""
    return _parse(f"\\boxed{{{answer}}}", mv_timeout)


def _canonical(parsed: Sequence[Any]) -> str | None:
    """The answer as Math-Verify extracted it: its matched string (re-parseable), else the expr."""
    for item in parsed:
        if isinstance(item, str):
            return item
    return str(parsed[0]) if parsed else None


def _verify(gold: list[Any], pred: list[Any], opts: dict[str, Any], mv_timeout: int | None) -> bool:
    from math_verify import verify

    return bool(verify(gold, pred, timeout_seconds=mv_timeout, raise_on_error=True, **opts))


def _run(op: str, args: dict[str, Any], mv_timeout: int | None) -> Reply:
    """Do one operation; the single place both paths share. Raises on Math-Verify errors.

    ``check``: {gold, text, opts} -> {status: ok|no_answer|gold_unparseable, correct, answer};
    ``extract``: {text} -> {status: ok, answer}; ``equivalent``: {a, b} -> {status: ok, equal}.
    """
    if op == "extract":
        return {"status": "ok", "answer": _canonical(_parse(args["text"], mv_timeout))}
    if op == "equivalent":
        a, b = (_parse_answer(args[k], mv_timeout) for k in ("a", "b"))
        equal = bool(a and b and _verify(a, b, {}, mv_timeout) and _verify(b, a, {}, mv_timeout))
        return {"status": "ok", "equal": equal}
    if op == "check":
        gold = _parse_answer(args["gold"], mv_timeout)
        if not gold:
            return {"status": "gold_unparseable"}
        pred = _parse(args["text"], mv_timeout)
        if not pred:
            return {"status": "no_answer"}
        correct = _verify(gold, pred, args["opts"], mv_timeout)
        return {"status": "ok", "correct": correct, "answer": _canonical(pred)}
    raise ValueError(f"unknown operation {op!r}")


def _run_here(op: str, args: dict[str, Any], timeout_s: float) -> Reply:
    """The ``"signal"`` path: Math-Verify's alarm, in this (main) thread."""
    from math_verify.errors import TimeoutException

    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            "isolation='signal' needs the main thread (Math-Verify times out with signal.alarm); "
            "use isolation='process' or 'auto' in worker threads"
        )
    with _outer_alarm_kept():
        try:
            return _run(op, args, max(1, math.ceil(timeout_s)))
        except TimeoutException:
            return {"status": "timeout"}
        except Exception as e:  # a grader error is reported, never turned into a 0.0
            return {"status": "error", "detail": f"{type(e).__name__}: {e}"}


@contextlib.contextmanager
def _outer_alarm_kept() -> Iterator[None]:
    """Pause a pending ``ITIMER_REAL`` alarm around the block and re-arm it afterwards with the
    time it had left (at least 1 ms: an alarm due during the block fires right after it)."""
    remaining, interval = signal.setitimer(signal.ITIMER_REAL, 0)
    started = time.monotonic()
    try:
        yield
    finally:
        if remaining > 0:
            left = remaining - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), interval)


# ------------------------------------------------------------------------ the worker processes


def _serve() -> None:
    """Worker main loop: one JSON request per stdin line, one JSON reply per stdout line."""
    import logging

    import math_verify  # noqa: F401  (import before saying ready, so timing excludes it)

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # our own process: "alarm off" note
    out, sys.stdout = sys.stdout, sys.stderr  # stray prints must not corrupt the protocol
    out.write('{"status": "ready"}\n')
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = _run(request["op"], request["args"], None)
        except Exception as e:
            reply = {"status": "error", "detail": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


class _WorkerGone(Exception):
    """The worker process exited or closed its pipe."""


class _Worker:
    """One subprocess running :func:`_serve`; used by one thread at a time."""

    def __init__(self) -> None:
        src = str(Path(__file__).resolve().parents[2])  # so the child imports this same code
        paths = [src, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from rewardlab.rewards.math_answer import _serve; _serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            ready = self._read(STARTUP_TIMEOUT_S)
        except _WorkerGone:
            ready = None
        if ready is None or ready.get("status") != "ready":
            self.kill()
            raise RuntimeError("the math-verify worker process failed to start")

    def _read(self, timeout_s: float) -> Reply | None:
        assert self.proc.stdout is not None
        readable, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        if not readable:
            return None
        line = self.proc.stdout.readline()
        if not line:
            raise _WorkerGone
        reply: Reply = json.loads(line)
        return reply

    def request(self, message: dict[str, Any], timeout_s: float) -> Reply | None:
        """The reply, or None when none came within ``timeout_s`` (wall clock)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except OSError as e:
            raise _WorkerGone from e
        return self._read(timeout_s)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):  # unflushed input to a dead process
                    pipe.close()


class _Pool:
    """At most ``size`` workers; a worker that times out or dies is killed and replaced."""

    def __init__(self, size: int) -> None:
        self._slots = threading.Semaphore(size)
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._live: set[_Worker] = set()

    def call(self, op: str, args: dict[str, Any], timeout_s: float) -> Reply:
        with self._slots:
            worker = self._take()
            try:
                reply = worker.request({"op": op, "args": args}, timeout_s)
            except _WorkerGone:
                self._discard(worker)
                return {"status": "error", "detail": "the math-verify worker process exited"}
            if reply is None:
                self._discard(worker)
                return {"status": "timeout"}
            self._idle.put(worker)
            return reply

    def _take(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            worker = _Worker()
            with self._lock:
                self._live.add(worker)
            return worker

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._live.discard(worker)

    def close(self) -> None:
        with self._lock:
            workers, self._live = list(self._live), set()
        for worker in workers:
            worker.kill()


_POOL: _Pool | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> _Pool:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = _Pool(POOL_SIZE)
            atexit.register(shutdown_workers)
        return _POOL


def shutdown_workers() -> None:
    """Stop the worker processes (they restart on the next ``"process"`` call). Idempotent."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.close()


def _check_isolation(isolation: str) -> None:
    if isolation not in ("auto", "signal", "process"):
        raise ValueError(f"isolation must be 'auto', 'signal' or 'process', got {isolation!r}")


def _execute(op: str, args: dict[str, Any], timeout_s: float, isolation: Isolation) -> Reply:
    _check_isolation(isolation)
    in_main = threading.current_thread() is threading.main_thread()
    if isolation == "signal" or (isolation == "auto" and in_main):
        return _run_here(op, args, timeout_s)
    return _pool().call(op, args, timeout_s)


# ------------------------------------------------------------------------ public functions


def extract_answer(
    text: str, *, timeout_s: float = 5.0, isolation: Isolation = "auto"
) -> str | None:
    r"""The final answer Math-Verify finds in ``text``, as a string key for grouping; else None.

    The string is Math-Verify's extracted (normalised) match, e.g. ``"\frac{3}{4}"`` or
    ``"18"``; it parses back to the same answer, so :func:`equivalent` accepts it. None also
    when the extraction times out or errors (nothing trustworthy to group).

    >>> extract_answer("So she makes 9 * 2 = 18 dollars.\\nA: 18")
    '18'
    """
    reply = _execute("extract", {"text": text}, timeout_s, isolation)
    return reply.get("answer") if reply["status"] == "ok" else None


def equivalent(a: str, b: str, *, timeout_s: float = 5.0, isolation: Isolation = "auto") -> bool:
    r"""Whether two answer strings (e.g. from :func:`extract_answer`) are equivalent.

    Symmetric by construction (``verify`` both ways, as Math-Verify's ``verify`` is not).
    Conservative: a pair whose check times out or errors is not equivalent (kept apart).

    >>> equivalent("\\frac{1}{2}", "0.5"), equivalent("2", "3")
    (True, False)
    """
    if a == b:
        return True
    reply = _execute("equivalent", {"a": a, "b": b}, timeout_s, isolation)
    return reply["status"] == "ok" and bool(reply["equal"])


# ------------------------------------------------------------------------ the reward


@dataclass(frozen=True)
class MathVerifyReward:
    r"""1.0 if the candidate's final answer is equivalent to ``problem.answer``, else 0.0.

    The candidate's whole ``text`` is parsed (Math-Verify finds the final answer in it); the
    reference answer is parsed as the content of ``\boxed{}``. ``info`` carries ``answer``
    (the extracted candidate answer). Ungraded reasons: ``"gold unparseable"``, ``"timeout"``,
    ``"error"`` (with ``detail``). ``float_rounding``, ``numeric_precision`` and ``strict`` are
    passed to ``math_verify.verify``.
    """

    timeout_s: float = 5.0
    isolation: Isolation = "auto"
    float_rounding: int = 6
    numeric_precision: int = 15
    strict: bool = True
    name: str = "math-verify"

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        _check_isolation(self.isolation)

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        if len(problems) != len(candidates):
            raise ValueError(f"{len(problems)} problems for {len(candidates)} candidates")
        return [self._score_one(p, c) for p, c in zip(problems, candidates, strict=True)]

    def _score_one(self, problem: Problem, candidate: Candidate) -> Score:
        opts = {
            "float_rounding": self.float_rounding,
            "numeric_precision": self.numeric_precision,
            "strict": self.strict,
        }
        args = {"gold": problem.answer, "text": candidate.text, "opts": opts}
        reply = _execute("check", args, self.timeout_s, self.isolation)
        status = reply["status"]
        if status == "ok":
            return Score(1.0 if reply["correct"] else 0.0, info={"answer": reply["answer"]})
        if status == "no_answer":
            return Score(0.0, info={"reason": "no answer", "answer": None})
        if status == "gold_unparseable":
            return Score.ungraded("gold unparseable", gold=problem.answer)
        if status == "timeout":
            return Score.ungraded("timeout", timeout_s=self.timeout_s)
        return Score.ungraded("error", detail=reply.get("detail", ""))
