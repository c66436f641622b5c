"""Offline test-time strategies: pick one of a problem's scored candidates, and the accuracy of
that pick at every budget k, computed from one scored pool with no new model call.

Every strategy is a small frozen dataclass (its parameters are the object, and hashable) that
satisfies :class:`Strategy`: a ``name`` for tables and a ``curve`` (expected accuracy per problem
at each budget, from :mod:`rewardlab.evaluate.estimators`). Those that can actually choose a
candidate without the answer key also satisfy :class:`Selector` (``choose`` / ``select``);
:class:`PassAtK` is the oracle ceiling and cannot.

Tie, NaN and no-answer policies are those of :mod:`rewardlab.evaluate.estimators`; ``choose``
breaks ties by lowest index (deterministic) unless given a ``rng`` (then uniformly, which is the
tie-break the curves average over).

>>> pool = PoolArrays(
...     correct=np.array([[True, False, True]]),
...     answer_ids=np.array([[1, 2, 1]]),
...     scores={"orm": np.array([[0.2, 0.9, 0.4]])},
... )
>>> s = parse_strategy("bon:orm")
>>> s.name, s.select(pool, 0), s.curve(pool, [3]).tolist()
('bon[orm]', 1, [[0.0]])
>>> parse_strategy("maj").curve(pool, [3]).tolist()
[[1.0]]
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from functools import cached_property
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from rewardlab.evaluate.bootstrap import TIE_RTOL
from rewardlab.evaluate.estimators import (
    AGGREGATES,
    Aggregate,
    aggregate_flat,
    bon_at_k,
    check_pool,
    flatten_steps,
    majority_at_k,
    pass_at_k,
    weighted_majority_at_k,
)

Ks = Sequence[int] | np.ndarray
Rng = np.random.Generator | int
Gen = np.random.Generator | None


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True, eq=False)
class PoolArrays:
    """A scored pool of P problems x N candidates, as arrays (validated on construction).

    Attributes:
        correct: bool [P, N], the candidate's final answer is right.
        answer_ids: int [P, N], equal ids within a row = equivalent answers; -1 = no answer.
        scores: outcome rewards by name, each float [P, N] (NaN = ungraded).
        step_scores: process rewards by name: P rows of N arrays of step scores (one per step).

    Arrays are kept, not copied: do not change them afterwards (step scores are flattened once,
    on first use, and cached).
    """

    correct: np.ndarray
    answer_ids: np.ndarray
    scores: Mapping[str, np.ndarray] = field(default_factory=dict)
    step_scores: Mapping[str, Sequence[Sequence[np.ndarray]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p, n = check_pool(self.correct, answer_ids=self.answer_ids)
        for name, arr in self.scores.items():
            try:
                check_pool(self.correct, scores=arr)
            except (ValueError, TypeError) as e:
                raise type(e)(f"reward {name!r}: {e}") from None
        for name, rows in self.step_scores.items():
            if name in self.scores:
                raise ValueError(f"reward {name!r} is both an outcome and a step reward")
            if len(rows) != p or any(len(row) != n for row in rows):
                raise ValueError(f"step reward {name!r} must hold {p} rows of {n} step arrays")

    @cached_property
    def _flat_steps(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each step reward flattened once (values, lengths), so every aggregation is one pass."""
        return {
            name: flatten_steps([steps for row in rows for steps in row])
            for name, rows in self.step_scores.items()
        }

    def step_values(self, name: str) -> np.ndarray:
        """Every step score of step reward ``name``, flattened (the cached flattening)."""
        return self._flat_steps[name][0]

    @property
    def shape(self) -> tuple[int, int]:
        """(P, N): problems, candidates per problem."""
        return self.correct.shape[0], self.correct.shape[1]

    def reward(self, name: str, aggregate: Aggregate | None = None) -> np.ndarray:
        """The named reward as float [P, N]; a step reward needs ``aggregate`` (only those do)."""
        if name in self.scores:
            if aggregate is not None:
                raise ValueError(
                    f"{name!r} is an outcome reward: aggregate applies to step rewards"
                )
            return np.asarray(self.scores[name], dtype=float)
        if name in self.step_scores:
            if aggregate is None:
                raise ValueError(f"{name!r} is a step reward: give aggregate={list(AGGREGATES)}")
            return aggregate_flat(*self._flat_steps[name], aggregate).reshape(self.shape)
        known = [*self.scores, *self.step_scores]
        raise KeyError(f"no reward {name!r} in the pool{_did_you_mean(name, known)} (has {known})")


@runtime_checkable
class Strategy(Protocol):
    """Offline contract: expected accuracy per problem at each budget k, from the pool alone."""

    @property
    def name(self) -> str: ...

    def curve(self, pool: PoolArrays, ks: Ks, rng: Rng = 0, n_resamples: int = 100) -> np.ndarray:
        """Float [P, len(ks)] in [0, 1]. Same int ``rng`` = same subsets for every strategy."""
        ...


