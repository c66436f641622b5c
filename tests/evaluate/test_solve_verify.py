"""Solve vs verify: λ and C(S, V) from a hand-worked ledger, GenRM accuracy by hand, the
frontier and the matching multiple on a hand-made table, power laws on synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.compute import Ledger
from rewardlab.evaluate.solve_verify import (
    compute_flops,
    compute_units,
    fit_power_law,
    frontier,
    genrm_accuracy,
    lambda_from_ledger,
    matching_multiple,
    measure_lambda,
    optimal_splits,
    sc_accuracy,
    scaling_laws,
)


def test_lambda_and_cost_from_a_hand_worked_ledger() -> None:
    # 4 solutions: 40 prompt + 60 generated tokens in all (25 per solution, 15 generated);
    # 4 x 2 = 8 verification chains: 200 prompt + 40 generated (30 per chain, 5 generated)
    ledger = Ledger()
    ledger.record("policy", params=100, prompt_tokens=40, generated_tokens=60)
    ledger.record("verifier", params=100, prompt_tokens=120, generated_tokens=24)
    ledger.record("verifier", params=100, prompt_tokens=80, generated_tokens=16)
    lam = lambda_from_ledger(ledger, "policy", "verifier", 4, 8)
    assert lam == pytest.approx(30 / 25)
    assert lambda_from_ledger(ledger, "policy", "verifier", 4, 8, "generated") == pytest.approx(
        5 / 15
    )
    assert compute_units(4, 2, lam) == pytest.approx(4 * (1 + 1.2 * 2))  # 13.6
    assert compute_units(4, 0, lam) == 4  # self-consistency: C = S
    flops = compute_flops(
        4, 2, solution_tokens=25, verification_tokens=30, policy_params=100, verifier_params=100
    )
    assert flops == pytest.approx(ledger.totals().flops)  # 20,000 + 48,000
    assert measure_lambda(np.full((2, 2), 25), np.full((2, 2, 2), 30)) == pytest.approx(1.2)
    with pytest.raises(ValueError, match="no all tokens"):
        lambda_from_ledger(Ledger(), "policy", "verifier", 1, 1)


def test_genrm_accuracy_by_hand() -> None:
    verdicts = np.array([[[1.0, 0.0], [1.0, 1.0]]])  # solution 0 half-trusted, 1 trusted
    correct = np.array([[False, True]])
    acc = genrm_accuracy(verdicts, correct, [1, 2], [1, 2], n_resamples=4000, rng=1)
    assert acc[0, 0, 1] == pytest.approx(0.5)  # S = 1: the drawn solution's correctness
    assert acc[0, 1, 1] == pytest.approx(1.0)  # V = 2: 0.5 < 1.0, always the right one
    # V = 1: solution 0 draws 1 (tie, coin flip: 0.5) or 0 (right one wins): 0.75
    assert acc[0, 1, 0] == pytest.approx(0.75, abs=0.03)
    unread = np.array([[[np.nan, np.nan], [0.0, 0.0]]])  # unread ranks below a 0 verdict
    assert genrm_accuracy(unread, correct, [2], [2])[0, 0, 0] == pytest.approx(1.0)
    ids = np.array([[0, 1]])
    wm = genrm_accuracy(verdicts, correct, [2], [2], answer_ids=ids, select="wmaj")
    assert wm[0, 0, 0] == pytest.approx(1.0)
    assert sc_accuracy(ids, correct, [1])[0, 0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="every V"):
        genrm_accuracy(verdicts, correct, [1], [3])


S_VALUES, V_VALUES = [1, 2, 4, 8], [1, 2]
TABLE = np.array([[0.30, 0.35], [0.40, 0.45], [0.50, 0.62], [0.60, 0.70]])
SC = np.array([0.30, 0.45, 0.55, 0.60])


def test_frontier_and_matching_multiple_on_a_hand_made_table() -> None:
    pts = frontier(S_VALUES, V_VALUES, TABLE, SC, lam=1.0)
    # costs S(1 + V): V=1 -> 2, 4, 8, 16; V=2 -> 3, 6, 12, 24
    got = [(q.budget, q.s, q.v, q.genrm, q.sc_s, q.sc) for q in pts]
    assert got == [
        (2.0, 1, 1, 0.30, 2, 0.45),
        (3.0, 1, 2, 0.35, 2, 0.45),
        (4.0, 2, 1, 0.40, 4, 0.55),
        (6.0, 2, 2, 0.45, 4, 0.55),
        (8.0, 4, 1, 0.50, 8, 0.60),
        (12.0, 4, 2, 0.62, 8, 0.60),
        (16.0, 4, 2, 0.62, 8, 0.60),  # (8, 1) at 0.60 is worse than (4, 2)
        (24.0, 8, 2, 0.70, 8, 0.60),
    ]
    m = matching_multiple(pts)
    # SC peaks at 0.60 with S = 8 (cost 8); GenRM first reaches 0.60 with (4, 2), cost 12
    assert (m.sc_peak, m.sc_budget, m.genrm_budget, m.multiple) == (0.6, 8.0, 12.0, 1.5)
    assert m.crossover == 12.0
    never = matching_multiple(frontier(S_VALUES, V_VALUES, TABLE * 0.5, SC, lam=1.0))
    assert never.multiple is None and never.crossover is None


@settings(max_examples=50, deadline=None)
@given(st.floats(0.2, 1.5), st.floats(0.5, 20.0), st.integers(0, 2**31 - 1))
def test_power_law_fit_recovers_the_exponent(exponent: float, coef: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = np.geomspace(1, 1e4, 30)
    y = coef * x**exponent * np.exp(rng.normal(0, 0.02, x.size))
    b, c = fit_power_law(x, y)
    assert b == pytest.approx(exponent, abs=0.02)
    assert c == pytest.approx(coef, rel=0.1)


def test_scaling_laws_recover_known_exponents_on_a_synthetic_surface() -> None:
    """Error falling as S^-p + V^-q: minimising it under S·V = C puts the optimum at
    S ∝ C^(q/(p+q)), V ∝ C^(p/(p+q)); with q = 0.57, p = 0.43 the fit must find 0.57 and
    0.43 (C(S, V) = S(1 + V) is S·V up to the 1, hence the tolerance)."""
    p, q = 0.43, 0.57
    s_values = list(range(1, 513))
    v_values = list(range(1, 257))
    s = np.array(s_values, dtype=float)[:, None]
    v = np.array(v_values, dtype=float)[None, :]
    acc = 1.0 - 0.5 * (s**-p + v**-q)
    rng = np.random.default_rng(0)
    per_problem = acc[None] + rng.normal(0, 1e-5, (12, *acc.shape))
    budgets = np.geomspace(300, 30000, 12)
    _, s_opt, v_opt = optimal_splits(s_values, v_values, acc, 1.0, budgets)
    assert s_opt.max() < 512 and v_opt.max() < 256  # the optimum is inside the grid
    assert np.all(np.diff(s_opt) >= 0) and np.all(np.diff(v_opt) >= 0)
    laws = scaling_laws(s_values, v_values, per_problem, 1.0, budgets, n_boot=20, rng=0)
    assert laws["S"].exponent == pytest.approx(q, abs=0.03)
    assert laws["V"].exponent == pytest.approx(p, abs=0.05)
    assert laws["S"].ci_low <= laws["S"].exponent <= laws["S"].ci_high
    assert laws["S"].points == len(budgets)
