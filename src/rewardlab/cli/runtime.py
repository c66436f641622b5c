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

import typer

THREADS_HELP = "torch CPU threads (default: idle cores = cores - 1-min load average, >= 1)."


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


def check_threads(threads: int | None) -> int | None:
    """Validate a ``--threads`` value (a usage error when below 1)."""
    if threads is not None and threads < 1:
        raise typer.BadParameter(f"--threads must be >= 1, got {threads}")
    return threads


def apply_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to ``threads`` (default :func:`default_threads`); returns
    the number set. Imports torch, so call it after the arguments were validated."""
    import torch

    n = default_threads() if threads is None else threads
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def threads_option() -> object:
    """The ``--threads`` option every heavy command shares."""
    return typer.Option(None, "--threads", min=1, help=THREADS_HELP, show_default=False)
