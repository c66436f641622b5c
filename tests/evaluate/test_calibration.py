"""Calibration: ECE by hand, PAV by hand, isotonic properties, temperature recovery, symmetrised
pairs, bootstrap interval and the reliability PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.evaluate.calibration import (
    ece,
    ece_ci,
    fit_isotonic,
    fit_temperature,
    pairwise_calibration_data,
    pav,
    reliability_bins,
    reliability_diagram,
    sigmoid,
)


def test_ece_hand_worked_example() -> None:
    # 10 equal-width bins. Bin [0.1, 0.2): p = 0.15, 0.15 with labels 0, 1 -> |0.5 - 0.15| = 0.35
    # over 2 items; bin [0.8, 0.9): p = 0.85, 0.85, 0.85 with labels 1, 1, 0 -> |2/3 - 0.85|
    # = 0.18333 over 3 items; bin [0.9, 1.0]: p = 1.0 with label 1 -> 0 over 1 item.
    p = np.array([0.15, 0.15, 0.85, 0.85, 0.85, 1.0])
    y = np.array([0, 1, 1, 1, 0, 1])
    expected = (2 * 0.35 + 3 * (0.85 - 2 / 3) + 0) / 6
    assert ece(p, y) == pytest.approx(expected)
    bins = reliability_bins(p, y)
    assert [b["count"] for b in bins] == [0, 2, 0, 0, 0, 0, 0, 0, 3, 1]  # 1.0 is in the last bin
    assert ece(np.array([0.3, 0.7]), np.array([0, 1]), n_bins=2) == pytest.approx(0.3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ece(np.array([1.5]), np.array([1]))


def test_pav_by_hand() -> None:
    assert pav(np.array([1.0, 3.0, 2.0, 4.0])).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert pav(np.array([3.0, 2.0, 1.0])).tolist() == [2.0, 2.0, 2.0]
    assert pav(np.array([1.0, 0.0]), np.array([3.0, 1.0])).tolist() == [0.75, 0.75]


def test_isotonic_on_a_small_example() -> None:
    iso = fit_isotonic(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0, 1, 0, 1]))
    # PAV on [0, 1, 0, 1] -> [0, 0.5, 0.5, 1]: knots at 0, 1, 2, 3
    assert iso.predict(np.array([0.0, 1.0, 1.5, 2.0, 3.0, 9.0])).tolist() == [
        0.0,
        0.5,
        0.5,
        0.5,
        1.0,
        1.0,
    ]
    assert iso.predict(np.array([0.5])).tolist() == [0.25]  # linear between blocks


@given(st.lists(st.tuples(st.floats(-10, 10), st.integers(0, 1)), min_size=1, max_size=40))
@settings(max_examples=80, deadline=None)
def test_isotonic_is_monotone_and_in_range(data: list[tuple[float, int]]) -> None:
    s = np.array([d[0] for d in data])
    y = np.array([d[1] for d in data], dtype=float)
    iso = fit_isotonic(s, y)
    grid = np.linspace(-11, 11, 50)
    pred = iso.predict(grid)
    assert (np.diff(pred) >= -1e-12).all()
    assert pred.min() >= y.min() - 1e-12 and pred.max() <= y.max() + 1e-12
    assert np.mean((iso.predict(s) - y) ** 2) <= np.mean((y.mean() - y) ** 2) + 1e-9


@given(st.lists(st.floats(0, 1), min_size=1, max_size=50), st.integers(1, 20))
@settings(max_examples=80, deadline=None)
def test_ece_is_a_weighted_gap_in_unit_interval(probs: list[float], n_bins: int) -> None:
    p = np.array(probs)
    y = (p > 0.5).astype(float)
    e = ece(p, y, n_bins)
    assert 0.0 <= e <= 1.0
    assert ece(p, p, n_bins) == pytest.approx(0.0, abs=1e-12)  # labels equal to probabilities


def test_temperature_scaling_recovers_the_true_temperature() -> None:
    rng = np.random.default_rng(0)
    d = rng.normal(0, 4, size=4000)
    labels = (rng.random(4000) < sigmoid(d / 2.0)).astype(float)
    t = fit_temperature(d, labels)
    assert t.temperature == pytest.approx(2.0, rel=0.12)
    assert ece(t.predict(d), labels) < ece(sigmoid(d), labels)
    platt = fit_temperature(d, labels, fit_bias=True)
    assert abs(platt.bias) < 0.2
    flipped = fit_temperature(d, 1 - labels)  # anti-correlated: clamped, p -> 0.5
    assert flipped.temperature > 1e3 and np.allclose(flipped.predict(d), 0.5, atol=1e-2)


def test_symmetrised_pairs_and_bootstrap_interval(tmp_path: Path) -> None:
    x, y, groups = pairwise_calibration_data(np.array([2.0, -1.0]))
    assert x.tolist() == [2.0, -1.0, -2.0, 1.0] and y.tolist() == [1, 1, 0, 0]
    assert groups.tolist() == [0, 1, 0, 1]
    rng = np.random.default_rng(1)
    d = rng.normal(1, 2, size=300)
    x, y, g = pairwise_calibration_data(d)
    value, low, high = ece_ci(sigmoid(x), y, g, n_boot=200)
    assert value == pytest.approx(ece(sigmoid(x), y)) and low <= high
    png = reliability_diagram({"raw": (sigmoid(x), y)}, tmp_path / "rel.png")
    assert png.stat().st_size > 1000
