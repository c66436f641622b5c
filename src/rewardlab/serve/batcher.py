"""Dynamic micro-batching by token budget, off the event loop, behind a bounded queue.

Request handlers :meth:`MicroBatcher.submit` their samples (all or none: a request is admitted
only if all its samples fit in the queue) and await the futures. One worker thread takes jobs
in arrival order into a batch while the *padded* token cost, ``len(batch) × longest``, stays
within ``max_batch_tokens`` (one job always goes, however long) and the batch has at most
``max_batch_items``; once the first job is in it waits at most ``max_wait_s`` for more. Jobs
whose deadline has passed or whose request was abandoned are dropped unscored. The batch goes
through a :class:`~rewardlab.integrations.common.TimedScorer` (checked scores, per-sample or
per-batch timeout, one-by-one retry of a failing batch).

Token cost: the reward's own tokenizer when it has one (``reward.tokenizer``), else
⌈characters / 4⌉, counted in the worker thread.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from rewardlab.integrations.common import TimedScorer
from rewardlab.serve.metrics import Metrics
from rewardlab.types import Candidate, Problem, Score


class DeadlineExceeded(Exception):
    """The job's deadline passed before the reward got to it."""


@dataclass
class Job:
    problem: Problem
    candidate: Candidate
    deadline: float  # time.monotonic()
    future: Future[Score] = field(default_factory=Future)
    cost: int | None = None


def token_counter(reward: Any) -> Callable[[Problem, Candidate], int]:
    """Tokens of question + response by the reward's tokenizer, or ⌈chars/4⌉ without one."""
    tok = getattr(reward, "tokenizer", None)
    if tok is not None and callable(tok):

        def count(p: Problem, c: Candidate) -> int:
            ids = tok(p.question + c.text, add_special_tokens=True)["input_ids"]
            return max(1, len(ids))

        return count
    return lambda p, c: max(1, math.ceil((len(p.question) + len(c.text)) / 4))


@dataclass(frozen=True)
class BatchConfig:
    max_batch_tokens: int = 8192
    max_batch_items: int = 64
    max_wait_s: float = 0.005
    max_queue: int = 1024

    def __post_init__(self) -> None:
        if self.max_batch_tokens < 1 or self.max_batch_items < 1 or self.max_queue < 1:
            raise ValueError("max_batch_tokens, max_batch_items and max_queue must be >= 1")
        if not 0 <= self.max_wait_s <= 10:
            raise ValueError(f"max_wait_s must be in [0, 10], got {self.max_wait_s}")


class MicroBatcher:
    """The queue and the one worker thread that runs the reward (see the module docstring)."""

    def __init__(self, scorer: TimedScorer, config: BatchConfig, metrics: Metrics) -> None:
        self.scorer, self.config, self.metrics = scorer, config, metrics
        self.cost = token_counter(scorer.reward)
        self._q: deque[Job] = deque()
        self._cv = threading.Condition()
        self._stopping = False
        self._busy = 0
        self.item_seconds = 0.01  # EMA of seconds per scored sample (for Retry-After)
        self._thread = threading.Thread(target=self._loop, name="rewardlab-batcher", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ handler side
    def submit(self, jobs: Sequence[Job]) -> bool:
        """Queue all ``jobs`` or none: False when the queue lacks room or the server drains."""
        with self._cv:
            if self._stopping or len(self._q) + len(jobs) > self.config.max_queue:
                return False
            self._q.extend(jobs)
            self._cv.notify()
            return True

    @property
    def depth(self) -> int:
        return len(self._q)

    @property
    def busy(self) -> int:
        return self._busy

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained (at least 1)."""
        return max(1, math.ceil((self.depth + self._busy) * self.item_seconds))

    def stop(self, timeout: float = 60.0) -> None:
        """Finish what is queued, then stop the worker."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        self._thread.join(timeout)

    # ------------------------------------------------------------------ worker side
    def _take(self) -> list[Job] | None:
        cfg = self.config
        with self._cv:
            while not self._q:
                if self._stopping:
                    return None
                self._cv.wait()
            first_seen = time.monotonic()
            while True:
                batch, _ = self._fit()
                full = len(batch) >= cfg.max_batch_items or len(batch) < len(self._q)
                left = cfg.max_wait_s - (time.monotonic() - first_seen)
                if full or left <= 0 or self._stopping:
                    break
                self._cv.wait(left)
            for _ in batch:
                self._q.popleft()
            self._busy = len(batch)
            return batch

    def _fit(self) -> tuple[list[Job], int]:
        """The longest queue prefix within the padded token budget (at least one job)."""
        batch: list[Job] = []
        longest = 0
        for job in self._q:
            if job.cost is None:
                job.cost = self.cost(job.problem, job.candidate)
            widest = max(longest, job.cost)
            if batch and (
                widest * (len(batch) + 1) > self.config.max_batch_tokens
                or len(batch) >= self.config.max_batch_items
            ):
                break
            batch.append(job)
            longest = widest
        return batch, longest

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._run(batch)
            finally:
                self._busy = 0

    def _run(self, batch: list[Job]) -> None:
        now = time.monotonic()
        live: list[Job] = []
        for job in batch:
            if not job.future.set_running_or_notify_cancel():
                continue  # the request gave up
            if job.deadline <= now:
                job.future.set_exception(DeadlineExceeded())
                continue
            live.append(job)
        if not live:
            return
        t0 = time.monotonic()
        try:
            scores = self.scorer.score([j.problem for j in live], [j.candidate for j in live])
        except Exception as e:  # never leave a request hanging on a future
            scores = [Score.ungraded("error", detail=f"{type(e).__name__}: {e}")] * len(live)
        dt = time.monotonic() - t0
        self.item_seconds = 0.8 * self.item_seconds + 0.2 * dt / len(live)
        longest = max(j.cost or 1 for j in live)
        self.metrics.batch(len(live), longest * len(live), sum(s.value is None for s in scores))
        for job, s in zip(live, scores, strict=True):
            job.future.set_result(s)
