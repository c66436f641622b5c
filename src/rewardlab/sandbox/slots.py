"""Machine-wide slots: each concurrent run gets its own uid and cgroup name.

A slot is an exclusive ``flock`` on ``<lock dir>/slot-<i>.lock``; the kernel drops it when the
holder exits, so a crashed process never leaks a slot. Runs at ``restricted`` and above execute
as uid ``uid_base + i``: RLIMIT_NPROC then counts that run's processes only (one run's fork
bomb cannot exhaust another's quota) and ``kill(-1)`` as that uid reaches exactly that run.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

MAX_SLOTS = 1024


@dataclass(frozen=True)
class Slot:
    index: int
    uid: int
    gid: int


def lock_dir() -> str:
    """``/run/rewardlab-sandbox`` for root, else a per-user directory in the temp dir."""
    if os.geteuid() == 0 and os.path.isdir("/run") and os.access("/run", os.W_OK):
        return "/run/rewardlab-sandbox"
    return os.path.join(tempfile.gettempdir(), f"rewardlab-sandbox-{os.geteuid()}")


@contextmanager
def acquire(uid_base: int) -> Iterator[Slot]:
    """Hold the lowest free slot for the duration of the ``with`` block."""
    directory = lock_dir()
    os.makedirs(directory, mode=0o700, exist_ok=True)
    for i in range(MAX_SLOTS):
        fd = os.open(os.path.join(directory, f"slot-{i}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield Slot(i, uid_base + i, uid_base + i)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return
    raise RuntimeError(f"all {MAX_SLOTS} sandbox slots are busy")
