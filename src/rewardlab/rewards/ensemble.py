"""Reward-model ensembles: K member rewards, one aggregated score, usable as any Reward.

Aggregations of the member values v_1..v_K of a candidate (Coste et al. 2024, "Reward model
ensembles help mitigate overoptimization"; Eisenstein et al. 2023, "Helping or herding?"):

- ``mean``: (1/K)·Σ v_k;  ``median``;  ``min`` (worst-case optimisation, WCO);
- ``mean-var``: mean − λ·Var(v) (uncertainty-weighted optimisation, UWO; population variance,
  ddof 0, as Coste et al.'s best-of-N code);
- ``mean-std``: mean − λ·Std(v) (ddof 0).

With ``normalize=True`` each member's values are z-normalised first, (v − μ_k)/σ_k, so members
on different scales weigh alike. μ_k, σ_k must come from :meth:`EnsembleReward.fit_normalization`
on a reference set (scoring raises without them): statistics of the batch being scored would
make a candidate's score depend on its batch, and two batches (say, the chosen and the rejected
responses of a pairwise file) would be normalised differently.

A candidate that any member could not grade is ungraded (the reason names the members): a
conservative aggregate over fewer members would silently change meaning.

>>> aggregate_matrix(np.array([[1.0, 2.0], [3.0, 2.0]]), "mean-var", lam=0.5).tolist()
[1.5, 2.0]
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rewardlab.rewards.base import values
from rewardlab.types import Candidate, Problem, Score

Aggregate = Literal["mean", "median", "min", "mean-var", "mean-std"]
AGGREGATES: tuple[Aggregate, ...] = ("mean", "median", "min", "mean-var", "mean-std")


def zscore_stats(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-member mean and std (ddof 0; a zero std becomes 1) of ``matrix`` [K, C], NaN-aware."""
    m = np.asarray(matrix, dtype=float)
    mu = np.nanmean(m, axis=1)
    sd = np.nanstd(m, axis=1)
    return mu, np.where(sd > 0, sd, 1.0)


def aggregate_matrix(
    matrix: np.ndarray,
    how: Aggregate = "mean",
    lam: float = 0.5,
    stats: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """One value per candidate from member values ``matrix`` [K, C]; NaN where any member is NaN.

    ``stats = (mu [K], sd [K])`` z-normalises each member row first.

    >>> m = np.array([[1.0, 4.0], [3.0, 0.0], [2.0, 2.0]])
    >>> aggregate_matrix(m, "median").tolist(), aggregate_matrix(m, "min").tolist()
    ([2.0, 2.0], [1.0, 0.0])
    """
    if how not in AGGREGATES:
        raise ValueError(f"unknown aggregation {how!r}; choose one of {list(AGGREGATES)}")
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] < 1:
        raise ValueError(f"matrix must be [K, C] with K >= 1, got shape {m.shape}")
    if stats is not None:
        mu, sd = (np.asarray(s, dtype=float).reshape(-1, 1) for s in stats)
        m = (m - mu) / sd
    if how == "mean":
        out = m.mean(axis=0)
    elif how == "median":
        out = np.median(m, axis=0)
    elif how == "min":
        out = m.min(axis=0)
    elif how == "mean-var":
        out = m.mean(axis=0) - lam * m.var(axis=0)
    else:
        out = m.mean(axis=0) - lam * m.std(axis=0)
    result: np.ndarray = np.where(np.isnan(m).any(axis=0), np.nan, out)
    return result


