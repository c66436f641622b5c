"""Compute-optimal test-time strategy selection per difficulty bin (Snell et al. 2024, §3-5).

Pure numpy on a generic table: for configs ``c`` (a strategy and its hyperparameters, e.g.
``bon[prm:last]``, ``beam[prm:4]``, a temperature / top-p variant of a pool), problems ``p``
and budgets ``b`` (N = 1, 2, 4, ...), ``acc[c, p, b]`` is the expected accuracy of config ``c``
on problem ``p`` at budget ``b`` (from an offline strategy's ``curve``, or 0/1 from an online
run) and ``cost[c, p, b]`` what it spent (FLOPs, policy + verifier). NaN in both marks an
option that was not run (e.g. beam width 4 at N = 2).

**Options** are (config, budget) pairs. **Levels** are the budgets of a *reference* config
(best-of-N): at level ``l`` the compute allowed is the reference's mean cost at budget ``b_l``.

**Selection** (Snell's θ*(q, N) = argmax_θ E[1{y = y*(q)}], estimated per difficulty bin): for
each bin and level, among the options whose mean cost on the fitting problems of the bin is at
most the reference's (``match="flops"``; or, with ``match="n"``, the options at the same budget
``b_l``: Snell's own same-generation-budget comparison), the one with the highest mean accuracy
on those problems; ties go to the cheaper, then to the earlier option. An option is available
only where every fitting problem of the bin has it (no NaN).

**Cross-validation** (Snell: 2-fold over questions): problems are split into two folds, within
each bin (so both folds see every bin), by a seeded permutation. The choice applied to a
problem is always the one fitted on the *other* fold: no problem's own labels pick its config.

**Efficiency multiple** at a level: the compute best-of-N needs to reach the compute-optimal
curve's accuracy, divided by the compute the compute-optimal choice spends. Best-of-N's
accuracy-vs-compute curve is made monotone (running maximum over increasing compute) and
interpolated linearly in log compute. Where the compute-optimal accuracy exceeds best-of-N's
best, the multiple is only a lower bound (``censored = ">"``, computed at best-of-N's largest
budget); where best-of-N's smallest budget already matches it, an upper bound (``"<"``). A
percentile bootstrap over the problems of the group (choices fixed, as cross-validated) gives
the 95% CI.

Difficulty bins (Snell §3.2): 5 quantile bins of a per-problem number, bin 0 the easiest.
*Oracle* bins use pass@1 from the pool's samples (needs the answer key); *predicted* bins use a
verifier's mean final score over the pool's samples (no answer key; what ``solve`` can use).

>>> acc = np.array([[[0.2, 0.4]], [[0.3, 0.9]]])  # 2 configs, 1 problem, 2 budgets
>>> cost = np.array([[[1.0, 2.0]], [[1.0, 2.0]]])
>>> t = Table(("bon", "beam"), (1, 2), acc, cost)
>>> [t.option_name(o) for o in choose(t, np.array([0]), ref=0)]
['beam@1', 'beam@2']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Match = Literal["flops", "n"]
N_BINS = 5
_REL = 1e-9  # cost and accuracy comparisons are relative to this (float sums)


@dataclass(frozen=True, eq=False)
class Table:
    """Accuracy and cost of every config on every problem at every budget.

    Attributes:
        configs: C config names (unique).
        budgets: B budgets (N), increasing.
        acc: float [C, P, B] in [0, 1]; NaN = not run.
        cost: float [C, P, B] > 0 (FLOPs); NaN exactly where ``acc`` is NaN.
        problem_ids: P problem ids (optional, for reports and checks).
    """

    configs: tuple[str, ...]
    budgets: tuple[int, ...]
    acc: np.ndarray
    cost: np.ndarray
    problem_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        c, b = len(self.configs), len(self.budgets)
        if c == 0 or b == 0:
            raise ValueError("a table needs at least one config and one budget")
        if len(set(self.configs)) != c:
            raise ValueError(f"duplicate configs: {list(self.configs)}")
        if list(self.budgets) != sorted(set(self.budgets)) or self.budgets[0] < 1:
            raise ValueError(f"budgets must be increasing integers >= 1, got {self.budgets}")
        acc, cost = np.asarray(self.acc, dtype=float), np.asarray(self.cost, dtype=float)
        if acc.ndim != 3 or acc.shape[0] != c or acc.shape[2] != b or acc.shape != cost.shape:
            raise ValueError(
                f"acc and cost must both be [C={c}, P, B={b}], got {acc.shape} and {cost.shape}"
            )
        if acc.shape[1] == 0:
            raise ValueError("a table needs at least one problem")
        if self.problem_ids and len(self.problem_ids) != acc.shape[1]:
            raise ValueError(f"{len(self.problem_ids)} problem ids for {acc.shape[1]} problems")
        if not np.array_equal(np.isnan(acc), np.isnan(cost)):
            raise ValueError("acc and cost must be NaN at the same places (an option not run)")
        ok = ~np.isnan(acc)
        if ((acc[ok] < 0) | (acc[ok] > 1)).any():
            raise ValueError("accuracy values must be in [0, 1]")
        if (~np.isfinite(cost[ok]) | (cost[ok] <= 0)).any():
            raise ValueError("cost values must be finite and > 0 (FLOPs)")
        object.__setattr__(self, "acc", acc)
        object.__setattr__(self, "cost", cost)

    @property
    def n_problems(self) -> int:
        return int(self.acc.shape[1])

    @property
    def n_options(self) -> int:
        return len(self.configs) * len(self.budgets)

    def option(self, o: int) -> tuple[str, int]:
        """(config, budget) of flat option ``o`` (config-major)."""
        c, b = divmod(int(o), len(self.budgets))
        return self.configs[c], self.budgets[b]

    def option_name(self, o: int) -> str:
        config, n = self.option(o)
        return f"{config}@{n}"

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """(acc, cost) as [O, P] over flat options (config-major, budget-minor)."""
        c, p, b = self.acc.shape
        acc = self.acc.transpose(0, 2, 1).reshape(c * b, p)
        cost = self.cost.transpose(0, 2, 1).reshape(c * b, p)
        return acc, cost

    def config_index(self, name: str) -> int:
        try:
            return self.configs.index(name)
        except ValueError:
            raise ValueError(
                f"no config {name!r} in the table (has {list(self.configs)})"
            ) from None


# ------------------------------------------------------------------------------- difficulty


def quantile_bins(values: np.ndarray, n_bins: int = N_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Equal-count bins by rank, bin 0 = the HIGHEST values (easiest when higher = easier).

    Ranks are taken in decreasing value with ties in input order (stable), so bins have sizes
    differing by at most one even when many values tie (pass@1 is often exactly 0 or 1).
    Returns ``(bins int [P], thresholds float [n_bins - 1])``: ``thresholds[j]`` is the midpoint
    between the lowest value of bin ``j`` and the highest of bin ``j + 1``, used by
    :func:`bin_of` to place a new value (ties there go to the easier bin).

    >>> quantile_bins(np.array([0.9, 0.1, 0.5, 0.7, 0.3]), 5)[0].tolist()
    [0, 4, 2, 1, 3]
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size == 0 or np.isnan(v).any():
        raise ValueError("difficulty values must be a non-empty 1-D array without NaN")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    p = v.size
    order = np.argsort(-v, kind="stable")
    bins = np.empty(p, dtype=np.int64)
    bins[order] = np.arange(p) * n_bins // p
    thresholds = []
    for j in range(n_bins - 1):
        lo, hi = v[bins == j], v[bins == j + 1]
        if lo.size and hi.size:
            mid = (lo.min() + hi.max()) / 2
            # the midpoint of two adjacent floats (5e-324 and 0.0) rounds onto the lower one,
            # which bin_of would then put in the easier bin: the higher value is a threshold too
            thresholds.append(mid if hi.max() < mid else lo.min())
        else:
            thresholds.append(thresholds[-1] if thresholds else math.inf)
    return bins, np.asarray(thresholds, dtype=float)


def bin_of(value: float, thresholds: Sequence[float]) -> int:
    """The bin of a new value under :func:`quantile_bins` thresholds (0 = highest values).

    >>> bin_of(0.95, [0.8, 0.6, 0.4, 0.2]), bin_of(0.5, [0.8, 0.6, 0.4, 0.2])
    (0, 2)
    """
    if math.isnan(value):
        raise ValueError("cannot bin NaN")
    return int(sum(value < t for t in thresholds))


def oracle_difficulty(correct: np.ndarray) -> np.ndarray:
    """pass@1 per problem: the mean correctness of its pool's samples (bool [P, N])."""
    c = np.asarray(correct, dtype=float)
    if c.ndim != 2 or c.shape[1] == 0:
        raise ValueError(f"correct must be [P, N] with N >= 1, got {c.shape}")
    return np.asarray(c.mean(axis=1))


