"""Pre-isolated workers for the ``isolated`` level: :class:`ZygotePool`.

A one-shot :func:`~rewardlab.sandbox.run` pays, per execution, for a supervisor interpreter,
new network and uts namespaces, the bind mounts of the private root, a temporary directory and
three cgroups made and removed. A *zygote* (``_zygote.py``, root, one per worker) pays for them
once: it holds a slot (uid), the worker's cgroups, a network + uts namespace and the read-only
private root, and forks a fresh child per execution, which gets fresh pid, mount and ipc
namespaces, a fresh ``/proc``, a fresh size-capped tmpfs ``/work`` with the program's files,
a fresh ``/dev/shm``, and the same per-process layers as a one-shot run (setsid, rlimits,
dedicated uid, ``no_new_privs``, Landlock, seccomp, ``execve`` of a fresh interpreter). The
trusted parent keeps the wall clock, the pumps and the verdict exactly as for a one-shot run.

Per execution the parent also resets the cgroup counters (peak memory; OOM kills are counted
as a difference) and, after the run, waits until the worker's cgroups are empty (killing what
is left after a grace period), so nothing of one execution is alive when the next starts. See
``docs/sandbox.md`` for what is shared between the sequential executions of one worker (an
empty network namespace and the uts namespace) and why that is safe.

>>> with ZygotePool(SandboxConfig(level="isolated"), workers=2) as pool:   # doctest: +SKIP
...     results = pool.map(["print(1)"] * 100)
"""

from __future__ import annotations

import marshal
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from contextlib import ExitStack, suppress
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import Any

from rewardlab.sandbox.cgroups import RunCgroups
from rewardlab.sandbox.config import Program, RunResult, SandboxConfig, SandboxUnavailable
from rewardlab.sandbox.detect import Capabilities, detect, resolve_level
from rewardlab.sandbox.job import _binds, build_job, to_bytes
from rewardlab.sandbox.runner import _KILL_GRACE_S, _MIB, TEMP_PREFIX, _pump, _Streams, finish
from rewardlab.sandbox.slots import acquire

ZYGOTE = str(Path(__file__).with_name("_zygote.py"))
LAYER = "pre-isolated worker (zygote): fresh pid/mount/ipc namespaces and files per execution"
_START_TIMEOUT_S = 20.0


