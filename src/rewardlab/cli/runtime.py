"""CPU threads for torch on a shared machine: a default from the cores and the current load.

Threads spinning against each other are the worst case on a busy machine (the default demo
took 62 min, 50 CPU-minutes, on a loaded 2-core box with torch's default of one thread per
core). The default here is the number of cores not already busy (``cores - load``, rounded,
at least 1); ``--threads N`` overrides it. :func:`apply_threads` is called once per command.

>>> default_threads(cores=8, load=0.2)
8
>>> default_threads(cores=8, load=6.6)
1
>>> default_threads(cores=2, load=5.0)
1
"""

from __future__ import annotations

import os

THREADS_HELP = (
    "torch CPU threads (default: $OMP_NUM_THREADS if set, else the idle cores: cores minus "
    "the 1-minute load average, at least 1)."
)


def available_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def current_load() -> float:
    """The 1-minute load average (0 where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - Windows
        return 0.0


def default_threads(cores: int | None = None, load: float | None = None) -> int:
    """``round(cores - load)`` clipped to ``[1, cores]``: the cores nobody else is using."""
    c = available_cores() if cores is None else cores
    busy = current_load() if load is None else load
    return max(1, min(c, round(c - busy)))


def apply_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to ``threads``; returns the number in use.

    Without ``threads``: ``OMP_NUM_THREADS`` when the user set it (torch already read it),
    else :func:`default_threads`. Imports torch, so call it after the arguments were checked.
    """
    import torch

    if threads is None and os.environ.get("OMP_NUM_THREADS", "").strip().isdigit():
        return int(torch.get_num_threads())
    n = default_threads() if threads is None else threads
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
