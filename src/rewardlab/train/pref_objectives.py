"""The further preference objectives as small pure loss functions (the formulas, nothing else).

Each function is a batch mean; the trainers in :mod:`rewardlab.train.pref_extra` and
:mod:`rewardlab.train.dpo` call them, and ``tests/train/test_pref_objectives.py`` checks each one
against a hand-worked example. σ is the logistic sigmoid, −log σ(x) = softplus(−x).

- **gpm** (GPM, Zhang et al. 2024; [V:code] in papers.md): −log σ((s(y_c ≻ y_r) − m)/τ) with
  s(i ≻ j) = (R·v_i)·v_j, v the L2-normalised embedding in R^{2k}, R = blockdiag([[0, −1],
  [1, 0]]), τ = 0.1.
- **vpl** (VPL, Poddar et al. 2024): −E_q[log σ(r(y_c, z) − r(y_r, z))] + β·KL(q(z|C) ‖ N(0, I)),
  q = N(μ(C), diag σ²(C)) from the user's context pairs C.
- **ctrl-u** (Ctrl-U, Zhang et al. 2024; form adapted to pairs): exp(−u)·½(−log σ(Δ¹) − log
  σ(Δ²)) with u = |Δ¹ − Δ²| (no gradient), Δ¹, Δ² from two noisy passes over the same pair.
- **prdp** (PRDP, Deng et al. 2024): (r_a − r_b − β·[clip(ρ_a) − clip(ρ_b)])², ρ = log
  π/π_old; the RM form is (Δ − d)², d = the pair's reward difference.
- **dpo** (Rafailov et al. 2023): −log σ(β·[(log π − log π_ref)(y_c) − (log π − log
  π_ref)(y_r)]).
- **t-reg** (T-REG, Zhou et al. 2024; exact form unverified): DPO + α·(−log σ(Σ_t w^c_t·ρ^c_t −
  Σ_t w^r_t·ρ^r_t)), ρ_t = β·log π/π_ref at token t, w = n·softmax(±r̂/τ) from the
  contrastive-prompt token rewards r̂.

>>> import torch
>>> v = torch.tensor([[1.0, 0.0]]); w = torch.tensor([[0.0, 1.0]])
>>> float(gpm_score(v, w)), float(gpm_score(w, v))  # skew-symmetric
(1.0, -1.0)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rewardlab.rewards.pref_models import gpm_rotate, gpm_score

__all__ = [
    "ctrl_u_loss",
    "dpo_loss",
    "gaussian_kl",
    "gpm_loss",
    "gpm_rotate",
    "gpm_score",
    "prdp_loss",
    "treg_regulariser",
    "treg_weights",
    "vpl_loss",
]

if TYPE_CHECKING:
    import torch

    Tensor = torch.Tensor


def _nls(x: Tensor) -> Tensor:
    """−log σ(x) = softplus(−x), stable."""
    import torch.nn.functional as F

    out: Tensor = F.softplus(-x)
    return out


# ------------------------------------------------------------------------------ GPM


def gpm_loss(v_c: Tensor, v_r: Tensor, tau: float = 0.1, margin: Tensor | float = 0.0) -> Tensor:
    """GPM preference loss: mean of −log σ((s(y_c ≻ y_r) − m)/τ); v are already normalised."""
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    return _nls((gpm_score(v_c, v_r) - margin) / tau).mean()


# ------------------------------------------------------------------------------ VPL


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, diag e^{logvar}) ‖ N(0, I)) per row: ½·Σ(μ² + e^{logvar} − 1 − logvar)."""
    return 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def vpl_loss(
    r_c: Tensor, r_r: Tensor, mu: Tensor, logvar: Tensor, beta: float = 0.01
) -> tuple[Tensor, Tensor, Tensor]:
    """Negative ELBO of VPL: ``(loss, nll, kl)``.

    ``r_c``/``r_r`` [G, T] are the rewards of each user group's pairs under that group's
    sampled latent z; ``mu``/``logvar`` [G, d] the encoder's posterior. nll is the mean BT loss
    over all target pairs, kl the mean over groups; loss = nll + β·kl.
    """
    nll = _nls(r_c - r_r).mean()
    kl = gaussian_kl(mu, logvar).mean()
    return nll + beta * kl, nll, kl


# ------------------------------------------------------------------------------ Ctrl-U


def ctrl_u_loss(d1: Tensor, d2: Tensor) -> Tensor:
    """Uncertainty-weighted BT (Ctrl-U's regularised reward loss, adapted to pairs).

    ``d1``/``d2`` are the reward differences of the same pairs from two stochastic passes; the
    uncertainty u = |d1 − d2| (no gradient) down-weights each pair by exp(−u). Ctrl-U weighs
    its reward loss the same way from the discrepancy of two generations of one condition (the
    exact weighting in the paper is unverified here; papers.md: "weight like exp(−u)").
    """
    import torch

    with torch.no_grad():
        w = torch.exp(-(d1 - d2).abs())
    return (w * 0.5 * (_nls(d1) + _nls(d2))).mean()


# ------------------------------------------------------------------------------ PRDP


def prdp_loss(
    reward_a: Tensor,
    reward_b: Tensor,
    logratio_a: Tensor,
    logratio_b: Tensor,
    beta: float = 1.0,
    clip: float | None = None,
) -> Tensor:
    """PRDP reward-difference regression: mean of (r_a − r_b − β·[ρ_a − ρ_b])².

    ρ = log π_θ/π_old of each sample (clipped to [−clip, clip] for the proximal update when
    ``clip`` is set). For a reward model, ρ is the model's own score and β = 1: the model's
    score difference regresses on the given reward difference.
    """
    import torch

    if clip is not None:
        logratio_a = torch.clamp(logratio_a, -clip, clip)
        logratio_b = torch.clamp(logratio_b, -clip, clip)
    return ((reward_a - reward_b - beta * (logratio_a - logratio_b)) ** 2).mean()


# ------------------------------------------------------------------------------ DPO / T-REG


def dpo_loss(
    logp_c: Tensor, logp_r: Tensor, ref_c: Tensor, ref_r: Tensor, beta: float = 0.1
) -> Tensor:
    """DPO: mean of −log σ(β·[(log π − log π_ref)(y_c) − (log π − log π_ref)(y_r)])."""
    return _nls(beta * ((logp_c - ref_c) - (logp_r - ref_r))).mean()


def treg_weights(token_rewards: Tensor, mask: Tensor, tau: float = 1.0) -> Tensor:
    """Token weights n·softmax(r̂/τ) over the unmasked tokens of each row (they sum to n).

    Masked positions get weight 0. Pass −r̂ for rejected responses (their worst tokens weigh
    most).
    """
    import torch

    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    m = mask.bool()
    logits = torch.where(m, token_rewards / tau, torch.full_like(token_rewards, -1e30))
    p = torch.softmax(logits, dim=-1) * m
    out: Tensor = p * m.sum(dim=-1, keepdim=True)
    return out


def treg_regulariser(
    rho_c: Tensor,
    rho_r: Tensor,
    w_c: Tensor,
    w_r: Tensor,
) -> Tensor:
    """T-REG's token-level term: mean of −log σ(Σ_t w^c_t·ρ^c_t − Σ_t w^r_t·ρ^r_t).

    ``rho`` [B, T] are the token-level implicit rewards β·log π/π_ref (0 at padding), ``w`` the
    weights of :func:`treg_weights` (no gradient). Uniform weights (all 1) turn it into DPO.
    """
    return _nls((w_c.detach() * rho_c).sum(dim=-1) - (w_r.detach() * rho_r).sum(dim=-1)).mean()
