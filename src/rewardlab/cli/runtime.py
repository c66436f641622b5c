"""CPU threads for torch on a shared machine: a default from the cores and the current load.

Threads spinning against each other are the worst case on a busy machine (the default demo
took 62 min, 50 CPU-minutes, on a loaded 2-core box with torch's default of one thread per
core). The default here is the number of cores not already busy (``cores - busy``, rounded,
at least 1); ``--threads N`` overrides it. :func:`apply_threads` is called once per command.

"Busy" is measured, not averaged: the CPU time the machine spent outside idle over a 0.2 s
window (``/proc/stat``), in cores. The 1-minute load average (the fallback where there is no
``/proc/stat``) lags: right after ``pip install`` or a finished job it still reads about 1 on
an idle 2-core machine, which would halve the threads of ``make demo`` for nothing.

>>> default_threads(cores=8, load=0.2)
8
>>> default_threads(cores=8, load=6.6)
1
>>> default_threads(cores=2, load=5.0)
1
"""

from __future__ import annotations

import os
import time
from pathlib import Path

THREADS_HELP = (
    "torch CPU threads (default: $OMP_NUM_THREADS if set, else the idle cores: cores minus "
    "the cores busy over the last 0.2 s, at least 1)."
)


def available_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _cpu_times() -> tuple[float, float, int] | None:
    """(busy, total) jiffies summed over all CPUs and the CPU count, from ``/proc/stat``."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    head = lines[0].split() if lines else []
    if not head or head[0] != "cpu":
        return None
    values = [float(v) for v in head[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    cpus = sum(1 for ln in lines[1:] if ln.startswith("cpu"))
    return sum(values) - idle, sum(values), max(cpus, 1)


def busy_cores(window: float = 0.2) -> float | None:
    """Cores the machine kept busy over the last ``window`` seconds (None without /proc)."""
    first = _cpu_times()
    if first is None:
        return None
    time.sleep(window)
    second = _cpu_times()
    if second is None or second[1] <= first[1]:
        return None
    return (second[0] - first[0]) / (second[1] - first[1]) * second[2]


def current_load() -> float:
    """Busy cores right now (:func:`busy_cores`), else the 1-minute load average, else 0."""
    busy = busy_cores()
    if busy is not None:
        return busy
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
