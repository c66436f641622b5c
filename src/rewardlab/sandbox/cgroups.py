"""Per-run cgroups (v1 or v2): a hard bound on tasks, a fair CPU share, a total memory cap.

RLIMIT_NPROC counts per uid and RLIMIT_AS per process; a cgroup bounds the whole run however it
forks, lets every concurrent run have the same CPU weight however many processes it spawns (so
a fork bomb in one run does not starve the others), and reports OOM kills and peak memory.

Groups are created beneath the parent's own cgroup for each controller (never elsewhere in the
hierarchy), one per run, named ``rewardlab-sandbox-<slot>``, and removed afterwards. The trusted
supervisor joins them before anything untrusted runs. Where a controller cannot be used (no
write access, cgroup v2 without delegation) it is reported missing, never faked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

CONTROLLERS = ("pids", "cpu", "memory")


@dataclass(frozen=True)
class CgroupSupport:
    """Where each usable controller's parent directory is, and why others are missing."""

    bases: Mapping[str, str] = field(default_factory=dict)  # controller -> parent directory
    versions: Mapping[str, int] = field(default_factory=dict)
    missing: Mapping[str, str] = field(default_factory=dict)  # controller -> reason


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, super options) of every cgroup file system."""
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fstype, _source, options = ([*right.split(), "", "", ""])[:3]
                if fstype in ("cgroup", "cgroup2"):
                    out.append((left.split()[4], fstype, set(options.split(","))))
    except OSError:
        pass
    return out


def _own_paths() -> tuple[dict[str, str], str | None]:
    """This process's cgroup path per v1 controller, and its v2 path."""
    v1: dict[str, str] = {}
    v2 = None
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _id, names, path = line.rstrip("\n").split(":", 2)
                if names == "":
                    v2 = path
                for name in names.split(","):
                    v1[name] = path
    except OSError:
        pass
    return v1, v2


def _writable_dir(path: str) -> bool:
    probe = os.path.join(path, f"rewardlab-probe-{os.getpid()}")
    try:
        os.mkdir(probe)
        os.rmdir(probe)
        return True
    except OSError:
        return False


def discover() -> CgroupSupport:
    """Find, for each controller, a directory where this process may create child groups."""
    bases: dict[str, str] = {}
    versions: dict[str, int] = {}
    missing: dict[str, str] = {}
    v1_paths, v2_path = _own_paths()
    mounts = _mounts()
    for ctrl in CONTROLLERS:
        reason = "no cgroup file system mounted with this controller"
        for point, fstype, opts in mounts:
            if fstype == "cgroup" and ctrl in opts and ctrl in v1_paths:
                base = os.path.join(point, v1_paths[ctrl].lstrip("/"))
                if _writable_dir(base):
                    bases[ctrl], versions[ctrl] = base, 1
                    break
                reason = f"cannot create groups in {base}"
            elif fstype == "cgroup2" and v2_path is not None:
                base = os.path.join(point, v2_path.lstrip("/"))
                try:
                    with open(os.path.join(base, "cgroup.subtree_control")) as f:
                        enabled = f.read().split()
                except OSError:
                    enabled = []
                if ctrl in enabled and _writable_dir(base):
                    bases[ctrl], versions[ctrl] = base, 2
                    break
                reason = f"cgroup v2 at {base} does not delegate '{ctrl}' to us"
        if ctrl not in bases:
            missing[ctrl] = reason
    return CgroupSupport(bases, versions, missing)


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


