"""Training data of the reward-model trainers: JSONL rows to :class:`Example` and batches.

Stepwise rows are TRL's PRM format ``{"prompt", "completions": [step, ...], "labels": [bool |
float, ...]}``; outcome rows ``{"prompt", "completions": [step, ...] | "text": str, "label":
bool | float}``. A bad row raises ``ValueError`` naming the file and line.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.rewards.implicit import response_mask
from rewardlab.rewards.step_format import Encoded, boundary_index, pad_right
from rewardlab.steps import segment


@dataclass(frozen=True)
class Example:
    """One training row: the question, its steps, and step labels and/or the outcome label."""

    prompt: str
    steps: tuple[str, ...]
    step_labels: tuple[float, ...] = ()
    label: float | None = None


def _label(x: Any, where: str) -> float:
    if isinstance(x, bool | int | float) and 0.0 <= float(x) <= 1.0:
        return float(x)
    raise ValueError(f"{where}: a label must be a bool or a float in [0, 1], got {x!r}")


def load_stepwise(path: str | Path) -> list[Example]:
    """TRL stepwise JSONL (``prompt``, ``completions``, ``labels``) as examples."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        row, where = json.loads(line), f"{path}:{n}"
        steps, labels = row.get("completions"), row.get("labels")
        if not isinstance(steps, list) or not isinstance(labels, list) or not steps:
            raise ValueError(f"{where}: stepwise rows need lists 'completions' and 'labels'")
        if len(steps) != len(labels):
            raise ValueError(f"{where}: {len(steps)} steps but {len(labels)} labels")
        out.append(
            Example(
                str(row["prompt"]), tuple(map(str, steps)), tuple(_label(x, where) for x in labels)
            )
        )
    return out


def load_outcome(path: str | Path, segmentation: str = "lines") -> list[Example]:
    """Outcome JSONL (``prompt``, ``completions`` list or ``text``, ``label``) as examples."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        row, where = json.loads(line), f"{path}:{n}"
        if "label" not in row:
            raise ValueError(f"{where}: outcome rows need a 'label'")
        if isinstance(row.get("completions"), list):
            steps = tuple(map(str, row["completions"]))
        elif isinstance(row.get("text"), str):
            steps = segment(row["text"], segmentation)
        else:
            raise ValueError(f"{where}: outcome rows need 'completions' (list) or 'text'")
        if steps:
            out.append(Example(str(row["prompt"]), steps, (), _label(row["label"], where)))
    return out


class Batches:
    """Re-iterable training batches: every pass reshuffles (seeded by the pass number) and
    collates ``batch_size`` examples at a time (the last partial batch is dropped)."""

    def __init__(
        self,
        encoded: Sequence[Encoded],
        step_targets: Sequence[Sequence[float]],
        targets: Sequence[float],
        batch_size: int,
        pad_id: int,
        seed: int = 0,
    ) -> None:
        self.encoded = tuple(encoded)
        self.step_targets = tuple(tuple(t) for t in step_targets)
        self.targets = tuple(targets)
        self.batch_size = batch_size
        self.pad_id = pad_id
        self.seed = seed
        self._passes = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        order = list(range(len(self.encoded)))
        random.Random(self.seed * 1_000_003 + self._passes).shuffle(order)
        self._passes += 1
        for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
            yield self.collate(order[start : start + self.batch_size])

    def collate(self, idx: Sequence[int]) -> dict[str, Any]:
        import torch

        batch = [self.encoded[i] for i in idx]
        ids, mask = pad_right(batch, self.pad_id)
        rows, pos = boundary_index(batch)
        steps = [y for i in idx for y in self.step_targets[i]]
        return {
            "ids": ids,
            "mask": mask,
            "rows": rows,
            "pos": pos,
            "step_targets": torch.tensor(steps, dtype=torch.float32),
            "targets": torch.tensor([self.targets[i] for i in idx], dtype=torch.float32),
            "response": response_mask(batch, ids.shape[1]),
        }
