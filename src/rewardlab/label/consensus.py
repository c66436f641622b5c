"""Consensus filtering (Zhang et al. 2025, "The lessons of developing process reward models in
mathematical reasoning").

Two labelers label the same samples; a sample is kept only when both put the first error at the
same step (both saying "no error" counts as agreement). The kept record is the *primary*
labeler's (the paper keeps the MC hard labels and uses an LLM judge as the second opinion); its
cost is the sum of both labelers' costs. Dropped samples are returned with ``kept=False`` so the
caller can count them; ``info`` holds the judge's first error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from rewardlab.label.base import Labeler, Progress, StepLabels, check_inputs
from rewardlab.types import Candidate, Problem


@dataclass(frozen=True)
class ConsensusLabeler:
    """Keep samples on which ``primary`` and ``judge`` agree on the first-error position."""

    primary: Labeler
    judge: Labeler

    @property
    def name(self) -> str:
        return f"consensus({self.primary.name},{self.judge.name})"

    def label(
        self,
        problems: Sequence[Problem],
        samples: Sequence[Candidate],
        progress: Progress | None = None,
    ) -> list[StepLabels]:
        check_inputs(problems, samples)
        total = 2 * len(samples)

        def first_half(done: int, _: int) -> None:
            if progress is not None:
                progress(done, total)

        def second_half(done: int, _: int) -> None:
            if progress is not None:
                progress(len(samples) + done, total)

        ours = self.primary.label(problems, samples, first_half)
        theirs = self.judge.label(problems, samples, second_half)
        return [combine(a, b, self.name) for a, b in zip(ours, theirs, strict=True)]


def combine(primary: StepLabels, judge: StepLabels, name: str) -> StepLabels:
    """The primary record, kept iff both agree on the first error, with both costs summed."""
    return replace(
        primary,
        labeler=name,
        kept=primary.kept and judge.kept and primary.first_error == judge.first_error,
        rollouts=primary.rollouts + judge.rollouts,
        prompt_tokens=primary.prompt_tokens + judge.prompt_tokens,
        generated_tokens=primary.generated_tokens + judge.generated_tokens,
        fresh_rollouts=primary.fresh_rollouts + judge.fresh_rollouts,
        info={
            **primary.info,
            "primary": primary.labeler,
            "judge": judge.labeler,
            "judge_first_error": judge.first_error,
        },
    )
