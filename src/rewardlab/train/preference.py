"""Preference reward-model objectives as small pure loss functions, and the trainer that runs them.

Let Δ = r(x, y_c) − r(x, y_r) for a pair where y_c is preferred. Every loss is a mean over the
batch (σ = logistic sigmoid, log σ computed stably as −softplus(−·)):

=================  ===========================================  ============================
objective          loss per pair (or per rated response)        source
=================  ===========================================  ============================
bt                 −log σ(Δ)                                    Bradley & Terry 1952; Ouyang 2022
bt-margin          −log σ(Δ − m)                                Llama 2 (Touvron 2023)
centered           −log σ(Δ) + c·(r_c + r_r)²                   Eisenstein et al. 2023 (c=0.01)
scaled-bt          −m·log σ(Δ)                                  HelpSteer2-Preference (Wang 2024)
regression         (r − rating)²                                SteerLM / HelpSteer2 regression
helpsteer2         regression, then scaled-bt from it (+ExPO)   HelpSteer2-Preference
label-smoothing    −(1−α)·log σ(Δ) − α·log σ(−Δ)                Secrets of RLHF II (Wang 2024)
noise-robust       −log σ(Δ − û) after flipping noisy pairs     Secrets of RLHF II
prdp               (Δ − d)², d = the row's reward difference    PRDP (Deng et al. 2024)
gpm                −log σ(s(y_c ≻ y_r)/τ), skew-symmetric s     GPM (Zhang et al. 2024)
vpl                −ELBO with a user latent z                   VPL (Poddar et al. 2024)
ctrl-u             exp(−u)-weighted BT, u from two noisy passes Ctrl-U (Zhang et al. 2024)
dpo                DPO on a causal LM; its implicit reward      DPO (Rafailov et al. 2023)
t-reg              DPO + token-level reward regulariser         T-REG (Zhou et al. 2024)
=================  ===========================================  ============================

The last five have their own trainer (``Objective.trainer``, imported on use):
:mod:`rewardlab.train.pref_extra` (gpm, vpl, ctrl-u) and :mod:`rewardlab.train.dpo` (dpo,
t-reg); their formulas are in :mod:`rewardlab.train.pref_objectives`.

``m`` is the row's ``margin`` (the preference strength; bt-margin uses 0 when absent, scaled-bt
weighs 1). noise-robust first trains an ensemble of ``noise_members`` BT models, measures each
pair's preference strength (:func:`preference_strength`: mean û and std σ̂ of the members' Δ),
flips pairs with û < −flip_z·σ̂ (:func:`noise_robust_plan`), then trains with the adaptive
margin û (sign-corrected for flipped pairs). Training itself is :func:`rewardlab.train.loop.fit`.

>>> import torch
>>> round(float(bt_loss(torch.tensor([1.0]), torch.tensor([0.0]))), 4)  # −log σ(1)
0.3133
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from rewardlab.train.loop import LoopConfig

if TYPE_CHECKING:  # torch is imported on use: the CLI reads PREFERENCE_OBJECTIVES cheaply
    import torch

    Tensor = torch.Tensor

# ------------------------------------------------------------------------------ pure losses


def _neg_log_sigmoid(x: Tensor) -> Tensor:
    """−log σ(x), computed stably as softplus(−x)."""
    import torch.nn.functional as F

    out: Tensor = F.softplus(-x)
    return out


def bt_loss(r_c: Tensor, r_r: Tensor) -> Tensor:
    """Bradley-Terry: mean of −log σ(r_c − r_r)."""
    return _neg_log_sigmoid(r_c - r_r).mean()


def bt_margin_loss(r_c: Tensor, r_r: Tensor, margin: Tensor) -> Tensor:
    """BT with margin (Touvron et al. 2023): mean of −log σ(r_c − r_r − m). Also the adaptive-
    margin loss of Secrets of RLHF II when ``margin`` is the ensemble strength û."""
    return _neg_log_sigmoid(r_c - r_r - margin).mean()


def centering_penalty(r_c: Tensor, r_r: Tensor) -> Tensor:
    """Mean of (r_c + r_r)²: pulls the mean reward of each pair to 0 (Eisenstein et al. 2023)."""
    return ((r_c + r_r) ** 2).mean()


def centered_bt_loss(r_c: Tensor, r_r: Tensor, coef: float = 0.01) -> Tensor:
    """BT plus ``coef`` times the reward-centering penalty."""
    return bt_loss(r_c, r_r) + coef * centering_penalty(r_c, r_r)


def scaled_bt_loss(r_c: Tensor, r_r: Tensor, strength: Tensor) -> Tensor:
    """Scaled BT (HelpSteer2-Preference): mean of −m·log σ(Δ); stronger preferences weigh more."""
    return (strength * _neg_log_sigmoid(r_c - r_r)).mean()


def regression_loss(pred: Tensor, rating: Tensor) -> Tensor:
    """Mean squared error to the ratings (SteerLM-style regression RM)."""
    return ((pred - rating) ** 2).mean()


def label_smoothing_loss(r_c: Tensor, r_r: Tensor, alpha: float = 0.1) -> Tensor:
    """Label-smoothed BT: mean of −(1−α)·log σ(Δ) − α·log σ(−Δ) (Secrets of RLHF II)."""
    d = r_c - r_r
    return ((1 - alpha) * _neg_log_sigmoid(d) + alpha * _neg_log_sigmoid(-d)).mean()


def preference_strength(diffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean û and std σ̂ (ddof 0) over M members of the reward differences ``diffs`` [M, B]."""
    d = np.asarray(diffs, dtype=float)
    if d.ndim != 2 or d.shape[0] < 1:
        raise ValueError(f"diffs must be [M, B] with M >= 1, got shape {d.shape}")
    return d.mean(axis=0), d.std(axis=0)


