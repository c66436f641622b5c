"""Overoptimisation of a proxy reward under best-of-N, measured by a gold reward; STARC distance.

**Best-of-N against KL** (Gao et al. 2023, "Scaling laws for reward model overoptimization";
papers.md #46, #53): from a pool of n responses per prompt with proxy scores and gold scores,
the expected gold reward of the proxy's best of N (N drawn uniformly without replacement) is
exact by order statistics — with responses sorted by proxy score, rank i is the best of the
draw with probability C(n−1−i, N−1)/C(n, N); a block of tied proxy scores shares its
probability mass and contributes its mean gold (the exact expectation of a uniform tie-break).
The x-axis is KL_BoN = log N − (N−1)/N. :func:`fit_gao_bon` fits R(d) − R(0) = d·(α − β·d),
d = √KL_BoN, by least squares.

**STARC** (Skalse et al. 2024; papers.md #17) between two rewards on the same candidates: for
one-step episodes (prompt = state, response = action, then the episode ends) the
value-adjusted canonicalisation under the uniform policy is c(R)(s, a) = R(s, a) − mean_a'
R(s, a'); each canonical reward is divided by its L2 norm (every prompt weighs alike, every
response alike within its prompt; a zero norm gives 0), and the distance is half the L2
distance of the standardised rewards, so it lies in [0, 1]: 0 for R and a·R + b(s) (a > 0),
1 for R and −R.

>>> kl_bon(np.array([1, 2, 4])).round(4).tolist()
[0.0, 0.1931, 0.6363]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def kl_bon(ns: np.ndarray) -> np.ndarray:
    """KL(best-of-N ‖ base) = log N − (N − 1)/N (Stiennon et al. 2020; Gao et al. 2023)."""
    n = np.asarray(ns, dtype=float)
    if (n < 1).any():
        raise ValueError("N must be >= 1")
    out: np.ndarray = np.log(n) - (n - 1) / n
    return out


def bon_gold(proxy: np.ndarray, gold: np.ndarray, ns: Sequence[int]) -> np.ndarray:
    """Expected gold reward of best-of-N by ``proxy``, per prompt: float [P, len(ns)].

    ``proxy`` and ``gold`` are [P, n]; NaN proxy = ungraded, ranked below every graded response.

    >>> bon_gold(np.array([[3.0, 2.0, 1.0]]), np.array([[0.0, 1.0, 1.0]]), [1, 2, 3]).tolist()
    [[0.6666666666666666, 0.3333333333333333, 0.0]]
    """
    s = np.asarray(proxy, dtype=float)
    g = np.asarray(gold, dtype=float)
    if s.shape != g.shape or s.ndim != 2:
        raise ValueError(f"proxy {s.shape} and gold {g.shape} must both be [P, n]")
    if np.isnan(g).any():
        raise ValueError("gold contains NaN")
    p, n = s.shape
    ks = np.asarray(ns, dtype=int)
    if ((ks < 1) | (ks > n)).any():
        raise ValueError(f"every N must be in 1..{n}")
    s = np.where(np.isnan(s), -np.inf, s)
    order = np.argsort(-s, axis=1, kind="stable")
    s_sorted = np.take_along_axis(s, order, axis=1)
    g_sorted = np.take_along_axis(g, order, axis=1)
    out = np.zeros((p, ks.size))
    for j, k in enumerate(ks.tolist()):
        # T[i] = P(no draw among ranks < i) = C(n - i, k) / C(n, k), a running product
        i = np.arange(n + 1, dtype=float)
        factors = np.where(i[:-1] <= n - k, (n - i[:-1] - k) / (n - i[:-1]), 0.0)
        t = np.concatenate([[1.0], np.cumprod(np.clip(factors, 0.0, None))])
        for row in range(p):
            start = 0
            while start < n:
                end = start + 1
                while end < n and s_sorted[row, end] == s_sorted[row, start]:
                    end += 1
                mass = t[start] - t[end]
                out[row, j] += mass * g_sorted[row, start:end].mean()
                start = end
    return out


def fit_gao_bon(kl: np.ndarray, gold: np.ndarray) -> tuple[float, float]:
    """Least-squares (α, β) of gold(d) − gold(0) = d·(α − β·d), d = √KL; needs KL[0] == 0."""
    d = np.sqrt(np.asarray(kl, dtype=float))
    y = np.asarray(gold, dtype=float) - float(np.asarray(gold)[0])
    a = np.stack([d, -(d**2)], axis=1)
    (alpha, beta), *_ = np.linalg.lstsq(a, y, rcond=None)
    return float(alpha), float(beta)


def fit_gao_rl(kl: np.ndarray, gold: np.ndarray) -> tuple[float, float]:
    """Least-squares (α, β) of gold(d) − gold(0) = d·(α − β·log d), d = √KL, the RL form of
    Gao et al. 2023 that Rafailov et al. 2024 ("Scaling laws for reward model overoptimization
    in direct alignment algorithms", papers.md §46) fit to DAAs. ``gold[0]`` must be the KL = 0
    point; points with d = 0 other than it are dropped (log 0); negative Monte-Carlo KL
    estimates count as 0.

    >>> d = np.array([0.0, 0.5, 1.0, 2.0])
    >>> a, b = fit_gao_rl(d**2, 0.3 + d * (1.0 - 0.4 * np.log(np.where(d > 0, d, 1))))
    >>> round(a, 6), round(b, 6)
    (1.0, 0.4)
    """
    k = np.clip(np.asarray(kl, dtype=float), 0.0, None)
    g = np.asarray(gold, dtype=float)
    if k.shape != g.shape or k.ndim != 1 or k.size < 3:
        raise ValueError(f"kl {k.shape} and gold {g.shape} must be 1-D with >= 3 points")
    d = np.sqrt(k)
    y = g - g[0]
    keep = d > 0
    if keep.sum() < 2:
        raise ValueError("fit_gao_rl needs at least two points with KL > 0")
    a = np.stack([d[keep], -d[keep] * np.log(d[keep])], axis=1)
    (alpha, beta), *_ = np.linalg.lstsq(a, y[keep], rcond=None)
    return float(alpha), float(beta)


def starc_standardise(reward: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per-prompt centred, then divided by the prompt- and response-weighted L2 norm."""
    r = np.asarray(reward, dtype=float)
    _, inv, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    means = np.bincount(inv, weights=r) / counts
    c = r - means[inv]
    w = 1.0 / (counts[inv] * counts.size)
    norm = float(np.sqrt((w * c * c).sum()))
    out: np.ndarray = c / norm if norm > 0 else np.zeros_like(c)
    return out


def starc_distance(r1: np.ndarray, r2: np.ndarray, groups: np.ndarray) -> float:
    """STARC distance in [0, 1] between two rewards of the same candidates (see module doc).

    >>> g = np.array([0, 0, 1, 1]); r = np.array([1.0, 2.0, 0.0, 3.0])
    >>> starc_distance(r, 2 * r + 5, g), starc_distance(r, -r, g)
    (0.0, 1.0)
    """
    g = np.asarray(groups)
    a, b = starc_standardise(r1, g), starc_standardise(r2, g)
    _, inv, counts = np.unique(g, return_inverse=True, return_counts=True)
    w = 1.0 / (counts[inv] * counts.size)
    return round(float(0.5 * np.sqrt((w * (a - b) ** 2).sum())), 12)
