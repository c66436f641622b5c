"""Who runs the model calls of a search: directly, or batched across searches side by side.

One online search on one problem makes small calls (a few prefixes per step). Run alone, the
model spends its time on per-call overhead. :class:`BatchingBackend` lets W searches (one
thread each, usually W problems) run side by side and merges their pending calls into ONE
``policy.extend`` and ONE reward call once every live search is waiting: the strategies keep
their plain sequential code, and the model sees batches as large as best-of-N's.

Results do not depend on the batching: the ``hf`` backend draws each row from its own stream,
seeded by ``(seed, text, repeat index)``. Requests whose texts collide with another request's
(two problems with the same prompt) are run in separate calls, so repeat indices stay those
each search would get alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardlab.types import Candidate, Completion, Problem, Sampling, Score


class DirectBackend:
    """Calls the policy and the reward as they are asked (one search at a time)."""

    def __init__(self, policy: Any, reward: Any) -> None:
        self.policy = policy
        self.reward = reward

    def extend(
        self, texts: Sequence[str], sampling: Sampling, stop: tuple[str, ...]
    ) -> list[Completion]:
        return list(self.policy.extend(list(texts), sampling, list(stop)))

    def score(
        self, step: bool, problems: Sequence[Problem], candidates: Sequence[Candidate]
    ) -> list[Score]:
        fn = self.reward.score_steps if step else self.reward.score
        return list(fn(list(problems), list(candidates)))

    def done(self) -> None:
        """A search finished (nothing to do when calls are not merged)."""


@dataclass
class _Request:
    kind: str
    args: tuple[Any, ...]
    event: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class BatchingBackend(DirectBackend):
    """Merges the calls of ``workers`` concurrent searches (see the module docstring).

    Every worker thread must call :meth:`done` exactly once when it has no more searches to
    run, so the others are not left waiting for it.
    """

    def __init__(self, policy: Any, reward: Any, workers: int) -> None:
        super().__init__(policy, reward)
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._cv = threading.Condition()
        self._live = workers
        self._pending: list[_Request] = []
        self.calls = 0  # merged model calls made (for tests and benchmarks)
        self.rows = {"extend": 0, "score": 0}  # rows sent to the model, per kind
        self.seconds = {"extend": 0.0, "score": 0.0}  # wall time inside model calls

    def extend(
        self, texts: Sequence[str], sampling: Sampling, stop: tuple[str, ...]
    ) -> list[Completion]:
        return self._submit(_Request("extend", (list(texts), sampling, tuple(stop))))  # type: ignore[no-any-return]

    def score(
        self, step: bool, problems: Sequence[Problem], candidates: Sequence[Candidate]
    ) -> list[Score]:
        return self._submit(_Request("score", (step, list(problems), list(candidates))))  # type: ignore[no-any-return]

    def done(self) -> None:
        with self._cv:
            self._live -= 1
            batch = self._take()
        if batch:
            self._run(batch)

    def _take(self) -> list[_Request]:
        """The pending requests when every live worker is waiting (call with the lock)."""
        if self._pending and len(self._pending) >= self._live:
            batch, self._pending = self._pending, []
            return batch
        return []

    def _submit(self, req: _Request) -> Any:
        with self._cv:
            self._pending.append(req)
            batch = self._take()
        if batch:
            self._run(batch)
        req.event.wait()
        if req.error is not None:
            raise req.error
        return req.result

    def _run(self, batch: list[_Request]) -> None:
        try:
            groups: dict[tuple[Any, ...], list[_Request]] = {}
            key: tuple[Any, ...]
            for r in batch:
                key = (
                    ("extend", r.args[1], r.args[2]) if r.kind == "extend" else ("score", r.args[0])
                )
                groups.setdefault(key, []).append(r)
            for key, reqs in groups.items():
                if key[0] == "extend":
                    self._run_extends(reqs, key[1], key[2])
                else:
                    self._run_scores(reqs, key[1])
        except BaseException as e:  # every waiting search gets the failure, none hangs
            for r in batch:
                if not r.event.is_set():
                    r.error = e
        finally:
            for r in batch:
                r.event.set()

    def _run_extends(self, reqs: list[_Request], sampling: Sampling, stop: tuple[str, ...]) -> None:
        calls: list[list[_Request]] = []
        for r in reqs:  # a request joins the first call none of whose texts it shares
            texts = set(r.args[0])
            for call in calls:
                if not any(texts & set(o.args[0]) for o in call):
                    call.append(r)
                    break
            else:
                calls.append([r])
        for call in calls:
            rows = [t for r in call for t in r.args[0]]
            t0 = time.perf_counter()
            out = super().extend(rows, sampling, stop) if rows else []
            self.seconds["extend"] += time.perf_counter() - t0
            self.rows["extend"] += len(rows)
            self.calls += 1
            pos = 0
            for r in call:
                r.result = out[pos : pos + len(r.args[0])]
                pos += len(r.args[0])

    def _run_scores(self, reqs: list[_Request], step: bool) -> None:
        problems = [p for r in reqs for p in r.args[1]]
        cands = [c for r in reqs for c in r.args[2]]
        t0 = time.perf_counter()
        out = super().score(step, problems, cands) if cands else []
        self.seconds["score"] += time.perf_counter() - t0
        self.rows["score"] += len(cands)
        self.calls += 1
        pos = 0
        for r in reqs:
            r.result = out[pos : pos + len(r.args[2])]
            pos += len(r.args[2])


def run_side_by_side(
    jobs: Sequence[Any], worker: Any, backend: BatchingBackend | DirectBackend, threads: int
) -> list[Any]:
    """Run ``worker(job)`` for every job on ``threads`` threads sharing ``backend``; results in
    job order. Each thread calls ``backend.done()`` when the queue is empty; the first
    exception is re-raised after all threads stopped."""
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []
    lock = threading.Lock()
    todo = list(range(len(jobs)))[::-1]

    def loop() -> None:
        try:
            while True:
                with lock:
                    if not todo or errors:
                        return
                    i = todo.pop()
                try:
                    results[i] = worker(jobs[i])
                except BaseException as e:
                    with lock:
                        errors.append(e)
                    return
        finally:
            backend.done()

    pool = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return results
