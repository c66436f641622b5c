"""Train preference reward models (single or ensembles) with :func:`rewardlab.train.loop.fit`.

Each objective of :data:`rewardlab.train.preference.PREFERENCE_OBJECTIVES` runs as one or more
``fit`` stages on a reward model from :func:`rewardlab.rewards.preference_rm.build_reward_model`:

- pairwise objectives: one stage with the objective's pairwise loss;
- ``regression``: one stage of MSE on ratings;
- ``helpsteer2``: regression, then scaled BT starting from the regression weights, then ExPO
  (θ = θ_reg + α·(θ_bt − θ_reg); α = 1 keeps θ_bt);
- ``noise-robust``: ``noise_members`` BT models (seeds seed+1000+j) score every training pair,
  :func:`~rewardlab.train.preference.noise_robust_plan` flips pairs and sets adaptive margins,
  then the final model trains on the corrected pairs.

An ensemble is K members trained the same way with seeds ``seed + i`` and, where several
backbones are given, backbone ``i mod len(backbones)``; it is saved as ``member-<i>/`` plus a
``rewardlab.json`` of kind ``ensemble`` (see :mod:`rewardlab.rewards.ensemble`).

>>> trained = train_preference_model("backbone", PreferenceConfig(), rows)  # doctest: +SKIP
>>> save_trained(trained, "runs/rm-bt")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardlab.rewards.preference_rm import (
    PreferenceRM,
    build_reward_model,
    save_reward_model,
)
from rewardlab.train.loop import fit
from rewardlab.train.pref_batches import pair_batches, rating_batches
from rewardlab.train.pref_io import PairRow, RatingRow
from rewardlab.train.preference import (
    PREFERENCE_OBJECTIVES,
    PreferenceConfig,
    noise_robust_plan,
    pairwise_loss_fn,
    preference_strength,
    regression_loss_fn,
)

Log = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TrainedRM:
    """A trained reward model with its tokenizer, the loss history and run facts (``info``).

    ``saver(trained, out, meta) -> Path`` saves a model that is not a ``ScalarRewardModel``
    (GPM, VPL, DPO policies); None saves a ``preference-rm`` checkpoint.
    """

    model: Any
    tokenizer: Any
    history: tuple[dict[str, Any], ...]
    info: dict[str, Any]
    saver: Callable[[Any, Path, dict[str, Any]], Path] | None = None


def _check_data(
    cfg: PreferenceConfig, pairs: Sequence[PairRow] | None, ratings: Sequence[RatingRow] | None
) -> None:
    needs = PREFERENCE_OBJECTIVES[cfg.objective].needs
    if "pairwise" in needs and not pairs:
        raise ValueError(
            f"objective {cfg.objective!r} needs pairwise data (prompt/chosen/rejected)"
        )
    if "rating" in needs and not ratings:
        raise ValueError(f"objective {cfg.objective!r} needs rating data (prompt/response/rating)")
    if cfg.objective == "prdp":
        missing = [i for i, r in enumerate(pairs or ()) if r.margin is None]
        if missing:
            raise ValueError(
                f"objective 'prdp' regresses on each row's reward difference ('margin'); "
                f"{len(missing)} rows have none (first: row {missing[0]})"
            )


def _fit_pairs(
    model: Any,
    tok: Any,
    rows: Sequence[PairRow],
    cfg: PreferenceConfig,
    loss_name: str,
    seed: int,
    log: Log | None,
    steps: int | None = None,
) -> list[Any]:
    loop = replace(cfg.loop, seed=seed, steps=steps or cfg.loop.steps)
    batches = pair_batches(
        rows,
        tok,
        cfg.template,
        batch_size=cfg.batch_size,
        max_length=cfg.max_length,
        n_batches=loop.steps * loop.grad_accum,
        seed=seed,
    )
    loss = PREFERENCE_OBJECTIVES[loss_name].pair_loss
    assert loss is not None
    return fit(model, batches, pairwise_loss_fn(loss, cfg), loop, on_log=log)


def _fit_ratings(
    model: Any,
    tok: Any,
    rows: Sequence[RatingRow],
    cfg: PreferenceConfig,
    seed: int,
    log: Log | None,
) -> list[Any]:
    loop = replace(cfg.loop, seed=seed)
    batches = rating_batches(
        rows,
        tok,
        cfg.template,
        batch_size=cfg.batch_size,
        max_length=cfg.max_length,
        n_batches=loop.steps * loop.grad_accum,
        seed=seed,
    )
    return fit(model, batches, regression_loss_fn, loop, on_log=log)


def _extrapolate(model: torch.nn.Module, start: dict[str, torch.Tensor], alpha: float) -> None:
    """ExPO in place: θ ← θ_start + α·(θ − θ_start)."""
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if p.is_floating_point():
                p.copy_(start[name] + alpha * (p - start[name]))


def pair_deltas(rm: PreferenceRM, rows: Sequence[PairRow]) -> np.ndarray:
    """r(chosen) − r(rejected) for each row, under ``rm``."""
    chosen = rm.score_texts([rm.text(r.prompt, r.chosen) for r in rows])
    rejected = rm.score_texts([rm.text(r.prompt, r.rejected) for r in rows])
    deltas: np.ndarray = chosen - rejected
    return deltas


def _noise_robust_rows(
    backbone: str | Path, rows: Sequence[PairRow], cfg: PreferenceConfig, seed: int, log: Log | None
) -> tuple[list[PairRow], dict[str, Any]]:
    diffs = []
    for j in range(cfg.noise_members):
        member, tok = build_reward_model(backbone, cfg.head, seed + 1000 + j)
        _fit_pairs(member, tok, rows, cfg, "bt", seed + 1000 + j, log, steps=cfg.noise_steps)
        rm = PreferenceRM(member, tok, template=cfg.template, max_length=cfg.max_length)
        diffs.append(pair_deltas(rm, rows))
    mean, std = preference_strength(np.stack(diffs))
    flip, margin = noise_robust_plan(mean, std, cfg.flip_z, cfg.margin_scale)
    fixed = [
        PairRow(
            r.prompt,
            r.rejected if f else r.chosen,
            r.chosen if f else r.rejected,
            float(m),
            {**r.extra, "noise_flipped": bool(f)},
        )
        for r, f, m in zip(rows, flip, margin, strict=True)
    ]
    info = {
        "flipped": int(flip.sum()),
        "flip_mask": flip.tolist(),
        "strength_mean": float(mean.mean()),
        "strength_std_mean": float(std.mean()),
    }
    return fixed, info


def train_preference_model(
    backbone: str | Path,
    cfg: PreferenceConfig,
    pairs: Sequence[PairRow] | None = None,
    ratings: Sequence[RatingRow] | None = None,
    *,
    seed: int | None = None,
    log: Log | None = None,
) -> TrainedRM:
    """Train one reward model with ``cfg.objective`` on a local backbone directory.

    Args:
        backbone: a transformers model directory (causal LM or encoder); never downloaded.
        cfg: the recipe; ``cfg.loop`` is handed to ``fit`` (``seed`` overrides its seed).
        pairs / ratings: training rows, as the objective needs (a clear error otherwise).
        log: called with every logged record of every stage (the record gains ``stage``).
    """
    _check_data(cfg, pairs, ratings)
    s = cfg.loop.seed if seed is None else seed
    history: list[dict[str, Any]] = []
    info: dict[str, Any] = {"objective": cfg.objective, "seed": s, "backbone": str(backbone)}

    def stage_log(stage: str) -> Log:
        def _log(rec: dict[str, Any]) -> None:
            history.append({"stage": stage, **rec})
            if log is not None:
                log({"stage": stage, **rec})

        return _log

    custom = PREFERENCE_OBJECTIVES[cfg.objective].trainer
    if custom is not None:
        import importlib

        module, _, attr = custom.partition(":")
        train_fn = getattr(importlib.import_module(module), attr)
        assert pairs is not None
        trained: TrainedRM = train_fn(backbone, cfg, pairs, s, stage_log(cfg.objective))
        return replace(trained, history=tuple(history))
    model, tok = build_reward_model(backbone, cfg.head, s)
    if cfg.objective in ("regression", "helpsteer2"):
        assert ratings is not None
        _fit_ratings(model, tok, ratings, cfg, s, stage_log("regression"))
    if cfg.objective == "helpsteer2":
        assert pairs is not None
        start = {k: v.detach().clone() for k, v in model.state_dict().items()}
        _fit_pairs(model, tok, pairs, cfg, "scaled-bt", s, stage_log("scaled-bt"))
        if cfg.expo_alpha != 1.0:
            _extrapolate(model, start, cfg.expo_alpha)
    elif cfg.objective == "noise-robust":
        assert pairs is not None
        fixed, noise_info = _noise_robust_rows(backbone, pairs, cfg, s, stage_log("members"))
        info["noise"] = noise_info
        _fit_pairs(model, tok, fixed, cfg, "noise-robust", s, stage_log("noise-robust"))
    elif cfg.objective != "regression":
        assert pairs is not None
        _fit_pairs(model, tok, pairs, cfg, cfg.objective, s, stage_log(cfg.objective))
    model.eval()
    return TrainedRM(model, tok, tuple(history), info)


def save_trained(
    trained: TrainedRM, out: str | Path, cfg: PreferenceConfig | None = None, **meta: Any
) -> Path:
    """Save a trained model as a ``preference-rm`` checkpoint with its history and config."""
    extra: dict[str, Any] = {"train": {k: v for k, v in trained.info.items() if k != "noise"}}
    if cfg is not None:
        extra.update(
            template=cfg.template,
            max_length=cfg.max_length,
            config=json.loads(json.dumps(asdict(cfg), default=str)),
        )
    if trained.saver is not None:
        path = trained.saver(trained, Path(out), {**extra, **meta})
    else:
        path = save_reward_model(trained.model, trained.tokenizer, out, **extra, **meta)
    with (path / "train_log.jsonl").open("w") as fh:
        for rec in trained.history:
            fh.write(json.dumps(rec) + "\n")
    return path


def train_ensemble(
    backbones: Sequence[str | Path],
    k: int,
    cfg: PreferenceConfig,
    out: str | Path,
    pairs: Sequence[PairRow] | None = None,
    ratings: Sequence[RatingRow] | None = None,
    *,
    aggregate: str = "mean",
    lam: float = 0.5,
    log: Log | None = None,
) -> Path:
    """Train K members (seed ``cfg.loop.seed + i``, backbone ``i mod len(backbones)``) and save
    them under ``out/member-<i>`` with an ``ensemble`` ``rewardlab.json`` in ``out``."""
    if k < 1 or not backbones:
        raise ValueError("an ensemble needs k >= 1 and at least one backbone")
    root = Path(out)
    members = []
    for i in range(k):
        trained = train_preference_model(
            backbones[i % len(backbones)], cfg, pairs, ratings, seed=cfg.loop.seed + i, log=log
        )
        save_trained(trained, root / f"member-{i}", cfg, name=f"{root.name}/member-{i}")
        members.append(f"member-{i}")
    meta = {
        "kind": "ensemble",
        "loader": "rewardlab.rewards.ensemble:load_ensemble",
        "members": members,
        "aggregate": aggregate,
        "lam": lam,
        "normalize": False,
        "objective": cfg.objective,
    }
    (root / "rewardlab.json").write_text(json.dumps(meta, indent=2))
    return root
