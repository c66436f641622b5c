"""What this machine allows: capabilities, the layers of each level, and level resolution.

:func:`detect` runs the supervisor's ``--probe`` once per process (a throw-away child tries
namespaces, seccomp and a uid switch) and caches the answer; everything else here is a pure
function of that answer. A level is available only if every one of its required layers is;
optional layers (Landlock, cgroups) are added wherever they work and always listed.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from rewardlab.sandbox import _landlock
from rewardlab.sandbox.cgroups import CgroupSupport, discover
from rewardlab.sandbox.config import LEVELS, Level, SandboxConfig, SandboxUnavailable, level_rank

SUPERVISOR = str(Path(__file__).with_name("_supervisor.py"))


@dataclass(frozen=True)
class Capabilities:
    """The outcome of probing the machine (``"ok"`` or the reason a mechanism is missing)."""

    linux: bool
    root: bool
    landlock_abi: int
    seccomp: str
    namespaces: str
    setuid: str
    cgroups: CgroupSupport = field(default_factory=CgroupSupport)
    python: str = ""
    unprivileged_python: str | None = None
    unprivileged_python_reason: str = ""

    def unavailable(self, level: Level) -> str:
        """Why ``level`` cannot be reached here ("" when it can)."""
        if not self.linux:
            return "the sandbox needs Linux"
        if level == "basic":
            return ""
        if not self.root:
            return "needs root (to switch to a dedicated uid); only 'basic' runs as a normal user"
        for name, state in (("uid switch", self.setuid), ("seccomp", self.seccomp)):
            if state != "ok":
                return f"{name} unavailable: {state}"
        if level == "restricted" and self.unprivileged_python is None:
            return self.unprivileged_python_reason
        if self.namespaces != "ok":  # restricted: ipc + mount namespaces; isolated: all
            return f"namespaces unavailable: {self.namespaces}"
        return ""

    def available(self) -> tuple[Level, ...]:
        return tuple(level for level in LEVELS if not self.unavailable(level))

    def best(self) -> Level:
        """The strongest available level."""
        return self.available()[-1]

    def layers(self, level: Level, use_cgroups: bool = True) -> tuple[str, ...]:
        """The isolation layers a run at ``level`` gets on this machine, in order."""
        out = [
            "own session + process group",
            "rlimits (cpu, address space, open files, file size, core=0)",
            "fresh temporary working directory",
            "empty environment",
            "isolated interpreter (python -I)",
            "subreaper cleanup of leftover processes",
            "wall clock kept by the parent",
        ]
        if level_rank(level) >= 1:
            out += [
                "dedicated unprivileged uid",
                "rlimit nproc",
                "no_new_privs",
                "seccomp deny-list",
            ]
            if self.landlock_abi > 0:
                out.append(f"landlock (ABI {self.landlock_abi})")
            out += [
                "ipc namespace",
                "size-capped noexec tmpfs work dir (private mount namespace)",
                "no memfd_create / execveat",
            ]
        if level == "isolated":
            out += [
                "pid namespace",
                "network namespace (no interfaces up)",
                "mount namespace with private read-only root",
                "uts namespace",
                "private /dev/shm",
            ]
        if use_cgroups and level_rank(level) >= 1:
            out += [f"cgroup {c} (v{self.cgroups.versions[c]})" for c in self.cgroups.bases]
        return tuple(out)


def _probe() -> dict[str, object]:
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", SUPERVISOR, "--probe"],
            capture_output=True,
            timeout=30,
            env={},
            check=False,
        )
        return dict(json.loads(done.stdout))
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def default_python() -> str:
    """The real path of this process's base interpreter (not a virtualenv shim)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return os.path.realpath(base)


def _others_can_run(python: str) -> bool:
    """Whether a uid with no relation to the file owners can traverse to and run ``python``."""
    prefix = Path(python).parent.parent
    paths = [*reversed(Path(python).parents), Path(python), prefix / "lib"]
    for p in paths:
        try:
            mode = p.stat().st_mode
        except OSError:
            return False
        need = stat.S_IXOTH | (stat.S_IROTH if p == Path(python) else 0)
        if mode & need != need:
            return False
    return True


def unprivileged_python(python: str) -> tuple[str | None, str]:
    """``python`` if an unprivileged uid can run it, else a system interpreter of the same
    version, else None with the reason."""
    if _others_can_run(python):
        return python, ""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"):
        if os.path.exists(candidate) and _others_can_run(os.path.realpath(candidate)):
            return os.path.realpath(candidate), ""
    return None, (
        f"{python} is not readable by an unprivileged uid and no system python{version} is"
    )


@cache
def _detect(python: str) -> Capabilities:
    linux = sys.platform.startswith("linux")
    probe = _probe() if linux else {"error": "not Linux"}
    err = str(probe.get("error", ""))
    unpriv, why = unprivileged_python(python)
    return Capabilities(
        linux=linux,
        root=os.geteuid() == 0,
        landlock_abi=int(str(probe.get("landlock_abi", 0))) if linux else 0,
        seccomp=str(probe.get("seccomp", err or "not probed")),
        namespaces=str(probe.get("namespaces", err or "not probed")),
        setuid=str(probe.get("setuid", err or "not probed")),
        cgroups=discover() if linux and os.geteuid() == 0 else CgroupSupport(),
        python=python,
        unprivileged_python=unpriv,
        unprivileged_python_reason=why,
    )


def detect(python: str | None = None) -> Capabilities:
    """Probe the machine once (cached per interpreter) and describe what it allows."""
    return _detect(python or default_python())


def resolve_level(config: SandboxConfig, caps: Capabilities) -> Level:
    """The level a run with ``config`` gets here; raises :class:`SandboxUnavailable` if the
    requested level, or anything at or above ``min_level``, cannot be reached."""
    if config.level != "auto":
        why = caps.unavailable(config.level)
        if why:
            raise SandboxUnavailable(f"sandbox level {config.level!r} is unavailable here: {why}")
        return config.level
    best = caps.best() if caps.available() else None
    if best is None or level_rank(best) < level_rank(config.min_level):
        why = caps.unavailable(config.min_level)
        raise SandboxUnavailable(
            f"refusing to run below level {config.min_level!r}; best available here is "
            f"{best!r}: {why}"
        )
    return best


def landlock_abi() -> int:
    """Landlock ABI of the running kernel (0 = absent), without the full probe."""
    return _landlock.abi()