@dataclass(frozen=True)
class RunCgroups:
    """The groups of one run: ``paths`` maps controller -> directory."""

    paths: Mapping[str, str]
    versions: Mapping[str, int]

    @classmethod
    def create(
        cls, support: CgroupSupport, name: str, tasks: int, cpu_cores: float, memory_bytes: int
    ) -> RunCgroups:
        """Make (or recycle) the groups and set their limits; raises OSError on failure."""
        paths: dict[str, str] = {}
        made = cls(paths, support.versions)
        try:
            for ctrl, base in support.bases.items():
                path = os.path.join(base, name)
                if os.path.isdir(path):  # left over by a crashed run of this slot: empty it
                    cls({ctrl: path}, support.versions).kill_all()
                    os.rmdir(path)
                os.mkdir(path)
                paths[ctrl] = path
                v1 = support.versions[ctrl] == 1
                if ctrl == "pids":
                    _write(os.path.join(path, "pids.max"), str(tasks))
                elif ctrl == "cpu":
                    period = 100_000
                    quota = max(1000, int(cpu_cores * period))
                    if v1:
                        _write(os.path.join(path, "cpu.cfs_period_us"), str(period))
                        _write(os.path.join(path, "cpu.cfs_quota_us"), str(quota))
                    else:
                        _write(os.path.join(path, "cpu.max"), f"{quota} {period}")
                elif ctrl == "memory":
                    if v1:
                        _write(os.path.join(path, "memory.limit_in_bytes"), str(memory_bytes))
                        memsw = os.path.join(path, "memory.memsw.limit_in_bytes")
                        if os.path.exists(memsw):
                            _write(memsw, str(memory_bytes))
                    else:
                        _write(os.path.join(path, "memory.max"), str(memory_bytes))
                        if os.path.exists(os.path.join(path, "memory.swap.max")):
                            _write(os.path.join(path, "memory.swap.max"), "0")
        except OSError:
            made.remove()
            raise
        return made

    def procs(self) -> list[int]:
        pids: set[int] = set()
        for path in self.paths.values():
            pids.update(int(p) for p in _read(os.path.join(path, "cgroup.procs")).split())
        return sorted(pids)

    def kill_all(self, rounds: int = 200) -> int:
        """SIGKILL every task in the groups until they are empty; returns how many were seen."""
        seen: set[int] = set()
        for _ in range(rounds):
            pids = self.procs()
            if not pids:
                break
            seen.update(pids)
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)
        return len(seen)

    def oom_kills(self) -> int:
        path = self.paths.get("memory")
        if path is None:
            return 0
        v1 = self.versions.get("memory") == 1
        text = _read(os.path.join(path, "memory.oom_control" if v1 else "memory.events"))
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def reset_peak(self) -> None:
        """Start a new peak-memory measurement (v1 ``max_usage_in_bytes``; v2 ``memory.peak``
        is reset by a write on kernels >= 6.12, refused silently before)."""
        path = self.paths.get("memory")
        if path is None:
            return
        v1 = self.versions.get("memory") == 1
        with contextlib.suppress(OSError):
            _write(os.path.join(path, "memory.max_usage_in_bytes" if v1 else "memory.peak"), "0")

    def peak_memory(self) -> int | None:
        path = self.paths.get("memory")
        if path is None:
            return None
        v1 = self.versions.get("memory") == 1
        text = _read(os.path.join(path, "memory.max_usage_in_bytes" if v1 else "memory.peak"))
        return int(text) if text.strip().isdigit() else None

    def anon_bytes(self) -> int | None:
        """Anonymous memory the run holds now (v1 ``total_rss``, v2 ``anon``), or None.

        Read at the wall-clock limit, before anything is killed: a run whose anonymous memory
        fills its memory + disk budget was held at the cgroup limit (the kernel reclaiming file
        pages instead of OOM-killing), which is a memory verdict, not a slow program.
        """
        path = self.paths.get("memory")
        if path is None:
            return None
        wanted = ("total_rss", "rss") if self.versions.get("memory") == 1 else ("anon",)
        values: dict[str, int] = {}
        for line in _read(os.path.join(path, "memory.stat")).splitlines():
            key, _, value = line.partition(" ")
            if key in wanted and value.strip().isdigit():
                values[key] = int(value)
        return next((values[k] for k in wanted if k in values), None)

    def pids_refused(self) -> int:
        """How many forks the pids limit refused."""
        path = self.paths.get("pids")
        text = _read(os.path.join(path, "pids.events")) if path else ""
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "max":
                return int(value)
        return 0

    def remove(self) -> None:
        """Kill what is left, then remove the directories (retrying while the kernel settles)."""
        self.kill_all()
        for path in self.paths.values():
            for _ in range(100):
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