@runtime_checkable
class Selector(Strategy, Protocol):
    """A strategy that picks one candidate of one problem without the answer key (online use)."""

    def choose(
        self, answer_ids: np.ndarray, scores: np.ndarray | None = None, *, rng: Gen = None
    ) -> int | None:
        """Index of the chosen candidate of one row, or None when the vote abstains."""
        ...

    def select(
        self,
        pool: PoolArrays,
        problem: int,
        candidates: Sequence[int] | None = None,
        *,
        rng: Gen = None,
    ) -> int | None:
        """``choose`` on one pool row (restricted to ``candidates``); an index into the row."""
        ...


def _pick(mask: np.ndarray, rng: np.random.Generator | None) -> int:
    """An index where ``mask`` holds: the lowest, or uniform with a rng."""
    idx = np.flatnonzero(mask)
    return int(idx[0] if rng is None else rng.choice(idx))


def _argmax(scores: np.ndarray | None, rng: np.random.Generator | None) -> int:
    if scores is None:
        raise ValueError("best-of-N needs scores")
    s = np.where(np.isnan(scores), -np.inf, scores)
    return _pick(s == s.max(), rng)


def _vote(
    answer_ids: np.ndarray, weights: np.ndarray, rng: np.random.Generator | None
) -> int | None:
    ids = np.asarray(answer_ids)
    answered = ids != -1
    if not answered.any():
        return None  # nobody answered: abstain (counts wrong)
    labels, first, inverse = np.unique(ids[answered], return_index=True, return_inverse=True)
    totals = np.bincount(inverse, weights=weights[answered], minlength=labels.size)
    tied = totals >= totals.max() - TIE_RTOL * abs(totals.max())
    # deterministic: the tied answer seen first; with a rng: a uniform tied answer
    winner = labels[tied][np.argmin(first[tied])] if rng is None else rng.choice(labels[tied])
    return _pick(ids == winner, rng)


def _select(
    s: Selector,
    pool: PoolArrays,
    scores: np.ndarray | None,
    problem: int,
    candidates: Sequence[int] | None,
    rng: np.random.Generator | None,
) -> int | None:
    sub = np.arange(pool.shape[1]) if candidates is None else np.asarray(candidates, dtype=np.intp)
    if sub.size == 0:
        raise ValueError("select needs at least one candidate")
    row = None if scores is None else scores[problem, sub]
    i = s.choose(pool.answer_ids[problem, sub], row, rng=rng)
    return None if i is None else int(sub[i])


def _weights(scores: np.ndarray | None) -> np.ndarray:
    if scores is None:
        raise ValueError("weighted majority needs scores")
    finite = scores[~np.isnan(scores)]
    if (~np.isfinite(finite)).any() or (finite < 0).any():
        raise ValueError("weighted majority needs finite scores >= 0 (NaN = ungraded)")
    weights: np.ndarray = np.nan_to_num(scores, nan=0.0)
    return weights


def _check_reward(reward: str, aggregate: str | None) -> None:
    if not reward or any(c in reward for c in ":[]"):
        raise ValueError(f"reward name must be non-empty, without ':', '[' or ']'; got {reward!r}")
    if aggregate is not None and aggregate not in AGGREGATES:
        hint = _did_you_mean(aggregate, AGGREGATES)
        raise ValueError(f"unknown aggregate {aggregate!r}{hint}; choose one of {list(AGGREGATES)}")


def _label(kind: str, reward: str, aggregate: str | None) -> str:
    return f"{kind}[{reward}]" if aggregate is None else f"{kind}[{reward}:{aggregate}]"


class _ScoredSelector(Selector, Protocol):
    """A selector that chooses by one reward of the pool (self type of :class:`_RewardSelector`)."""

    @property
    def reward(self) -> str: ...

    @property
    def aggregate(self) -> Aggregate | None: ...


class _RewardSelector:
    """What the reward-driven selectors share: a checked ``reward`` (+ ``aggregate``) named
    ``<_kind>[reward(:aggregate)]``, and ``select`` = ``choose`` on that reward's pool row.
    Mixed into frozen dataclasses that declare ``reward`` and ``aggregate`` as fields."""

    _kind: ClassVar[str]
    reward: str
    aggregate: Aggregate | None

    def __post_init__(self) -> None:
        _check_reward(self.reward, self.aggregate)

    @property
    def name(self) -> str:
        return _label(self._kind, self.reward, self.aggregate)

    def select(
        self: _ScoredSelector,
        pool: PoolArrays,
        problem: int,
        candidates: Sequence[int] | None = None,
        *,
        rng: Gen = None,
    ) -> int | None:
        scores = pool.reward(self.reward, self.aggregate)
        return _select(self, pool, scores, problem, candidates, rng)


@dataclass(frozen=True)
class MajorityVote:
    """Self-consistency (Wang et al. 2023): the most frequent answer among the k wins."""

    @property
    def name(self) -> str:
        return "maj"

    def curve(self, pool: PoolArrays, ks: Ks, rng: Rng = 0, n_resamples: int = 100) -> np.ndarray:
        return majority_at_k(pool.answer_ids, pool.correct, ks, n_resamples, rng)

    def choose(
        self, answer_ids: np.ndarray, scores: np.ndarray | None = None, *, rng: Gen = None
    ) -> int | None:
        return _vote(answer_ids, np.ones(np.shape(answer_ids)), rng)

    def select(
        self,
        pool: PoolArrays,
        problem: int,
        candidates: Sequence[int] | None = None,
        *,
        rng: Gen = None,
    ) -> int | None:
        return _select(self, pool, None, problem, candidates, rng)


