"""The ``Task`` contract: a source of problems plus the checker that knows their answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from rewardlab.types import Problem


@runtime_checkable
class Task(Protocol):
    """What the jobs need from a task.

    ``segmentation`` names the step segmenter for candidates of this task;
    ``extract_answer`` pulls the final answer out of a solution text (None if absent);
    ``same_answer`` decides answer equivalence (used to group votes, never string equality
    for general math); ``is_correct`` grades a final answer against the problem;
    ``annotate`` returns JSON-serialisable per-candidate extras (e.g. exact step truth).
    """

    @property
    def name(self) -> str: ...

    @property
    def segmentation(self) -> str: ...

    def extract_answer(self, text: str) -> str | None: ...

    def same_answer(self, a: str, b: str) -> bool: ...

    def is_correct(self, problem: Problem, answer: str | None) -> bool: ...

    def annotate(self, problem: Problem, text: str) -> Mapping[str, Any]: ...
