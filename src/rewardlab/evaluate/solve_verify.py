"""Solve or verify at a fixed budget: self-consistency against GenRM best-of-S with V checks.

Singhi et al. 2025, "When To Solve, When To Verify" (papers.md §1). With one solution costing
``T_S`` tokens and one verification ``T_V``, S solutions verified V times each cost
``FLOPs ≈ 2P(T_S·S + T_V·S·V)``, i.e. in units of one solution

    C(S, V) = S · (1 + λ·V),   λ = T_V / T_S,

and self-consistency (majority vote over S solutions, no verifier) costs ``C = S``. For every
budget the compute-optimal GenRM split is the (S, V) with the best accuracy among those that
fit; the paper reports that SC wins at low budgets, that GenRM first matches SC only at up to
8× the compute, and fits ``S_opt ∝ C^a``, ``V_opt ∝ C^b`` (a ≈ 0.57, b ≈ 0.39 for their
fine-tuned verifier, as reported on the paper's summary page; a > b: scale solutions faster
than verifications).

Everything here is a pure function of arrays: ``correct`` bool [P, N], ``answer_ids`` int
[P, N], ``verdicts`` float [P, N, Vmax] (one verdict per verification chain; NaN = unread),
token counts. GenRM accuracy at (S, V) is the expectation over random S-subsets of the N
solutions (exact, :func:`rewardlab.evaluate.estimators.bon_at_k`) and random V-subsets of
each solution's Vmax verdicts (``n_resamples`` draws); a solution's score is the mean of its
drawn readable verdicts (NaN when none is readable: ranked below every graded solution).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rewardlab.compute import Ledger
from rewardlab.evaluate.bootstrap import as_generator
from rewardlab.evaluate.estimators import bon_at_k, majority_at_k, weighted_majority_at_k

Select = Literal["bon", "wmaj"]
TokenCount = Literal["all", "generated"]


# -- the budget ----------------------------------------------------------------------------


def measure_lambda(solution_tokens: np.ndarray, verification_tokens: np.ndarray) -> float:
    """λ = T_V / T_S: mean tokens of one verification chain over mean tokens of one solution.

    Args:
        solution_tokens: tokens of each solution (any shape; e.g. [P, N]).
        verification_tokens: tokens of each verification chain (any shape; e.g. [P, N, V]).

    Raises ValueError when either is empty or solutions have no tokens.
    """
    s = np.asarray(solution_tokens, dtype=float)
    v = np.asarray(verification_tokens, dtype=float)
    if s.size == 0 or v.size == 0:
        raise ValueError("need at least one solution and one verification")
    if s.mean() <= 0:
        raise ValueError("solutions have no tokens: λ is undefined")
    return float(v.mean() / s.mean())


def lambda_from_ledger(
    ledger: Ledger,
    policy: str,
    verifier: str,
    n_solutions: int,
    n_verifications: int,
    count: TokenCount = "all",
) -> float:
    """λ from a ledger: (verifier tokens per chain) / (policy tokens per solution).

    ``count="generated"`` counts generated tokens only (the paper's T_S, T_V);
    ``"all"`` counts every token the model processed (prompt + generated + scored: the FLOPs).
    """
    if n_solutions < 1 or n_verifications < 1:
        raise ValueError("n_solutions and n_verifications must be >= 1")
    pol, ver = ledger.totals(policy), ledger.totals(verifier)

    def tokens(c: object) -> int:
        return int(c.generated_tokens if count == "generated" else c.tokens)  # type: ignore[attr-defined]

    if tokens(pol) == 0:
        raise ValueError(f"the ledger has no {count} tokens for policy {policy!r}")
    return (tokens(ver) / n_verifications) / (tokens(pol) / n_solutions)


def compute_units(s: np.ndarray | int, v: np.ndarray | int, lam: float) -> np.ndarray:
    """``C(S, V) = S·(1 + λ·V)`` in units of one solution (V = 0: self-consistency, C = S)."""
    if lam < 0:
        raise ValueError(f"λ must be >= 0, got {lam}")
    return np.asarray(s, dtype=float) * (1.0 + lam * np.asarray(v, dtype=float))


def compute_flops(
    s: np.ndarray | int,
    v: np.ndarray | int,
    *,
    solution_tokens: float,
    verification_tokens: float,
    policy_params: int,
    verifier_params: int,
) -> np.ndarray:
    """``2·P_policy·T_S·S + 2·P_verifier·T_V·S·V`` (Singhi et al.'s FLOPs, two models allowed)."""
    s_ = np.asarray(s, dtype=float)
    v_ = np.asarray(v, dtype=float)
    out: np.ndarray = 2.0 * policy_params * solution_tokens * s_ + (
        2.0 * verifier_params * verification_tokens * s_ * v_
    )
    return out


# -- accuracy at every split ----------------------------------------------------------------


def sc_accuracy(
    answer_ids: np.ndarray,
    correct: np.ndarray,
    s_values: Sequence[int],
    n_resamples: int = 100,
    rng: np.random.Generator | int = 0,
) -> np.ndarray:
    """Self-consistency (majority of S) per problem: float [P, len(s_values)]."""
    return majority_at_k(answer_ids, correct, list(s_values), n_resamples, rng)


def _mean_of_first(draw: np.ndarray, v: int) -> np.ndarray:
    """Mean of the first ``v`` readable-or-not verdicts along the last axis (NaN-aware)."""
    head = draw[..., :v]
    read = ~np.isnan(head)
    total = np.where(read, head, 0.0).sum(axis=-1)
    n = read.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def genrm_accuracy(
    verdicts: np.ndarray,
    correct: np.ndarray,
    s_values: Sequence[int],
    v_values: Sequence[int],
    *,
    answer_ids: np.ndarray | None = None,
    select: Select = "bon",
    n_resamples: int = 20,
    rng: np.random.Generator | int = 0,
) -> np.ndarray:
    """GenRM accuracy per problem at every (S, V): float [P, len(s_values), len(v_values)].

    ``select="bon"``: the solution with the highest mean verdict (ties broken uniformly,
    exactly); ``"wmaj"``: weighted self-consistency, each answer's total mean verdict
    (needs ``answer_ids``). The V-subsets are ``n_resamples`` random draws (without
    replacement) of each solution's ``Vmax`` verdicts; when V = Vmax every draw is the same.
    """
    ver = np.asarray(verdicts, dtype=float)
    if ver.ndim != 3 or ver.shape[:2] != np.shape(correct):
        raise ValueError(f"verdicts must be [P, N, Vmax] matching correct, got {ver.shape}")
    p, n, vmax = ver.shape
    if any(not 1 <= v <= vmax for v in v_values):
        raise ValueError(f"every V must be in 1..{vmax}, got {list(v_values)}")
    if any(not 1 <= s <= n for s in s_values):
        raise ValueError(f"every S must be in 1..{n}, got {list(s_values)}")
    if select == "wmaj" and answer_ids is None:
        raise ValueError("select='wmaj' needs answer_ids")
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    gen = as_generator(rng)
    out = np.zeros((p, len(s_values), len(v_values)))
    for _ in range(n_resamples):
        order = np.argsort(gen.random((p, n, vmax)), axis=-1)
        draw = np.take_along_axis(ver, order, axis=-1)
        for j, v in enumerate(v_values):
            scores = _mean_of_first(draw, v)
            if select == "bon":
                out[:, :, j] += bon_at_k(scores, correct, list(s_values))
            else:
                assert answer_ids is not None
                out[:, :, j] += weighted_majority_at_k(
                    answer_ids, np.nan_to_num(scores, nan=0.0), correct, list(s_values), 20, gen
                )
    return out / n_resamples


# -- the frontier ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FrontierPoint:
    """At budget ``budget`` (units of one solution): the best GenRM split (``s``, ``v``,
    costing ``cost`` <= budget, accuracy ``genrm``) and SC's best (``sc_s`` solutions,
    accuracy ``sc``; NaN when no S fits)."""

    budget: float
    s: int
    v: int
    cost: float
    genrm: float
    sc_s: int
    sc: float


def frontier(
    s_values: Sequence[int],
    v_values: Sequence[int],
    genrm: np.ndarray,
    sc: np.ndarray,
    lam: float,
    budgets: Sequence[float] | None = None,
) -> list[FrontierPoint]:
    """Compute-optimal GenRM split and SC at each budget.

    Args:
        genrm: mean accuracy [len(s_values), len(v_values)].
        sc: mean SC accuracy [len(s_values)] (SC with S solutions costs S).
        budgets: where to evaluate; default every distinct cost of a GenRM split. At each
            budget B the GenRM point is the best split with C(S, V) <= B (ties: the cheaper
            split, then the smaller V) and SC the best S <= B; budgets that no GenRM split
            fits are skipped.
    """
    g = np.asarray(genrm, dtype=float)
    sc_arr = np.asarray(sc, dtype=float)
    s_arr = np.asarray(s_values, dtype=float)
    costs = compute_units(s_arr[:, None], np.asarray(v_values, dtype=float)[None, :], lam)
    grid = sorted(set(costs.ravel().tolist())) if budgets is None else sorted(budgets)
    v_grid = np.broadcast_to(np.asarray(v_values, dtype=float)[None, :], costs.shape)
    # every split ranked once: best accuracy, then the cheaper, then the smaller V
    order = np.lexsort((v_grid.ravel(), costs.ravel(), -g.ravel()))
    ranked_costs = costs.ravel()[order]
    out = []
    for b in grid:
        fits = ranked_costs <= b * (1 + 1e-12)
        if not fits.any():
            continue
        i, j = np.unravel_index(order[int(np.argmax(fits))], costs.shape)
        sc_fit = [(-sc_arr[k], s_values[k]) for k in range(len(s_values)) if s_values[k] <= b]
        sc_best, sc_s = (-min(sc_fit)[0], min(sc_fit)[1]) if sc_fit else (np.nan, 0)
        out.append(
            FrontierPoint(
                float(b),
                int(s_values[i]),
                int(v_values[j]),
                float(costs[i, j]),
                float(g[i, j]),
                int(sc_s),
                float(sc_best),
            )
        )
    return out


@dataclass(frozen=True)
class Matching:
    """Where GenRM catches up with self-consistency.

    ``sc_peak``: SC's best accuracy, first reached at ``sc_budget``; ``genrm_budget``: the
    cheapest GenRM split reaching at least ``sc_peak - tol`` (None: never);
    ``multiple = genrm_budget / sc_budget`` (Singhi et al.'s "GenRM first matches SC at up to
    8× the compute"). ``crossover``: the first budget where the GenRM frontier beats SC at
    the same budget by more than ``tol`` (None: never).
    """

    sc_peak: float
    sc_budget: float
    genrm_budget: float | None
    multiple: float | None
    crossover: float | None


def matching_multiple(points: Sequence[FrontierPoint], tol: float = 0.0) -> Matching:
    """The compute multiple at which GenRM first matches SC's peak (see :class:`Matching`)."""
    if not points:
        raise ValueError("no frontier points")
    pts = sorted(points, key=lambda q: q.budget)
    with_sc = [q for q in pts if not np.isnan(q.sc)]
    if not with_sc:
        raise ValueError("self-consistency has no point on this frontier")
    peak = max(q.sc for q in with_sc)
    sc_budget = float(min(q.sc_s for q in with_sc if q.sc >= peak))
    reach = next((q.cost for q in pts if q.genrm >= peak - tol), None)
    cross = next((q.budget for q in with_sc if q.genrm > q.sc + tol), None)
    return Matching(
        float(peak),
        sc_budget,
        reach,
        None if reach is None else reach / sc_budget,
        cross,
    )


# -- the scaling laws ----------------------------------------------------------------------


@dataclass(frozen=True)
class PowerLaw:
    """``y ≈ coef · x^exponent`` fitted in log-log space; 95% bootstrap CI of the exponent."""

    exponent: float
    coef: float
    ci_low: float
    ci_high: float
    points: int


def fit_power_law(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray
) -> tuple[float, float]:
    """Least squares of log y on log x: (exponent, coefficient). Needs 2+ distinct x > 0."""
    lx = np.log(np.asarray(x, dtype=float))
    ly = np.log(np.asarray(y, dtype=float))
    if lx.size < 2 or np.ptp(lx) == 0:
        raise ValueError("need at least two distinct positive x values")
    if not (np.isfinite(lx).all() and np.isfinite(ly).all()):
        raise ValueError("x and y must be > 0")
    slope, intercept = np.polyfit(lx, ly, 1)
    return float(slope), float(np.exp(intercept))


def optimal_splits(
    s_values: Sequence[int],
    v_values: Sequence[int],
    genrm: np.ndarray,
    lam: float,
    budgets: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(budgets, S_opt, V_opt) along the GenRM frontier (SC ignored)."""
    dummy = np.zeros(len(s_values))
    pts = frontier(s_values, v_values, genrm, dummy, lam, budgets)
    return (
        np.array([q.budget for q in pts]),
        np.array([q.s for q in pts], dtype=float),
        np.array([q.v for q in pts], dtype=float),
    )


def scaling_laws(
    s_values: Sequence[int],
    v_values: Sequence[int],
    genrm_per_problem: np.ndarray,
    lam: float,
    budgets: Sequence[float] | None = None,
    n_boot: int = 200,
    rng: np.random.Generator | int = 0,
) -> dict[str, PowerLaw]:
    """Fit ``S_opt ∝ C^a`` and ``V_opt ∝ C^b`` on the frontier; CIs by resampling problems.

    ``genrm_per_problem`` is [P, len(S), len(V)]; each bootstrap replicate averages a
    resample of the problems, finds the optimal split at every budget and refits. A fit
    needs the optimum to move: a replicate whose S_opt (V_opt) never changes is skipped.
    """
    table = np.asarray(genrm_per_problem, dtype=float)
    gen = as_generator(rng)
    out: dict[str, PowerLaw] = {}
    b, s_opt, v_opt = optimal_splits(s_values, v_values, table.mean(axis=0), lam, budgets)
    boots: dict[str, list[float]] = {"S": [], "V": []}
    p = table.shape[0]
    for _ in range(n_boot):
        idx = gen.integers(0, p, p)
        bb, ss, vv = optimal_splits(s_values, v_values, table[idx].mean(axis=0), lam, budgets)
        for key, y in (("S", ss), ("V", vv)):
            if np.ptp(y) > 0:
                boots[key].append(fit_power_law(bb, y)[0])
    for key, y in (("S", s_opt), ("V", v_opt)):
        if np.ptp(y) == 0:
            continue
        exponent, coef = fit_power_law(b, y)
        lo, hi = (
            (float(np.percentile(boots[key], 2.5)), float(np.percentile(boots[key], 97.5)))
            if boots[key]
            else (np.nan, np.nan)
        )
        out[key] = PowerLaw(exponent, coef, lo, hi, len(b))
    return out
