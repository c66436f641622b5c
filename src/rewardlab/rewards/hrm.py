"""Hierarchical process scoring (HRM, Wang et al. 2025, "Towards Hierarchical Multi-Step Reward
Models for Enhanced Reasoning in LLMs"): a PRM reads single steps *and* merged pairs of
consecutive steps.

For steps s_1..s_n the fine scores f_t are the PRM's step scores; the coarse score c_t
(t < n) is the PRM's score of the merged step s_t ⊕ s_{t+1} after the prefix s_1..s_{t−1}. A
step whose error the next step corrects (self-reflection) is then not punished for it: the
hierarchical step score is h_t = max(f_t, c_t) for t < n and h_n = f_n, and the candidate's
score aggregates h (``min`` by default). papers.md marks the HRM inference rule as not
confirmed: this max-combination is ours, stated here and tested by hand.

``HierarchicalPRM`` wraps any :class:`~rewardlab.rewards.base.StepReward` (one pass for the
fine scores, plus one per consecutive pair; the pair runs are batched together). It is the
registry's ``hrm:inner=SPEC,aggregate=min``.

>>> hierarchical_step_scores([0.9, 0.1, 0.8], [0.2, 0.7])
(0.9, 0.7, 0.8)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from rewardlab.rewards.prm import aggregate
from rewardlab.types import Candidate, Problem, Score

MERGE_SEP = "\n"


def merged_steps(steps: Sequence[str], t: int, sep: str = MERGE_SEP) -> tuple[str, ...]:
    """Steps ``0..t−1`` as they are, then steps t and t+1 merged into one (0-based t)."""
    if not 0 <= t < len(steps) - 1:
        raise ValueError(f"no consecutive pair at step {t} of {len(steps)} steps")
    return (*steps[:t], steps[t] + sep + steps[t + 1])


def hierarchical_step_scores(fine: Sequence[float], coarse: Sequence[float]) -> tuple[float, ...]:
    """h_t = max(f_t, c_t) for t < n − 1 (0-based), h_{n−1} = f_{n−1}.

    ``coarse`` has one score per consecutive pair (n − 1 of them).
    """
    if len(coarse) != max(0, len(fine) - 1):
        raise ValueError(f"{len(fine)} fine scores need {max(0, len(fine) - 1)} coarse ones")
    return tuple(float(max(f, c)) for f, c in zip(fine[:-1], coarse, strict=True)) + tuple(
        float(x) for x in fine[-1:]
    )


class HierarchicalPRM:
    """A StepReward read at single steps and at merged consecutive pairs (module docstring)."""

    def __init__(self, inner: Any, *, aggregate_how: str = "min", name: str | None = None) -> None:
        if not hasattr(inner, "score_steps"):
            raise ValueError(f"hrm needs a step reward (score_steps), got {type(inner).__name__}")
        aggregate([1.0], aggregate_how)  # validates the name
        self.inner = inner
        self.aggregate = aggregate_how
        self.name = name or f"hrm[{getattr(inner, 'name', 'prm')}]"
        self.params = int(getattr(inner, "params", 0))

    def score_steps(
        self, problems: Sequence[Problem], candidates: Sequence[Candidate]
    ) -> list[Score]:
        """``Score.steps`` = h (one per step), ``value`` = their aggregate; ``info`` holds
        the fine and coarse scores."""
        if len(problems) != len(candidates):
            raise ValueError(f"{len(problems)} problems for {len(candidates)} candidates")
        fine = self.inner.score_steps(problems, candidates)
        jobs: list[tuple[int, Problem, Candidate]] = []
        for i, (p, c) in enumerate(zip(problems, candidates, strict=True)):
            if fine[i].value is None:
                continue
            for t in range(len(c.steps) - 1):
                jobs.append((i, p, replace(c, steps=merged_steps(c.steps, t))))
        pair_scores = self.inner.score_steps([j[1] for j in jobs], [j[2] for j in jobs])
        coarse: dict[int, list[float]] = {}
        failed: dict[int, str] = {}
        for (i, _, _), s in zip(jobs, pair_scores, strict=True):
            if s.value is None or not s.steps:
                failed[i] = str(s.info.get("reason", "a merged pair was not graded"))
            else:
                coarse.setdefault(i, []).append(float(s.steps[-1]))
        out = []
        for i, f in enumerate(fine):
            if f.value is None:
                out.append(f)
            elif i in failed:
                out.append(Score.ungraded(f"hrm: {failed[i]}"))
            else:
                fs = [float(x) for x in f.steps] or [float(f.value)]
                h = hierarchical_step_scores(fs, coarse.get(i, []))
                out.append(
                    Score(
                        aggregate(h, self.aggregate),
                        h,
                        {"fine": tuple(fs), "coarse": tuple(coarse.get(i, []))},
                    )
                )
        return out

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        return self.score_steps(problems, candidates)


def load_hrm(inner: str = "prm", aggregate: str = "min", **kwargs: Any) -> HierarchicalPRM:
    """The registry's ``hrm:inner=SPEC,aggregate=min`` (SPEC: any step reward's spec)."""
    from rewardlab.rewards.registry import load_reward

    return HierarchicalPRM(load_reward(inner, **kwargs), aggregate_how=aggregate)


__all__ = ["HierarchicalPRM", "hierarchical_step_scores", "load_hrm", "merged_steps"]