def noise_robust_plan(
    mean: np.ndarray, std: np.ndarray, flip_z: float = 1.0, margin_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Which pairs to flip and the adaptive margin of each (Secrets of RLHF II).

    A pair is flipped when the ensemble is confident that the *rejected* response is better:
    û < −flip_z·σ̂ (and û < 0). The margin is ``margin_scale·û`` in the orientation used for
    training (so ``+|û|`` for a flipped pair; ambiguous pairs keep a negative margin, which
    softens their loss).

    Returns:
        ``(flip bool [B], margin float [B])``.

    >>> noise_robust_plan(np.array([2.0, -3.0, -0.5]), np.array([1.0, 1.0, 1.0]))
    (array([False,  True, False]), array([ 2. ,  3. , -0.5]))
    """
    mu, sd = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    flip = (mu < 0) & (mu < -flip_z * sd)
    return flip, margin_scale * np.where(flip, -mu, mu)


# ------------------------------------------------------------------------------ objectives

PairLoss = Callable[["Tensor", "Tensor", Mapping[str, Any], "PreferenceConfig"], "Tensor"]
DataNeed = Literal["pairwise", "rating", "pairwise+rating"]


@dataclass(frozen=True)
class PreferenceConfig:
    """One preference-RM training run (the parameters are the recipe).

    ``loop`` holds the optimiser settings of every stage; ``batch_size`` counts pairs (or rated
    responses); ``noise_steps`` is the training length of each noise-robust ensemble member.
    """

    objective: str = "bt"
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(steps=200, lr=1e-4))
    head: Literal["seqcls", "value"] = "seqcls"
    batch_size: int = 16
    max_length: int = 512
    template: str = "Question: {prompt}\nAnswer:\n{response}"
    centering_coef: float = 0.01
    smoothing: float = 0.1
    margin_scale: float = 1.0
    noise_members: int = 3
    noise_steps: int | None = None  # None: loop.steps
    flip_z: float = 1.0
    expo_alpha: float = 1.0  # HelpSteer2 ExPO: θ = θ_reg + α(θ_bt − θ_reg); 1 = no extrapolation
    gpm_dim: int = 4  # GPM: embedding size 2k (the paper tries 2, 4, 6, 8)
    gpm_tau: float = 0.1  # GPM: temperature τ of σ(s/τ) (papers.md, [V:code])
    vpl_dim: int = 16  # VPL: response embedding size
    vpl_latent: int = 8  # VPL: user latent size
    vpl_hidden: int = 64  # VPL: encoder / decoder hidden width
    vpl_groups: int = 4  # VPL: user groups per batch
    vpl_context: int = 4  # VPL: context pairs per group (encoder input)
    vpl_targets: int = 4  # VPL: target pairs per group (the likelihood term)
    vpl_beta: float = 0.001  # VPL: weight of the KL term
    ctrl_u_drop: float = 0.1  # Ctrl-U: token-drop rate of each of the two passes
    dpo_beta: float = 0.1  # DPO / T-REG: β
    treg_alpha: float = 1.0  # T-REG: weight of the token-level regulariser
    treg_tau: float = 1.0  # T-REG: softmax temperature of the token weights
    treg_good: str = "Answer correctly and concisely.\n"  # T-REG: contrastive "good" prompt
    treg_bad: str = "Answer with a wrong result.\n"  # T-REG: contrastive "bad" prompt

    def __post_init__(self) -> None:
        if self.objective not in PREFERENCE_OBJECTIVES:
            raise ValueError(
                f"unknown objective {self.objective!r}; "
                f"choose one of {sorted(PREFERENCE_OBJECTIVES)}"
            )
        if self.head not in ("seqcls", "value"):
            raise ValueError(f"unknown head {self.head!r}: seqcls | value")
        if self.batch_size < 1 or self.max_length < 8:
            raise ValueError("batch_size must be >= 1 and max_length >= 8")
        if not 0.0 <= self.smoothing < 0.5:
            raise ValueError(f"smoothing must be in [0, 0.5), got {self.smoothing}")
        if self.noise_members < 2 and self.objective == "noise-robust":
            raise ValueError("noise-robust needs noise_members >= 2 to measure a std")
        if self.gpm_dim < 2 or self.gpm_dim % 2:
            raise ValueError(f"gpm_dim must be even and >= 2, got {self.gpm_dim}")
        if self.gpm_tau <= 0 or self.dpo_beta <= 0 or self.treg_tau <= 0:
            raise ValueError("gpm_tau, dpo_beta and treg_tau must be > 0")
        if min(self.vpl_dim, self.vpl_latent, self.vpl_hidden, self.vpl_groups) < 1:
            raise ValueError("vpl_dim, vpl_latent, vpl_hidden and vpl_groups must be >= 1")
        if self.vpl_context < 1 or self.vpl_targets < 1:
            raise ValueError("vpl_context and vpl_targets must be >= 1")
        if not 0.0 <= self.ctrl_u_drop < 1.0:
            raise ValueError(f"ctrl_u_drop must be in [0, 1), got {self.ctrl_u_drop}")


@dataclass(frozen=True)
class Objective:
    """What an objective needs and which pairwise loss its (last) stage uses.

    ``trainer`` (``"module:function"``, imported on use) names an objective with its own model
    or batches: ``fn(backbone, cfg, pairs, seed, log) -> TrainedRM``; the trainer of
    :mod:`rewardlab.train.pref_trainer` hands such objectives to it.
    """

    name: str
    needs: DataNeed
    pair_loss: PairLoss | None
    summary: str
    trainer: str | None = None


def _bt(r_c: Tensor, r_r: Tensor, b: Mapping[str, Any], c: PreferenceConfig) -> Tensor:
    return bt_loss(r_c, r_r)


def _bt_margin(r_c: Tensor, r_r: Tensor, b: Mapping[str, Any], c: PreferenceConfig) -> Tensor:
    return bt_margin_loss(r_c, r_r, c.margin_scale * b["margin"])


def _centered(r_c: Tensor, r_r: Tensor, b: Mapping[str, Any], c: PreferenceConfig) -> Tensor:
    return centered_bt_loss(r_c, r_r, c.centering_coef)


def _scaled(r_c: Tensor, r_r: Tensor, b: Mapping[str, Any], c: PreferenceConfig) -> Tensor:
    return scaled_bt_loss(r_c, r_r, b["strength"])


def _smoothed(r_c: Tensor, r_r: Tensor, b: Mapping[str, Any], c: PreferenceConfig) -> Tensor:
    return label_smoothing_loss(r_c, r_r, c.smoothing)


def _adaptive(r_c: Tensor, r_r: Tensor, b: Mapping[str, Any], c: PreferenceConfig) -> Tensor:
    return bt_margin_loss(r_c, r_r, b["margin"])  # margins set by noise_robust_plan


def _prdp(r_c: Tensor, r_r: Tensor, b: Mapping[str, Any], c: PreferenceConfig) -> Tensor:
    from rewardlab.train.pref_objectives import prdp_loss

    zero = b["margin"] * 0.0  # the RM form: d = margin, ρ = the model's scores, β = 1
    return prdp_loss(b["margin"], zero, r_c, r_r)


_EXTRA = "rewardlab.train.pref_extra"
_DPO = "rewardlab.train.dpo:train_dpo"
PREFERENCE_OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective("bt", "pairwise", _bt, "Bradley-Terry"),
        Objective("bt-margin", "pairwise", _bt_margin, "BT with the row's margin"),
        Objective("centered", "pairwise", _centered, "BT + reward centering penalty"),
        Objective("scaled-bt", "pairwise", _scaled, "BT weighted by preference strength"),
        Objective("regression", "rating", None, "MSE on ratings"),
        Objective("helpsteer2", "pairwise+rating", _scaled, "regression, then scaled BT"),
        Objective("label-smoothing", "pairwise", _smoothed, "label-smoothed BT"),
        Objective("noise-robust", "pairwise", _adaptive, "flip noisy pairs + adaptive margin"),
        Objective("prdp", "pairwise", _prdp, "regress Δ on the row's reward difference"),
        Objective("gpm", "pairwise", None, "general preference model", f"{_EXTRA}:train_gpm"),
        Objective("vpl", "pairwise", None, "user-latent VPL", f"{_EXTRA}:train_vpl"),
        Objective("ctrl-u", "pairwise", None, "uncertainty-weighted BT", f"{_EXTRA}:train_ctrl_u"),
        Objective("dpo", "pairwise", None, "DPO policy (implicit RM)", _DPO),
        Objective("t-reg", "pairwise", None, "DPO + T-REG", _DPO),
    )
}
"""Every preference objective by CLI name (``--objective``)."""


def pairwise_loss_fn(loss: PairLoss, cfg: PreferenceConfig) -> Callable[..., Any]:
    """A ``fit`` objective: one forward pass over [chosen; rejected], the loss, and metrics."""

    import torch

    def fn(model: Any, batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, float]]:
        r = model(batch["input_ids"], batch["attention_mask"])
        b = r.shape[0] // 2
        r_c, r_r = r[:b], r[b:]
        value = loss(r_c, r_r, batch, cfg)
        with torch.no_grad():
            metrics = {
                "accuracy": float((r_c > r_r).float().mean()),
                "reward_mean": float(r.mean()),
                "delta_mean": float((r_c - r_r).mean()),
            }
        return value, metrics

    return fn


def regression_loss_fn(model: Any, batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, float]]:
    """A ``fit`` objective for rating batches: MSE, with the mean absolute error as a metric."""
    pred = model(batch["input_ids"], batch["attention_mask"])
    value = regression_loss(pred, batch["rating"])
    return value, {"abs_err": float((pred.detach() - batch["rating"]).abs().mean())}