def predicted_difficulty(final_scores: np.ndarray) -> np.ndarray:
    """Mean verifier final score per problem over its samples (NaN = ungraded, ignored).

    A problem none of whose samples was graded gets the mean of all problems (no information).
    """
    s = np.asarray(final_scores, dtype=float)
    if s.ndim != 2:
        raise ValueError(f"final scores must be [P, N], got {s.shape}")
    graded = ~np.isnan(s)
    if not graded.any():
        raise ValueError("no sample was graded by the verifier: cannot predict difficulty")
    sums = np.where(graded, s, 0.0).sum(axis=1)
    counts = graded.sum(axis=1)
    out = np.full(s.shape[0], float(s[graded].mean()))
    has = counts > 0
    out[has] = sums[has] / counts[has]
    return out


# -------------------------------------------------------------------------------- selection


def choose(
    table: Table,
    problems: np.ndarray,
    ref: int,
    match: Match = "flops",
) -> np.ndarray:
    """The best option per level (int [B]) fitted on ``problems`` alone (see the module doc).

    Level ``l`` allows the reference config's mean cost at budget ``l`` over ``problems``
    (``match="flops"``), or exactly budget ``l`` (``match="n"``). Returns -1 at a level where no
    option is available (the reference itself missing there).
    """
    idx = np.asarray(problems, dtype=np.intp)
    if idx.size == 0:
        raise ValueError("cannot fit a choice on no problems")
    if match not in ("flops", "n"):
        raise ValueError(f"match must be 'flops' or 'n', got {match!r}")
    acc, cost = table.flat()
    a, c = acc[:, idx], cost[:, idx]
    available = ~np.isnan(a).any(axis=1)
    mean_acc = np.where(available, np.nan_to_num(a).mean(axis=1), -np.inf)
    mean_cost = np.where(available, np.nan_to_num(c).mean(axis=1), np.inf)
    n_b = len(table.budgets)
    out = np.full(n_b, -1, dtype=np.int64)
    budget_of = np.arange(table.n_options) % n_b
    for level in range(n_b):
        ref_opt = ref * n_b + level
        if not available[ref_opt]:
            continue
        if match == "flops":
            feasible = mean_cost <= mean_cost[ref_opt] * (1 + _REL)
        else:
            feasible = (budget_of == level) & available
        feasible &= available
        best = mean_acc[feasible].max()
        ties = np.flatnonzero(feasible & (mean_acc >= best - _REL))
        out[level] = ties[np.argmin(mean_cost[ties])]  # argmin: first of equal costs
    return out


