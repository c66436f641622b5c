"""PRM training data for hierarchical reward models (HRM) and node-merge augmentation (HNC).

Rows are TRL's stepwise format ``{"prompt", "completions": [step, ...], "labels": [...]}`` with
labels in [0, 1] (hard labels, or Math-Shepherd-style MC values: the fraction of rollouts from
the state after the step that reach the right answer).

- :func:`hrm_rows` (HRM, Wang et al. 2025): for every consecutive pair (t, t+1) a coarse row:
  steps 1..t−1 as they are, then s_t ⊕ s_{t+1} as one step, labelled like the state the merged
  step ends in (``labels[t+1]``). A wrong step that the next one corrects gives a positive
  merged step, which is what lets the PRM forgive self-corrections.
- :func:`hnc_augment` (Hierarchical Node Compression, same paper): with probability ``p`` per
  row, merge one uniformly chosen consecutive pair (parent and child node) into one step,
  again labelled like the child. It adds rows whose step granularity differs, at no rollout
  cost. papers.md marks the merged node's MC value and the merge probability as unconfirmed:
  the child's label and p = 0.5 are our defaults, both exposed.

Both return new rows (the inputs are left unchanged); :func:`write_rows` writes JSONL that
``rewardlab train --objective prm --data FILE`` reads.

>>> hrm_rows([{"prompt": "q", "completions": ["a", "b", "c"], "labels": [1, 0, 1]}])[1]
{'prompt': 'q', 'completions': ['a', 'b\\nc'], 'labels': [1, 1], 'hrm': 'pair-1'}
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rewardlab.rewards.hrm import MERGE_SEP, merged_steps


def _check(row: Mapping[str, Any], i: int) -> tuple[list[str], list[Any]]:
    steps, labels = row.get("completions"), row.get("labels")
    if not isinstance(steps, list) or not isinstance(labels, list) or not steps:
        raise ValueError(f"row {i}: stepwise rows need lists 'completions' and 'labels'")
    if len(steps) != len(labels):
        raise ValueError(f"row {i}: {len(steps)} steps but {len(labels)} labels")
    return [str(s) for s in steps], list(labels)


def merge_row(row: Mapping[str, Any], t: int, sep: str = MERGE_SEP) -> dict[str, Any]:
    """``row`` with steps t and t+1 (0-based) merged; the merged step takes ``labels[t+1]``,
    and the steps after the pair are kept."""
    steps, labels = _check(row, 0)
    merged = [*merged_steps(steps, t, sep), *steps[t + 2 :]]
    return {**row, "completions": merged, "labels": [*labels[:t], labels[t + 1], *labels[t + 2 :]]}


def hrm_rows(rows: Sequence[Mapping[str, Any]], sep: str = MERGE_SEP) -> list[dict[str, Any]]:
    """Coarse-grained HRM rows: for every consecutive pair, the prefix plus the merged pair
    (truncated there: the merged step is the last one), tagged ``hrm = "pair-<t>"``."""
    out = []
    for i, row in enumerate(rows):
        steps, labels = _check(row, i)
        for t in range(len(steps) - 1):
            out.append(
                {
                    **row,
                    "completions": list(merged_steps(steps, t, sep)),
                    "labels": [*labels[:t], labels[t + 1]],
                    "hrm": f"pair-{t}",
                }
            )
    return out


def hnc_augment(
    rows: Sequence[Mapping[str, Any]], p: float = 0.5, seed: int = 0, sep: str = MERGE_SEP
) -> list[dict[str, Any]]:
    """HNC: for each row with >= 2 steps, with probability ``p`` one extra row with a uniformly
    chosen consecutive pair merged (tagged ``hnc = t``). Seeded, so reruns give the same rows."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    rng = random.Random(seed)
    out = []
    for i, row in enumerate(rows):
        steps, _ = _check(row, i)
        if len(steps) < 2 or rng.random() >= p:
            continue
        t = rng.randrange(len(steps) - 1)
        out.append({**merge_row(row, t, sep), "hnc": t})
    return out


def write_rows(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """JSONL, one row a line."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return out
