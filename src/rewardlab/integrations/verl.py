"""A rewardlab reward as verl's ``compute_score(data_source, solution_str, ground_truth,
extra_info)``.

verl's reward managers call a custom score function per sample (``custom_reward_function.path``
and ``.name`` in its config) and take a float or a dict with a ``score`` key (the other keys
are logged). Make a module-level function in your file::

    from rewardlab.integrations.verl import verl_compute_score
    compute_score = verl_compute_score("math-verify", timeout_s=10)

``ground_truth`` is the reference answer (or a JSON label, see
:func:`rewardlab.integrations.common.parse_label`); ``extra_info`` may hold ``question`` (the
prompt text, which PRMs read). A sample that cannot be graded scores ``ungraded_value`` (verl
needs a number) and says so in the dict: ``ungraded: 1`` and ``reason``. Every dict has the same
keys (``score``, ``ungraded``, ``reason``: "" when graded), since verl gathers each extra key
into a per-sample list that must cover the whole batch.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from rewardlab.integrations.common import TimedScorer, load_scorer, make_pair, parse_label


def make_compute_score(
    scorer: TimedScorer, ungraded_value: float = 0.0
) -> Callable[..., dict[str, Any]]:
    """verl's ``compute_score`` over ``scorer``: returns ``{"score", "ungraded", ...}``."""

    def compute_score(
        data_source: str,
        solution_str: str,
        ground_truth: Any,
        extra_info: dict[str, Any] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        if not isinstance(solution_str, str):
            raise ValueError(f"solution_str must be text, got {type(solution_str).__name__}")
        answer, meta = parse_label(ground_truth)
        info = extra_info or {}
        question = str(info.get("question", info.get("prompt", "")) or "")
        pid = f"{data_source}-{zlib.crc32(question.encode()):08x}"
        problem, candidate = make_pair(question, solution_str, answer, meta, pid=pid)
        s = scorer.score([problem], [candidate])[0]
        if s.value is None:
            return {"score": ungraded_value, "ungraded": 1, "reason": str(s.info.get("reason"))}
        return {"score": float(s.value), "ungraded": 0, "reason": ""}

    return compute_score


def verl_compute_score(
    spec: str, timeout_s: float = 10.0, ungraded_value: float = 0.0, **kwargs: Any
) -> Callable[..., dict[str, Any]]:
    """``compute_score`` for any registry spec or checkpoint directory."""
    return make_compute_score(load_scorer(spec, timeout_s=timeout_s, **kwargs), ungraded_value)