def choose_by_bin(
    table: Table, bins: np.ndarray, problems: np.ndarray, ref: int, match: Match = "flops"
) -> np.ndarray:
    """:func:`choose` within every bin: int [n_bins, B] (-1 where a bin has no fit problem)."""
    bins = np.asarray(bins, dtype=np.int64)
    idx = np.asarray(problems, dtype=np.intp)
    n_bins = int(bins.max()) + 1
    out = np.full((n_bins, len(table.budgets)), -1, dtype=np.int64)
    for j in range(n_bins):
        members = idx[bins[idx] == j]
        if members.size:
            out[j] = choose(table, members, ref, match)
    return out


def two_folds(bins: np.ndarray, seed: int = 0) -> np.ndarray:
    """Fold (0/1) per problem: within each bin a seeded permutation, alternately assigned."""
    bins = np.asarray(bins, dtype=np.int64)
    rng = np.random.default_rng(seed)
    fold = np.zeros(bins.size, dtype=np.int64)
    for j in np.unique(bins):
        members = rng.permutation(np.flatnonzero(bins == j))
        fold[members[1::2]] = 1
    return fold


def cross_validated_choices(
    table: Table,
    bins: np.ndarray,
    folds: np.ndarray,
    ref: int,
    match: Match = "flops",
) -> np.ndarray:
    """The option applied to each problem at each level, int [P, B]: fitted on the OTHER fold
    within the problem's bin (2-fold CV; Snell et al. 2024). Where the other fold has no
    problem of that bin, the other fold's all-bin choice is used."""
    bins, folds = np.asarray(bins, dtype=np.int64), np.asarray(folds, dtype=np.int64)
    if bins.shape != (table.n_problems,) or folds.shape != bins.shape:
        raise ValueError("bins and folds need one entry per problem of the table")
    if set(np.unique(folds).tolist()) - {0, 1}:
        raise ValueError("folds must be 0 or 1")
    out = np.full((table.n_problems, len(table.budgets)), -1, dtype=np.int64)
    for f in (0, 1):
        fit = np.flatnonzero(folds != f)
        evaluate = np.flatnonzero(folds == f)
        if fit.size == 0:
            raise ValueError(f"fold {1 - f} is empty: 2-fold CV needs problems in both folds")
        per_bin = choose_by_bin(table, bins, fit, ref, match)
        pooled = choose(table, fit, ref, match)
        for p in evaluate:
            j = bins[p]
            row = per_bin[j] if j < per_bin.shape[0] else np.full_like(pooled, -1)
            out[p] = np.where(row >= 0, row, pooled)
    return out


