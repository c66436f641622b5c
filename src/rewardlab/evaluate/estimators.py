"""Accuracy at every budget k from one scored pool: pass@k, best-of-N@k, (weighted) majority@k.

The numerical core of ``rewardlab scale``. A pool holds N candidates for each of P problems, as
arrays: ``correct`` bool [P, N], ``answer_ids`` int [P, N] (equal ids = equivalent answers) and
``scores`` float [P, N]. Each estimator returns the *expected* accuracy of one strategy at each
budget k, per problem, as a float array [P, len(ks)], where the k candidates are a uniformly
random subset (drawn without replacement) of the N. No model is called.

Policies shared by every function here:

- **Ties** are broken uniformly at random, and the estimators return the *exact expectation* over
  that tie-break (never a sample of it). Scores tie when they are equal as floats; vote counts
  when equal; weighted-vote totals when within a relative 1e-9 (``bootstrap.TIE_RTOL``: float
  sums of the same weights depend on the order of summation).
- **NaN score** = ungraded. Best-of-N ranks it as -inf (below every graded candidate: it is picked
  only when every candidate drawn is ungraded, then uniformly among them); weighted majority
  gives it weight 0 (its answer is still present in the vote, with nothing added to its total).
- **answer id -1** = no answer. It never wins a vote; when no drawn candidate has an answer the
  vote abstains and the problem counts wrong. A no-answer candidate can never be ``correct``.
  Best-of-N ignores answers: it may pick a no-answer candidate, which then counts wrong.

Run ``python -m doctest`` on this file, or see ``tests/evaluate/test_estimators.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from rewardlab.evaluate.bootstrap import as_generator, bootstrap_ci, vote_curve

__all__ = [
    "Aggregate",
    "aggregate_flat",
    "aggregate_steps",
    "as_ks",
    "bon_at_k",
    "bootstrap_ci",
    "check_pool",
    "default_ks",
    "flatten_steps",
    "majority_at_k",
    "pass_at_k",
    "weighted_majority_at_k",
]

Aggregate = Literal["last", "min", "prod", "mean", "sum"]
AGGREGATES: tuple[Aggregate, ...] = ("last", "min", "prod", "mean", "sum")


def default_ks(n: int) -> list[int]:
    """Budgets 1, 2, 4, ... up to ``n``, with ``n`` itself appended when it is not a power of 2.

    >>> default_ks(64)
    [1, 2, 4, 8, 16, 32, 64]
    >>> default_ks(10)
    [1, 2, 4, 8, 10]
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    ks = [1 << i for i in range(n.bit_length()) if 1 << i <= n]
    return ks if ks[-1] == n else [*ks, n]


