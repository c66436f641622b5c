"""Run one untrusted Python program in the sandbox: :func:`run`.

The parent (this module) is trusted and does four things: it prepares a fresh directory and the
run's cgroups, starts the supervisor (``_supervisor.py``) with an empty environment in a new
session, pumps stdin/stdout/stderr with a selector while keeping its own wall clock, and decides
the verdict. On timeout or an output flood it asks the supervisor to kill everything, then kills
the supervisor's process group and empties the cgroups itself; no signal is ever delivered to
the parent and no thread is needed (``run`` is safe to call from many threads at once).

>>> r = run(Program("print(6 * 7)"))                    # doctest: +SKIP
>>> r.verdict, r.stdout
('ok', b'42\\n')
"""

from __future__ import annotations

import json
import marshal
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from rewardlab.sandbox.cgroups import RunCgroups
from rewardlab.sandbox.config import Level, Program, RunResult, SandboxConfig, Verdict
from rewardlab.sandbox.detect import SUPERVISOR, Capabilities, detect, resolve_level
from rewardlab.sandbox.job import build_job, to_bytes, write_files
from rewardlab.sandbox.slots import acquire

TEMP_PREFIX = "rewardlab-sbx-"
_KILL_GRACE_S = 0.5
_MIB = 1 << 20


@dataclass
class _Streams:
    """Mutable pump state for one run (local to one call of :func:`run`)."""

    cap: int
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    status: bytearray = field(default_factory=bytearray)
    out_truncated: bool = False
    err_truncated: bool = False

    def add(self, name: str, data: bytes) -> bool:
        """Append; returns False once a stream exceeds its cap."""
        if name == "status":
            self.status += data[: 1 << 16]
            return True
        buf = self.out if name == "stdout" else self.err
        room = self.cap - len(buf)
        buf += data[: max(room, 0)]
        if len(data) > room:
            if name == "stdout":
                self.out_truncated = True
            else:
                self.err_truncated = True
            return False
        return True


class _Pipes(Protocol):
    """The program's three standard streams, parent ends (a ``Popen`` has them)."""

    @property
    def stdin(self) -> IO[bytes] | None: ...
    @property
    def stdout(self) -> IO[bytes] | None: ...
    @property
    def stderr(self) -> IO[bytes] | None: ...


def _pump(
    proc: _Pipes,
    status_r: int,
    stdin: bytes,
    streams: _Streams,
    deadline: float,
    on_expire: Mapping[str, Any],
) -> str:
    """Move bytes until every stream closes; returns "" or why the run was cut short."""
    sel = selectors.DefaultSelector()
    assert proc.stdin and proc.stdout and proc.stderr
    os.set_blocking(proc.stdin.fileno(), False)
    if stdin:
        sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE, "stdin")
    else:
        proc.stdin.close()
    sel.register(proc.stdout.fileno(), selectors.EVENT_READ, "stdout")
    sel.register(proc.stderr.fileno(), selectors.EVENT_READ, "stderr")
    sel.register(status_r, selectors.EVENT_READ, "status")
    cut, offset, hard_stop = "", 0, None
    while any(k.data != "stdin" for k in sel.get_map().values()):
        now = time.monotonic()
        if not cut and now >= deadline:
            cut = "timeout"
        if cut and hard_stop is None:
            on_expire["stop"]()
            hard_stop = now + 2 * _KILL_GRACE_S
        if hard_stop is not None and now >= hard_stop:
            on_expire["force"]()
            break
        wait = (hard_stop if hard_stop is not None else deadline) - now
        for key, _ in sel.select(timeout=max(0.0, min(wait, 0.25))):
            if key.data == "stdin":
                try:
                    offset += os.write(key.fd, stdin[offset : offset + 65536])
                except BlockingIOError:
                    pass
                except BrokenPipeError:
                    offset = len(stdin)
                if offset >= len(stdin):
                    sel.unregister(key.fd)
                    proc.stdin.close()
                continue
            data = os.read(key.fd, 65536)
            if not data:
                sel.unregister(key.fd)
            elif not streams.add(key.data, data) and not cut:
                cut = "output-limit"
    for key in list(sel.get_map().values()):
        sel.unregister(key.fd)
    sel.close()
    if not proc.stdin.closed:
        proc.stdin.close()
    return cut


