"""Online test-time search: strategies that spend compute *during* generation.

Spec strings (``rewardlab scale --strategies``)::

    beam:REWARD:M          beam search, width M (Snell et al. 2024)
    lookahead:REWARD:K     beam search scoring each step after a K-step greedy rollout
    pav:REWARD:M           beam search on Q + alpha * progress (PAV; alpha=1 unless given)
    ovm:REWARD:M           value-guided beam search (OVM) with REWARD as the value model
    dvts:REWARD:M          diverse verifier tree search, N/M subtrees
    mcts:REWARD[:M]        PUCT tree search, M children per expansion
    refine:REWARD          GLoRe-style refinement from the first flagged step

REWARD is any reward spec (``prm``, ``oracle-prm:q=0.8``, a checkpoint directory). Options
follow an ``@``: ``beam:prm:4@select=bon``, ``pav:prm:4@alpha=0.5``,
``mcts:prm:4@c=1.5,rollout=false,rule=rest``, ``refine:prm@threshold=0.6``,
``lookahead:prm:2@width=4``.

>>> s, r = parse_online("beam:oracle-prm:q=0.8:4")
>>> s.name, r
('beam[oracle-prm:q=0.8:4]', 'oracle-prm:q=0.8')
>>> parse_online("mcts:prm@rule=rest")[0].name
'mcts[prm:4@rule=rest]'
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from rewardlab.search.online.base import OnlineStrategy, Partial, SearchResult, pick
from rewardlab.search.online.beam import BeamSearch, DiverseVerifierTreeSearch
from rewardlab.search.online.engine import BudgetExhausted, EngineConfig, StepExpander
from rewardlab.search.online.mcts import MCTS, rest_values
from rewardlab.search.online.refine import Refine

KINDS = ("beam", "lookahead", "pav", "ovm", "dvts", "mcts", "refine")

__all__ = [
    "KINDS",
    "MCTS",
    "BeamSearch",
    "BudgetExhausted",
    "DiverseVerifierTreeSearch",
    "EngineConfig",
    "OnlineStrategy",
    "Partial",
    "Refine",
    "SearchResult",
    "StepExpander",
    "is_online",
    "parse_online",
    "pick",
    "rest_values",
]


def is_online(spec: str) -> bool:
    """Whether a strategy spec names an online strategy (its first part is a known kind)."""
    return spec.split(":", 1)[0].strip() in KINDS


def _options(text: str, spec: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"strategy {spec!r}: option {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def _flag(value: str, key: str, spec: str) -> bool:
    low = value.lower()
    if low not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"strategy {spec!r}: {key}={value!r} is not true/false")
    return low in ("true", "1", "yes")


def parse_online(spec: str) -> tuple[Any, str]:
    """An online strategy and its reward spec from ``KIND:REWARD[:INT][@key=value,...]``.

    Raises ValueError naming the problem (unknown kind with a suggestion, missing reward,
    bad number or option).
    """
    head, _, opts_text = spec.partition("@")
    kind, sep, rest = head.partition(":")
    kind = kind.strip()
    if kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown online strategy {kind!r} in {spec!r}{hint} (known: {KINDS})")
    reward, number = rest, None
    tail = rest.rsplit(":", 1)
    if len(tail) == 2 and tail[1].strip().lstrip("-").isdigit():
        reward, number = tail[0], int(tail[1])
    reward = reward.strip()
    if not sep or not reward:
        raise ValueError(f"strategy {spec!r} needs a reward: {kind}:REWARD (e.g. {kind}:prm)")
    opts = _options(opts_text, spec)
    try:
        strategy = _build(kind, reward, number, opts, spec)
    except TypeError as e:
        raise ValueError(f"strategy {spec!r}: {e}") from None
    if opts:  # options are part of the name: two variants never share a row or a line
        label = ",".join(f"{k}={opts[k]}" for k in sorted(opts))
        strategy = dataclasses.replace(strategy, label=label)
    unknown = set(opts) - _KNOWN_OPTIONS[kind]
    if unknown:
        raise ValueError(
            f"strategy {spec!r}: unknown option(s) {sorted(unknown)}; "
            f"{kind} takes {sorted(_KNOWN_OPTIONS[kind])}"
        )
    return strategy, reward


_KNOWN_OPTIONS = {
    "beam": {"select"},
    "ovm": {"select"},
    "pav": {"select", "alpha"},
    "lookahead": {"select", "width"},
    "dvts": {"select"},
    "mcts": {"select", "c", "rollout", "rule"},
    "refine": {"select", "threshold"},
}


def _build(kind: str, reward: str, number: int | None, opts: dict[str, str], spec: str) -> Any:
    select = opts.get("select", "bon" if kind == "refine" else "wmaj")
    if select not in ("wmaj", "bon", "maj"):
        raise ValueError(f"strategy {spec!r}: select={select!r}; choose wmaj, bon or maj")
    if number is not None and number < 1:
        raise ValueError(f"strategy {spec!r}: the number must be >= 1, got {number}")
    try:
        if kind in ("beam", "ovm"):
            return BeamSearch(reward, width=number or 4, select=select, kind=kind)
        if kind == "pav":
            alpha = float(opts.get("alpha", 1.0))
            return BeamSearch(reward, width=number or 4, alpha=alpha, select=select, kind="pav")
        if kind == "lookahead":
            width = int(opts.get("width", 4))
            return BeamSearch(
                reward, width=width, lookahead=number or 1, select=select, kind="lookahead"
            )
        if kind == "dvts":
            return DiverseVerifierTreeSearch(reward, width=number or 4, select=select)
        if kind == "mcts":
            return MCTS(
                reward,
                width=number or 4,
                c_puct=float(opts.get("c", 1.0)),
                rollout=_flag(opts.get("rollout", "true"), "rollout", spec),
                value_rule=opts.get("rule", "mean"),
                select=select,
            )
        return Refine(reward, threshold=float(opts.get("threshold", 0.5)), select=select)
    except ValueError as e:
        raise ValueError(f"strategy {spec!r}: {e}") from None
