"""Resampling, vectorised: bootstrap confidence intervals over problems, and votes over subsets.

Two kinds of resampling sit here because they share the same trick: draw every replicate for all
problems at once as one array, then reduce with ``bincount``/matmul instead of Python loops.

- :func:`bootstrap_ci`: percentile bootstrap over problems (Efron & Tibshirani 1993, ch. 13) for
  any per-problem metric [P, K], e.g. the curves of :mod:`rewardlab.evaluate.estimators`.
- :func:`vote_curve`: the expected accuracy of a (weighted) vote over random k-subsets of a pool;
  the engine behind ``majority_at_k`` and ``weighted_majority_at_k`` (use those: they validate).

>>> mean, low, high = bootstrap_ci(np.array([[0.0], [1.0], [1.0], [1.0]]), rng=0)
>>> float(mean[0]), bool(low[0] <= mean[0] <= high[0])
(0.75, True)
"""

from __future__ import annotations

import itertools
import math

import numpy as np

TIE_RTOL = 1e-9
"""Two weighted-vote totals tie when within this relative distance (float sums of the same
weights can differ in the last bit with the order of summation). Integer counts tie exactly."""

_CHUNK = 1 << 19  # slots (replicates x problems x answers) per vectorised step: stays in cache


def as_generator(rng: np.random.Generator | int) -> np.random.Generator:
    """A Generator as given, or a fresh one seeded with the int (so defaults are reproducible)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def bootstrap_ci(
    per_problem: np.ndarray,
    n_boot: int = 1000,
    alpha: float = 0.05,
    rng: np.random.Generator | int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile bootstrap over problems of the mean of each column.

    Each replicate redraws P problems with replacement; the draws become counts per problem
    (``bincount``), so one matmul [B, P] @ [P, K] gives every replicate's means. The interval
    is the ``alpha/2`` and ``1 - alpha/2`` quantiles of the replicate means.

    Args:
        per_problem: float [P, K], e.g. a curve from :func:`~.estimators.bon_at_k`; no NaN.

    Returns:
        ``(mean, low, high)``, each float [K]; ``low <= mean <= high`` up to float rounding.
    """
    x = np.asarray(per_problem, dtype=float)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"per_problem must be 2-D [P, K] with P >= 1, got shape {x.shape}")
    if np.isnan(x).any():
        raise ValueError("per_problem contains NaN")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    p = x.shape[0]
    draws = as_generator(rng).integers(0, p, size=(n_boot, p))
    draws += np.arange(n_boot)[:, None] * p
    counts = np.bincount(draws.ravel(), minlength=n_boot * p).reshape(n_boot, p)
    boot = counts @ x / p  # [B, K]
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
    return x.mean(axis=0), low, high


