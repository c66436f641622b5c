"""``rewardlab sandbox doctor``: which isolation layers are active here, said loudly.

:func:`doctor` combines the machine probe (:func:`~rewardlab.sandbox.detect.detect`) with a live
self-test: a small program run at every available level tries to escape (write to ``/tmp``,
read the project, open a socket, see other processes, run a shell, make a ``memfd`` (an
anonymous file that could be executed), read the parent's environment) and reports what
happened. The report names the level ``"auto"`` resolves to and every reason a stronger level
is missing.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.sandbox.config import LEVELS, Level, Limits, Program, SandboxConfig
from rewardlab.sandbox.detect import Capabilities, detect
from rewardlab.sandbox.job import SANDBOX_ENV
from rewardlab.sandbox.runner import run

_PROBE = r"""
import json, os, socket, sys
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = [False, "allowed"]
    except Exception as exc:
        out[name] = [True, f"{type(exc).__name__}: {exc}"[:120]]
def write_tmp():
    with open(sys.argv[1], "w") as f:
        f.write("escaped")
def read_project():
    open(sys.argv[2]).read(1)
def net():
    try:
        socket.create_connection(("127.0.0.1", 9), timeout=1).close()
    except ConnectionRefusedError:
        pass  # the network stack answered: not contained
def shell():
    if os.system("true 2>/dev/null") != 0:
        raise PermissionError(f"exec refused")
def memfd():
    os.memfd_create("anonymous-executable", 0)  # exec of it would bypass every path rule
attempt("write /tmp", write_tmp)
attempt("read the project", read_project)
attempt("open a socket", net)
attempt("run a shell", shell)
attempt("make an anonymous file (memfd)", memfd)
allowed = set(sys.argv[3].split(","))
extra = sorted(set(os.environ) - allowed)
out["see the parent's environment"] = [not extra, f"unexpected: {extra}" if extra else "clean"]
try:
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
except OSError:
    pids = []
out["see host processes"] = [len(pids) < 10, f"{len(pids)} processes visible"]
out["run as root"] = [os.geteuid() != 0, f"uid {os.geteuid()}"]
print(json.dumps(out))
"""


@dataclass(frozen=True)
class LiveCheck:
    level: Level
    results: Mapping[str, tuple[bool, str]]  # probe -> (contained, detail)
    verdict: str = "ok"

    @property
    def contained(self) -> bool:
        return self.verdict == "ok" and all(ok for ok, _ in self.results.values())


@dataclass(frozen=True)
class DoctorReport:
    capabilities: Capabilities
    levels: Mapping[Level, str]  # level -> "" when available, else why not
    best: Level | None
    live: tuple[LiveCheck, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        caps = self.capabilities
        return {
            "best_level": self.best,
            "levels": {k: (v or "available") for k, v in self.levels.items()},
            "layers": list(caps.layers(self.best)) if self.best else [],
            "machine": {
                "root": caps.root,
                "namespaces": caps.namespaces,
                "seccomp": caps.seccomp,
                "uid switch": caps.setuid,
                "landlock abi": caps.landlock_abi,
                "cgroups": dict(caps.cgroups.bases),
                "cgroups missing": dict(caps.cgroups.missing),
                "python": caps.python,
                "python for restricted": caps.unprivileged_python,
            },
            "live": {
                c.level: {"verdict": c.verdict, **{k: list(v) for k, v in c.results.items()}}
                for c in self.live
            },
        }

    def text(self) -> str:
        caps = self.capabilities
        bar = "=" * 72
        head = f"SANDBOX LEVEL HERE: {(self.best or 'NONE').upper()}"
        lines = [bar, head, bar]
        for level in LEVELS:
            why = self.levels[level]
            lines.append(f"  [{'x' if not why else ' '}] {level:<11} {why if why else 'available'}")
        if self.best:
            lines += ["", f"Layers active at '{self.best}':"]
            lines += [f"  + {layer}" for layer in caps.layers(self.best)]
        lines += ["", "Machine:"]
        lines += [f"  {k}: {v}" for k, v in self.to_dict()["machine"].items()]
        for check in self.live:
            state = "CONTAINED" if check.contained else "NOT CONTAINED"
            lines += [
                "",
                f"Live self-test at '{check.level}': {state} (run verdict {check.verdict})",
            ]
            for name, (ok, detail) in check.results.items():
                lines.append(f"  {'ok ' if ok else 'NO '} {name:<30} {detail}")
        if self.best != "isolated":
            lines += [
                "",
                "WARNING: untrusted code here is NOT fully isolated; see docs/sandbox.md.",
            ]
        lines.append(bar)
        return "\n".join(lines)


def live_check(level: Level, config: SandboxConfig | None = None) -> LiveCheck:
    """Run the escape probe at ``level`` and collect what it could and could not do."""
    base = config or SandboxConfig()
    cfg = SandboxConfig(
        limits=Limits(wall_s=10, cpu_s=5),
        level=level,
        min_level="basic",
        python=base.python,
        uid_base=base.uid_base,
        cgroups=base.cgroups,
    )
    marker = f"/tmp/rewardlab-doctor-{secrets.token_hex(6)}"
    project_file = str(Path(__file__).resolve())
    allowed = ",".join(sorted({*SANDBOX_ENV, *base.env}))
    result = run(Program(_PROBE, argv=(marker, project_file, allowed)), cfg)
    escaped = os.path.exists(marker)
    if escaped:
        os.unlink(marker)
    try:
        raw = json.loads(result.stdout.decode().strip().splitlines()[-1])
        results = {k: (bool(v[0]), str(v[1])) for k, v in raw.items()}
    except (ValueError, IndexError):
        results = {"probe": (False, f"probe failed: {result.summary()}")}
    if escaped:
        results["write /tmp"] = (False, "the marker file appeared on the host")
    return LiveCheck(level, results, result.verdict)


def doctor(config: SandboxConfig | None = None, live: bool = True) -> DoctorReport:
    """Probe the machine and (``live``) self-test every available level."""
    caps = detect((config or SandboxConfig()).python)
    levels = {level: caps.unavailable(level) for level in LEVELS}
    available = [lv for lv in LEVELS if not levels[lv]]
    best = available[-1] if available else None
    checks = tuple(live_check(lv, config) for lv in available) if live else ()
    return DoctorReport(caps, levels, best, checks)
