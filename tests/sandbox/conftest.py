"""Helpers for the sandbox tests: levels available here, a runner with small limits, a
leftover check (processes of the sandbox uids, temporary directories, cgroups)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import rewardlab.sandbox.runner as _runner
import rewardlab.sandbox.zygote as _zygote
from rewardlab.sandbox import Limits, Program, RunResult, SandboxConfig, detect, run
from rewardlab.sandbox.slots import MAX_SLOTS, lock_dir

UID_BASE = SandboxConfig().uid_base
STRONG = ("restricted", "isolated")
# The machine is shared: other test sessions run sandboxes at the same time, with the same uid
# range and cgroup names (slots keep them apart). The leftover checks look at this session's
# runs only: temporary directories carry this process's id, and processes / cgroups of a slot
# whose lock another process holds right now are that process's.
TEMP_PREFIX = f"{_runner.TEMP_PREFIX}{os.getpid()}-"
_runner.TEMP_PREFIX = _zygote.TEMP_PREFIX = TEMP_PREFIX


def foreign_slots() -> set[int]:
    """Slots whose ``flock`` another process holds now (``/proc/locks``)."""
    directory = lock_dir()
    by_inode: dict[tuple[int, int, int], int] = {}
    try:
        names = os.listdir(directory)
    except OSError:
        return set()
    for name in names:
        if name.startswith("slot-") and name.endswith(".lock"):
            try:
                st = os.stat(os.path.join(directory, name))
            except OSError:
                continue
            key = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
            by_inode[key] = int(name[5:-5])
    held: set[int] = set()
    with open("/proc/locks") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 6 or parts[1] != "FLOCK":
                continue  # POSIX locks, and waiters ("->"), are not slot holders
            major, minor, inode = parts[5].split(":")
            slot = by_inode.get((int(major, 16), int(minor, 16), int(inode)))
            if slot is not None and int(parts[4]) != os.getpid():
                held.add(slot)
    return held


def available(level: str) -> bool:
    return not detect().unavailable(level)  # type: ignore[arg-type]


def strong_levels() -> list[object]:
    """``restricted`` and ``isolated`` as parameters, each skipped where unavailable."""
    return [
        pytest.param(
            lv, marks=pytest.mark.skipif(not available(lv), reason=detect().unavailable(lv))
        )
        for lv in STRONG
    ]


needs_isolated = pytest.mark.skipif(
    not available("isolated"),
    reason="isolated level unavailable: " + detect().unavailable("isolated"),
)


def go(
    source: str | bytes,
    level: str = "isolated",
    *,
    stdin: str | bytes = b"",
    argv: tuple[str, ...] = (),
    files: dict[str, str | bytes] | None = None,
    **limits: float,
) -> RunResult:
    """Run ``source`` at ``level`` with small default limits (overridable)."""
    defaults: dict[str, float] = {"wall_s": 5.0, "cpu_s": 5, "memory_mb": 256, "processes": 16}
    defaults.update(limits)
    config = SandboxConfig(limits=Limits(**defaults), level=level)  # type: ignore[arg-type]
    return run(Program(source, stdin=stdin, files=files or {}, argv=argv), config)


def sandbox_processes(include_foreign: bool = False) -> list[int]:
    """Live processes running as a sandbox uid whose slot no other process holds (or any
    sandbox uid with ``include_foreign``)."""
    out: list[tuple[int, int]] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        uid = int(line.split()[1])
                        if UID_BASE <= uid < UID_BASE + MAX_SLOTS:
                            out.append((int(entry), uid - UID_BASE))
                        break
        except OSError:
            continue
    if not out:
        return []
    foreign = set() if include_foreign else foreign_slots()
    return [pid for pid, slot in out if slot not in foreign]


def leftover_dirs() -> list[str]:
    return glob.glob(os.path.join(tempfile.gettempdir(), TEMP_PREFIX + "*"))


def leftover_cgroups() -> list[str]:
    hits: list[str] = []
    for base in detect().cgroups.bases.values():
        hits += glob.glob(os.path.join(base, "rewardlab-sandbox-*"))
    if not hits:
        return []
    foreign = {f"rewardlab-sandbox-{slot}" for slot in foreign_slots()}
    return [h for h in hits if os.path.basename(h) not in foreign]


def assert_clean() -> None:
    """Nothing of any finished run survives: processes, temporary dirs, cgroups."""
    assert sandbox_processes() == [], "sandbox processes survived"
    assert leftover_dirs() == [], "temporary directories left behind"
    assert leftover_cgroups() == [], "cgroups left behind"


@pytest.fixture
def clean() -> Iterator[None]:
    """Check for leftovers after the test."""
    yield
    assert_clean()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside the sandbox that the host (the test) owns."""
    d = tmp_path / "outside"
    d.mkdir()
    return d


@pytest.fixture(scope="package", autouse=True)
def _nothing_left_after_the_battery() -> Iterator[None]:
    """After the last test of this directory: no process, temporary directory or cgroup of any
    sandbox run remains (each attack also checks right after its own run)."""
    yield
    assert_clean()


# ------------------------------------------------------------------ the attack battery

LEVELS = strong_levels()
PROJECT = Path(__file__).resolve().parents[2]
CAP = "import time\n_deadline = time.monotonic() + 4\n"  # every attack loop stops by itself


def timed(source: str | bytes, level: str, **kw: object) -> RunResult:
    """Run, and check the run ended within its wall limit + 1 s and left nothing behind."""
    wall = float(kw.get("wall_s", 5.0))  # type: ignore[arg-type]
    start = time.monotonic()
    result = go(source, level, **kw)  # type: ignore[arg-type]
    elapsed = time.monotonic() - start
    assert elapsed <= wall + 1.0, f"took {elapsed:.2f}s for a {wall}s limit"
    assert_clean()
    return result


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A world-writable directory on the host: Unix permissions alone would let anyone in."""
    d = Path(tempfile.mkdtemp(prefix="rl-attack-", dir="/tmp"))
    d.chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def sentinel() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()
