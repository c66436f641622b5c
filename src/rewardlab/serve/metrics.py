"""Server counters and windows, rendered in the Prometheus text exposition format (0.0.4)."""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable

import numpy as np

QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)
SCORED: tuple[str, ...] = ("/get_reward", "/score")  # the endpoints whose latency is kept


class Window:
    """The last ``size`` observations (for quantiles), plus the running count and sum."""

    def __init__(self, size: int = 4096) -> None:
        self.values: deque[float] = deque(maxlen=size)
        self.count = 0
        self.total = 0.0

    def observe(self, x: float) -> None:
        self.values.append(x)
        self.count += 1
        self.total += x

    def quantiles(self) -> list[tuple[float, float]]:
        if not self.values:
            return [(q, float("nan")) for q in QUANTILES]
        arr = np.fromiter(self.values, dtype=float)
        return [(q, float(np.quantile(arr, q))) for q in QUANTILES]


class Metrics:
    """Thread-safe counters (requests by endpoint and code, rejects by reason, items scored and
    ungraded) and windows (request latency, batch size in items and in tokens)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.rejects: Counter[str] = Counter()
        self.items = 0
        self.ungraded = 0
        self.latency = Window()
        self.batch_items = Window()
        self.batch_tokens = Window()

    def request(self, endpoint: str, code: int, seconds: float) -> None:
        with self._lock:
            self.requests[(endpoint, code)] += 1
            if code < 400 and endpoint in SCORED:
                self.latency.observe(seconds)

    def reject(self, reason: str) -> None:
        with self._lock:
            self.rejects[reason] += 1

    def batch(self, items: int, tokens: int, ungraded: int) -> None:
        with self._lock:
            self.batch_items.observe(items)
            self.batch_tokens.observe(tokens)
            self.items += items
            self.ungraded += ungraded

    def render(self, gauges: dict[str, tuple[str, Callable[[], float]]]) -> str:
        """The exposition text; ``gauges`` maps a metric name to (help, current value)."""
        out: list[str] = []

        def head(name: str, kind: str, help_: str) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")

        with self._lock:
            head("rewardlab_requests_total", "counter", "HTTP requests by endpoint and status.")
            for (ep, code), n in sorted(self.requests.items()):
                out.append(f'rewardlab_requests_total{{endpoint="{ep}",code="{code}"}} {n}')
            head("rewardlab_rejected_total", "counter", "Requests refused, by reason.")
            for reason, n in sorted(self.rejects.items()):
                out.append(f'rewardlab_rejected_total{{reason="{reason}"}} {n}')
            head("rewardlab_items_scored_total", "counter", "Samples run through the reward.")
            out.append(f"rewardlab_items_scored_total {self.items}")
            head("rewardlab_items_ungraded_total", "counter", "Samples the reward could not grade.")
            out.append(f"rewardlab_items_ungraded_total {self.ungraded}")
            for name, win, help_ in (
                (
                    "rewardlab_request_latency_seconds",
                    self.latency,
                    "Latency of answered requests.",
                ),
                ("rewardlab_batch_size_items", self.batch_items, "Samples per model batch."),
                ("rewardlab_batch_size_tokens", self.batch_tokens, "Padded tokens per batch."),
            ):
                head(name, "summary", help_ + " Quantiles over the last 4096.")
                for q, v in win.quantiles():
                    out.append(f'{name}{{quantile="{q}"}} {_num(v)}')
                out.append(f"{name}_sum {_num(win.total)}")
                out.append(f"{name}_count {win.count}")
        for name, (help_, value) in gauges.items():
            head(name, "gauge", help_)
            out.append(f"{name} {_num(value())}")
        return "\n".join(out) + "\n"


def _num(x: float) -> str:
    if x != x:
        return "NaN"
    return repr(float(x)) if not float(x).is_integer() else str(int(x))
