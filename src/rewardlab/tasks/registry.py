"""Resolve a task name or file into a :class:`Task` and its problems."""

from __future__ import annotations

from pathlib import Path

from rewardlab.tasks.base import Task
from rewardlab.types import Problem

KNOWN = ("arith", "<path to a .jsonl file>")


def load_task(
    spec: str, n: int | None = None, *, seed: int = 0, n_ops: tuple[int, int] = (1, 8)
) -> tuple[Task, list[Problem]]:
    """``"arith"`` → the testbed (``n`` fresh problems from ``seed``, difficulties ``n_ops``);
    a ``.jsonl`` path → GSM8K/MATH-style problems (the first ``n``), checked by Math-Verify."""
    if spec == "arith":
        from rewardlab.tasks import arith

        return arith.ArithTask(), arith.generate(n or 200, seed=seed, n_ops=n_ops)
    path = Path(spec)
    if path.suffix == ".jsonl":
        if not path.exists():
            raise FileNotFoundError(f"task file {path} does not exist")
        from rewardlab.tasks.jsonl import load_jsonl_task
        from rewardlab.tasks.math_check import MathTask

        problems = load_jsonl_task(path)
        return MathTask(name=problems[0].task if problems else path.stem), problems[:n]
    raise ValueError(f"unknown task {spec!r}; expected one of {KNOWN}")
