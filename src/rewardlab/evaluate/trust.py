"""Trust diagnostics for reward models, on score arrays: pure numpy, every number with a CI.

The harness (:mod:`.trust_eval`) scores files and pools and calls these. Each function states
the rule it implements and the paper it comes from; each returns ``{name: (value, low, high,
n)}`` with a 95% percentile-bootstrap interval (resampling the unit named in its doc).

- :func:`position_bias`: a pairwise judge asked twice, the pair in both orders (Zheng et al.
  2023, "Judging LLM-as-a-judge", position consistency). A scalar RM scores each response
  alone, so swapping the pair swaps its two scores and the bias is **0 by construction**.
- :func:`contrast_consistency`: RMC, Contrast Instructions (Shen et al. 2023, "The trickle-down
  impact of reward (in-)consistency on RLHF").
- :func:`scir_agreement`: agreement of two internal reward models and the precision of the
  pairs they agree on (Zhou et al. 2025, SCIR: DPO only on pairs where the judge and the
  implicit reward agree).
- :func:`shortcut_preference`, :func:`min_at_last_step`: BoN-bias checks of "The lessons of
  developing process reward models" (Zhang et al. 2025): does a PRM rank a short or
  answer-only solution at or above the full derivation; do minimum step scores cluster on the
  final step.
- :func:`step_auroc`: the AUROC of step scores against exact step labels, for the step
  ablations of "What are step-level reward models rewarding?" (Ma et al. 2025).
- :func:`group_accuracy`: accuracy per group (subset, language: M-RewardBench, Gureja et al.
  2024) with a CI per group.
- :func:`rank_correlation_ci`: the "alignment ceiling" diagnostic (Lambert & Calandra 2023):
  across reward models, Spearman and Kendall τ-b between RM accuracy and downstream best-of-N
  gain, with a CI that resamples problems (both quantities recomputed per replicate).

>>> out = contrast_consistency(np.array([2.0, 1.0]), np.array([1.0, 0.0]),
...                            np.array([3.0, 1.0]), np.array([0.0, 2.0]))
>>> out["consistency"][0], out["side_accuracy"][0]  # pair 2 is right on one side only
(0.5, 0.75)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from rewardlab.evaluate.bootstrap import as_generator
from rewardlab.evaluate.rm_metrics import spearman

Stat = tuple[float, float, float, int]
"""``(value, low, high, n)``: a number, its 95% interval and the count it rests on."""

ALPHA = 0.05


def _counts(n: int, n_boot: int, rng: np.random.Generator | int) -> np.ndarray:
    """Bootstrap counts [B, n]: how often each unit is drawn in each replicate."""
    if n < 1:
        raise ValueError("need at least one unit to resample")
    draws = as_generator(rng).integers(0, n, size=(n_boot, n))
    draws += np.arange(n_boot)[:, None] * n
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def _ci(point: float, reps: np.ndarray) -> tuple[float, float]:
    r = reps[~np.isnan(reps)]
    if r.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(r, [ALPHA / 2, 1 - ALPHA / 2])
    return float(lo), float(hi)


def mean_stats(
    columns: Mapping[str, np.ndarray], n_boot: int = 1000, rng: np.random.Generator | int = 0
) -> dict[str, Stat]:
    """Mean of each per-unit column, with one shared set of bootstrap replicates over units."""
    names = list(columns)
    x = np.stack([np.asarray(columns[k], dtype=float) for k in names], axis=1)  # [n, K]
    c = _counts(x.shape[0], n_boot, rng)
    reps = c @ x / x.shape[0]
    out: dict[str, Stat] = {}
    for j, k in enumerate(names):
        point = float(x[:, j].mean())
        out[k] = (point, *_ci(point, reps[:, j]), int(x.shape[0]))
    return out


def ratio_stats(
    num: Mapping[str, np.ndarray],
    den: Mapping[str, np.ndarray],
    n_boot: int = 1000,
    rng: np.random.Generator | int = 0,
) -> dict[str, Stat]:
    """Σ num / Σ den per name over resampled units (a ratio of sums; NaN where Σ den = 0).

    ``n`` is Σ den (the events the ratio counts), the units are what is resampled.
    """
    names = list(num)
    a = np.stack([np.asarray(num[k], dtype=float) for k in names], axis=1)
    b = np.stack([np.asarray(den[k], dtype=float) for k in names], axis=1)
    c = _counts(a.shape[0], n_boot, rng)
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = (c @ a) / (c @ b)
    out: dict[str, Stat] = {}
    for j, k in enumerate(names):
        total = float(b[:, j].sum())
        point = float(a[:, j].sum() / total) if total > 0 else float("nan")
        out[k] = (point, *_ci(point, reps[:, j]), round(total))
    return out


# ------------------------------------------------------------------------------ position bias


def position_bias(
    p_first_ab: np.ndarray,
    p_first_ba: np.ndarray,
    n_boot: int = 1000,
    rng: np.random.Generator | int = 0,
) -> dict[str, Stat]:
    """Position bias of a pairwise judge from the pair shown in both orders.

    ``p_first_ab[i]`` is the judge's P(first shown ≻ second) with the chosen response A first,
    ``p_first_ba[i]`` the same with the rejected response B first. A verdict is "first" when
    p > 0.5, "second" when p < 0.5, and a tie at exactly 0.5. Metrics (resampling pairs):

    - ``first_rate``: the share of the 2n verdicts that pick the response shown first (ties
      count ½); an order-blind judge has 0.5;
    - ``position_bias`` = first_rate − 0.5, in [−0.5, 0.5] (> 0: favours the first slot);
    - ``soft_bias``: mean of (p_ab + p_ba)/2 − 0.5, the same on probabilities; for a scalar RM
      read as σ(r_first − r_second) it is exactly 0 (σ(d) + σ(−d) = 1);
    - ``consistency``: pairs whose two verdicts pick the same response (a tie is inconsistent);
    - ``accuracy/ab``, ``accuracy/ba``: the chosen response wins in that order (ties lose);
      ``accuracy`` their mean.

    >>> out = position_bias(np.array([0.9, 0.8]), np.array([0.7, 0.6]), n_boot=10)
    >>> out["first_rate"][0], out["consistency"][0], out["accuracy"][0]  # always "first"
    (1.0, 0.0, 0.5)
    """
    ab = np.asarray(p_first_ab, dtype=float)
    ba = np.asarray(p_first_ba, dtype=float)
    if ab.shape != ba.shape or ab.ndim != 1 or ab.size == 0:
        raise ValueError(f"need two equal non-empty 1-D arrays, got {ab.shape} and {ba.shape}")
    if np.isnan(ab).any() or np.isnan(ba).any():
        raise ValueError("position_bias: NaN verdicts (ungraded pairs must be left out first)")
    pick_ab = np.sign(ab - 0.5)  # +1: A (shown first) wins
    pick_ba = np.sign(0.5 - ba)  # +1: A (shown second) wins
    first = (np.where(ab == 0.5, 0.5, ab > 0.5) + np.where(ba == 0.5, 0.5, ba > 0.5)) / 2
    acc_ab, acc_ba = (pick_ab > 0).astype(float), (pick_ba > 0).astype(float)
    out = mean_stats(
        {
            "first_rate": first,
            "position_bias": first - 0.5,
            "soft_bias": (ab + ba) / 2 - 0.5,
            "consistency": ((pick_ab == pick_ba) & (pick_ab != 0)).astype(float),
            "accuracy": (acc_ab + acc_ba) / 2,
            "accuracy/ab": acc_ab,
            "accuracy/ba": acc_ba,
        },
        n_boot,
        rng,
    )
    return out


# ------------------------------------------------------------------ contrast instructions (RMC)


def contrast_consistency(
    s11: np.ndarray,
    s12: np.ndarray,
    s22: np.ndarray,
    s21: np.ndarray,
    n_boot: int = 1000,
    rng: np.random.Generator | int = 0,
) -> dict[str, Stat]:
    """Contrast-instruction consistency (Shen et al. 2023), resampling contrast pairs.

    ``sij = r(x_i, y_j)``: two lexically similar instructions x1, x2 with their own gold
    responses y1, y2. A pair is **consistent** iff r(x1, y1) > r(x1, y2) **and**
    r(x2, y2) > r(x2, y1) (strict; NaN fails). ``side_accuracy`` is the mean of the two
    one-sided tests. An RM that ignores the instruction (r depends on y only) can pass at most
    one side of every pair: its consistency is 0 while its side accuracy is 0.5.
    """
    a, b, c, d = (np.asarray(v, dtype=float) for v in (s11, s12, s22, s21))
    one, two = (a > b).astype(float), (c > d).astype(float)  # a comparison with NaN is False
    return mean_stats(
        {"consistency": one * two, "side_accuracy": (one + two) / 2}, n_boot=n_boot, rng=rng
    )


# ------------------------------------------------------------------------------------- SCIR


def scir_agreement(
    delta_a: np.ndarray,
    delta_b: np.ndarray,
    n_boot: int = 1000,
    rng: np.random.Generator | int = 0,
) -> dict[str, Stat]:
    """Agreement filtering of two reward models on labelled pairs (SCIR, Zhou et al. 2025).

    ``delta_x[i] = r_x(chosen) − r_x(rejected)`` of reward model x on pair i (the file's
    chosen side is the gold label; NaN = ungraded). The two models **agree** on a pair when
    both deltas are non-zero and of the same sign; SCIR trains only on those pairs, labelled by
    the models. Metrics (resampling pairs):

    - ``agreement``: the share of pairs kept;
    - ``accuracy/a``, ``accuracy/b``: delta > 0 (ties and NaN lose) over all pairs;
    - ``kept_precision``: over kept pairs, the models' shared label equals the gold one — the
      label precision SCIR trains on; compare with ``accuracy/a`` (the judge's labels
      unfiltered). NaN when nothing is kept.
    """
    a, b = np.asarray(delta_a, dtype=float), np.asarray(delta_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two equal non-empty 1-D arrays, got {a.shape} and {b.shape}")
    sa, sb = np.sign(np.nan_to_num(a)), np.sign(np.nan_to_num(b))
    kept = ((sa == sb) & (sa != 0)).astype(float)
    ones = np.ones_like(kept)
    return ratio_stats(
        {
            "agreement": kept,
            "accuracy/a": (sa > 0).astype(float),
            "accuracy/b": (sb > 0).astype(float),
            "kept_precision": kept * (sa > 0),
        },
        {"agreement": ones, "accuracy/a": ones, "accuracy/b": ones, "kept_precision": kept},
        n_boot,
        rng,
    )


# ------------------------------------------------------------- BoN bias (Lessons of PRMs)


def shortcut_preference(
    full: np.ndarray,
    short: np.ndarray,
    groups: np.ndarray,
    n_boot: int = 1000,
    rng: np.random.Generator | int = 0,
) -> dict[str, Stat]:
    """How often a reward ranks a shortcut at or above the full solution it was cut from.

    ``full[i]`` and ``short[i]`` score the same solution complete and shortened (answer-only,
    truncated); ``groups[i]`` is its problem (problems are resampled). Keys: ``prefers_short``
    (short > full strictly), ``ties`` (equal; both NaN counts as a tie, one NaN side loses),
    ``prefers_full``. A PRM that checks the process prefers the full derivation; Zhang et al.
    2025 show BoN-tuned PRMs drift toward outcome-only scoring.
    """
    f, s = np.asarray(full, dtype=float), np.asarray(short, dtype=float)
    f_eff, s_eff = np.where(np.isnan(f), -np.inf, f), np.where(np.isnan(s), -np.inf, s)
    cols = {
        "prefers_short": (s_eff > f_eff).astype(float),
        "ties": (s_eff == f_eff).astype(float),
        "prefers_full": (f_eff > s_eff).astype(float),
    }
    return _by_group_means(cols, groups, n_boot, rng)


def _by_group_means(
    cols: Mapping[str, np.ndarray],
    groups: np.ndarray,
    n_boot: int,
    rng: np.random.Generator | int,
) -> dict[str, Stat]:
    """Item means with a bootstrap over groups (ratio of resampled sums)."""
    g = np.asarray(groups)
    _, inv = np.unique(g, return_inverse=True)
    k = int(inv.max()) + 1 if inv.size else 0
    num = {
        name: np.bincount(inv, weights=np.asarray(v, float), minlength=k)
        for name, v in cols.items()
    }
    cnt = np.bincount(inv, minlength=k).astype(float)
    out = ratio_stats(num, dict.fromkeys(num, cnt), n_boot, rng)
    return {name: (*out[name][:3], int(g.size)) for name in out}


def min_at_last_step(
    step_scores: Sequence[Sequence[float]],
    first_errors: Sequence[int],
    groups: np.ndarray,
    n_boot: int = 1000,
    rng: np.random.Generator | int = 0,
) -> dict[str, Stat]:
    """Where the minimum step score falls, on candidates with ≥ 2 steps (Zhang et al. 2025).

    ``min_at_last``: the share whose lowest step score is on the last step (ties: the first
    minimum); ``error_at_last``: the share whose true first error is the last step (a perfect
    PRM's rate on wrong candidates); both over **wrong** candidates (first error ≥ 0), so the
    excess of the first over the second measures outcome-like scoring. ``min_at_first_error``:
    the share whose minimum sits exactly at the first error (a perfect PRM's is 1).
    """
    keep = [
        i
        for i, (s, e) in enumerate(zip(step_scores, first_errors, strict=True))
        if len(s) >= 2 and e >= 0 and not np.isnan(np.asarray(s, dtype=float)).any()
    ]
    if not keep:
        raise ValueError("no wrong candidate with >= 2 graded steps")
    arg = np.array([int(np.argmin(np.asarray(step_scores[i], dtype=float))) for i in keep])
    last = np.array([len(step_scores[i]) - 1 for i in keep])
    err = np.array([first_errors[i] for i in keep])
    cols = {
        "min_at_last": (arg == last).astype(float),
        "error_at_last": (err == last).astype(float),
        "min_at_first_error": (arg == err).astype(float),
    }
    return _by_group_means(cols, np.asarray(groups)[keep], n_boot, rng)


# ------------------------------------------------------------------------- step ablation


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + ½·P(tie) (Mann–Whitney); NaN if a class
    is missing.

    >>> auroc(np.array([0.9, 0.2, 0.5, 0.5]), np.array([1, 0, 1, 0]))
    0.875
    """
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    from rewardlab.evaluate.rm_metrics import ranks

    r = ranks(np.concatenate([pos, neg]))
    return float((r[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def step_auroc(
    scores: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    n_boot: int = 300,
    rng: np.random.Generator | int = 0,
) -> Stat:
    """Step AUROC (:func:`auroc` over all steps) with a CI that resamples problems (groups)."""
    s, y, g = np.asarray(scores, float), np.asarray(labels, bool), np.asarray(groups)
    ok = ~np.isnan(s)
    s, y, g = s[ok], y[ok], g[ok]
    from rewardlab.evaluate.rm_metrics import grouped_replicates

    point, reps = grouped_replicates(lambda i: auroc(s[i], y[i]), g, n_boot, rng)
    return (point, *_ci(point, reps), int(s.size))


def score_shift(
    base: np.ndarray,
    other: np.ndarray,
    groups: np.ndarray,
    n_boot: int = 300,
    rng: np.random.Generator | int = 0,
) -> dict[str, Stat]:
    """How much an ablation moves step scores: ``spearman`` between the two conditions and
    ``mean_abs_diff`` (mean |other − base|), resampling problems; NaN pairs are left out."""
    a, b, g = np.asarray(base, float), np.asarray(other, float), np.asarray(groups)
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b, g = a[ok], b[ok], g[ok]
    from rewardlab.evaluate.rm_metrics import grouped_replicates

    out: dict[str, Stat] = {}
    for name, fn in (
        ("spearman", lambda i: spearman(a[i], b[i])),
        ("mean_abs_diff", lambda i: float(np.mean(np.abs(a[i] - b[i])))),
    ):
        point, reps = grouped_replicates(fn, g, n_boot, rng)
        out[name] = (point, *_ci(point, reps), int(a.size))
    return out


# ------------------------------------------------------------------------ group breakdown


def group_accuracy(
    correct: np.ndarray,
    groups: Sequence[str],
    n_boot: int = 1000,
    rng: np.random.Generator | int = 0,
) -> dict[str, Stat]:
    """Mean of ``correct`` per group (items resampled within their group), keyed by group."""
    x = np.asarray(correct, dtype=float)
    g = np.asarray(list(groups))
    gen = as_generator(rng)
    out: dict[str, Stat] = {}
    for name in sorted(set(g.tolist())):
        out[name] = mean_stats({"v": x[g == name]}, n_boot, gen)["v"]
    return out


# -------------------------------------------------------------------- alignment ceiling


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's τ-b (tie-corrected); 0.0 when either side is constant.

    >>> kendall_tau_b(np.array([1, 2, 3, 4]), np.array([1, 3, 2, 4]))  # 5 concordant, 1 not
    0.6666666666666666
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    iu = np.triu_indices(a.size, 1)
    da = np.sign(a[:, None] - a[None, :])[iu]
    db = np.sign(b[:, None] - b[None, :])[iu]
    n1, n2 = np.count_nonzero(da), np.count_nonzero(db)
    if n1 == 0 or n2 == 0:
        return 0.0
    return float((da * db).sum() / np.sqrt(float(n1) * float(n2)))


def rank_correlation_ci(
    acc_num: np.ndarray,
    acc_den: np.ndarray,
    gain: np.ndarray,
    n_boot: int = 1000,
    rng: np.random.Generator | int = 0,
) -> dict[str, Stat]:
    """Rank correlation across J reward models between accuracy and best-of-N gain.

    Per problem p and model j: ``acc_num[p, j]`` pairs won, ``acc_den[p, j]`` pairs judged
    (accuracy_j = Σ_p num / Σ_p den) and ``gain[p, j]`` the model's best-of-N gain on p
    (gain_j = mean over problems). Each replicate redraws problems and recomputes both, then
    Spearman and Kendall τ-b over the J models (Lambert & Calandra 2023, "The alignment
    ceiling": does RM accuracy predict downstream quality?). ``n`` is J.
    """
    num, den, g = (np.asarray(v, dtype=float) for v in (acc_num, acc_den, gain))
    if not num.shape == den.shape == g.shape or num.ndim != 2:
        raise ValueError(f"need three [P, J] arrays, got {num.shape}, {den.shape}, {g.shape}")
    p, j = num.shape
    if j < 3:
        raise ValueError(f"a rank correlation across reward models needs >= 3 of them, got {j}")
    c = _counts(p, n_boot, rng)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc_r = (c @ num) / (c @ den)
    gain_r = c @ g / p
    acc = num.sum(0) / den.sum(0)
    gain_pt = g.mean(0)
    out: dict[str, Stat] = {}
    for name, fn in (("spearman", spearman), ("kendall", kendall_tau_b)):
        point = fn(acc, gain_pt)
        reps = np.array(
            [
                fn(acc_r[b], gain_r[b]) if not np.isnan(acc_r[b]).any() else np.nan
                for b in range(n_boot)
            ]
        )
        out[name] = (float(point), *_ci(float(point), reps), j)
    return out


# ----------------------------------------------------------------- ProcessBench F1 with a CI


def processbench_f1_ci(
    labels: Sequence[int],
    preds: Sequence[int],
    groups: np.ndarray,
    n_boot: int = 1000,
    rng: np.random.Generator | int = 0,
) -> dict[str, Stat]:
    """ProcessBench's ``f1``, ``acc_error`` and ``acc_correct`` (Zheng et al. 2024, see
    :func:`rewardlab.evaluate.process.processbench_f1`) from true and predicted first errors
    (-1: none), with a CI that resamples problems (``groups``: all solutions of a problem
    together). ``n`` is the number of items.

    >>> out = processbench_f1_ci([-1, 2, 0], [-1, 2, 1], np.array([0, 1, 2]), n_boot=10)
    >>> round(out["f1"][0], 4), out["acc_error"][0], out["acc_correct"][0]
    (0.6667, 0.5, 1.0)
    """
    from rewardlab.evaluate.process import processbench_f1
    from rewardlab.evaluate.rm_metrics import grouped_replicates

    y, p, g = np.asarray(labels), np.asarray(preds), np.asarray(groups)
    if not y.shape == p.shape == g.shape or y.ndim != 1 or y.size == 0:
        raise ValueError(
            f"need three equal non-empty 1-D arrays, got {y.shape}, {p.shape}, {g.shape}"
        )
    seed = rng if isinstance(rng, int) else int(rng.integers(2**32))  # one draw for all three

    def stat(name: str) -> Callable[[np.ndarray], float]:
        def f(i: np.ndarray) -> float:
            return float(getattr(processbench_f1(y[i].tolist(), p[i].tolist()), name))

        return f

    out: dict[str, Stat] = {}
    for name in ("f1", "acc_error", "acc_correct"):
        point, reps = grouped_replicates(stat(name), g, n_boot, seed)
        out[name] = (point, *_ci(point, reps), int(y.size))
    return out
