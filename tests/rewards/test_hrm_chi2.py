"""HRM hierarchical scoring and HNC/HRM data by hand; the χ² occupancy shaping by hand."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from rewardlab.label.hrm_data import hnc_augment, hrm_rows, merge_row
from rewardlab.rewards.base import check_reward
from rewardlab.rewards.chi2 import (
    Chi2RegularisedReward,
    chi2_divergence,
    chi2_divergence_on_policy,
    chi2_shaped,
    kl_shaped,
)
from rewardlab.rewards.hrm import HierarchicalPRM, hierarchical_step_scores, merged_steps
from rewardlab.types import Candidate, Problem, Score


class LastLineRule:
    """A step reward: a step scores 0 when its last line says "wrong", else 1."""

    name = "rule"

    def score_steps(self, problems: Sequence[Problem], cands: Sequence[Candidate]) -> list[Score]:
        out = []
        for c in cands:
            if not c.steps:
                out.append(Score.ungraded("no steps"))
                continue
            steps = tuple(0.0 if "wrong" in s.splitlines()[-1] else 1.0 for s in c.steps)
            out.append(Score(min(steps), steps))
        return out

    score = score_steps


def test_hierarchical_scores_by_hand() -> None:
    assert hierarchical_step_scores([0.9, 0.1, 0.8], [0.2, 0.7]) == (0.9, 0.7, 0.8)
    assert hierarchical_step_scores([0.4], []) == (0.4,)
    with pytest.raises(ValueError, match="coarse"):
        hierarchical_step_scores([0.4, 0.5], [])
    assert merged_steps(("a", "b", "c"), 1) == ("a", "b\nc")
    with pytest.raises(ValueError, match="no consecutive pair"):
        merged_steps(("a",), 0)


def test_hrm_forgives_a_corrected_step() -> None:
    p = Problem("p", "q", "1")
    corrected = Candidate("p", "", ("2 + 2 = 5 wrong", "wrong", "fixed: 2 + 2 = 4"), "4")
    broken = Candidate("p", "", ("ok", "wrong", "still wrong"), None)
    single = Candidate("p", "", ("ok",), "1")
    hrm = HierarchicalPRM(LastLineRule(), aggregate_how="min")
    s = hrm.score_steps([p, p, p], [corrected, broken, single])
    # corrected: fine [0, 0, 1]; coarse (0,1) "..\nwrong" = 0, (1,2) "wrong\nfixed" = 1
    assert s[0].info["fine"] == (0.0, 0.0, 1.0) and s[0].info["coarse"] == (0.0, 1.0)
    assert s[0].steps == (0.0, 1.0, 1.0) and s[0].value == 0.0
    # broken: fine [1, 0, 0]; coarse [0, 0]: h = [1, 0, 0]
    assert s[1].steps == (1.0, 0.0, 0.0) and s[1].value == 0.0
    assert s[2].steps == (1.0,) and s[2].value == 1.0
    two = Candidate("p", "", ("wrong", "fixed"), "1")  # the PRM alone: min = 0; HRM: 1
    assert LastLineRule().score_steps([p], [two])[0].value == 0.0
    assert hrm.score([p], [two])[0].value == 1.0
    check_reward(hrm, [p, p], [two, broken])
    assert hrm.score([p], [Candidate("p", "", (), None)])[0].value is None
    with pytest.raises(ValueError, match="step reward"):
        HierarchicalPRM(object())


def test_hrm_and_hnc_rows_by_hand() -> None:
    row = {"prompt": "q", "completions": ["a", "b", "c"], "labels": [1.0, 0.0, 0.5]}
    assert hrm_rows([row]) == [
        {"prompt": "q", "completions": ["a\nb"], "labels": [0.0], "hrm": "pair-0"},
        {"prompt": "q", "completions": ["a", "b\nc"], "labels": [1.0, 0.5], "hrm": "pair-1"},
    ]
    assert merge_row(row, 0) == {"prompt": "q", "completions": ["a\nb", "c"], "labels": [0.0, 0.5]}
    rows = [row] * 200
    aug = hnc_augment(rows, p=0.5, seed=1)
    assert 70 <= len(aug) <= 130  # Binomial(200, 0.5): ±4 sd
    assert {a["hnc"] for a in aug} == {0, 1}
    assert all(len(a["completions"]) == 2 for a in aug)
    assert hnc_augment(rows, p=0.5, seed=1) == aug  # seeded
    assert hnc_augment(rows, p=0.0) == [] and len(hnc_augment(rows, p=1.0)) == 200
    assert row == {"prompt": "q", "completions": ["a", "b", "c"], "labels": [1.0, 0.0, 0.5]}
    with pytest.raises(ValueError, match="row 0: 2 steps but 1 labels"):
        hrm_rows([{"prompt": "q", "completions": ["a", "b"], "labels": [1]}])


def test_chi2_shaping_by_hand() -> None:
    lw = np.log(np.array([2.0, 0.5]))
    # E_ref[(w − 1)²] = (1 + 0.25)/2
    assert chi2_divergence(lw) == pytest.approx(0.625)
    assert chi2_divergence_on_policy(lw) == pytest.approx(1.25 - 1.0)
    # r − 2λ(w − 1), λ = 0.25: 1 − 0.5·1 = 0.5 and 1 − 0.5·(−0.5) = 1.25
    assert chi2_shaped(np.ones(2), lw, 0.25).tolist() == pytest.approx([0.5, 1.25])
    assert chi2_shaped(np.ones(1), np.array([5.0]), 0.25, clip=1.0)[0] == pytest.approx(
        1 - 0.5 * (math.e - 1)
    )
    assert kl_shaped(np.ones(2), lw, 0.25).tolist() == pytest.approx(
        [1 - 0.25 * math.log(2), 1 + 0.25 * math.log(2)]
    )
    with pytest.raises(ValueError, match="lam"):
        chi2_shaped(np.ones(1), np.zeros(1), -1.0)


class Const:
    def __init__(self, name: str, values: Sequence[float | None]) -> None:
        self.name, self.values = name, values

    def score(self, problems: Sequence[Problem], cands: Sequence[Candidate]) -> list[Score]:
        return [Score(v) if v is not None else Score.ungraded("none") for v in self.values]


def test_chi2_reward_combines_and_keeps_ungraded() -> None:
    p = Problem("p", "q", "1")
    c = Candidate("p", "x", ("x",), "1")
    r = Chi2RegularisedReward(
        Const("proxy", [2.0, None]), Const("lr", [math.log(3.0), 0.0]), lam=0.5
    )
    s = r.score([p, p], [c, c])
    assert s[0].value == pytest.approx(2.0 - 1.0 * 2.0) and s[1].value is None
    assert "chi2" in s[1].info["reason"]
