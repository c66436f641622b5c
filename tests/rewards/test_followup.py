"""FLR (follow-up likelihood as reward) on a real tiny causal LM, against a hand computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rewardlab.policies.hf import HFPolicy
from rewardlab.rewards.base import check_reward
from rewardlab.rewards.followup import FollowUpReward
from rewardlab.types import Candidate, Problem


@pytest.fixture(scope="module")
def policy(tiny_llama_dir: Path) -> HFPolicy:
    return HFPolicy.from_dir(tiny_llama_dir, device="cpu")


def _loglik(policy: HFPolicy, prefix: str, follow: str) -> tuple[float, float]:
    """Sum and mean log p(follow tokens | prefix), by one plain forward pass."""
    tok = policy.tokenizer
    head = tok(prefix)["input_ids"]
    full = tok(prefix + follow)["input_ids"]
    assert full[: len(head)] == head  # no merge across the boundary for these texts
    with torch.no_grad():
        logits = policy.model(torch.tensor([full])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    lps = [float(logp[t - 1, full[t]]) for t in range(len(head), len(full))]
    return sum(lps), sum(lps) / len(lps)


def test_flr_equals_hand_computation(policy: HFPolicy) -> None:
    pos, neg = ("Thanks 1 + 1 = 2", "ok"), ("wrong 3",)
    flr = FollowUpReward(
        policy, positive=pos, negative=neg, template="Q {question}\nA {response}\n"
    )
    prob, cand = Problem("p", "2 + 3", "5"), Candidate("p", "2 + 3 = 5", ("2 + 3 = 5",), "5")
    prefix = "Q 2 + 3\nA 2 + 3 = 5\n"
    (score,) = flr.score([prob], [cand])
    means = {f: _loglik(policy, prefix, " " + f)[1] for f in (*pos, *neg)}
    want_pos = (means[pos[0]] + means[pos[1]]) / 2
    assert score.info["positive"] == pytest.approx(want_pos, abs=1e-4)
    assert score.info["negative"] == pytest.approx(means[neg[0]], abs=1e-4)
    assert score.value == pytest.approx(want_pos - means[neg[0]], abs=1e-4)
    summed = FollowUpReward(
        policy, positive=pos, negative=neg, template="Q {question}\nA {response}\n", normalize="sum"
    )
    sums = {f: _loglik(policy, prefix, " " + f)[0] for f in (*pos, *neg)}
    (s2,) = summed.score([prob], [cand])
    assert s2.value == pytest.approx((sums[pos[0]] + sums[pos[1]]) / 2 - sums[neg[0]], abs=1e-3)


def test_swapping_follow_ups_negates_and_contract_holds(policy: HFPolicy) -> None:
    probs = [Problem("a", "1 + 1", "2"), Problem("b", "4 - 2", "2")]
    cands = [Candidate("a", "1 + 1 = 2", (), "2"), Candidate("b", "4 - 2 = 9", (), "9")]
    flr = FollowUpReward(policy)
    flipped = FollowUpReward(policy, positive=flr.negative, negative=flr.positive)
    a = np.array([s.value for s in flr.score(probs, cands)])
    b = np.array([s.value for s in flipped.score(probs, cands)])
    np.testing.assert_allclose(a, -b, atol=1e-6)
    check_reward(flr, probs, cands)


def test_bad_arguments(policy: HFPolicy) -> None:
    with pytest.raises(ValueError, match="at least one positive and one negative"):
        FollowUpReward(policy, negative=())
    with pytest.raises(ValueError, match="normalize"):
        FollowUpReward(policy, normalize="max")
    with pytest.raises(TypeError, match="HF policy"):
        FollowUpReward(object())


def test_registry_loads_flr_on_a_model_directory(tiny_llama_dir: Path) -> None:
    from rewardlab.rewards.registry import load_reward

    r = load_reward(f"flr:policy={tiny_llama_dir},normalize=sum", device="cpu")
    assert isinstance(r, FollowUpReward) and r.normalize == "sum"
