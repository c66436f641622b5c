"""The micro-batcher on its own: token-budget batches, deadlines, abandoned requests."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from rewardlab.integrations.common import TimedScorer, make_pair
from rewardlab.serve.batcher import BatchConfig, DeadlineExceeded, Job, MicroBatcher
from rewardlab.serve.metrics import Metrics
from rewardlab.types import Candidate, Problem, Score


@dataclass
class Recorder:
    """Scores len(text) and records the texts of each batch it was called with."""

    delay: float = 0.0
    name: str = "recorder"
    batches: list[list[str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        with self.lock:
            self.batches.append([c.text for c in candidates])
        time.sleep(self.delay)
        return [Score(float(len(c.text))) for c in candidates]


def _jobs(texts: list[str], deadline_s: float = 10.0) -> list[Job]:
    out = []
    for t in texts:
        p, c = make_pair("", t)
        out.append(Job(p, c, time.monotonic() + deadline_s))
    return out


def test_batches_respect_the_padded_token_budget() -> None:
    rec = Recorder()
    cfg = BatchConfig(max_batch_tokens=30, max_batch_items=64, max_wait_s=0.3, max_queue=64)
    b = MicroBatcher(TimedScorer(rec, per_sample=False), cfg, Metrics())
    # "x" * 40 costs ceil(40/4) = 10 tokens; "y" * 200 costs 50 (over budget: goes alone)
    texts = ["x" * 40] * 7 + ["y" * 200] + ["x" * 40]
    jobs = _jobs(texts)
    assert b.submit(jobs)
    results = [j.future.result(10) for j in jobs]
    b.stop()
    assert [r.value for r in results] == [float(len(t)) for t in texts]
    assert [len(batch) for batch in rec.batches] == [3, 3, 1, 1, 1]
    assert rec.batches[3] == ["y" * 200]


def test_admission_is_all_or_none_and_deadlines_drop_jobs() -> None:
    rec = Recorder(delay=0.3)
    cfg = BatchConfig(max_batch_tokens=10_000, max_batch_items=1, max_wait_s=0.0, max_queue=3)
    b = MicroBatcher(TimedScorer(rec, per_sample=False), cfg, Metrics())
    first = _jobs(["a"])
    assert b.submit(first)
    time.sleep(0.1)  # "a" is in the model; the queue is empty
    late = _jobs(["b", "c"], deadline_s=0.1)
    assert b.submit(late)
    assert not b.submit(_jobs(["d", "e"]))  # 2 + 2 > 3: none admitted
    assert b.depth == 2
    with pytest.raises(DeadlineExceeded):
        late[0].future.result(5)
    assert first[0].future.result(5).value == 1.0
    b.stop()
    assert rec.batches == [["a"]]  # the expired jobs never reached the reward


def test_stop_finishes_the_queue_then_refuses() -> None:
    rec = Recorder(delay=0.05)
    cfg = BatchConfig(max_batch_tokens=10_000, max_batch_items=2, max_wait_s=0.0, max_queue=10)
    b = MicroBatcher(TimedScorer(rec, per_sample=False), cfg, Metrics())
    jobs = _jobs(["a", "b", "c", "d", "e"])
    assert b.submit(jobs)
    b.stop()
    assert all(j.future.done() and j.future.result().value == 1.0 for j in jobs)
    assert not b.submit(_jobs(["f"]))
