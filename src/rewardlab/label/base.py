"""Shared types of the labelers: the stepwise record, the ``Labeler`` contract, small helpers.

A labeler turns sampled solutions into *process labels*: one label per step, in TRL's stepwise
format (``prompt``, ``completions`` = the steps, ``labels`` = one bool or float per step), with
what it cost (rollouts, tokens) and its estimate of the first wrong step.

Label semantics shared by every labeler (see ``docs/process_supervision.md``):

- ``first_error`` is the index of the first step judged wrong, or -1 when none is (ProcessBench's
  convention).
- By default a record is **truncated after its first bad step** (``completions`` and ``labels``
  stop at ``first_error``, inclusive), as in OmegaPRM (Luo et al. 2024) and PRM800K-style data:
  what follows a wrong step is either undetermined (binary search never looks there) or, on the
  testbed, wrong by definition. ``n_steps`` keeps the length of the whole sample.

>>> labels_from_first_error(4, 2)
(True, True, False)
>>> labels_from_first_error(4, 2, truncate=False)
(True, True, False, False)
>>> labels_from_first_error(3, -1)
(True, True, True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rewardlab.tasks.base import Task
from rewardlab.types import Candidate, Problem

Progress = Callable[[int, int], None]
Label = bool | float

SEPARATORS: dict[str, str] = {"lines": "\n", "paragraphs": "\n\n"}


def step_separator(segmentation: str) -> str:
    """The text that joins steps of a segmentation back into a solution (``"\\n"`` for lines)."""
    try:
        return SEPARATORS[segmentation]
    except KeyError:
        raise ValueError(
            f"no step separator for segmentation {segmentation!r}; known: {sorted(SEPARATORS)}"
        ) from None


@dataclass(frozen=True)
class StepLabels:
    """Process labels of one sampled solution, plus what they cost.

    Attributes:
        problem: the problem the sample answers (its ``question`` is the TRL ``prompt``).
        sample_index: the sample's index in its pool.
        completions: the steps that carry a label (truncated after the first bad step unless the
            labeler was asked not to).
        labels: one per completion: bool (hard) or float (soft MC value, progress advantage).
        labeler: the labeler's name (``"mc-hard"``, ``"binary"``, ...).
        first_error: estimated index of the first wrong step, -1 if none.
        n_steps: number of steps of the whole sample.
        rollouts: policy completions these labels depend on (cached ones included, so the count
            is the method's cost, not this run's).
        prompt_tokens / generated_tokens: tokens of those rollouts.
        fresh_rollouts: how many of them this call generated (the rest came from the store).
        values: per step of the whole sample, the value estimate after that step (MC fraction,
            prover value ...), None where the labeler did not estimate it.
        kept: False when a filter (consensus) dropped the sample.
        info: labeler-specific extras (JSON-serialisable).
    """

    problem: Problem
    sample_index: int
    completions: tuple[str, ...]
    labels: tuple[Label, ...]
    labeler: str
    first_error: int
    n_steps: int
    rollouts: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    fresh_rollouts: int = 0
    values: tuple[float | None, ...] = ()
    kept: bool = True
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.completions) != len(self.labels):
            raise ValueError(f"{len(self.completions)} completions but {len(self.labels)} labels")
        if not -1 <= self.first_error < max(self.n_steps, 1):
            raise ValueError(f"first_error {self.first_error} outside -1..{self.n_steps - 1}")

    @property
    def id(self) -> str:
        """``<problem id>#<sample index>``: unique within one labelled pool."""
        return f"{self.problem.id}#{self.sample_index}"

    def to_record(self) -> dict[str, Any]:
        """One JSON-serialisable line: TRL's stepwise fields first, then the metadata.

        ``fresh_rollouts`` is left out (it describes a run, not the labels), so a resumed run
        writes the same lines as an uninterrupted one."""
        return {
            "prompt": self.problem.question,
            "completions": list(self.completions),
            "labels": list(self.labels),
            "id": self.id,
            "labeler": self.labeler,
            "first_error": self.first_error,
            "n_steps": self.n_steps,
            "rollouts": self.rollouts,
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "values": list(self.values),
            "kept": self.kept,
            "info": dict(self.info),
            "problem": {
                "id": self.problem.id,
                "answer": self.problem.answer,
                "task": self.problem.task,
                "meta": dict(self.problem.meta),
            },
            "sample_index": self.sample_index,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> StepLabels:
        """Inverse of :meth:`to_record` (``fresh_rollouts`` reads back as 0)."""
        p = record["problem"]
        problem = Problem(p["id"], record["prompt"], p["answer"], p.get("task", ""), p["meta"])
        return cls(
            problem=problem,
            sample_index=int(record["sample_index"]),
            completions=tuple(record["completions"]),
            labels=tuple(record["labels"]),
            labeler=record["labeler"],
            first_error=int(record["first_error"]),
            n_steps=int(record["n_steps"]),
            rollouts=int(record.get("rollouts", 0)),
            prompt_tokens=int(record.get("prompt_tokens", 0)),
            generated_tokens=int(record.get("generated_tokens", 0)),
            values=tuple(record.get("values", ())),
            kept=bool(record.get("kept", True)),
            info=record.get("info", {}),
        )


@runtime_checkable
class Labeler(Protocol):
    """Anything that labels the steps of sampled solutions.

    ``label(problems, samples)`` returns one :class:`StepLabels` per sample, in order;
    ``problems[i]`` is the problem ``samples[i]`` answers. ``progress(done, total)`` is called
    as samples are finished. Nothing is mutated; the result depends only on the inputs, the
    labeler's parameters and (for rollout labelers) the policy's seeded sampling.
    """

    @property
    def name(self) -> str: ...

    def label(
        self,
        problems: Sequence[Problem],
        samples: Sequence[Candidate],
        progress: Progress | None = None,
    ) -> list[StepLabels]: ...


def labels_from_first_error(
    n_steps: int, first_error: int, truncate: bool = True
) -> tuple[bool, ...]:
    """Hard labels from a first-error index: good before it, bad at it.

    After it: nothing when ``truncate`` (the record stops at the first bad step), else bad (a
    step after an error is not good, the testbed's definition).
    """
    if first_error < 0:
        return (True,) * n_steps
    tail = 1 if truncate else n_steps - first_error
    return (True,) * first_error + (False,) * tail


def first_false(flags: Sequence[bool]) -> int:
    """Index of the first False, -1 if none.

    >>> first_false([True, False, False]), first_false([True])
    (1, -1)
    """
    return next((i for i, f in enumerate(flags) if not f), -1)


def terminal_value(task: Task, problem: Problem, sample: Candidate) -> float | None:
    """The value of a *finished* sample (one whose text holds a final answer): 1.0 if the answer
    is right, else 0.0. None for a sample without an answer (its value needs rollouts)."""
    answer = task.extract_answer(sample.text)
    if answer is None:
        return None
    return 1.0 if task.is_correct(problem, answer) else 0.0


def check_inputs(problems: Sequence[Problem], samples: Sequence[Candidate]) -> None:
    """Raise ValueError unless problems and samples align (same length, matching ids)."""
    if len(problems) != len(samples):
        raise ValueError(f"{len(problems)} problems for {len(samples)} samples")
    for p, s in zip(problems, samples, strict=True):
        if p.id != s.problem_id:
            raise ValueError(f"sample of problem {s.problem_id!r} paired with problem {p.id!r}")
        if not s.steps:
            raise ValueError(f"sample {s.problem_id}#{s.index} has no steps to label")


def chunks(n: int, size: int) -> list[range]:
    """``range(n)`` cut into consecutive ranges of at most ``size``."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    return [range(i, min(i + size, n)) for i in range(0, n, size)]
