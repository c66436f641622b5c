"""The compute ledger: tokens and FLOPs spent per model, so results plot against compute.

FLOPs default to the forward-pass estimate ``2 * params * tokens`` (Kaplan et al.; Snell et al.
2024, "Scaling LLM test-time compute optimally", use the same inference cost), unless a backend
reports a better number.

>>> ledger = Ledger()
>>> ledger.record("tiny", params=1_000, prompt_tokens=10, generated_tokens=5)
>>> ledger.totals("tiny").flops
30000.0
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace


def forward_flops(params: int, tokens: int) -> float:
    """Forward-pass FLOPs of a dense transformer: ``2 * params * tokens``."""
    if params < 0 or tokens < 0:
        raise ValueError(f"params and tokens must be >= 0, got {params}, {tokens}")
    return 2.0 * params * tokens


@dataclass(frozen=True)
class Cost:
    """Tokens and FLOPs spent by one model (or summed over several)."""

    prompt_tokens: int = 0
    generated_tokens: int = 0
    scored_tokens: int = 0
    flops: float = 0.0
    calls: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.generated_tokens + self.scored_tokens

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.prompt_tokens + other.prompt_tokens,
            self.generated_tokens + other.generated_tokens,
            self.scored_tokens + other.scored_tokens,
            self.flops + other.flops,
            self.calls + other.calls,
        )


class Ledger:
    """Thread-safe running totals of compute per model name."""

    def __init__(self) -> None:
        self._costs: dict[str, Cost] = {}
        self._lock = threading.Lock()

    def record(
        self,
        model: str,
        *,
        params: int = 0,
        prompt_tokens: int = 0,
        generated_tokens: int = 0,
        scored_tokens: int = 0,
        flops: float | None = None,
    ) -> Cost:
        """Add one call's cost; ``flops`` overrides the ``2 * params * tokens`` estimate."""
        if min(prompt_tokens, generated_tokens, scored_tokens) < 0:
            raise ValueError("token counts must be >= 0")
        tokens = prompt_tokens + generated_tokens + scored_tokens
        cost = Cost(
            prompt_tokens,
            generated_tokens,
            scored_tokens,
            forward_flops(params, tokens) if flops is None else float(flops),
            1,
        )
        with self._lock:
            self._costs[model] = self._costs.get(model, Cost()) + cost
        return cost

    def totals(self, model: str | None = None) -> Cost:
        """Cost of one model, or of all models together when ``model`` is None."""
        with self._lock:
            if model is not None:
                return self._costs.get(model, Cost())
            total = Cost()
            for c in self._costs.values():
                total = total + c
            return total

    def models(self) -> Iterator[tuple[str, Cost]]:
        with self._lock:
            items = sorted(self._costs.items())
        yield from items

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {
            name: {
                "prompt_tokens": c.prompt_tokens,
                "generated_tokens": c.generated_tokens,
                "scored_tokens": c.scored_tokens,
                "flops": c.flops,
                "calls": c.calls,
            }
            for name, c in self.models()
        }


def scaled(cost: Cost, factor: float) -> Cost:
    """A cost multiplied by ``factor`` (e.g. per-candidate cost times N)."""
    return replace(
        cost,
        prompt_tokens=round(cost.prompt_tokens * factor),
        generated_tokens=round(cost.generated_tokens * factor),
        scored_tokens=round(cost.scored_tokens * factor),
        flops=cost.flops * factor,
    )