def dense_classes(answer_ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber each row's answer ids to 0..A_p-1 (by id); no answer (-1) becomes ``A``.

    Returns ``(classes int [P, N], A)`` where A = the most distinct answers in any row.

    >>> dense_classes(np.array([[40, -1, 40, 7], [5, 5, 5, 5]]))[0].tolist()
    [[1, 2, 1, 0], [0, 0, 0, 0]]
    """
    ids = np.asarray(answer_ids)
    p, n = ids.shape
    order = np.argsort(ids, axis=1, kind="stable")
    srt = np.take_along_axis(ids, order, axis=1)
    new = np.ones((p, n), dtype=bool)
    new[:, 1:] = srt[:, 1:] != srt[:, :-1]
    rank = np.cumsum(new, axis=1) - 1 - (srt[:, :1] == -1)  # the -1 block (first) ranks -1
    a = int(rank.max(initial=-1)) + 1
    classes = np.empty_like(rank)
    np.put_along_axis(classes, order, rank, axis=1)
    classes[ids == -1] = a
    return classes, a


def random_prefixes(rng: np.random.Generator, rows: int, n: int, k: int) -> np.ndarray:
    """First k entries of an independent uniform permutation of 0..n-1 per row, as int [k, rows].

    A partial Fisher-Yates shuffle, vectorised over rows (k steps, not n). Every prefix of a
    row is a uniform random subset of its size. Stored position-major, so that ``out[i:j]`` (the
    entries i..j-1 of every row) is contiguous.
    """
    perm = np.tile(np.arange(n, dtype=np.int32)[:, None], (1, rows))  # [n, rows]
    flat = perm.reshape(-1)
    col = np.arange(rows, dtype=np.intp)
    for i in range(k):
        j = rng.integers(i, n, size=rows) * rows + col  # swap entry i with a random later one
        old = perm[i].copy()
        perm[i] = flat[j]
        flat[j] = old
    return perm[:k]


def vote_curve(
    answer_ids: np.ndarray,
    weights: np.ndarray,
    correct: np.ndarray,
    ks: np.ndarray,
    n_resamples: int,
    rng: np.random.Generator,
    weighted: bool,
) -> np.ndarray:
    """Expected accuracy [P, K] of a vote among k candidates drawn without replacement.

    For each replicate and problem, the drawn candidates' weights (1 for a plain majority) are
    summed per answer; among the answers with the highest total (ties: see :data:`TIE_RTOL`) the
    value is the *mean* of their correctness, i.e. the exact expectation of a uniform tie-break.
    No-answer candidates do not vote; a draw without answers scores 0.

    At k = 1 the value is the mean correctness; where ``C(N, k) <= n_resamples`` (k = N
    included) all subsets are enumerated. Both are exact. Otherwise each replicate draws one
    random permutation prefix per problem (:func:`random_prefixes`) and every sampled k uses its
    first k entries, so one draw serves all budgets: the votes of entries k_prev..k are added to
    those of the previous budget (each prefix is a uniform k-subset; budgets are correlated, each
    is unbiased). Inputs are assumed validated.
    """
    p, n = correct.shape
    classes, a = dense_classes(answer_ids)
    out = np.zeros((p, ks.size))
    if a == 0 or p == 0:
        return out  # nobody answered anything: every vote abstains
    answered = classes < a
    flat_classes = np.where(answered, classes, 0).ravel()  # no-answer: any slot, it weighs 0
    flat_votes = answered.ravel().astype(float)
    flat_weights = np.where(answered, weights, 0.0).ravel()
    members = np.bincount((np.arange(p)[:, None] * a + classes)[answered], minlength=p * a)
    right = np.bincount((np.arange(p)[:, None] * a + classes)[correct], minlength=p * a)
    class_correct = (right / np.maximum(members, 1)).reshape(p, a)
    chunk = max(1, _CHUNK // (p * a))  # replicates per vectorised step

    def tally(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Votes and summed weights per (replicate, problem, answer) [r, P, A] for the draws
        ``idx`` [m, r * P] (flat indices into the pool, row r * P + p)."""
        rows = idx.shape[1]
        key = (flat_classes.take(idx) + np.arange(rows) * a).ravel()
        size = rows * a
        count = np.bincount(key, flat_votes.take(idx).ravel(), size).reshape(-1, p, a)
        if not weighted:
            return count, count
        total = np.bincount(key, flat_weights.take(idx).ravel(), size).reshape(-1, p, a)
        return count, total

    def value(count: np.ndarray, total: np.ndarray) -> np.ndarray:  # summed over replicates [P]
        if weighted:
            score = np.where(count > 0, total, -1.0)  # weights are >= 0: -1 marks "absent"
            best = score.max(axis=-1, keepdims=True)  # >= 0 unless no answer was drawn
            tied = (score >= best * (1 - TIE_RTOL)) & (best >= 0)
        else:
            best = count.max(axis=-1, keepdims=True)
            tied = (count == best) & (best > 0)
        n_tied = np.count_nonzero(tied, axis=-1)
        hit = np.einsum("rpa,pa->rp", tied, class_correct)
        summed: np.ndarray = (hit / np.maximum(n_tied, 1)).sum(axis=0)
        return summed

    row_base = np.arange(p, dtype=np.intp) * n  # flat index of each problem's candidate 0
    sampled = []
    for j, k in enumerate(ks.tolist()):
        if k == 1:  # one candidate: its answer's value, which averages to the mean correctness
            out[:, j] = correct.mean(axis=1)
        elif math.comb(n, k) > n_resamples:
            sampled.append(j)
        else:
            subsets = np.array(list(itertools.combinations(range(n), k)), dtype=np.intp)
            for s in range(0, len(subsets), chunk):
                part = subsets[s : s + chunk].T  # [k, S]
                out[:, j] += value(*tally((part[:, :, None] + row_base).reshape(k, -1)))
            out[:, j] /= len(subsets)
    sampled.sort(key=lambda j: int(ks[j]))
    for s in range(0, n_resamples if sampled else 0, chunk):
        r = min(chunk, n_resamples - s)
        kmax = int(ks[sampled[-1]])
        idx = random_prefixes(rng, r * p, n, kmax) + np.tile(row_base, r)  # [kmax, r * P]
        count, total = np.zeros((r, p, a)), np.zeros((r, p, a))
        done = 0
        for j in sampled:  # by increasing k: add the votes of the entries done..k-1
            more_count, more_total = tally(idx[done : int(ks[j])])
            count += more_count
            total = count if not weighted else total + more_total
            done = int(ks[j])
            out[:, j] += value(count, total)
    if sampled:
        out[:, sampled] /= n_resamples
    return out
