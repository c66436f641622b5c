"""A verifier with a quality dial: the testbed's exact step truth plus controlled noise.

``oracle-prm:q=0.8`` is a process reward whose step AUROC is ``q`` (in [0.5, 1]) by
construction; ``oracle-orm:q=0.8`` the same for the final outcome. With it, every strategy can
be studied as a function of verifier quality, which needs ground truth per step: the ``arith``
testbed has it (:func:`rewardlab.tasks.arith.check_steps` grades any text, partial ones too).

How a score is drawn (binormal model; Hanley & McNeil 1982, Pepe 2003 ch. 4):

1. **Label.** PRM: ``y_i = 1`` iff steps ``0..i`` are all correct (ProcessBench first-error
   semantics: every step from the first error on is bad). A step's truth depends only on the
   text up to it, so the label of step ``i`` is the label of the last step of the prefix
   ``steps[:i+1]``. ORM: ``y = 1`` iff the candidate's final answer is right.
2. **Noise.** ``u = (h + 1/2) / 2^64`` where ``h`` is the first 8 bytes (little-endian) of
   ``sha256("rewardlab-oracle\\0<kind>\\0<seed>\\0<problem id>\\0<text>")``; ``<kind>`` is
   ``prm`` or ``orm``, ``<text>`` is the prefix ``"\\n".join(steps[:i+1])`` (PRM) or the
   candidate's whole text (ORM). ``eps = Phi^-1(u)`` is then a standard normal draw, fixed for a
   given (problem, prefix, seed): re-scoring a prefix (online search does) gives the same value.
3. **Score.** ``z = d * y + eps`` with ``d = sqrt(2) * Phi^-1(q)``; the step score is
   ``sigmoid(z)``. For two independent draws ``N(d, 1)`` (good) and ``N(0, 1)`` (bad),
   ``P(good > bad) = Phi(d / sqrt(2)) = q``: the AUROC of the scores against the labels is
   ``q`` in expectation (the sigmoid is monotone, so it changes no ranking). ``q = 0.5`` is pure
   noise; ``q = 1`` returns the exact truth (1.0 / 0.0) with no noise.

``score`` aggregates the step scores (``last`` by default, Snell et al. 2024, as the learned PRMs
of :mod:`rewardlab.rewards.prm`); ``score_steps`` returns the same with every step. Both cost no
model FLOPs (``params = 0``). A problem that is not an ``arith`` problem (no gold states) is
ungraded with a reason, as is a candidate without steps (PRM).

>>> from rewardlab.tasks.arith import generate, gold_steps
>>> p = generate(n=1, seed=0, n_ops=(2, 2))[0]
>>> c = Candidate(p.id, "\\n".join(gold_steps(p)), tuple(gold_steps(p)), p.answer)
>>> OraclePRM(q=1.0).score_steps([p], [c])[0].steps
(1.0, 1.0, 1.0)
>>> OraclePRM(q=0.8).name, OracleORM(q=0.7, seed=2).name
('oracle-prm-q0.8', 'oracle-orm-q0.7-s2')
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import ClassVar

from rewardlab.rewards.exact import _is_arith
from rewardlab.rewards.prm import AGGREGATES, aggregate
from rewardlab.steps import split_lines
from rewardlab.tasks.arith import check_steps
from rewardlab.types import Candidate, Problem, Score

_STD = NormalDist()
_SALT = "rewardlab-oracle"


def separation(q: float) -> float:
    """``d = sqrt(2) * Phi^-1(q)``: the mean shift that gives a binormal AUROC of ``q``.

    >>> round(separation(0.5), 12), round(separation(0.76025), 3)
    (0.0, 1.0)
    """
    _check_q(q)
    if q == 1.0:
        return math.inf
    return math.sqrt(2.0) * _STD.inv_cdf(q)


def noise(kind: str, seed: int, problem_id: str, text: str) -> float:
    """A standard normal draw fixed by (kind, seed, problem id, text) (see the module doc)."""
    blob = "\0".join((_SALT, kind, str(seed), problem_id, text)).encode()
    h = int.from_bytes(hashlib.sha256(blob).digest()[:8], "little")
    return _STD.inv_cdf((h + 0.5) / 2.0**64)


def noisy_score(label: bool, d: float, eps: float) -> float:
    """``sigmoid(d * y + eps)``; with ``d = inf`` (q = 1) the exact label as 1.0 / 0.0."""
    if math.isinf(d):
        return 1.0 if label else 0.0
    z = (d if label else 0.0) + eps
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def step_labels(problem: Problem, steps: Sequence[str]) -> list[bool]:
    """``y_i``: steps ``0..i`` all correct (first-error semantics), from the exact truth.

    A step may span several lines (another segmentation): it is correct when all its lines are.
    """
    report = check_steps(problem, "\n".join(steps))
    first = report.first_error if report.first_error != -1 else math.inf
    out: list[bool] = []
    lines = 0
    for step in steps:
        lines += len(split_lines(step))
        out.append(lines <= first)
    return out


def _check_q(q: float) -> None:
    if not (isinstance(q, int | float) and 0.5 <= q <= 1.0):
        raise ValueError(f"oracle verifier quality q must be in [0.5, 1.0] (AUROC), got {q!r}")


def _default_name(kind: str, q: float, seed: int) -> str:
    return f"oracle-{kind}-q{q:g}" + (f"-s{seed}" if seed else "")


class _Dial:
    """What both oracle verifiers share: the dial ``q``, the ``seed``, name and zero cost."""

    q: float
    seed: int
    name: str
    #: the score depends only on the problem and the candidate's text/steps
    text_only: ClassVar[bool] = True
    #: no model: the scaling job charges no verifier FLOPs
    params: ClassVar[int] = 0

    def _validate(self, kind: str) -> None:
        _check_q(self.q)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"oracle verifier seed must be an int, got {self.seed!r}")
        if not self.name:
            object.__setattr__(self, "name", _default_name(kind, float(self.q), self.seed))

    @property
    def d(self) -> float:
        return separation(float(self.q))


@dataclass(frozen=True)
class OraclePRM(_Dial):
    """Process reward with step AUROC ``q`` on the ``arith`` testbed (see the module doc).

    Args:
        q: the step AUROC to produce, in [0.5, 1.0] (1.0 = exact truth, no noise).
        seed: another seed draws other (independent) noise for the same texts.
        aggregate: how ``score`` turns step scores into one value (``last`` by default).
        name: the reward's name (store key, strategy labels); default ``oracle-prm-q<q>``
            plus ``-s<seed>`` when the seed is not 0, so two dials never share cached scores.
    """

    q: float = 0.8
    seed: int = 0
    aggregate: str = "last"
    name: str = ""

    def __post_init__(self) -> None:
        self._validate("prm")
        if self.aggregate not in AGGREGATES:
            raise ValueError(
                f"unknown aggregation {self.aggregate!r}; choose one of {list(AGGREGATES)}"
            )

    def step_scores(self, problem: Problem, steps: Sequence[str]) -> tuple[float, ...]:
        """One noisy score per step; step ``i``'s depends only on ``steps[:i+1]``."""
        d = self.d
        return tuple(
            noisy_score(y, d, noise("prm", self.seed, problem.id, "\n".join(steps[: i + 1])))
            for i, y in enumerate(step_labels(problem, steps))
        )

    def score_steps(
        self, problems: Sequence[Problem], candidates: Sequence[Candidate]
    ) -> list[Score]:
        """One value per step in ``Score.steps``, ``value`` = their aggregate."""
        if len(problems) != len(candidates):
            raise ValueError(f"{len(problems)} problems for {len(candidates)} candidates")
        return [self._one(p, c) for p, c in zip(problems, candidates, strict=True)]

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        """The aggregated step scores (``self.aggregate``); the steps stay in ``Score.steps``."""
        return self.score_steps(problems, candidates)

    def _one(self, problem: Problem, candidate: Candidate) -> Score:
        if not _is_arith(problem):
            return Score.ungraded(
                f"{self.name}: not an arith problem (the dial needs the testbed's step truth)",
                problem_id=problem.id,
            )
        if not candidate.steps:
            return Score.ungraded("no steps")
        steps = self.step_scores(problem, candidate.steps)
        return Score(aggregate(steps, self.aggregate), steps)


@dataclass(frozen=True)
class OracleORM(_Dial):
    """Outcome reward with AUROC ``q`` against final-answer correctness (see the module doc).

    Args: as :class:`OraclePRM` (no aggregation: one score per candidate).
    """

    q: float = 0.8
    seed: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        self._validate("orm")

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        """``sigmoid(d * y + eps)`` per candidate, ``y`` = the final answer is right."""
        if len(problems) != len(candidates):
            raise ValueError(f"{len(problems)} problems for {len(candidates)} candidates")
        out = []
        for p, c in zip(problems, candidates, strict=True):
            if not _is_arith(p):
                out.append(
                    Score.ungraded(
                        f"{self.name}: not an arith problem (the dial needs the testbed's truth)",
                        problem_id=p.id,
                    )
                )
                continue
            y = check_steps(p, c.text).correct
            out.append(Score(noisy_score(y, self.d, noise("orm", self.seed, p.id, c.text))))
        return out
