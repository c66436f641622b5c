"""Code problems: HumanEval / MBPP style JSONL, and a bundled set written for rewardlab.

A record needs a prompt and tests: ``tests`` (or MBPP's ``test_list``): a list of assert
statements, or ``test`` (HumanEval): a module defining ``check(candidate)``, with
``entry_point`` naming the function under test (inferred from the asserts when absent).
Accepted aliases: ``task_id``/``id``, ``prompt``/``text``/``question``,
``canonical_solution``/``code``, ``test_setup_code``/``setup``.

>>> problems = bundled()
>>> len(problems) >= 36, problems[0].task
(True, 'code')

The bundled problems (``rewardlab/assets/code_problems.jsonl``) span three difficulties; each
has a reference solution (``Problem.answer``, a full program) and tests written for this
project, so the code reward runs out of the box. Users plug in HumanEval/MBPP files they have
with :func:`load_jsonl`.
"""

from __future__ import annotations

import ast
import builtins
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from rewardlab.types import Problem

TASK = "code"
BUNDLED = "code_problems.jsonl"


def _first(rec: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if rec.get(key) not in (None, ""):
            return rec[key]
    return None


def infer_entry_point(asserts: list[str]) -> str | None:
    """The first non-builtin function called in the asserts (MBPP records have no entry point)."""
    for text in asserts:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and not hasattr(builtins, node.func.id)
            ):
                return node.func.id
    return None


def from_record(rec: Mapping[str, Any], index: int = 0, task: str = TASK) -> Problem:
    """One JSONL record -> :class:`Problem`; raises ValueError naming what is missing."""
    prompt = _first(rec, "prompt", "text", "question")
    if not isinstance(prompt, str):
        raise ValueError(f"record {index}: no prompt (prompt/text/question)")
    tests = _first(rec, "tests", "test_list")
    test_module = rec.get("test") if isinstance(rec.get("test"), str) else None
    if tests is not None and (
        not isinstance(tests, list) or not all(isinstance(t, str) for t in tests)
    ):
        raise ValueError(f"record {index}: 'tests' must be a list of assert strings")
    if not tests and not test_module:
        raise ValueError(f"record {index}: no tests ('tests'/'test_list' or 'test')")
    entry = _first(rec, "entry_point") or (infer_entry_point(tests) if tests else None)
    if not isinstance(entry, str) or not entry.isidentifier():
        raise ValueError(f"record {index}: no usable entry_point")
    pid = str(_first(rec, "task_id", "id") or f"{task}-{index}")
    meta: dict[str, Any] = {
        "prompt": prompt,
        "entry_point": entry,
        "tests": list(tests or []),
        "test": test_module or "",
        "setup": _first(rec, "test_setup_code", "setup") or "",
        "difficulty": rec.get("difficulty", ""),
    }
    answer = _first(rec, "canonical_solution", "code") or ""
    return Problem(id=pid, question=prompt, answer=str(answer), task=task, meta=meta)


def load_jsonl(path: str | Path, task: str = TASK) -> list[Problem]:
    """Read a HumanEval/MBPP-style JSONL file (blank lines skipped)."""
    problems = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if line.strip():
                problems.append(from_record(json.loads(line), i, task))
    return problems


def bundled(difficulty: str | None = None) -> list[Problem]:
    """The problems shipped with rewardlab (optionally only ``easy``/``medium``/``hard``)."""
    text = (resources.files("rewardlab") / "assets" / BUNDLED).read_text(encoding="utf-8")
    problems = [
        from_record(json.loads(line), i) for i, line in enumerate(text.splitlines()) if line.strip()
    ]
    if difficulty is None:
        return problems
    return [p for p in problems if p.meta["difficulty"] == difficulty]
