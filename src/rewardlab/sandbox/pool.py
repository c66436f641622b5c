"""Many sandboxed runs in parallel, with a bound: :class:`SandboxPool`.

Each run holds its own slot (uid, cgroups), so runs are isolated from each other as well as
from the host: a fork bomb in one run hits its own RLIMIT_NPROC and pids limit, and the cpu
cgroup gives every run the same CPU share however many processes it spawns. The pool's threads
only wait on pipes; all work happens in the sandboxed processes.

>>> SandboxPool(workers=2).map(["print(1)", "print(2)"])       # doctest: +SKIP
[RunResult(verdict='ok', ...), RunResult(verdict='ok', ...)]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from rewardlab.sandbox.config import Program, RunResult, SandboxConfig
from rewardlab.sandbox.detect import detect, resolve_level
from rewardlab.sandbox.runner import run

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """One run per CPU the process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``[fn(x) for x in items]`` on at most ``workers`` threads, results in input order."""
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as ex:
        return list(ex.map(fn, items))


@dataclass(frozen=True)
class SandboxPool:
    """Run programs concurrently, at most ``workers`` at a time (0 = one per CPU).

    At the ``isolated`` level (and ``zygote=True``, the default) each ``map`` runs on
    pre-isolated workers (:class:`~rewardlab.sandbox.zygote.ZygotePool`: namespaces, private
    root and cgroups set up once per worker, a fresh child per execution); otherwise every
    program is a one-shot :func:`~rewardlab.sandbox.run`.
    """

    config: SandboxConfig = field(default_factory=SandboxConfig)
    workers: int = 0
    zygote: bool = True

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")

    def map(self, programs: Iterable[Program | str]) -> list[RunResult]:
        """Run every program; results in input order. Raises SandboxUnavailable up front."""
        items = list(programs)
        level = resolve_level(self.config, detect(self.config.python))
        workers = self.workers or default_workers()
        if self.zygote and level == "isolated" and len(items) > 1:
            from rewardlab.sandbox.zygote import ZygotePool

            with ZygotePool(self.config, workers=min(workers, len(items))) as pool:
                return pool.map(items)
        return parallel_map(lambda p: run(p, self.config), items, workers)
