"""The judge process (trusted side, inside the sandbox): runs the tests against a solution
that lives in another process.

Copied into the sandbox as ``main.py``; the job (tests, set-up code, entry point, per-test
timeout) arrives on stdin and never touches the disk. It makes itself non-dumpable (so the
solution process, same uid, can read neither its memory nor its file descriptors), imports what
it needs, removes the working directory from ``sys.path`` (the solution can write there), then
starts the solution process (``_rl_worker.py``) with pipes as its only channel.

* A call test ``{"kind": "call", "expr": E}`` is evaluated by the solution process; the encoded
  value is passed through untouched. Its expected value never entered the sandbox: the parent
  compares.
* A script test ``{"kind": "script", "src": S}`` is trusted test code executed here, where the
  solution's functions are proxies: arguments go out as strict JSON, results come back as
  freshly built built-in values. Monkeypatching, rigged ``__eq__``, ``os._exit`` or ``atexit``
  in the solution cannot reach this process.

One JSON line per test goes to the parent on a private copy of stdout, then ``{"done": n}``.
A test that hangs the solution is cut at the per-test timeout; the solution process is then
restarted for the next test.
"""

import builtins
import ctypes
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.getcwd())
import contextlib

from _rl_codec import CodecError, decode, encode

sys.path.pop(0)

_MAX_REPLY = 16 << 20


class WorkerTimeout(BaseException):
    """The solution did not answer within the per-test timeout."""


class WorkerCrashed(BaseException):
    """The solution process died or spoke nonsense."""


class Unsupported(BaseException):
    """The test passes a value the boundary cannot carry (a limitation of the judge)."""


class Worker:
    """The solution process, (re)started on demand."""

    def __init__(self, entry: str, timeout: float) -> None:
        self.entry, self.timeout = entry, timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.buf = b""
        self.load_error = ""

    def _read_line(self, deadline: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise WorkerTimeout()
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    self.kill()
                    raise WorkerCrashed("solution process exited")
                self.buf += chunk
                if len(self.buf) > _MAX_REPLY:
                    self.kill()
                    raise WorkerCrashed("reply too large")
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            msg = json.loads(line)
        except ValueError:
            self.kill()
            raise WorkerCrashed("malformed reply") from None
        if not isinstance(msg, dict):
            self.kill()
            raise WorkerCrashed("malformed reply")
        return msg

    def _start(self) -> None:
        if self.load_error:  # loading is deterministic: do not pay for it once per test
            raise WorkerCrashed(f"solution failed to load: {self.load_error}")
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", "_rl_worker.py", self.entry],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        self.buf = b""
        try:
            hello = self._read_line(time.monotonic() + self.timeout)
        except WorkerTimeout:
            self.load_error = f"no answer within {self.timeout}s while loading"
            raise WorkerCrashed(f"solution failed to load: {self.load_error}") from None
        except WorkerCrashed as exc:
            self.load_error = str(exc)
            raise
        if not hello.get("ready"):
            self.load_error = f"{hello.get('type')}: {hello.get('error')}"
            self.kill()
            raise WorkerCrashed(f"solution failed to load: {self.load_error}")

    def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self.proc is None:
            self._start()
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:
            self.kill()
            raise WorkerCrashed("solution process exited") from None
        return self._read_line(time.monotonic() + self.timeout)

    def kill(self) -> None:
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait()
            except OSError:
                pass
            for f in (self.proc.stdin, self.proc.stdout):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()
        self.proc = None


def _raise_like(kind: str, message: str) -> None:
    cls = getattr(builtins, kind, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        raise cls(message)
    raise RuntimeError(f"{kind}: {message}")


def _proxy(worker: Worker, name: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            payload = {
                "op": "call",
                "name": name,
                "args": encode(list(args)),
                "kwargs": encode(kwargs),
            }
        except CodecError as exc:
            raise Unsupported(f"argument cannot cross the sandbox boundary: {exc}") from None
        reply = worker.request(payload)
        if not reply.get("ok"):
            _raise_like(str(reply.get("type")), str(reply.get("error")))
        try:
            return decode(reply.get("value"))
        except CodecError as exc:
            raise WorkerCrashed(f"undecodable result: {exc}") from None

    call.__name__ = name
    return call


def main() -> None:
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # test code's prints go to stderr, never into the result stream
    job = json.loads(sys.stdin.read())

    def emit(record: dict[str, Any]) -> None:
        out.write(json.dumps(record) + "\n")
        out.flush()

    entry = job.get("entry_point") or ""
    worker = Worker(entry, float(job["test_timeout_s"]))
    namespace: dict[str, Any] = {"__name__": "__judge__"}
    setup_error = ""
    try:
        exec(compile(job.get("setup") or "", "<setup>", "exec"), namespace)
    except BaseException as exc:
        setup_error = f"test set-up failed: {type(exc).__name__}: {exc}"
    if entry:
        namespace[entry] = namespace["candidate"] = _proxy(worker, entry)
    for i, test in enumerate(job["tests"]):
        rec: dict[str, Any] = {"i": i}
        try:
            if test["kind"] == "call":
                reply = worker.request({"op": "eval", "expr": test["expr"]})
                if reply.get("ok"):
                    rec.update(status="value", value=reply.get("value"))
                else:
                    rec.update(status="raised", detail=f"{reply.get('type')}: {reply.get('error')}")
            elif setup_error:
                rec.update(status="unsupported", detail=setup_error)
            else:
                exec(compile(test["src"], f"<test {i}>", "exec"), namespace)
                rec.update(status="pass")
        except WorkerTimeout:
            rec.update(status="timeout", detail=f"no answer within {worker.timeout}s")
        except WorkerCrashed as exc:
            rec.update(status="crashed", detail=str(exc))
        except Unsupported as exc:
            rec.update(status="unsupported", detail=str(exc))
        except AssertionError as exc:
            rec.update(status="fail", detail=f"AssertionError: {exc}"[:500])
        except BaseException as exc:
            rec.update(status="error", detail=f"{type(exc).__name__}: {exc}"[:500])
        emit(rec)
    worker.kill()
    emit({"done": len(job["tests"])})


if __name__ == "__main__":
    main()
