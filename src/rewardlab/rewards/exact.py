"""The ``arith`` testbed's exact checker as a :class:`~rewardlab.rewards.base.Reward`.

``ArithExactReward`` (name ``"exact"``) grades a candidate with
:func:`rewardlab.tasks.arith.check_steps`: value 1.0 when the final answer is right, else 0.0;
``steps`` one value per line of the text (1.0 for a correct step, 0.0 otherwise); ``info``
holds ``first_error`` (-1 if none), ``answer`` and ``step_truth`` (one dict per step:
``text, parsed, valid, on_track, reason``). The steps are the lines of ``candidate.text``, the
testbed's own segmentation, whatever ``candidate.segmentation`` says.

>>> from rewardlab.tasks.arith import generate, gold_solution
>>> p = generate(n=1, seed=0, n_ops=(2, 2))[0]
>>> c = Candidate(p.id, gold_solution(p), (), p.answer)
>>> s = ArithExactReward().score([p], [c])[0]
>>> s.value, s.steps, s.info["first_error"]
(1.0, (1.0, 1.0, 1.0), -1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rewardlab.tasks.arith import check_steps
from rewardlab.types import Candidate, Problem, Score


@dataclass(frozen=True)
class ArithExactReward:
    """Exact outcome and per-step truth on the ``arith`` testbed.

    A problem without the testbed's gold states (``meta["states"]``) or with a non-integer
    answer cannot be checked: its score is ``Score.ungraded("not an arith problem")``.
    """

    name: str = "exact"

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        if len(problems) != len(candidates):
            raise ValueError(f"{len(problems)} problems for {len(candidates)} candidates")
        return [self._score_one(p, c) for p, c in zip(problems, candidates, strict=True)]

    def score_steps(
        self, problems: Sequence[Problem], candidates: Sequence[Candidate]
    ) -> list[Score]:
        """The same scores as a process reward: ``Score.steps`` holds 1/0 per step (truth)."""
        return self.score(problems, candidates)

    def _score_one(self, problem: Problem, candidate: Candidate) -> Score:
        if not _is_arith(problem):
            return Score.ungraded("not an arith problem", problem_id=problem.id)
        report = check_steps(problem, candidate.text)
        return Score(
            value=1.0 if report.correct else 0.0,
            steps=tuple(1.0 if t.correct else 0.0 for t in report.steps),
            info={
                "first_error": report.first_error,
                "answer": report.answer,
                "step_truth": [t.as_dict() for t in report.steps],
            },
        )


def _is_arith(problem: Problem) -> bool:
    """Whether ``check_steps`` can grade against ``problem``: integer gold states and answer."""
    states = problem.meta.get("states")
    if not isinstance(states, list | tuple) or not states:
        return False
    try:
        for value in (*states, problem.answer):
            int(value)
    except (TypeError, ValueError):
        return False
    return True