@dataclass(frozen=True)
class BestOfN(_RewardSelector):
    """The candidate with the highest reward among the k (Cobbe et al. 2021 verifiers; Gao et al.
    2023). ``aggregate`` turns a step reward into one score per candidate (Snell et al. 2024:
    ``last``); leave it None for an outcome reward."""

    _kind: ClassVar[str] = "bon"
    reward: str
    aggregate: Aggregate | None = None

    def curve(self, pool: PoolArrays, ks: Ks, rng: Rng = 0, n_resamples: int = 100) -> np.ndarray:
        return bon_at_k(pool.reward(self.reward, self.aggregate), pool.correct, ks)

    def choose(
        self, answer_ids: np.ndarray, scores: np.ndarray | None = None, *, rng: Gen = None
    ) -> int | None:
        return _argmax(scores, rng)


@dataclass(frozen=True)
class WeightedMajority(_RewardSelector):
    """The answer with the highest summed reward among the k (papers.md ``weighted_sc``; Li et al.
    2023; Snell et al. 2024 "best-of-N weighted"). Rewards are weights, so they must be >= 0:
    map a logit or log-probability reward to a probability first (sigmoid, exp). ``aggregate``
    as in :class:`BestOfN`."""

    _kind: ClassVar[str] = "wmaj"
    reward: str
    aggregate: Aggregate | None = None

    def curve(self, pool: PoolArrays, ks: Ks, rng: Rng = 0, n_resamples: int = 100) -> np.ndarray:
        scores = pool.reward(self.reward, self.aggregate)
        try:
            return weighted_majority_at_k(
                pool.answer_ids, scores, pool.correct, ks, n_resamples, rng
            )
        except ValueError as e:
            raise ValueError(f"{self.name}: {e}") from None

    def choose(
        self, answer_ids: np.ndarray, scores: np.ndarray | None = None, *, rng: Gen = None
    ) -> int | None:
        return _vote(answer_ids, _weights(scores), rng)


@dataclass(frozen=True)
class PassAtK:
    """The oracle ceiling (Chen et al. 2021): right if any of the k is right. It needs the answer
    key, so it has a curve but no ``choose``."""

    @property
    def name(self) -> str:
        return "pass"

    def curve(self, pool: PoolArrays, ks: Ks, rng: Rng = 0, n_resamples: int = 100) -> np.ndarray:
        return pass_at_k(pool.correct, ks)


STRATEGIES: Mapping[str, type[Strategy]] = {
    "maj": MajorityVote,
    "bon": BestOfN,
    "wmaj": WeightedMajority,
    "pass": PassAtK,
}
"""Registry: spec kind -> class. Every class also works imported and built directly."""

ALIASES: Mapping[str, str] = {
    "majority": "maj",
    "sc": "maj",
    "best_of_n": "bon",
    "weighted_majority": "wmaj",
    "weighted_sc": "wmaj",
    "oracle": "pass",
    "pass@k": "pass",
}


def parse_strategy(spec: str) -> Strategy:
    """Build a strategy from ``kind[:reward[:aggregate]]`` or its ``name`` (``kind[reward:agg]``).

    >>> parse_strategy("bon:prm:min")
    BestOfN(reward='prm', aggregate='min')
    >>> parse_strategy("wmaj[orm]").name
    'wmaj[orm]'
    """
    text = spec.strip()
    if text.endswith("]") and "[" in text:
        head, _, rest = text[:-1].partition("[")
        text = f"{head}:{rest}"
    kind, *args = text.split(":")
    kind = ALIASES.get(kind.lower(), kind.lower())
    if kind not in STRATEGIES:
        hint = _did_you_mean(kind, [*STRATEGIES, *ALIASES])
        raise ValueError(f"unknown strategy {kind!r}{hint}; choose one of {sorted(STRATEGIES)}")
    cls = STRATEGIES[kind]
    params = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    required = [f.name for f in fields(cls) if f.default is MISSING]  # type: ignore[arg-type]
    if not len(required) <= len(args) <= len(params) or any(not a for a in args):
        form = ":".join([kind, *params]) if params else kind
        raise ValueError(f"bad strategy spec {spec!r}: expected {form!r}")
    return cls(*args)


def curves(
    strategies: Sequence[Strategy], pool: PoolArrays, ks: Ks, rng: Rng = 0, n_resamples: int = 100
) -> dict[str, np.ndarray]:
    """Each strategy's curve [P, K] by name. With an int ``rng`` every strategy sees the same
    random subsets (common random numbers), so differences between curves are less noisy."""
    names = [s.name for s in strategies]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate strategies: {names}")
    return {s.name: s.curve(pool, ks, rng, n_resamples) for s in strategies}
