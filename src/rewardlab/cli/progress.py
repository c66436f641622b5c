"""Progress for long CLI work: rich bars on a terminal, periodic log lines otherwise.

When stderr is not a terminal (CI, ``nohup``, a pipe, ``> log 2>&1``) a bar would print
nothing useful, so :func:`progress_bar` writes a line such as ``sampling 240 problems x 64:
52/240 (21%), 1m10s elapsed, ~4m25s left`` at most every :data:`LOG_EVERY_S` seconds instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)
LOG_EVERY_S = 30.0


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``(done, total)`` callback that drives one progress bar on stderr (log lines
    when stderr is not a terminal)."""
    if not console.is_terminal:
        from rewardlab.pipelines.progress import periodic

        def emit(line: str) -> None:
            console.file.write(line + "\n")
            console.file.flush()

        with periodic(emit, LOG_EVERY_S)(description, total) as update:
            yield update
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=total)

        def update(done: int, total_now: int) -> None:
            bar.update(task, completed=done, total=total_now)

        yield update