def _verdict(
    cut: str,
    status: dict[str, Any] | None,
    streams: _Streams,
    oom_kills: int,
    limits_cpu: int,
    memory_held: bool = False,
) -> tuple[Verdict, str]:
    """Classify a finished run. ``memory_held``: at the wall-clock limit the run's anonymous
    memory filled its memory and disk budget (within the cgroup's slack of its limit), so the
    time went to reclaim at the limit: a memory bomb the kernel thrashed on, not a slow program."""
    if cut == "output-limit":
        return "output-limit", f"output over {streams.cap} bytes on one stream; run stopped"
    if cut == "timeout":
        if oom_kills or memory_held:
            why = (
                f"{oom_kills} process(es) OOM-killed"
                if oom_kills
                else "anonymous memory filled the budget, no OOM kill"
            )
            return "memory", (
                f"wall-clock limit reached while held at the memory cgroup limit ({why}); "
                "every process of the run was killed"
            )
        return "timeout", "wall-clock limit reached; every process of the run was killed"
    if status is None:
        return "sandbox-failure", "the supervisor reported no status"
    if status.get("setup_error"):
        return "sandbox-failure", f"refused to run: {status['setup_error']}"
    sig, code = status.get("signal"), status.get("exit_code")
    if oom_kills:
        return "memory", f"memory cgroup limit reached ({oom_kills} process(es) OOM-killed)"
    if sig == signal.SIGXCPU or (
        sig == signal.SIGKILL and (status.get("cpu_s") or 0) >= limits_cpu
    ):
        return "timeout", "CPU-time limit reached"
    if sig == signal.SIGXFSZ:
        return "output-limit", "file-size limit reached"
    if sig is not None:
        return "killed", f"terminated by signal {signal.Signals(sig).name}"
    if code is None:
        return "sandbox-failure", "no exit status"
    if code != 0:
        last = streams.err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        if last[0].startswith("MemoryError"):
            return "memory", "MemoryError (address-space limit)"
        return "error", f"exit status {code}"
    return "ok", ""


def run(program: Program | str, config: SandboxConfig | None = None) -> RunResult:
    """Run ``program`` under ``config`` and return the parent's account of it.

    Raises :class:`~rewardlab.sandbox.config.SandboxUnavailable` (before running anything) if
    the requested level cannot be reached. Every other failure, including the sandbox's own,
    is a verdict in the result, never an exception.
    """
    config = config or SandboxConfig()
    if isinstance(program, str):
        program = Program(program)
    caps = detect(config.python)
    level = resolve_level(config, caps)
    lim = config.limits
    with ExitStack() as stack:
        slot = stack.enter_context(acquire(config.uid_base))
        base = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
        stack.callback(shutil.rmtree, base, True)
        os.chmod(base, 0o711)
        (base / "work").mkdir(mode=0o700)
        (base / "root").mkdir(mode=0o700)
        (base / "run").mkdir(mode=0o700)  # restricted: the capped tmpfs is mounted here
        write_files(base / "work", program)
        cgroups = None
        if config.cgroups and level != "basic" and caps.cgroups.bases:
            cgroups = RunCgroups.create(
                caps.cgroups,
                f"rewardlab-sandbox-{slot.index}",
                tasks=lim.processes + 8,
                cpu_cores=lim.cpu_cores,
                memory_bytes=(lim.memory_mb + lim.disk_mb + 64) * _MIB,
            )
            stack.callback(cgroups.remove)
        if level != "basic":
            for path in (base / "work", *(base / "work").rglob("*")):
                os.chown(path, slot.uid, slot.gid)
        job = build_job(config, caps, level, slot, base, cgroups, program)
        return _execute(job, program, config, caps, level, cgroups)
    raise AssertionError("unreachable")  # pragma: no cover