@dataclass(frozen=True)
class EnsembleReward:
    """K member rewards aggregated into one :class:`~rewardlab.rewards.base.Reward`.

    ``info`` of each score holds the member values (``members``) and their std (``spread``).
    ``params`` is the members' total (every member scores every candidate).
    """

    members: tuple[Any, ...]
    aggregate: Aggregate = "mean"
    lam: float = 0.5
    normalize: bool = False
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    name: str = "ensemble"

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("an ensemble needs at least one member")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"unknown aggregation {self.aggregate!r}; choose one of {AGGREGATES}")
        if self.lam < 0:
            raise ValueError(f"lam must be >= 0, got {self.lam}")

    @property
    def params(self) -> int:
        return int(sum(int(getattr(m, "params", 0)) for m in self.members))

    def member_values(
        self, problems: Sequence[Problem], candidates: Sequence[Candidate]
    ) -> np.ndarray:
        """Every member's values [K, C] (NaN = that member could not grade)."""
        return np.stack([values(m.score(problems, candidates)) for m in self.members])

    def fit_normalization(
        self, problems: Sequence[Problem], candidates: Sequence[Candidate]
    ) -> EnsembleReward:
        """A copy that z-normalises members with stats measured on this reference set."""
        mu, sd = zscore_stats(self.member_values(problems, candidates))
        return replace(self, normalize=True, stats=(tuple(mu.tolist()), tuple(sd.tolist())))

    def aggregate_values(self, matrix: np.ndarray) -> np.ndarray:
        """This ensemble's aggregate of a member-value matrix [K, C]."""
        stats = None
        if self.normalize:
            if self.stats is None:
                raise ValueError(
                    "z-normalisation needs fixed member statistics: call "
                    "fit_normalization(problems, candidates) on a reference set first"
                )
            stats = (np.array(self.stats[0]), np.array(self.stats[1]))
        return aggregate_matrix(matrix, self.aggregate, self.lam, stats)

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        if len(problems) != len(candidates):
            raise ValueError(f"{len(problems)} problems for {len(candidates)} candidates")
        matrix = self.member_values(problems, candidates)
        agg = self.aggregate_values(matrix)
        out = []
        for j in range(matrix.shape[1]):
            col = matrix[:, j]
            if np.isnan(col).any():
                missing = [
                    str(getattr(self.members[k], "name", k)) for k in np.flatnonzero(np.isnan(col))
                ]
                out.append(Score.ungraded(f"ungraded by members {missing}"))
            else:
                out.append(
                    Score(float(agg[j]), info={"members": col.tolist(), "spread": float(col.std())})
                )
        return out


def import_target(target: str) -> Any:
    """``"module:attr.attr"`` imported and resolved."""
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def load_checkpoint(path: str | Path, **kwargs: Any) -> Any:
    """Any reward checkpoint directory whose ``rewardlab.json`` names its ``loader``."""
    p = Path(path)
    meta_path = p / "rewardlab.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{p} is not a reward checkpoint: no rewardlab.json")
    meta = json.loads(meta_path.read_text())
    if "loader" not in meta:
        raise ValueError(f"{meta_path} names no 'loader' (module:callable)")
    return import_target(meta["loader"])(p, **kwargs)


def load_ensemble(path: str | Path, **kwargs: Any) -> EnsembleReward:
    """An ensemble directory: ``rewardlab.json`` (kind ``ensemble``) listing member directories.

    ``kwargs`` override the saved ``aggregate``, ``lam``, ``normalize`` and ``name``; saved
    ``stats`` (``[[mu...], [sd...]]``, from :meth:`EnsembleReward.fit_normalization`) are used
    for z-normalisation.
    """
    p = Path(path)
    meta = json.loads((p / "rewardlab.json").read_text())
    if meta.get("kind") != "ensemble":
        raise ValueError(f"{p}: kind {meta.get('kind')!r} is not an ensemble")
    members = tuple(load_checkpoint(p / m) for m in meta["members"])
    stats = meta.get("stats")
    return EnsembleReward(
        members,
        aggregate=kwargs.get("aggregate", meta.get("aggregate", "mean")),
        lam=float(kwargs.get("lam", meta.get("lam", 0.5))),
        normalize=bool(kwargs.get("normalize", meta.get("normalize", False))),
        stats=(tuple(stats[0]), tuple(stats[1])) if stats else None,
        name=kwargs.get("name", p.resolve().name),
    )