def as_ks(ks: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    """Validate budgets against a pool of ``n`` candidates: integers with 1 <= k <= n."""
    arr = np.asarray(ks)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"ks must be a non-empty 1-D sequence of ints, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"ks must be integers, got dtype {arr.dtype}")
    bad = arr[(arr < 1) | (arr > n)]
    if bad.size:
        raise ValueError(
            f"every k must satisfy 1 <= k <= N={n} (the pool size); got {bad.tolist()}"
        )
    return arr.astype(np.intp)


def check_pool(
    correct: np.ndarray, answer_ids: np.ndarray | None = None, scores: np.ndarray | None = None
) -> tuple[int, int]:
    """Check that the pool arrays agree; return (P, N). Errors name what is wrong."""
    correct = np.asarray(correct)
    if correct.ndim != 2 or correct.shape[1] == 0:
        raise ValueError(f"correct must be 2-D [P, N] with N >= 1, got shape {correct.shape}")
    if correct.dtype != np.bool_:
        raise TypeError(f"correct must be a bool array, got {correct.dtype} (use .astype(bool))")
    if answer_ids is not None:
        answer_ids = np.asarray(answer_ids)
        if answer_ids.shape != correct.shape:
            raise ValueError(f"answer_ids has shape {answer_ids.shape}, correct {correct.shape}")
        if not np.issubdtype(answer_ids.dtype, np.integer):
            raise TypeError(f"answer_ids must be integers, got {answer_ids.dtype}")
        if (answer_ids < -1).any():
            raise ValueError("answer_ids must be >= -1 (-1 = no answer)")
        if (correct & (answer_ids == -1)).any():
            raise ValueError("a candidate with no answer (id -1) is marked correct")
    if scores is not None:
        scores = np.asarray(scores)
        if scores.shape != correct.shape:
            raise ValueError(f"scores has shape {scores.shape}, correct {correct.shape}")
        if not np.issubdtype(scores.dtype, np.floating):
            raise TypeError(f"scores must be floats (NaN = ungraded), got {scores.dtype}")
    return correct.shape[0], correct.shape[1]


def pass_at_k(correct: np.ndarray, ks: Sequence[int] | np.ndarray) -> np.ndarray:
    """Unbiased pass@k per problem: P(at least one of k drawn candidates is correct).

    Chen et al. 2021 ("Evaluating large language models trained on code"), eq. 1:
    ``1 - C(N-c, k) / C(N, k)``, computed as ``1 - prod_{i=N-c+1}^{N} (1 - k/i)`` (their stable
    product form), so no binomial coefficient is ever formed.

    Returns:
        float [P, len(ks)] in [0, 1].

    >>> pass_at_k(np.array([[True, False, False, False]]), [1, 2, 4]).round(3).tolist()
    [[0.25, 0.5, 1.0]]
    """
    _, n = check_pool(correct)
    kk = as_ks(ks, n)
    i = np.arange(n, 0, -1, dtype=float)  # N, N-1, ..., 1
    factors = np.maximum(1.0 - kk[:, None] / i[None, :], 0.0)  # [K, N]; 0 once i <= k
    fail = np.concatenate([np.ones((kk.size, 1)), np.cumprod(factors, axis=1)], axis=1)
    c = np.asarray(correct).sum(axis=1)  # [P]
    return 1.0 - fail[:, c].T


def bon_at_k(scores: np.ndarray, correct: np.ndarray, ks: Sequence[int] | np.ndarray) -> np.ndarray:
    """Expected accuracy of best-of-k (argmax score among k drawn candidates), exactly.

    Order statistics (Gao et al. 2023, "Scaling laws for reward model overoptimization"; Singhi
    et al. 2025, "When To Solve, When To Verify"): with candidates sorted by score, descending,
    rank i is the maximum of the draw with probability ``w_i = C(N-i-1, k-1) / C(N, k)``, so
    ``BoN@k = sum_{i=0}^{N-k} c_i * w_i``.

    Ties, exactly: a tied block at ranks [a, b) holds the maximum with probability
    ``T_a - T_b`` where ``T_j = C(N-j, k)/C(N, k)`` (no draw above a, not all below b), and the
    uniform tie-break then picks each of the block's drawn members with equal probability, so the
    block contributes ``(T_a - T_b) * mean(c over the block)``. This equals averaging the formula
    above over every order of the tied candidates (the shuffles that Singhi et al. sample).
    ``T_j = prod_{i<j} (N-i-k)/(N-i)`` is a running product, so nothing overflows.

    NaN scores rank as -inf (ungraded: chosen only if every drawn candidate is ungraded).

    >>> s = np.array([[0.9, 0.9, 0.1]]); c = np.array([[True, False, True]])
    >>> bon_at_k(s, c, [1, 3]).round(4).tolist()  # k=3: the 0.9 tie is broken 50/50
    [[0.6667, 0.5]]
    """
    p, n = check_pool(correct, scores=scores)
    kk = as_ks(ks, n)
    scores = np.asarray(scores)
    s = np.where(np.isnan(scores), -np.inf, scores)
    order = np.argsort(-s, axis=1, kind="stable")
    s_sorted = np.take_along_axis(s, order, axis=1)
    c_sorted = np.take_along_axis(np.asarray(correct, dtype=float), order, axis=1)
    # block start / end (exclusive) of every rank, then the block's mean correctness
    pos = np.broadcast_to(np.arange(n), (p, n))
    new = np.ones((p, n), dtype=bool)
    new[:, 1:] = s_sorted[:, 1:] != s_sorted[:, :-1]
    start = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
    last = np.ones((p, n), dtype=bool)
    last[:, :-1] = new[:, 1:]
    end = np.minimum.accumulate(np.where(last, pos + 1, n)[:, ::-1], axis=1)[:, ::-1]
    cum = np.concatenate([np.zeros((p, 1)), np.cumsum(c_sorted, axis=1)], axis=1)
    rows = np.arange(p)[:, None]
    block_mean = (cum[rows, end] - cum[rows, start]) / (end - start)
    # T[k, j] for j = 0..N, and w = T_j - T_{j+1}
    i = np.arange(n, dtype=float)
    ratio = np.maximum((n - i[None, :] - kk[:, None]) / (n - i[None, :]), 0.0)
    t = np.concatenate([np.ones((kk.size, 1)), np.cumprod(ratio, axis=1)], axis=1)
    w = t[:, :-1] - t[:, 1:]  # [K, N]
    out: np.ndarray = np.clip(block_mean @ w.T, 0.0, 1.0)
    return out


def majority_at_k(
    answer_ids: np.ndarray,
    correct: np.ndarray,
    ks: Sequence[int] | np.ndarray,
    n_resamples: int = 100,
    rng: np.random.Generator | int = 0,
) -> np.ndarray:
    """Expected accuracy of majority vote (self-consistency) over k drawn candidates.

    Wang et al. 2023 ("Self-consistency improves chain of thought reasoning"): the answer given
    by most of the k candidates wins; ties between answers are broken uniformly at random and the
    exact expectation over that tie-break is returned. No-answer candidates (id -1) do not vote.

    Estimated by resampling ``n_resamples`` random k-subsets per problem, all problems at once
    (see :func:`rewardlab.evaluate.bootstrap.vote_curve`). Exact at k = 1 (the mean
    correctness) and wherever ``C(N, k) <= n_resamples`` (k = N included): every subset is then
    enumerated instead. When candidates that
    share an answer id disagree on ``correct``, the answer's value is the fraction of its pool
    members that are correct.

    Returns:
        float [P, len(ks)] in [0, 1].

    >>> ids = np.array([[7, 7, 3]]); ok = np.array([[True, True, False]])
    >>> majority_at_k(ids, ok, [1, 2, 3]).round(4).tolist()  # k=2: {7,3} is a coin flip
    [[0.6667, 0.6667, 1.0]]
    """
    _, n = check_pool(correct, answer_ids=answer_ids)
    kk = as_ks(ks, n)
    _check_resamples(n_resamples)
    ids, ok = np.asarray(answer_ids), np.asarray(correct)
    ones = np.ones(ok.shape)
    return vote_curve(ids, ones, ok, kk, n_resamples, as_generator(rng), weighted=False)


def weighted_majority_at_k(
    answer_ids: np.ndarray,
    scores: np.ndarray,
    correct: np.ndarray,
    ks: Sequence[int] | np.ndarray,
    n_resamples: int = 100,
    rng: np.random.Generator | int = 0,
) -> np.ndarray:
    """Expected accuracy of reward-weighted majority vote over k drawn candidates.

    The winner is ``argmax_a sum_{i drawn, ans_i = a} score_i`` (papers.md ``weighted_sc``;
    Li et al. 2023 "Making LLMs better reasoners with step-aware verifier"; Snell et al. 2024
    "best-of-N weighted"). Scores are weights: they must be finite and >= 0 (a probability, e.g.
    a PRM's sigmoid); NaN = ungraded counts as weight 0 but keeps its answer in the vote, so when
    every drawn answer has total 0 the tie among them is broken uniformly. No-answer candidates do
    not vote. Ties and resampling exactly as in :func:`majority_at_k`.

    >>> ids = np.array([[1, 1, 2]]); ok = np.array([[False, False, True]])
    >>> s = np.array([[0.2, 0.3, 0.9]])  # at k=3: answer 1 totals 0.5, answer 2 totals 0.9
    >>> weighted_majority_at_k(ids, s, ok, [3]).tolist()
    [[1.0]]
    """
    _, n = check_pool(correct, answer_ids=answer_ids, scores=scores)
    kk = as_ks(ks, n)
    _check_resamples(n_resamples)
    scores = np.asarray(scores)
    finite = scores[~np.isnan(scores)]
    if (~np.isfinite(finite)).any() or (finite < 0).any():
        raise ValueError(
            "weighted majority needs finite scores >= 0 (NaN = ungraded); map a logit reward "
            "to a probability first (e.g. a sigmoid)"
        )
    weights = np.nan_to_num(scores, nan=0.0)
    ids, ok = np.asarray(answer_ids), np.asarray(correct)
    return vote_curve(ids, weights, ok, kk, n_resamples, as_generator(rng), weighted=True)


def _check_resamples(n_resamples: int) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")


def aggregate_steps(steps: Sequence[np.ndarray], how: Aggregate) -> np.ndarray:
    """One score per candidate from its step scores (a PRM's output).

    ``last`` = the score of the final step (Snell et al. 2024 found it best), ``min`` = the
    weakest step (Lightman et al. 2023), ``prod`` = product of step scores (P(all steps right)
    if they are independent probabilities), ``mean`` = their average, ``sum`` = their total (an
    implicit PRM's outcome reward: its step rewards add up to ``r(y)``). A candidate with no
    steps gets NaN (ungraded), and a NaN step makes the whole candidate NaN: an ungraded step
    is never silently skipped.

    >>> steps = [np.array([0.9, 0.5, 0.8]), np.array([]), np.array([0.6])]
    >>> aggregate_steps(steps, "min").tolist()  # min(0.9, 0.5, 0.8) = 0.5; no steps -> nan
    [0.5, nan, 0.6]
    >>> aggregate_steps(steps, "prod").round(2).tolist()  # 0.9 * 0.5 * 0.8 = 0.36
    [0.36, nan, 0.6]
    >>> aggregate_steps(steps, "sum").round(2).tolist()  # 0.9 + 0.5 + 0.8 = 2.2
    [2.2, nan, 0.6]
    """
    return aggregate_flat(*flatten_steps(steps), how)


def flatten_steps(steps: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged step scores as (all values concatenated, float [S]; steps per candidate, int [C])."""
    arrays = [np.asarray(s, dtype=float).reshape(-1) for s in steps]
    lengths = np.array([a.size for a in arrays], dtype=np.intp)
    return (np.concatenate(arrays) if arrays else np.zeros(0)), lengths


def aggregate_flat(flat: np.ndarray, lengths: np.ndarray, how: Aggregate) -> np.ndarray:
    """:func:`aggregate_steps` on the output of :func:`flatten_steps` (no Python loop)."""
    if how not in AGGREGATES:
        raise ValueError(f"unknown step aggregation {how!r}; choose one of {list(AGGREGATES)}")
    out = np.full(lengths.size, np.nan)
    full = lengths > 0
    if not full.any():
        return out
    starts = (np.cumsum(lengths) - lengths)[full]
    if how == "last":
        out[full] = flat[starts + lengths[full] - 1]
    elif how == "min":
        out[full] = np.minimum.reduceat(flat, starts)
    elif how == "prod":
        out[full] = np.multiply.reduceat(flat, starts)
    elif how == "sum":
        out[full] = np.add.reduceat(flat, starts)
    else:
        out[full] = np.add.reduceat(flat, starts) / lengths[full]
    if how == "last":  # min/prod/mean propagate a NaN step already; make `last` as strict
        nan_any = np.add.reduceat(np.isnan(flat).astype(np.intp), starts) > 0
        out[np.flatnonzero(full)[nan_any]] = np.nan
    return out
