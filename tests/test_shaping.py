"""Shaping transforms against hand-worked numbers from the papers' formulas (papers.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rewardlab.rewards import shaping as sh


def test_clip_by_hand() -> None:
    # min(r - 0.5, 0): 0.9 -> 0, 0.2 -> -0.3, 0.5 -> 0
    assert sh.Clip(0.5)((0.9, 0.2, 0.5)) == pytest.approx((0.0, -0.3, 0.0))


def test_delta_by_hand_and_telescopes() -> None:
    # (0.9-0.2, 0.2-0.7, 0.7)
    out = sh.Delta()((0.9, 0.2, 0.7))
    assert out == pytest.approx((0.7, -0.5, 0.7))
    assert sum(out) == pytest.approx(0.9)  # the sum telescopes to r_1
    assert sh.Delta()(()) == ()


def test_clip_delta_composes() -> None:
    # Clip(0.5): (0, -0.3, 0) then Delta: (0.3, -0.3, 0)
    assert sh.compose(sh.Clip(0.5), sh.Delta())((0.9, 0.2, 0.7)) == pytest.approx((0.3, -0.3, 0.0))


def test_shaped_return_by_hand() -> None:
    assert sh.shaped_return(1.0, (0.9, 0.2), sh.Clip(0.5)) == pytest.approx(0.7)
    assert sh.shaped_return(1.0, (0.9, 0.2), None, weight=0.5) == pytest.approx(1.55)


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30), st.integers(1, 10))
def test_repeating_steps_cannot_raise_clipped_or_delta_return(steps: list[float], k: int) -> None:
    """The anti-hacking property: padding with extra copies of a good step never pays."""
    padded = steps + [max(steps)] * k
    assert sum(sh.Clip(0.5)(padded)) <= sum(sh.Clip(0.5)(steps)) + 1e-12
    assert sum(sh.Delta()(padded)) == pytest.approx(padded[0])  # bounded by one step


def test_bad_steps_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        sh.Clip(0.5)((0.1, math.nan))


def test_log_sigmoid_centered_by_hand() -> None:
    # log σ(0) = log 0.5; log σ(2) = -log(1 + e^-2)
    u = sh.log_sigmoid_centered([1.0, 3.0], reference=1.0)
    assert u == pytest.approx([math.log(0.5), -math.log1p(math.exp(-2.0))])
    assert sh.log_sigmoid(np.array([-800.0, 800.0])) == pytest.approx([-800.0, 0.0])


def test_reference_quantile_and_sum() -> None:
    assert sh.reference_reward([0.0, 1.0, 2.0, 3.0, 4.0], 0.75) == pytest.approx(3.0)
    r = np.array([[1.0, 0.0], [2.0, 2.0]])  # two rewards, two responses
    ref = np.array([1.0, 2.0])
    # response 0: log σ(0) + log σ(0) = 2 log 0.5; response 1: log σ(-1) + log σ(0)
    want = [2 * math.log(0.5), math.log(1 / (1 + math.e)) + math.log(0.5)]
    assert sh.combine_log_sigmoid(r, ref) == pytest.approx(want)


def test_ensembles_by_hand() -> None:
    m = np.array([[1.0, 0.0], [3.0, 0.0], [2.0, 3.0]])
    assert sh.ensemble(m, "mean") == pytest.approx([2.0, 1.0])
    assert sh.ensemble(m, "wco") == pytest.approx([1.0, 0.0])
    # unbiased var of (1,3,2) = 1; of (0,0,3) = 3
    assert sh.ensemble(m, "uwo", lam=0.5) == pytest.approx([1.5, -0.5])
    # population var: 2/3 and 2
    assert sh.ensemble(m, "uwo", lam=0.5, ddof=0) == pytest.approx([2 - 1 / 3, 0.0])


def test_brme_by_hand() -> None:
    means = np.array([[1.0, 4.0], [2.0, 0.0]])
    stds = np.array([[0.5, 0.1], [0.1, 0.9]])
    # candidate 0: nominal = head 1 (std .1) = 2, min = 1 -> .5*2+.5*1 = 1.5
    # candidate 1: nominal = head 0 = 4, min = 0 -> 2
    assert sh.brme(means, stds, lam=0.5) == pytest.approx([1.5, 2.0])


def test_pf_ppo_select() -> None:
    r = [0.2, 0.9, 0.1, 0.5]
    assert sh.pf_ppo_select(r, "bon") == (1,)
    assert sh.pf_ppo_select(r, "bw") == (1, 2)
    kept = sh.pf_ppo_select(r, "br", np.random.default_rng(0))
    assert 1 in kept and len(kept) == 2
    assert sh.r_squared([0.0, 1.0, 2.0], [1.0, 3.0, 5.0]) == pytest.approx(1.0)
    # x=(0,1,2), y=(0,2,1): r = 0.5 -> R^2 = 0.25
    assert sh.r_squared([0.0, 1.0, 2.0], [0.0, 2.0, 1.0]) == pytest.approx(0.25)


def test_ppo_c_by_hand() -> None:
    assert sh.parse_confidence("x = 3. Confidence: 8") == pytest.approx(0.8)
    assert sh.parse_confidence("no statement") == 0.5
    assert sh.parse_confidence("Confidence: 14") == 1.0
    assert sh.strip_confidence("42\nConfidence: 7") == "42"
    # threshold, r >= baseline: 2 + 0.5*2*(0.8-0.5) = 2.3
    assert sh.ppo_c_adjust(2.0, 0.8, 1.0) == pytest.approx(2.3)
    # threshold, r < baseline: 0.5 - 0.5*0.5*(0.8-0.5) = 0.425
    assert sh.ppo_c_adjust(0.5, 0.8, 1.0) == pytest.approx(0.425)
    # difference: 2 + 0.5*(2-1)*(0.2-0.5) = 1.85
    assert sh.ppo_c_adjust(2.0, 0.2, 1.0, mode="difference") == pytest.approx(1.85)
    # clamp to 10 first: 10 + 0.5*10*0.5 = 12.5
    assert sh.ppo_c_adjust(50.0, 1.0, 0.0) == pytest.approx(12.5)
    out, nxt = sh.PPOCBaseline(1.0).adjust([2.0, 0.5], [0.8, 0.8])
    assert out == pytest.approx([2.3, 0.425])
    assert nxt.value == pytest.approx(0.1 * 1.25 + 0.9 * 1.0)


def test_length_penalties_by_hand() -> None:
    assert sh.linear_length_penalty(1.0, 100, 0.001) == pytest.approx(0.9)
    assert sh.overlong_penalty(80, 100, 20) == 0.0
    assert sh.overlong_penalty(90, 100, 20) == pytest.approx(-0.5)
    assert sh.overlong_penalty(101, 100, 20) == -1.0


def test_step_rewards_to_tokens() -> None:
    text = "a=1\nb=2\n"
    # tokens: "a", "=", "1", "\n", "b", "=2", "\n"
    offsets = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 7), (7, 8)]
    ends = sh.step_end_tokens(text, ["a=1", "b=2"], offsets)
    assert ends == (2, 5)
    dense = sh.step_rewards_to_tokens([0.3, -0.1], ends, len(offsets))
    assert dense.tolist() == [0, 0, 0.3, 0, 0, -0.1, 0]
    with pytest.raises(ValueError, match="not in the text"):
        sh.step_end_tokens(text, ["c=3"], offsets)
