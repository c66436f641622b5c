"""The job the parent sends to the supervisor: paths, limits, uid, layers, argv, environment.

Everything here is computed by the trusted parent from the config, the machine's capabilities
and the run's slot; the supervisor only carries it out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rewardlab.sandbox import _linux
from rewardlab.sandbox.cgroups import RunCgroups
from rewardlab.sandbox.config import Level, Program, SandboxConfig
from rewardlab.sandbox.detect import Capabilities
from rewardlab.sandbox.slots import Slot

_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_MIB = 1 << 20
# Runs the program as ``python main.py`` would (``__main__``, ``__file__``, argv, coding
# cookies), after giving back the ``exit``/``quit`` builtins that ``-S`` (no site) drops.
BOOTSTRAP = (
    "import builtins as _b, sys as _s\n"
    "if not hasattr(_b, 'exit'):\n"
    "    import _sitebuiltins as _q\n"
    "    _b.exit, _b.quit = _q.Quitter('exit', 'Ctrl-D'), _q.Quitter('quit', 'Ctrl-D')\n"
    "    del _q\n"
    "_s.argv = _s.argv[1:]\n"
    "with open(_s.argv[0], 'rb') as _f:\n"
    "    _src = _f.read()\n"
    "globals().update(__file__=_s.argv[0], __cached__=None)\n"
    "del _b, _s, _f\n"
    "exec(compile(globals().pop('_src'), __file__, 'exec'))\n"
)
SANDBOX_ENV = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "MALLOC_ARENA_MAX")


def to_bytes(data: str | bytes) -> bytes:
    return data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data


def _binds(python: str) -> list[str]:
    """Host paths mirrored read-only into the private root: system dirs + the interpreter."""
    prefix = str(Path(python).parent.parent)
    out = [d for d in _SYSTEM_DIRS if os.path.lexists(d)]
    if not any(prefix == d or prefix.startswith(d.rstrip("/") + "/") for d in out):
        out.append(prefix)
    return out


def _landlock_paths(
    python: str, writable: str, extra_exec: tuple[str, ...], isolated: bool
) -> dict[str, list[str]]:
    prefix = str(Path(python).parent.parent)
    loader = _linux.elf_interpreter(python)
    execute = [python] + ([os.path.realpath(loader)] if loader else [])
    read = [*(_SYSTEM_DIRS), prefix, "/etc/ld.so.cache", "/etc/localtime"]
    if isolated:
        read += ["/proc", "/etc/passwd", "/etc/group"]
    return {
        "read": read,
        "write": [writable, "/dev/shm"] if isolated else [writable],
        "execute": execute + [os.path.realpath(p) for p in extra_exec],
        "devices": list(_DEVICES),
    }


def write_files(workdir: Path, program: Program) -> None:
    (workdir / "main.py").write_bytes(to_bytes(program.source))
    for name, data in program.files.items():
        target = workdir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(to_bytes(data))


def build_job(
    config: SandboxConfig,
    caps: Capabilities,
    level: Level,
    slot: Slot,
    base: Path,
    cgroups: RunCgroups | None,
    program: Program,
) -> dict[str, Any]:
    lim = config.limits
    isolated = level == "isolated"
    confined = level != "basic"
    python = os.path.realpath(config.python) if config.python else caps.python
    if level == "restricted" and config.python is None:
        python = caps.unprivileged_python or python
    workdir = str(base / "work")
    cwd = "/work" if isolated else str(base / "run") if confined else workdir
    rlimits: dict[str, int | list[int]] = {
        "CPU": [lim.cpu_s, lim.cpu_s + 1],
        "AS": lim.memory_mb * _MIB,
        "NOFILE": lim.open_files,
        "FSIZE": lim.file_size_mb * _MIB,
        "CORE": 0,
        "MSGQUEUE": 0,
    }
    if confined:
        rlimits["NPROC"] = lim.processes  # counts the run's own uid only
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": cwd,
        "TMPDIR": cwd,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "MALLOC_ARENA_MAX": "2",  # per-thread arenas would eat the address-space limit
        **dict(config.env),
    }
    return {
        "level": level,
        "python": python,
        "exec_argv": [python, *config.python_args, "-c", BOOTSTRAP, "main.py", *program.argv],
        "cwd": cwd,
        "workdir": workdir,
        "root": str(base / "root"),
        "env": env,
        "uid": slot.uid if confined else None,
        "gid": slot.gid if confined else None,
        "rlimits": rlimits,
        "cgroups": list(cgroups.paths.values()) if cgroups else [],
        "namespaces": isolated,
        "private_ipc_mount": level == "restricted",
        "no_new_privs": confined,
        "seccomp": confined,
        "landlock": (
            _landlock_paths(python, cwd, config.allow_exec, isolated)
            if confined and caps.landlock_abi > 0
            else None
        ),
        "fs": {"binds": _binds(python), "disk_bytes": lim.disk_mb * _MIB},
    }
