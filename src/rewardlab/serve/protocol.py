"""Request parsing and checking, pure: raw bytes in, samples out, or a :class:`BadRequest`
with the HTTP status and a reason naming the problem.

``/get_reward`` (OpenRLHF): ``{"query": [str], "prompts": [str]?, "labels": [str|number|null]?}``.
``query[i]`` is prompt + response text; the response is what follows ``prompts[i]`` (see
:func:`rewardlab.integrations.common.split_query`); ``labels[i]`` is the reference answer or a
JSON object text ``{"answer", "meta"}`` (:func:`~rewardlab.integrations.common.parse_label`).
Other keys are ignored (OpenRLHF may add some).

``/score``: ``{"items": [{"prompt": str, "response": str, "answer": str?, "meta": {}?,
"steps": [str]?}], "aggregate": "last|min|mean|prod|sum"?, "shaping": "clip|delta|clip-delta"?,
"eta": float?}``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from rewardlab.integrations.common import make_pair, parse_label, split_query
from rewardlab.types import Candidate, Problem

AGGREGATES = ("last", "min", "mean", "prod", "sum")
SHAPINGS = ("clip", "delta", "clip-delta")


class BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Limits:
    max_items: int = 4096
    max_chars: int = 200_000  # per text field


@dataclass(frozen=True)
class Parsed:
    problems: list[Problem]
    candidates: list[Candidate]
    notes: list[str | None]
    aggregate: str | None = None
    shaping: str | None = None
    eta: float = 0.5


def _reject_constant(name: str) -> Any:
    raise BadRequest(400, f"{name} is not valid JSON (NaN and Infinity are not allowed)")


def decode_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; 400 for bad UTF-8, bad JSON, NaN/Infinity; 422 for a
    non-object."""
    if not body:
        raise BadRequest(400, "empty body: send a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequest(400, f"body is not valid UTF-8 (byte {e.start})") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except BadRequest:
        raise
    except (ValueError, RecursionError) as e:
        raise BadRequest(400, f"body is not valid JSON: {str(e)[:120]}") from None
    if not isinstance(obj, dict):
        raise BadRequest(422, f"body must be a JSON object, got {type(obj).__name__}")
    return obj


def _texts(
    obj: dict[str, Any], key: str, limits: Limits, n: int | None, nullable: bool
) -> list[Any]:
    xs = obj[key]
    if not isinstance(xs, list):
        raise BadRequest(422, f"'{key}' must be a list, got {type(xs).__name__}")
    if n is None:
        if not xs:
            raise BadRequest(422, f"'{key}' is empty: nothing to score")
        if len(xs) > limits.max_items:
            raise BadRequest(413, f"'{key}' has {len(xs)} entries; the limit is {limits.max_items}")
    elif len(xs) != n:
        raise BadRequest(422, f"'{key}' has {len(xs)} entries but 'query' has {n}")
    for i, x in enumerate(xs):
        if x is None and nullable:
            continue
        if not isinstance(x, str):
            raise BadRequest(422, f"'{key}[{i}]' must be a string, got {type(x).__name__}")
        if len(x) > limits.max_chars:
            raise BadRequest(
                413, f"'{key}[{i}]' has {len(x)} chars; the limit is {limits.max_chars}"
            )
    return xs


def parse_get_reward(obj: dict[str, Any], limits: Limits) -> Parsed:
    """OpenRLHF's request into samples (see the module docstring)."""
    if "query" not in obj:
        raise BadRequest(422, "missing key 'query' (a list of prompt+response strings)")
    queries = _texts(obj, "query", limits, None, nullable=False)
    n = len(queries)
    prompts = _texts(obj, "prompts", limits, n, True) if obj.get("prompts") is not None else None
    labels = obj.get("labels")
    if labels is not None:
        if not isinstance(labels, list):
            raise BadRequest(422, f"'labels' must be a list, got {type(labels).__name__}")
        if len(labels) != n:
            raise BadRequest(422, f"'labels' has {len(labels)} entries but 'query' has {n}")
    problems, candidates, notes = [], [], []
    for i, q in enumerate(queries):
        prompt, response, note = split_query(q, prompts[i] if prompts is not None else None)
        try:
            answer, meta = parse_label(labels[i] if labels is not None else None)
        except ValueError as e:
            raise BadRequest(422, f"'labels[{i}]': {e}") from None
        p, c = make_pair(prompt, response, answer, meta, pid=f"q{i}")
        problems.append(p)
        candidates.append(c)
        notes.append(note)
    return Parsed(problems, candidates, notes)


def parse_score(obj: dict[str, Any], limits: Limits) -> Parsed:
    """The ``/score`` request into samples (see the module docstring)."""
    items = obj.get("items")
    if items is None:
        raise BadRequest(422, "missing key 'items' (a list of {prompt, response, answer?})")
    if not isinstance(items, list):
        raise BadRequest(422, f"'items' must be a list, got {type(items).__name__}")
    if not items:
        raise BadRequest(422, "'items' is empty: nothing to score")
    if len(items) > limits.max_items:
        raise BadRequest(413, f"'items' has {len(items)} entries; the limit is {limits.max_items}")
    aggregate = obj.get("aggregate")
    if aggregate is not None and aggregate not in AGGREGATES:
        raise BadRequest(422, f"'aggregate' must be one of {list(AGGREGATES)}, got {aggregate!r}")
    shaping = obj.get("shaping")
    if shaping is not None and shaping not in SHAPINGS:
        raise BadRequest(422, f"'shaping' must be one of {list(SHAPINGS)}, got {shaping!r}")
    eta = obj.get("eta", 0.5)
    if isinstance(eta, bool) or not isinstance(eta, int | float) or not math.isfinite(eta):
        raise BadRequest(422, f"'eta' must be a finite number, got {eta!r}")
    problems, candidates = [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest(422, f"'items[{i}]' must be an object, got {type(item).__name__}")
        for key, required in (("prompt", True), ("response", True), ("answer", False)):
            v = item.get(key)
            if v is None and not required:
                continue
            if not isinstance(v, str):
                what = "missing" if v is None else f"a {type(v).__name__}"
                raise BadRequest(422, f"'items[{i}].{key}' must be a string, is {what}")
            if len(v) > limits.max_chars:
                raise BadRequest(
                    413, f"'items[{i}].{key}' has {len(v)} chars (limit {limits.max_chars})"
                )
        meta = item.get("meta")
        meta = {} if meta is None else meta
        if not isinstance(meta, dict):
            raise BadRequest(422, f"'items[{i}].meta' must be an object")
        steps = item.get("steps")
        if steps is not None and (
            not isinstance(steps, list) or not all(isinstance(s, str) for s in steps)
        ):
            raise BadRequest(422, f"'items[{i}].steps' must be a list of strings")
        p, c = make_pair(
            item["prompt"],
            item["response"],
            item.get("answer") or "",
            meta,
            pid=f"i{i}",
            steps=steps,
        )
        problems.append(p)
        candidates.append(c)
    return Parsed(problems, candidates, [None] * len(items), aggregate, shaping, float(eta))


def json_safe(x: Any, depth: int = 0) -> Any:
    """``x`` made JSON-serialisable without NaN: non-finite floats and unknown objects become
    strings; deep structures are cut at depth 8."""
    if depth > 8:
        return str(x)[:200]
    if x is None or isinstance(x, bool | int | str):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else str(x)
    if isinstance(x, dict):
        return {str(k): json_safe(v, depth + 1) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v, depth + 1) for v in x]
    try:
        f = float(x)
        return f if math.isfinite(f) else str(f)
    except (TypeError, ValueError):
        return str(x)[:200]