class Zygote:
    """One pre-isolated worker: a slot, its cgroups, and the zygote process. Not thread-safe
    (one execution at a time); :class:`ZygotePool` hands workers to threads."""

    def __init__(self, config: SandboxConfig, caps: Capabilities) -> None:
        self.config, self.caps = config, caps
        self._stack = ExitStack()
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise

    def _start(self) -> None:
        config, caps, lim = self.config, self.caps, self.config.limits
        self.slot = self._stack.enter_context(acquire(config.uid_base))
        self.base = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
        self._stack.callback(shutil.rmtree, self.base, True)
        os.chmod(self.base, 0o711)
        (self.base / "root").mkdir(mode=0o700)
        self.cgroups: RunCgroups | None = None
        if config.cgroups and caps.cgroups.bases:
            self.cgroups = RunCgroups.create(
                caps.cgroups,
                f"rewardlab-sandbox-{self.slot.index}",
                tasks=lim.processes + 8,
                cpu_cores=lim.cpu_cores,
                memory_bytes=(lim.memory_mb + lim.disk_mb + 64) * _MIB,
            )
            self._stack.callback(self.cgroups.remove)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        self._stack.callback(ours.close)
        with theirs:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", ZYGOTE, str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                env={},
                cwd="/",
            )
        self._stack.callback(self._stop_process)
        python = os.path.realpath(config.python) if config.python else caps.python
        spec = {
            "root": str(self.base / "root"),
            "binds": _binds(python),
            "uid": self.slot.uid,
            "gid": self.slot.gid,
            "cgroups": list(self.cgroups.paths.values()) if self.cgroups else [],
        }
        ours.settimeout(_START_TIMEOUT_S)
        ours.send(marshal.dumps(spec))  # parent -> trusted zygote only
        try:
            answer = ours.recv(4096)
        except TimeoutError:
            answer = b"error: no answer"
        ours.settimeout(None)
        if answer != b"ready":
            raise SandboxUnavailable(
                f"the zygote could not start: {answer.decode(errors='replace')}"
            )

    def _stop_process(self) -> None:
        with suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            with suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.cgroups is not None:
            self.cgroups.kill_all()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        self._stack.close()

    def run(self, program: Program) -> RunResult:
        """One execution in a freshly forked child of this zygote."""
        config, lim, cgroups = self.config, self.config.limits, self.cgroups
        job = build_job(config, self.caps, "isolated", self.slot, self.base, cgroups, program)
        job["files"] = {
            "main.py": to_bytes(program.source),
            **{name: to_bytes(data) for name, data in program.files.items()},
        }
        oom_before = cgroups.oom_kills() if cgroups else 0
        if cgroups is not None:
            cgroups.reset_peak()
        pipes = [os.pipe2(os.O_CLOEXEC) for _ in range(5)]  # stdin stdout stderr control status
        child_ends = [pipes[0][0], pipes[1][1], pipes[2][1], pipes[3][0], pipes[4][1]]
        start = time.monotonic()
        try:
            socket.send_fds(self.sock, [b"run"], child_ends)
        except OSError as exc:
            for r, w in pipes:
                os.close(r)
                os.close(w)
            return self._failure(f"the zygote is gone: {exc}", start)
        finally:
            for fd in child_ends:
                with suppress(OSError):
                    os.close(fd)
        child = self._child_pidfd()
        stdin_w, stdout_r, stderr_r = pipes[0][1], pipes[1][0], pipes[2][0]
        control_w, status_r = pipes[3][1], pipes[4][0]
        streams = _Streams(cap=lim.output_kb * 1024)
        anon_at_cut: list[int | None] = []

        def stop() -> None:
            if cgroups is not None and not anon_at_cut:
                anon_at_cut.append(cgroups.anon_bytes())
            with suppress(OSError):
                os.write(control_w, b"k")

        def force() -> None:
            if child is not None:  # the run's init has a parent-death signal: all of it dies
                with suppress(OSError):
                    signal.pidfd_send_signal(child, signal.SIGKILL)
            if cgroups is not None:
                cgroups.kill_all()

        files = SimpleNamespace(
            stdin=os.fdopen(stdin_w, "wb", buffering=0),
            stdout=os.fdopen(stdout_r, "rb", buffering=0),
            stderr=os.fdopen(stderr_r, "rb", buffering=0),
        )
        try:
            payload = marshal.dumps(job)
            with suppress(OSError):
                os.write(control_w, len(payload).to_bytes(4, "little") + payload)
            cut = _pump(
                files,
                status_r,
                to_bytes(program.stdin),
                streams,
                start + lim.wall_s,
                {"stop": stop, "force": force},
            )
            if cut:
                stop()
            self._wait_empty(force)
        finally:
            if child is not None:
                os.close(child)
            os.close(control_w)
            os.close(status_r)
            files.stdout.close()
            files.stderr.close()
            if not files.stdin.closed:
                files.stdin.close()
        wall = time.monotonic() - start
        oom = (cgroups.oom_kills() - oom_before) if cgroups else 0
        anon = anon_at_cut[0] if anon_at_cut else None
        return finish(
            streams, cut, wall, config, self.caps, "isolated", cgroups, oom, anon, None, (LAYER,)
        )

    def _child_pidfd(self) -> int | None:
        """A pidfd of this execution's child in the zygote (``pid N`` comes right after the
        fork, and the child lives until the run's init has ended), or None."""
        try:
            self.sock.settimeout(_START_TIMEOUT_S)
            answer = self.sock.recv(64)
        except OSError:
            return None
        finally:
            self.sock.settimeout(None)
        if not answer.startswith(b"pid "):
            return None
        try:
            return os.pidfd_open(int(answer[4:]))
        except (OSError, ValueError):
            return None

    def _wait_empty(self, force: Any) -> None:
        """Until nothing of the execution is alive in the worker's cgroups (grace, then kill)."""
        if self.cgroups is None:
            return
        deadline = time.monotonic() + 2 * _KILL_GRACE_S
        while self.cgroups.procs():
            if time.monotonic() >= deadline:
                force()
                return
            time.sleep(0.001)

    def _failure(self, why: str, start: float) -> RunResult:
        return RunResult(
            verdict="sandbox-failure",
            exit_code=None,
            signal=None,
            stdout=b"",
            stderr=b"",
            stdout_truncated=False,
            stderr_truncated=False,
            wall_s=time.monotonic() - start,
            cpu_s=None,
            peak_memory_bytes=None,
            level="isolated",
            layers=(*self.caps.layers("isolated"), LAYER),
            detail=why,
        )


class ZygotePool:
    """``workers`` pre-isolated workers for ``isolated`` runs; thread-safe ``run`` and ``map``.

    Raises :class:`SandboxUnavailable` up front when the config does not resolve to the
    ``isolated`` level here. Workers start on first use; a worker whose zygote died is
    replaced. Use as a context manager (or call :meth:`close`).
    """

    def __init__(self, config: SandboxConfig | None = None, workers: int = 2) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.config = config or SandboxConfig(level="isolated")
        self.caps = detect(self.config.python)
        level = resolve_level(self.config, self.caps)
        if level != "isolated":
            raise SandboxUnavailable(f"ZygotePool runs the isolated level only, not {level!r}")
        self.workers = workers
        self._idle: queue.Queue[Zygote] = queue.Queue()
        self._all: list[Zygote] = []
        self._lock = threading.Lock()
        self._closed = False

    def _take(self) -> Zygote:
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool is closed")
            if self._idle.empty() and len(self._all) < self.workers:
                worker = Zygote(self.config, self.caps)
                self._all.append(worker)
                return worker
        return self._idle.get()

    def run(self, program: Program | str) -> RunResult:
        """Run one program on an idle worker (waiting for one if all are busy)."""
        if isinstance(program, str):
            program = Program(program)
        worker = self._take()
        try:
            return worker.run(program)
        finally:
            if not worker.alive:
                with self._lock:
                    self._all.remove(worker)
                worker.close()
            else:
                self._idle.put(worker)

    def map(self, programs: Iterable[Program | str]) -> list[RunResult]:
        """Every program, results in input order, at most ``workers`` at a time."""
        from rewardlab.sandbox.pool import parallel_map

        items = list(programs)
        return parallel_map(self.run, items, self.workers)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = self._all, []
        for worker in workers:
            worker.close()

    def __enter__(self) -> ZygotePool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
