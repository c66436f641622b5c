"""The χ² occupancy regulariser of "Correlated Proxies" (Laidlaw et al. 2024) as reward shaping.

Laidlaw et al. define reward hacking relative to a reference policy and regularise with the
χ² divergence of occupancy measures instead of the action-distribution KL:
max_π J_proxy(π) − λ·χ²(μ_π ‖ μ_ref), χ²(μ_π ‖ μ_ref) = E_ref[(w − 1)²], w = μ_π/μ_ref.

For single-turn generation the occupancy measure of a response is π(y|x), so the ratio is
exact, w = π(y|x)/π_ref(y|x) (the paper needs a discriminator only for multi-step episodes).
The per-sample reward whose policy gradient is that of the regularised objective is the
functional derivative of J − λ·χ²: d/dπ(y) [Σ π r − λ·(Σ π²/π_ref − 1)] = r(y) − 2λ·w(y), so
(dropping a constant) r̃ = r − 2λ·(w − 1); the KL counterpart is r − λ·log w. This is our
derivation (papers.md marks the ORPO details unverified); the tests check it by hand.

:class:`Chi2RegularisedReward` scores a proxy reward minus that penalty, with log w from a
policy and its reference (:class:`~rewardlab.rewards.dpo_implicit.DPOImplicitReward` with
β = 1 gives log π/π_ref); ``clip`` bounds log w (exp overflows quickly). It is the registry's
``chi2:reward=SPEC,policy=DIR,ref=DIR,lam=0.1``.

>>> chi2_shaped(np.array([1.0]), np.array([np.log(3.0)]), lam=0.5).round(6).tolist()
[-1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rewardlab.types import Candidate, Problem, Score


def chi2_divergence(log_w_ref: np.ndarray) -> float:
    """χ²(μ_π ‖ μ_ref) = E_ref[(w − 1)²] from log-ratios of samples drawn from the reference."""
    w = np.exp(np.asarray(log_w_ref, dtype=float))
    return float(np.mean((w - 1.0) ** 2))


def chi2_divergence_on_policy(log_w_pi: np.ndarray) -> float:
    """The same divergence from samples of π: E_ref[w²] − 1 = E_π[w] − 1."""
    return float(np.mean(np.exp(np.asarray(log_w_pi, dtype=float))) - 1.0)


def chi2_shaped(
    rewards: np.ndarray, log_w: np.ndarray, lam: float, clip: float | None = None
) -> np.ndarray:
    """r − 2λ·(w − 1), w = exp(log_w) (log_w clipped to [−clip, clip] when given)."""
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    lw = np.asarray(log_w, dtype=float)
    if clip is not None:
        lw = np.clip(lw, -clip, clip)
    out: np.ndarray = np.asarray(rewards, dtype=float) - 2.0 * lam * (np.exp(lw) - 1.0)
    return out


def kl_shaped(rewards: np.ndarray, log_w: np.ndarray, lam: float) -> np.ndarray:
    """The action-distribution KL counterpart: r − λ·log w."""
    out: np.ndarray = np.asarray(rewards, dtype=float) - lam * np.asarray(log_w, dtype=float)
    return out


class Chi2RegularisedReward:
    """``proxy`` − 2λ·(w − 1) with log w = log π(y|x) − log π_ref(y|x) from ``log_ratio``.

    ``log_ratio`` is any reward whose score is log π/π_ref (a DPOImplicitReward with β = 1).
    A candidate either part cannot grade stays ungraded, with the reason.
    """

    def __init__(
        self,
        proxy: Any,
        log_ratio: Any,
        *,
        lam: float = 0.1,
        clip: float | None = 10.0,
        name: str | None = None,
    ) -> None:
        if lam < 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        self.proxy = proxy
        self.log_ratio = log_ratio
        self.lam = lam
        self.clip = clip
        self.name = name or f"chi2[{getattr(proxy, 'name', 'proxy')}]"
        self.params = int(getattr(proxy, "params", 0)) + int(getattr(log_ratio, "params", 0))

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        if len(problems) != len(candidates):
            raise ValueError(f"{len(problems)} problems for {len(candidates)} candidates")
        proxy = self.proxy.score(problems, candidates)
        lw = self.log_ratio.score(problems, candidates)
        out = []
        for p, q in zip(proxy, lw, strict=True):
            if p.value is None or q.value is None:
                why = (p if p.value is None else q).info.get("reason", "ungraded")
                out.append(Score.ungraded(f"chi2: {why}"))
                continue
            v = chi2_shaped(np.array([p.value]), np.array([q.value]), self.lam, self.clip)[0]
            out.append(Score(float(v), info={"proxy": p.value, "log_w": q.value}))
        return out


def load_chi2(
    reward: str | None = None,
    policy: str | None = None,
    ref: str | None = None,
    lam: float = 0.1,
    clip: float = 10.0,
    **kwargs: Any,
) -> Chi2RegularisedReward:
    """The registry's ``chi2:reward=SPEC,policy=DIR,ref=DIR,lam=0.1[,clip=10]``."""
    from rewardlab.rewards.dpo_implicit import load_dpo_implicit
    from rewardlab.rewards.registry import load_reward

    if reward is None or policy is None or ref is None:
        raise ValueError("chi2 needs reward=SPEC, policy=DIR and ref=DIR")
    log_ratio = load_dpo_implicit(policy, ref, beta=1.0, **kwargs)
    return Chi2RegularisedReward(load_reward(reward, **kwargs), log_ratio, lam=lam, clip=clip)
