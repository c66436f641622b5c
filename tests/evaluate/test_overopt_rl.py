"""The RL-form overoptimisation fit (Gao et al. 2023; used for DAAs by Rafailov et al. 2024)."""

from __future__ import annotations

import numpy as np
import pytest

from rewardlab.evaluate.overopt import fit_gao_rl


def test_recovers_hand_made_curve_and_clips_negative_kl() -> None:
    d = np.array([0.0, 0.25, 0.5, 1.0, 1.5, 3.0])
    logd = np.log(np.where(d > 0, d, 1.0))
    gold = 0.4 + d * (0.3 - 0.2 * logd)
    kl = d**2
    kl[0] = -0.01  # a Monte-Carlo estimate just below 0 is KL = 0
    alpha, beta = fit_gao_rl(kl, gold)
    assert alpha == pytest.approx(0.3, abs=1e-9) and beta == pytest.approx(0.2, abs=1e-9)
    # the curve peaks at d* = exp(alpha / beta - 1)
    assert np.exp(alpha / beta - 1) == pytest.approx(np.exp(0.5))


def test_refuses_too_few_points() -> None:
    with pytest.raises(ValueError, match=">= 3 points"):
        fit_gao_rl(np.array([0.0, 1.0]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="two points with KL > 0"):
        fit_gao_rl(np.array([0.0, 0.0, 1.0]), np.array([0.1, 0.1, 0.2]))