def _execute(
    job: dict[str, Any],
    program: Program,
    config: SandboxConfig,
    caps: Capabilities,
    level: Level,
    cgroups: RunCgroups | None,
) -> RunResult:
    lim = config.limits
    control_r, control_w = os.pipe2(os.O_CLOEXEC)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", SUPERVISOR, str(control_r), str(status_w)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(control_r, status_w),
            start_new_session=True,
            env={},
            cwd=job["workdir"] if level != "isolated" else "/",
        )
    finally:
        os.close(control_r)
        os.close(status_w)
    streams = _Streams(cap=lim.output_kb * 1024)

    anon_at_cut: list[int | None] = []

    def stop() -> None:
        if cgroups is not None and not anon_at_cut:  # before anything is killed
            anon_at_cut.append(cgroups.anon_bytes())
        with suppress(OSError):
            os.write(control_w, b"k")

    def force() -> None:
        with suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        if cgroups is not None:
            cgroups.kill_all()

    try:
        payload = marshal.dumps(job)  # parent -> trusted supervisor only; nothing comes back so
        os.write(control_w, len(payload).to_bytes(4, "little") + payload)
        cut = _pump(
            proc,
            status_r,
            to_bytes(program.stdin),
            streams,
            start + lim.wall_s,
            {"stop": stop, "force": force},
        )
        if cut:
            stop()
        _, _wait_status, usage = _wait(proc, force)
    finally:
        os.close(control_w)
        os.close(status_r)
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()
    wall = time.monotonic() - start
    oom = cgroups.oom_kills() if cgroups else 0
    anon = anon_at_cut[0] if anon_at_cut else None
    return finish(
        streams, cut, wall, config, caps, level, cgroups, oom, anon, usage.ru_utime + usage.ru_stime
    )


def finish(
    streams: _Streams,
    cut: str,
    wall: float,
    config: SandboxConfig,
    caps: Capabilities,
    level: Level,
    cgroups: RunCgroups | None,
    oom: int,
    anon: int | None,
    fallback_cpu: float | None,
    extra_layers: tuple[str, ...] = (),
) -> RunResult:
    """The parent's account of a finished run, from what the supervisor and kernel reported."""
    lim = config.limits
    status = _parse_status(bytes(streams.status))
    held = anon is not None and anon >= (lim.memory_mb + lim.disk_mb) * _MIB
    verdict, detail = _verdict(cut, status, streams, oom, lim.cpu_s, held)
    cpu = status.get("cpu_s") if status else None
    if cpu is None:
        cpu = fallback_cpu
    peaks = [cgroups.peak_memory() if cgroups else None]
    if status and status.get("maxrss_kb"):
        peaks.append(int(status["maxrss_kb"]) * 1024)
    peak = max((p for p in peaks if p is not None), default=None)
    return RunResult(
        verdict=verdict,
        exit_code=status.get("exit_code") if status else None,
        signal=status.get("signal") if status else None,
        stdout=bytes(streams.out),
        stderr=bytes(streams.err),
        stdout_truncated=streams.out_truncated,
        stderr_truncated=streams.err_truncated,
        wall_s=wall,
        cpu_s=None if cpu is None else float(cpu),
        peak_memory_bytes=peak,
        level=level,
        layers=caps.layers(level, use_cgroups=cgroups is not None) + extra_layers,
        detail=detail,
    )


def _wait(proc: subprocess.Popen[bytes], force: Any) -> tuple[int, int, Any]:
    """Reap the supervisor (killing it after a grace period) and return its rusage."""
    deadline = time.monotonic() + 2 * _KILL_GRACE_S
    while True:
        pid, wait_status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(wait_status)
            return pid, wait_status, usage
        if time.monotonic() >= deadline:
            force()
            pid, wait_status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(wait_status)
            return pid, wait_status, usage
        time.sleep(0.002)


def _parse_status(raw: bytes) -> dict[str, Any] | None:
    line = raw.split(b"\n", 1)[0]
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
