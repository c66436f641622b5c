"""Exact step labels from a task's own step checker (the ``arith`` testbed's ``check_steps``).

A step is good iff it is correct (parsed, arithmetically valid, on track with the gold states)
and no earlier step is wrong; the first error is the first step that is not correct. No
rollouts are spent, so every other labeler's quality can be measured against these labels.

>>> from rewardlab.tasks.arith import ArithTask, generate, gold_steps
>>> from rewardlab.types import Candidate
>>> p = generate(n=1, seed=0, n_ops=(2, 2))[0]
>>> steps = (gold_steps(p)[0], "1 + 1 = 3", gold_steps(p)[2])
>>> s = Candidate(p.id, "\\n".join(steps), steps, None)
>>> TruthLabeler(ArithTask()).label([p], [s])[0].labels
(True, False)
"""

from __future__ import annotations

from dataclasses import dataclass

from rewardlab.label.base import StepLabels, labels_from_first_error
from rewardlab.label.common import ChunkedLabeler, step_labels
from rewardlab.tasks.base import Task
from rewardlab.types import Candidate, Problem


def true_first_error(task: Task, problem: Problem, sample: Candidate) -> int:
    """The first wrong step by the task's checker (-1 if none).

    Raises:
        ValueError: the task gives no step truth (its ``annotate`` has no ``first_error``), or
            its steps do not match the sample's.
    """
    note = task.annotate(problem, sample.text)
    if "first_error" not in note or "steps" not in note:
        raise ValueError(f"task {task.name!r} has no step truth (annotate() gives no first_error)")
    if len(note["steps"]) != len(sample.steps):
        raise ValueError(
            f"the checker sees {len(note['steps'])} steps in sample {sample.problem_id}"
            f"#{sample.index}, the sample has {len(sample.steps)}"
        )
    return int(note["first_error"])


@dataclass(frozen=True)
class TruthLabeler(ChunkedLabeler):
    """The task's exact step truth as a labeler (zero rollouts).

    Args:
        task: a task whose ``annotate`` gives ``steps`` and ``first_error`` (``arith``).
        truncate: stop the record after the first bad step (default); False labels every later
            step bad.
    """

    task: Task
    truncate: bool = True

    @property
    def name(self) -> str:
        return "truth"

    def _label_chunk(self, problems: list[Problem], samples: list[Candidate]) -> list[StepLabels]:
        out = []
        for p, s in zip(problems, samples, strict=True):
            fe = true_first_error(self.task, p, s)
            labels = labels_from_first_error(len(s.steps), fe, self.truncate)
            out.append(step_labels(self.name, p, s, labels, fe))
        return out
