"""Progress for long jobs without a terminal: periodic log lines, and a logger for the API.

A job takes a *progress factory* ``progress(description, total)``: a context manager yielding
a ``(done, total)`` callback (the CLI passes rich bars on a terminal). :func:`periodic` makes
one that writes a line through any ``emit`` function at most every ``every_s`` seconds (plus
the first and the last update), e.g. ``sampling 240 problems x 64: 52/240 (22%), 1m10s, ~4m
left``; :func:`logging_progress` sends those lines to the ``rewardlab`` logger at INFO, the
default of :func:`rewardlab.pipelines.scale_job.run_scale` (``logging.basicConfig(level=
logging.INFO)`` shows them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

Update = Callable[[int, int], None]
ProgressFactory = Callable[[str, int], AbstractContextManager[Update]]

LOGGER = logging.getLogger("rewardlab")


def _clock(seconds: float) -> str:
    """``75.0`` -> ``1m15s``; ``3700`` -> ``1h01m``."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def progress_line(description: str, done: int, total: int, elapsed: float) -> str:
    """One progress line; the time left is extrapolated from the rate so far.

    >>> progress_line("sampling", 25, 100, 30.0)
    'sampling: 25/100 (25%), 30s elapsed, ~1m30s left'
    """
    pct = f" ({100 * done // total}%)" if total > 0 else ""
    left = ""
    if 0 < done < total:
        left = f", ~{_clock(elapsed * (total - done) / done)} left"
    return f"{description}: {done}/{total}{pct}, {_clock(elapsed)} elapsed{left}"


def periodic(
    emit: Callable[[str], None],
    every_s: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
) -> ProgressFactory:
    """A progress factory writing a line at most every ``every_s`` seconds, and at the end."""

    @contextmanager
    def factory(description: str, total: int) -> Iterator[Update]:
        start = clock()
        state = {"last": -1e18, "done": 0, "total": total, "final": False}

        def update(done: int, total_now: int) -> None:
            now = clock()
            state.update(done=done, total=total_now)
            final = total_now > 0 and done >= total_now
            if final and state["final"]:
                return
            if final or now - float(state["last"]) >= every_s:
                state["last"], state["final"] = now, final
                emit(progress_line(description, done, total_now, now - start))

        yield update
        if not state["final"] and int(state["done"]) > 0:
            emit(
                progress_line(description, int(state["done"]), int(state["total"]), clock() - start)
            )

    return factory


def logging_progress(
    logger: logging.Logger = LOGGER, every_s: float = 30.0, level: int = logging.INFO
) -> ProgressFactory:
    """Progress as log records of ``logger`` (default ``rewardlab``, INFO)."""
    return periodic(lambda line: logger.log(level, line), every_s)
