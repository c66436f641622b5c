"""Calibration of reward models: temperature scaling, isotonic fitting (PAV), ECE, reliability PNG.

A reward model's scores become probabilities in two ways:

- **pairwise**: P(chosen ≻ rejected) = σ(Δ/T) with Δ = r_c − r_r (the Bradley-Terry model).
  :func:`pairwise_calibration_data` *symmetrises* the pairs: each pair gives (Δ, 1) and
  (−Δ, 0), so a calibrator cannot win by always saying "chosen", and an isotonic map fitted on
  it is (up to ties) antisymmetric. With bins symmetric about 0.5 (any even ``n_bins``) the ECE
  of the symmetrised data equals the top-label ECE of Guo et al. 2017 on the pairs.
- **pointwise**: P(correct | score), e.g. an outcome RM's score against the testbed's truth.

Calibrators are fitted on a dev split and applied to held-out data:

- :class:`TemperatureScaling`: p = σ(s/T + b) (Guo et al. 2017; ``b`` only with
  ``fit_bias=True``, i.e. Platt scaling), fitted by Newton's method on the log-loss;
- :class:`IsotonicCalibration`: the non-decreasing step map of least squared error, fitted by
  pool-adjacent-violators (Zadrozny & Elkan 2002), linearly interpolated between blocks and
  clipped outside the fitted range. Plain numpy.

**ECE** (:func:`ece`): ``n_bins`` equal-width bins on [0, 1] (default 10: [0, .1), [.1, .2),
…, [.9, 1.0], the last closed), over the predicted probability of the positive class;
ECE = Σ_b (n_b/n)·|mean(y_b) − mean(p_b)|, empty bins contribute 0.

>>> round(ece(np.array([0.15, 0.15, 0.85, 0.85]), np.array([0, 1, 1, 1])), 4)  # (2·.35 + 2·.15)/4
0.25
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rewardlab.evaluate.bootstrap import as_generator


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    x = np.asarray(x, dtype=float)
    out: np.ndarray = np.exp(-np.logaddexp(0.0, -x))
    return out


def pairwise_calibration_data(deltas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetrised pairs: scores (Δ, −Δ), labels (1, 0) and the pair index of each item."""
    d = np.asarray(deltas, dtype=float)
    idx = np.arange(d.size)
    return (
        np.concatenate([d, -d]),
        np.concatenate([np.ones(d.size), np.zeros(d.size)]),
        (np.concatenate([idx, idx])),
    )


def _bin_index(probs: np.ndarray, n_bins: int) -> np.ndarray:
    out: np.ndarray = np.minimum((np.asarray(probs, dtype=float) * n_bins).astype(int), n_bins - 1)
    return out


def reliability_bins(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = 10
) -> list[dict[str, float]]:
    """Per equal-width bin: bounds, count, mean predicted probability, fraction positive."""
    p, y = np.asarray(probs, dtype=float), np.asarray(labels, dtype=float)
    b = _bin_index(p, n_bins)
    rows = []
    for k in range(n_bins):
        sel = b == k
        n = int(sel.sum())
        rows.append(
            {
                "lo": k / n_bins,
                "hi": (k + 1) / n_bins,
                "count": n,
                "mean_prob": float(p[sel].mean()) if n else float("nan"),
                "frac_pos": float(y[sel].mean()) if n else float("nan"),
            }
        )
    return rows


def ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error with equal-width bins (see the module docstring)."""
    p, y = np.asarray(probs, dtype=float), np.asarray(labels, dtype=float)
    if p.shape != y.shape or p.size == 0:
        raise ValueError("probs and labels must be non-empty and of the same shape")
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probabilities must lie in [0, 1]")
    gaps = np.bincount(_bin_index(p, n_bins), weights=p - y, minlength=n_bins)
    return float(np.abs(gaps).sum() / p.size)


def ece_ci(
    probs: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None = None,
    n_bins: int = 10,
    n_boot: int = 1000,
    alpha: float = 0.05,
    rng: np.random.Generator | int = 0,
) -> tuple[float, float, float]:
    """ECE and its percentile-bootstrap interval, resampling ``groups`` (default: items).

    Vectorised: per group, the sums of (p − y) and counts per bin [G, bins]; each replicate is a
    count vector over groups, so one matmul gives every replicate's bin gaps.
    """
    p, y = np.asarray(probs, dtype=float), np.asarray(labels, dtype=float)
    g = np.arange(p.size) if groups is None else np.asarray(groups)
    _, g = np.unique(g, return_inverse=True)
    n_groups = int(g.max()) + 1
    b = _bin_index(p, n_bins)
    gap = np.zeros((n_groups, n_bins))
    cnt = np.zeros(n_groups)
    np.add.at(gap, (g, b), p - y)
    np.add.at(cnt, g, 1.0)
    draws = as_generator(rng).integers(0, n_groups, size=(n_boot, n_groups))
    w = np.stack([np.bincount(row, minlength=n_groups) for row in draws]).astype(float)
    boot = np.abs(w @ gap).sum(axis=1) / (w @ cnt)
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return ece(p, y, n_bins), float(low), float(high)


@dataclass(frozen=True)
class TemperatureScaling:
    """p = σ(score / temperature + bias)."""

    temperature: float = 1.0
    bias: float = 0.0

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return sigmoid(np.asarray(scores, dtype=float) / self.temperature + self.bias)


def fit_temperature(
    scores: np.ndarray, labels: np.ndarray, fit_bias: bool = False, max_iter: int = 100
) -> TemperatureScaling:
    """Minimise the log-loss of σ(a·s + b) over a > 0 (and b) by damped Newton steps.

    Scores are standardised first and a tiny ridge (1e-6·n on a) keeps separable data finite.
    When the scores are anti-correlated with the labels the best a is ≤ 0; it is clamped to
    1e-6 (temperature → very large, every p → σ(b)): a temperature cannot flip a ranking.
    """
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
    if s.shape != y.shape or s.size == 0:
        raise ValueError("scores and labels must be non-empty and of the same shape")
    scale = float(s.std()) or 1.0
    x = s / scale
    feats = np.stack([x, np.ones_like(x)], axis=1) if fit_bias else x[:, None]
    theta = np.zeros(feats.shape[1])
    theta[0] = 1.0
    ridge = 1e-6 * s.size

    def loss(t: np.ndarray) -> float:
        z = feats @ t
        return float(np.logaddexp(0.0, z).sum() - (y * z).sum() + 0.5 * ridge * t[0] ** 2)

    for _ in range(max_iter):
        p = sigmoid(feats @ theta)
        grad = feats.T @ (p - y)
        grad[0] += ridge * theta[0]
        hess = (feats * (p * (1 - p))[:, None]).T @ feats
        hess[0, 0] += ridge
        step = np.linalg.solve(hess + 1e-12 * np.eye(len(theta)), grad)
        t, current = 1.0, loss(theta)
        while loss(theta - t * step) > current and t > 1e-8:
            t /= 2
        theta = theta - t * step
        if np.abs(t * step).max() < 1e-10:
            break
    a = max(float(theta[0]), 1e-6)
    return TemperatureScaling(temperature=scale / a, bias=float(theta[1]) if fit_bias else 0.0)


def pav(values: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Pool-adjacent-violators: the non-decreasing fit of least weighted squared error.

    >>> pav(np.array([1.0, 3.0, 2.0, 4.0])).tolist()
    [1.0, 2.5, 2.5, 4.0]
    """
    v = np.asarray(values, dtype=float)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=float)
    means: list[float] = []
    wts: list[float] = []
    sizes: list[int] = []
    for vi, wi in zip(v.tolist(), w.tolist(), strict=True):
        means.append(vi)
        wts.append(wi)
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            w2 = wts[-2] + wts[-1]
            m2 = (means[-2] * wts[-2] + means[-1] * wts[-1]) / w2
            n2 = sizes[-2] + sizes[-1]
            del means[-1], wts[-1], sizes[-1]
            means[-1], wts[-1], sizes[-1] = m2, w2, n2
    return np.repeat(means, sizes)


@dataclass(frozen=True)
class IsotonicCalibration:
    """A non-decreasing map from score to probability: knots ``x`` (increasing) and ``y``."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def predict(self, scores: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.interp(np.asarray(scores, dtype=float), self.x, self.y)
        return out


def fit_isotonic(scores: np.ndarray, labels: np.ndarray) -> IsotonicCalibration:
    """Isotonic regression of labels on scores (equal scores pooled first, then PAV).

    Each fitted block contributes knots at its lowest and highest score with the block's
    value, so prediction is constant within a block and linear between blocks.
    """
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
    if s.shape != y.shape or s.size == 0:
        raise ValueError("scores and labels must be non-empty and of the same shape")
    uniq, inv = np.unique(s, return_inverse=True)
    w = np.bincount(inv).astype(float)
    mean_y = np.bincount(inv, weights=y) / w
    fitted = pav(mean_y, w)
    xs: list[float] = []
    ys: list[float] = []
    start = 0
    for k in range(1, len(uniq) + 1):
        if k == len(uniq) or fitted[k] != fitted[start]:
            xs.append(float(uniq[start]))
            ys.append(float(fitted[start]))
            if k - 1 > start:
                xs.append(float(uniq[k - 1]))
                ys.append(float(fitted[start]))
            start = k
    return IsotonicCalibration(tuple(xs), tuple(ys))


def reliability_diagram(
    series: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    n_bins: int = 10,
    title: str = "Reliability",
) -> Path:
    """A PNG: fraction positive against mean predicted probability per bin, one line per series
    (``name -> (probs, labels)``, the name gains its ECE), the diagonal, and bin counts below."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, (ax, hx) = plt.subplots(
        2, 1, figsize=(6, 7), gridspec_kw={"height_ratios": [3, 1]}, sharex=True
    )
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    centers = (np.arange(n_bins) + 0.5) / n_bins
    width = 1.0 / n_bins / (len(series) + 1)
    for i, (name, (p, y)) in enumerate(series.items()):
        rows = reliability_bins(p, y, n_bins)
        xs = [r["mean_prob"] for r in rows if r["count"]]
        ys = [r["frac_pos"] for r in rows if r["count"]]
        ax.plot(xs, ys, "-o", ms=4, label=f"{name} (ECE {ece(p, y, n_bins):.3f})")
        hx.bar(
            centers - 0.5 / n_bins + (i + 0.5) * width,
            [r["count"] for r in rows],
            width=width,
            label=name,
        )
    ax.set_ylabel("fraction positive")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    hx.set_xlabel("predicted probability")
    hx.set_ylabel("count")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