def applied(table: Table, choices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(acc, cost) per problem and level [P, B] of the chosen options (NaN where -1 or missing)."""
    acc, cost = table.flat()
    ch = np.asarray(choices, dtype=np.int64)
    cols = np.arange(table.n_problems)[:, None]
    safe = np.where(ch >= 0, ch, 0)
    a = np.where(ch >= 0, acc[safe, cols], np.nan)
    c = np.where(ch >= 0, cost[safe, cols], np.nan)
    return a, c


# --------------------------------------------------------------------- efficiency multiple


@dataclass(frozen=True)
class Multiple:
    """Compute best-of-N needs for an accuracy, over the compute spent by the other curve.

    ``censored``: ``""`` exact, ``">"`` a lower bound (best-of-N never reaches the accuracy),
    ``"<"`` an upper bound (best-of-N's smallest budget already reaches it).
    """

    value: float
    censored: str = ""


def compute_to_match(ref_cost: np.ndarray, ref_acc: np.ndarray, target: float) -> tuple[float, str]:
    """Least compute at which the reference reaches ``target`` accuracy (see the module doc).

    The curve is sorted by compute, made monotone by a running maximum, and interpolated
    linearly in log compute between the two points around ``target``.

    >>> compute_to_match(np.array([1.0, 4.0]), np.array([0.2, 0.6]), 0.4)  # half-way in log
    (2.0, '')
    """
    cost, acc = np.asarray(ref_cost, dtype=float), np.asarray(ref_acc, dtype=float)
    keep = ~(np.isnan(cost) | np.isnan(acc))
    cost, acc = cost[keep], acc[keep]
    if cost.size == 0:
        raise ValueError("the reference curve has no point")
    order = np.argsort(cost, kind="stable")
    cost, run = cost[order], np.maximum.accumulate(acc[order])
    tol = _REL * max(1.0, abs(target))
    if run[0] >= target - tol:
        return float(cost[0]), "<" if run[0] > target + tol else ""
    if run[-1] < target - tol:
        return float(cost[-1]), ">"
    j = int(np.argmax(run >= target - tol))
    lo, hi = math.log(cost[j - 1]), math.log(cost[j])
    t = (target - run[j - 1]) / (run[j] - run[j - 1])
    return float(math.exp(lo + t * (hi - lo))), ""


def efficiency_multiple(
    ref_cost: np.ndarray, ref_acc: np.ndarray, cost: float, acc: float
) -> Multiple:
    """``compute_to_match(ref, acc) / cost``: how many times more compute best-of-N needs.

    >>> efficiency_multiple(np.array([1.0, 2.0, 4.0, 8.0]), np.array([.1, .2, .3, .4]), 1.0, .3)
    Multiple(value=4.0, censored='')
    """
    if not (cost > 0 and math.isfinite(cost)):
        raise ValueError(f"compute must be finite and > 0, got {cost}")
    need, censored = compute_to_match(ref_cost, ref_acc, acc)
    return Multiple(need / cost, censored)


@dataclass(frozen=True)
class LevelResult:
    """One level of one group of problems: both curves' points and the multiple with its CI."""

    group: str
    level: int  # the reference's budget N at this level
    problems: int
    ref_acc: float
    ref_cost: float
    opt_acc: float
    opt_cost: float
    multiple: float
    censored: str
    ci_low: float
    ci_high: float
    chosen: dict[str, int]  # option name -> problems of the group it was applied to


def _group_multiples(
    ref_acc: np.ndarray, ref_cost: np.ndarray, opt_acc: np.ndarray, opt_cost: np.ndarray
) -> np.ndarray:
    """Multiple per level for one resample (means over its problems); NaN where undefined."""
    ra, rc = ref_acc.mean(axis=0), ref_cost.mean(axis=0)
    oa, oc = opt_acc.mean(axis=0), opt_cost.mean(axis=0)
    out = np.full(ra.size, np.nan)
    for level in range(ra.size):
        if np.isfinite(oa[level]) and np.isfinite(oc[level]):
            m = efficiency_multiple(rc, ra, float(oc[level]), float(oa[level]))
            out[level] = m.value
    return out


def evaluate_groups(
    table: Table,
    choices: np.ndarray,
    ref: int,
    groups: dict[str, np.ndarray],
    n_boot: int = 1000,
    seed: int = 0,
) -> list[LevelResult]:
    """Reference vs compute-optimal (as ``choices``, e.g. cross-validated) on each group of
    problems, at every level, with a percentile bootstrap CI over the group's problems."""
    opt_acc, opt_cost = applied(table, choices)
    ref_acc, ref_cost = table.acc[ref], table.cost[ref]
    out: list[LevelResult] = []
    rng = np.random.default_rng(seed)
    for name, members in groups.items():
        idx = np.asarray(members, dtype=np.intp)
        if idx.size == 0:
            continue
        ra, rc, oa, oc = ref_acc[idx], ref_cost[idx], opt_acc[idx], opt_cost[idx]
        point = _group_multiples(ra, rc, oa, oc)
        draws = rng.integers(0, idx.size, size=(n_boot, idx.size))
        boot = np.array([_group_multiples(ra[d], rc[d], oa[d], oc[d]) for d in draws])
        for level in range(len(table.budgets)):
            ok = np.isfinite(oa[:, level]).all()
            if ok:
                _, cens = compute_to_match(
                    rc.mean(axis=0), ra.mean(axis=0), float(oa[:, level].mean())
                )
                low, high = np.quantile(boot[:, level], [0.025, 0.975], method="inverted_cdf")
            else:
                cens, low, high = "", np.nan, np.nan
            names, counts = np.unique(
                [table.option_name(o) for o in choices[idx, level] if o >= 0], return_counts=True
            )
            out.append(
                LevelResult(
                    group=name,
                    level=table.budgets[level],
                    problems=int(idx.size),
                    ref_acc=float(ra[:, level].mean()),
                    ref_cost=float(rc[:, level].mean()),
                    opt_acc=float(oa[:, level].mean()) if ok else math.nan,
                    opt_cost=float(oc[:, level].mean()) if ok else math.nan,
                    multiple=float(point[level]),
                    censored=cens,
                    ci_low=float(low),
                    ci_high=float(high),
                    chosen={str(n): int(k) for n, k in zip(names, counts, strict=True)},
                )
            )
    return out


# ----------------------------------------------------------------------- the saved selector


@dataclass(frozen=True)
class Choice:
    """What a fitted selector does in one bin at one level: run ``config`` with ``n``.

    ``max_flops``: the compute allowed at this level (the reference's mean cost per problem
    over the bin's problems); ``accuracy`` / ``flops``: the choice's mean accuracy and cost on
    the problems it was fitted on (in-sample: the cross-validated numbers are in the report).
    """

    bin: int
    level: int
    config: str
    n: int
    max_flops: float
    accuracy: float
    flops: float


@dataclass(frozen=True)
class FittedSelector:
    """Per predicted-difficulty bin and budget level, the config to run (Snell et al. 2024).

    ``thresholds`` place a new problem's mean verifier score into a bin (:func:`bin_of`);
    ``verifier`` names the reward whose final score that is, ``probe_n`` how many samples
    ``solve`` scores to estimate it.
    """

    reference: str
    match: str
    verifier: str
    probe_n: int
    thresholds: tuple[float, ...]
    budgets: tuple[int, ...]
    choices: tuple[Choice, ...]
    meta: dict[str, object]

    def pick(self, bin_: int, n: int | None = None, max_flops: float | None = None) -> Choice:
        """The choice of bin ``bin_`` at budget ``n`` (a level), or within ``max_flops``
        (the largest level whose allowance fits). Raises ValueError naming what is possible."""
        if (n is None) == (max_flops is None):
            raise ValueError("give exactly one budget: n or max_flops")
        mine = sorted((c for c in self.choices if c.bin == bin_), key=lambda c: c.level)
        if not mine:
            raise ValueError(f"the selector has no choice for bin {bin_}")
        if n is not None:
            for c in mine:
                if c.level == n:
                    return c
            raise ValueError(f"budget n={n} is not a level of this selector: {list(self.budgets)}")
        assert max_flops is not None
        fits = [c for c in mine if c.max_flops <= max_flops * (1 + _REL)]
        if not fits:
            raise ValueError(
                f"a budget of {max_flops:.3g} FLOPs is below the cheapest level of bin {bin_} "
                f"({mine[0].max_flops:.3g} FLOPs at n={mine[0].level})"
            )
        return fits[-1]

    def to_json(self) -> dict[str, object]:
        return {
            "reference": self.reference,
            "match": self.match,
            "verifier": self.verifier,
            "probe_n": self.probe_n,
            "thresholds": list(self.thresholds),
            "budgets": list(self.budgets),
            "choices": [c.__dict__ for c in self.choices],
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, d: dict[str, object]) -> FittedSelector:
        try:
            return cls(
                reference=str(d["reference"]),
                match=str(d["match"]),
                verifier=str(d["verifier"]),
                probe_n=int(d["probe_n"]),  # type: ignore[call-overload]
                thresholds=tuple(float(t) for t in d["thresholds"]),  # type: ignore[attr-defined]
                budgets=tuple(int(b) for b in d["budgets"]),  # type: ignore[attr-defined]
                choices=tuple(Choice(**c) for c in d["choices"]),  # type: ignore[attr-defined]
                meta=dict(d.get("meta") or {}),  # type: ignore[call-overload]
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a saved selector: {e!r}") from None


def fit_selector(
    table: Table,
    bins: np.ndarray,
    thresholds: Sequence[float],
    ref: int,
    *,
    verifier: str,
    probe_n: int = 4,
    match: Match = "flops",
    meta: dict[str, object] | None = None,
) -> FittedSelector:
    """Fit the choice of every bin at every level on ALL problems (for use by ``solve``)."""
    bins = np.asarray(bins, dtype=np.int64)
    acc, cost = table.flat()
    n_b = len(table.budgets)
    choices: list[Choice] = []
    for j in range(len(thresholds) + 1):
        members = np.flatnonzero(bins == j)
        if members.size == 0:
            continue
        best = choose(table, members, ref, match)
        for level, o in enumerate(best):
            if o < 0:
                continue
            config, n = table.option(int(o))
            choices.append(
                Choice(
                    bin=j,
                    level=table.budgets[level],
                    config=config,
                    n=n,
                    max_flops=float(cost[ref * n_b + level, members].mean()),
                    accuracy=float(acc[o, members].mean()),
                    flops=float(cost[o, members].mean()),
                )
            )
    return FittedSelector(
        reference=table.configs[ref],
        match=match,
        verifier=verifier,
        probe_n=probe_n,
        thresholds=tuple(float(t) for t in thresholds),
        budgets=table.budgets,
        choices=tuple(choices),
        meta=dict(meta or {}),
    )
