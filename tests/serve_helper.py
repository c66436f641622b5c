"""A rewardlab server around a deterministic test reward, run as its own process by the tests.

``SleepyReward`` scores a response by its length, sleeps ``--delay`` s on responses containing
"slow", raises on "boom" and returns NaN on "nan": small, real, and predictable.

    python tests/serve_helper.py --port P [--delay S] [--max-queue N] [--api-key K]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass

from rewardlab.integrations.common import TimedScorer
from rewardlab.serve.app import ServeConfig, create_app
from rewardlab.serve.batcher import BatchConfig
from rewardlab.serve.protocol import Limits
from rewardlab.serve.run import serve
from rewardlab.types import Candidate, Problem, Score


@dataclass(frozen=True)
class SleepyReward:
    delay: float = 1.0
    name: str = "sleepy"

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        out = []
        for c in candidates:
            if "slow" in c.text:
                time.sleep(self.delay)
            if "boom" in c.text:
                raise RuntimeError("grader crashed on purpose")
            value = float("nan") if "nan" in c.text else float(len(c.text))
            out.append(Score(value, steps=tuple(float(len(s)) / 10 for s in c.steps)))
        return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--delay", type=float, default=1.0)
    ap.add_argument("--max-queue", type=int, default=64)
    ap.add_argument("--max-items", type=int, default=1)
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--ungraded-value", type=float, default=None)
    a = ap.parse_args()
    scorer = TimedScorer(SleepyReward(a.delay), timeout_s=30, per_sample=False)
    cfg = ServeConfig(
        batch=BatchConfig(max_batch_items=a.max_items, max_queue=a.max_queue, max_wait_s=0.002),
        limits=Limits(max_items=64, max_chars=10_000),
        deadline_s=20,
        max_body_bytes=64 * 1024,
        api_key=a.api_key,
        ungraded_value=a.ungraded_value,
    )
    serve(create_app(scorer, cfg), "127.0.0.1", a.port, drain_timeout_s=20)


if __name__ == "__main__":
    main()
