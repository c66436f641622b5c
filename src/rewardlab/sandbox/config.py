"""Value types of the sandbox: what to run, with which limits, at which level, and the result.

All frozen dataclasses; a config is hashable and never mutated. ``Level`` orders the isolation
levels from weakest to strongest (see ``docs/sandbox.md`` for what each one covers):

* ``basic``: own session/process group, resource limits, fresh temporary working directory,
  empty environment, isolated interpreter (``python -I``). Works for any user.
* ``restricted``: basic + a dedicated unprivileged uid per concurrent run + ``no_new_privs`` +
  a seccomp deny-list (no sockets, no namespaces, no ptrace, no ``memfd_create``/``execveat``
  ...) + Landlock where the kernel has it (reads and writes confined, ``execve`` only of the
  interpreter and its loader) + a private SysV IPC namespace and a size-capped ``noexec`` tmpfs
  work dir in a private mount namespace. Needs root and ``unshare``.
* ``isolated``: restricted + new pid, network, mount, ipc and uts namespaces with a private
  read-only root, ``/proc`` of its own and a size-capped tmpfs ``/work``. Needs root.

Cgroups (pids, cpu, memory) are added at every level where the machine lets us create them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Level = Literal["basic", "restricted", "isolated"]
LEVELS: tuple[Level, ...] = ("basic", "restricted", "isolated")

Verdict = Literal["ok", "error", "timeout", "memory", "output-limit", "killed", "sandbox-failure"]


def level_rank(level: Level) -> int:
    """0 for ``basic`` .. 2 for ``isolated``."""
    return LEVELS.index(level)


class SandboxUnavailable(RuntimeError):
    """The requested isolation level cannot be reached on this machine; nothing was run."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one run. Sizes in MiB, times in seconds.

    Attributes:
        wall_s: wall-clock limit, measured and enforced by the parent.
        cpu_s: CPU seconds per process (RLIMIT_CPU; SIGXCPU then SIGKILL one second later).
        memory_mb: address space per process (RLIMIT_AS) and, with a memory cgroup, the whole
            run's memory (plus ``disk_mb`` and a small allowance for the supervisor).
        processes: processes + threads (RLIMIT_NPROC of the run's own uid; pids cgroup).
        open_files: file descriptors per process (RLIMIT_NOFILE).
        file_size_mb: largest file the program may write (RLIMIT_FSIZE).
        disk_mb: size of the run's private work-dir tmpfs (``restricted`` and ``isolated``).
        output_kb: bytes kept per stream (stdout, stderr); more ends the run (output-limit).
        cpu_cores: CPU share of the run (cgroup quota), so one run cannot starve the others.
    """

    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 512
    processes: int = 32
    open_files: int = 64
    file_size_mb: int = 16
    disk_mb: int = 64
    output_kb: int = 1024
    cpu_cores: float = 1.0

    def __post_init__(self) -> None:
        for name in ("wall_s", "cpu_s", "memory_mb", "processes", "open_files", "cpu_cores"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be > 0, got {getattr(self, name)}")
        for name in ("file_size_mb", "output_kb"):
            if getattr(self, name) < 0:
                raise ValueError(f"Limits.{name} must be >= 0, got {getattr(self, name)}")
        if self.disk_mb < 1:  # tmpfs reads size=0 as "no limit"
            raise ValueError(
                f"Limits.disk_mb must be >= 1 (0 would mean no cap), got {self.disk_mb}"
            )
        if self.open_files < 16:
            raise ValueError("Limits.open_files must be >= 16 (the interpreter needs a few)")
        if self.memory_mb < 32:
            raise ValueError("Limits.memory_mb must be >= 32 (the interpreter needs ~20 MiB)")


@dataclass(frozen=True)
class SandboxConfig:
    """How to run untrusted programs.

    Attributes:
        limits: resource limits of each run.
        level: ``"auto"`` (the strongest level available here) or one exact level; an exact
            level that is unavailable raises :class:`SandboxUnavailable`.
        min_level: refuse to run (raise :class:`SandboxUnavailable`) below this level.
        python: interpreter for the program; default: the base interpreter of this process
            (at ``restricted``, a system interpreter of the same version if the default is not
            readable by an unprivileged user).
        python_args: interpreter flags. ``-I`` isolates from ``PYTHON*`` variables, the user
            site and the working directory on ``sys.path``; ``-S`` skips ``site``: only the
            standard library is importable and no ``.pth`` file of the base installation runs
            (``exit``/``quit`` are restored by the bootstrap). Drop ``-S`` to allow the base
            installation's packages.
        env: the program's extra environment (the parent's environment is never passed on).
        allow_exec: further executables the program may ``exec`` (Landlock); default none.
        uid_base: first of the dedicated uids (one per concurrent run) at ``restricted`` and
            above; pick a range no real user or service uses.
        cgroups: use pids/cpu/memory cgroups where the machine allows creating them.
    """

    limits: Limits = field(default_factory=Limits)
    level: Level | Literal["auto"] = "auto"
    min_level: Level = "basic"
    python: str | None = None
    python_args: tuple[str, ...] = ("-I", "-S", "-B")
    env: Mapping[str, str] = field(default_factory=dict)
    allow_exec: tuple[str, ...] = ()
    uid_base: int = 1_600_000_000
    cgroups: bool = True

    def __post_init__(self) -> None:
        if self.level != "auto" and self.level not in LEVELS:
            raise ValueError(f"level must be 'auto' or one of {LEVELS}, got {self.level!r}")
        if self.min_level not in LEVELS:
            raise ValueError(f"min_level must be one of {LEVELS}, got {self.min_level!r}")
        if self.level != "auto" and level_rank(self.level) < level_rank(self.min_level):
            raise ValueError(f"level {self.level!r} is below min_level {self.min_level!r}")
        if not 1000 <= self.uid_base <= 4_000_000_000:
            raise ValueError(f"uid_base must be in 1000..4e9, got {self.uid_base}")


@dataclass(frozen=True)
class Program:
    """An untrusted Python program: its source, standard input and extra files.

    ``files`` maps relative paths (no ``..``, not absolute) to contents; they are written next
    to the program (``main.py``) in the run's fresh working directory.
    """

    source: str | bytes
    stdin: str | bytes = b""
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    argv: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in self.files:
            parts = name.replace("\\", "/").split("/")
            if not name or name.startswith("/") or ".." in parts or name == "main.py":
                raise ValueError(f"bad file name {name!r}: relative, no '..', not main.py")


@dataclass(frozen=True)
class RunResult:
    """The trusted parent's account of one run.

    ``verdict`` is decided by the parent from what the supervisor and the kernel report (exit
    status, signal, cgroup OOM events, its own wall clock, output sizes), never from text the
    program prints; ``"ok"`` means only "exited with status 0", never "passed".
    """

    verdict: Verdict
    exit_code: int | None
    signal: int | None
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    wall_s: float
    cpu_s: float | None
    peak_memory_bytes: int | None
    level: Level
    layers: tuple[str, ...]
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: output decoded as UTF-8 with replacement characters."""
        d = asdict(self)
        d["stdout"] = self.stdout.decode("utf-8", errors="replace")
        d["stderr"] = self.stderr.decode("utf-8", errors="replace")
        d["layers"] = list(self.layers)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    def summary(self) -> str:
        """One readable line: verdict, status, times and memory."""
        status = f"signal {self.signal}" if self.signal is not None else f"exit {self.exit_code}"
        mem = "?" if self.peak_memory_bytes is None else f"{self.peak_memory_bytes / 2**20:.1f} MiB"
        cpu = "?" if self.cpu_s is None else f"{self.cpu_s:.2f}s"
        extra = f" — {self.detail}" if self.detail else ""
        return (
            f"{self.verdict} ({status}) wall {self.wall_s:.2f}s cpu {cpu} peak {mem} "
            f"[level {self.level}]{extra}"
        )
