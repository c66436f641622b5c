"""What the labelers share: the chunked ``label`` loop, batched prefix estimates, the record.

Kept apart from :mod:`rewardlab.label.base` because it needs :mod:`rewardlab.label.rollouts`,
which itself imports ``base``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rewardlab.label.base import (
    Label,
    Progress,
    StepLabels,
    check_inputs,
    chunks,
    terminal_value,
)
from rewardlab.label.rollouts import Estimate, RolloutEstimator
from rewardlab.types import Candidate, Problem


class ChunkedLabeler:
    """Mixin giving a labeler its ``label``: check the inputs, label ``chunk`` samples at a time
    with ``_label_chunk`` and report ``progress(done, total)`` after each chunk."""

    @property
    def chunk(self) -> int:
        """Samples per chunk: one unless the labeler has a ``chunk`` field."""
        return 1

    def label(
        self,
        problems: Sequence[Problem],
        samples: Sequence[Candidate],
        progress: Progress | None = None,
    ) -> list[StepLabels]:
        check_inputs(problems, samples)
        out: list[StepLabels] = []
        for part in chunks(len(samples), self.chunk):
            out += self._label_chunk([problems[i] for i in part], [samples[i] for i in part])
            if progress is not None:
                progress(part.stop, len(samples))
        return out

    def _label_chunk(self, problems: list[Problem], samples: list[Candidate]) -> list[StepLabels]:
        """One :class:`StepLabels` per sample of the chunk, in order."""
        raise NotImplementedError


def estimate_prefixes(
    estimator: RolloutEstimator,
    k: int,
    problems: Sequence[Problem],
    samples: Sequence[Candidate],
    lengths: Callable[[int, bool], Iterable[int]],
) -> list[tuple[dict[int, Estimate], float | None]]:
    """Per sample, ``k``-rollout estimates of its prefixes (a dict prefix length -> estimate)
    and its terminal value (:func:`~rewardlab.label.base.terminal_value`, None if unfinished).

    ``lengths(n_steps, finished)`` says which prefix lengths to estimate; every sample's
    prefixes go to the policy in one batch.
    """
    terminal = [
        terminal_value(estimator.task, p, s) for p, s in zip(problems, samples, strict=True)
    ]
    queries: list[tuple[Problem, Sequence[str]]] = []
    owners: list[tuple[int, int]] = []  # (sample, prefix length)
    for i, (p, s) in enumerate(zip(problems, samples, strict=True)):
        for j in lengths(len(s.steps), terminal[i] is not None):
            queries.append((p, s.steps[:j]))
            owners.append((i, j))
    estimates = estimator.estimate(queries, k) if queries else []
    per_sample: list[dict[int, Estimate]] = [{} for _ in samples]
    for (i, j), e in zip(owners, estimates, strict=True):
        per_sample[i][j] = e
    return list(zip(per_sample, terminal, strict=True))


def step_labels(
    labeler: str,
    problem: Problem,
    sample: Candidate,
    labels: Sequence[Label],
    first_error: int,
    *,
    truncate: bool = False,
    estimates: Iterable[Estimate] = (),
    values: Sequence[float | None] = (),
    info: Mapping[str, Any] | None = None,
) -> StepLabels:
    """The record of one sample: its first ``len(labels)`` steps carry ``labels`` (cut after
    ``first_error`` when ``truncate``); the cost is summed over the ``estimates`` it used."""
    if truncate and first_error >= 0:
        labels = labels[: first_error + 1]
    est = list(estimates)
    return StepLabels(
        problem=problem,
        sample_index=sample.index,
        completions=tuple(sample.steps[: len(labels)]),
        labels=tuple(labels),
        labeler=labeler,
        first_error=first_error,
        n_steps=len(sample.steps),
        rollouts=sum(e.k for e in est),
        prompt_tokens=sum(e.prompt_tokens for e in est),
        generated_tokens=sum(e.generated_tokens for e in est),
        fresh_rollouts=sum(e.fresh for e in est),
        values=tuple(values),
        info={} if info is None else info,
    )
