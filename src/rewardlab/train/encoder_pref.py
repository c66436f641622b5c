"""Train a preference head on cached frozen-encoder features with the existing objectives.

The features of every (prompt, response) are computed once by
:class:`~rewardlab.rewards.encoder_rm.EncoderFeaturizer` (and may be cached on disk:
:func:`cached_features`); training then only runs the small
:class:`~rewardlab.rewards.encoder_rm.FeatureHead`, through the one loop
:func:`rewardlab.train.loop.fit`, with the pairwise loss of any objective of
:data:`rewardlab.train.preference.PREFERENCE_OBJECTIVES` (``bt``, ``bt-margin``, ``centered``,
``scaled-bt``, ``label-smoothing``, ``noise-robust``; the rating objectives need rating data,
which HH-RLHF does not have).

``noise-robust`` runs as in :mod:`rewardlab.train.pref_trainer`: ``noise_members`` BT heads
(seeds seed+1000+j) measure each training pair's strength (:func:`preference_strength`),
:func:`noise_robust_plan` flips pairs and sets adaptive margins, and the final head trains on
the corrected pairs.

>>> head, info = train_head(fc, fr, None, PreferenceConfig("bt"))  # doctest: +SKIP
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardlab.rewards.encoder_rm import EncoderFeaturizer, FeatureHead
from rewardlab.train.loop import fit
from rewardlab.train.preference import (
    PREFERENCE_OBJECTIVES,
    PreferenceConfig,
    noise_robust_plan,
    preference_strength,
)

Log = Callable[[dict[str, Any]], None]


def feature_pair_batches(
    n_rows: int,
    feat_c: np.ndarray,
    feat_r: np.ndarray,
    margin: np.ndarray,
    *,
    batch_size: int,
    n_batches: int,
    seed: int,
) -> list[dict[str, torch.Tensor]]:
    """``n_batches`` batches of ``features`` [2B, D] (B chosen rows, then their B rejected),
    ``margin`` [B] (0 where NaN) and ``strength`` [B] (1 where NaN), from seeded permutations."""
    if n_rows < 1:
        raise ValueError("no training pairs")
    size = min(batch_size, n_rows)
    rng = random.Random(seed)
    fc = torch.as_tensor(feat_c, dtype=torch.float32)
    fr = torch.as_tensor(feat_r, dtype=torch.float32)
    m = torch.as_tensor(margin, dtype=torch.float32)
    out: list[dict[str, torch.Tensor]] = []
    while len(out) < n_batches:
        perm = list(range(n_rows))
        rng.shuffle(perm)
        for i in range(0, n_rows - size + 1, size):
            idx = torch.tensor(perm[i : i + size])
            mb = m[idx]
            out.append(
                {
                    "features": torch.cat([fc[idx], fr[idx]]),
                    "margin": torch.nan_to_num(mb, nan=0.0),
                    "strength": torch.where(torch.isnan(mb), torch.ones_like(mb), mb),
                }
            )
    return out[:n_batches]


def _loss_fn(objective: str, cfg: PreferenceConfig) -> Callable[..., Any]:
    loss = PREFERENCE_OBJECTIVES[objective].pair_loss
    if loss is None:
        raise ValueError(f"objective {objective!r} needs rating data; a head trains on pairs")

    def fn(model: Any, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        r = model(batch["features"])
        b = r.shape[0] // 2
        r_c, r_r = r[:b], r[b:]
        value = loss(r_c, r_r, batch, cfg)
        with torch.no_grad():
            acc = float((r_c > r_r).float().mean())
        return value, {"accuracy": acc}

    return fn


def _fit_head(
    feat_c: np.ndarray,
    feat_r: np.ndarray,
    margin: np.ndarray,
    cfg: PreferenceConfig,
    objective: str,
    *,
    hidden: int,
    dropout: float,
    seed: int,
    steps: int | None,
    log: Log | None,
) -> FeatureHead:
    loop = replace(cfg.loop, seed=seed, steps=steps or cfg.loop.steps)
    torch.manual_seed(seed)
    head = FeatureHead(feat_c.shape[1], hidden, dropout)
    head.set_standardisation(np.concatenate([feat_c, feat_r]))
    batches = feature_pair_batches(
        len(feat_c),
        feat_c,
        feat_r,
        margin,
        batch_size=cfg.batch_size,
        n_batches=loop.steps * loop.grad_accum,
        seed=seed,
    )
    fit(head, batches, _loss_fn(objective, cfg), loop, on_log=log)
    head.eval()
    return head


def train_head(
    feat_c: np.ndarray,
    feat_r: np.ndarray,
    margin: np.ndarray | None,
    cfg: PreferenceConfig,
    *,
    hidden: int = 256,
    dropout: float = 0.1,
    seed: int | None = None,
    log: Log | None = None,
) -> tuple[FeatureHead, dict[str, Any]]:
    """Train one head with ``cfg.objective`` on chosen / rejected features [n, D].

    ``margin`` [n] is each pair's margin (NaN = absent; None = absent everywhere): bt-margin
    subtracts ``margin_scale · margin``, scaled-bt weighs by it. Returns the head (eval mode)
    and run facts (for noise-robust: how many pairs were flipped and the flip mask).
    """
    fc, fr = np.asarray(feat_c, dtype=np.float32), np.asarray(feat_r, dtype=np.float32)
    if fc.shape != fr.shape or fc.ndim != 2 or len(fc) == 0:
        raise ValueError(
            f"chosen/rejected features must be the same [n, D], got {fc.shape}, {fr.shape}"
        )
    m = np.full(len(fc), np.nan) if margin is None else np.asarray(margin, dtype=float)
    if m.shape != (len(fc),):
        raise ValueError(f"margin must be [n] = [{len(fc)}], got {m.shape}")
    s = cfg.loop.seed if seed is None else seed
    info: dict[str, Any] = {"objective": cfg.objective, "seed": s, "pairs": len(fc)}
    kw: dict[str, Any] = {"hidden": hidden, "dropout": dropout}
    if cfg.objective != "noise-robust":
        head = _fit_head(fc, fr, m, cfg, cfg.objective, seed=s, steps=None, log=log, **kw)
        return head, info
    diffs = []
    for j in range(cfg.noise_members):
        member = _fit_head(
            fc, fr, m, cfg, "bt", seed=s + 1000 + j, steps=cfg.noise_steps, log=log, **kw
        )
        diffs.append(member.score(fc) - member.score(fr))
    mean, std = preference_strength(np.stack(diffs))
    flip, adaptive = noise_robust_plan(mean, std, cfg.flip_z, cfg.margin_scale)
    fc2 = np.where(flip[:, None], fr, fc)
    fr2 = np.where(flip[:, None], fc, fr)
    head = _fit_head(fc2, fr2, adaptive, cfg, "noise-robust", seed=s, steps=None, log=log, **kw)
    info.update(flipped=int(flip.sum()), flip_mask=flip.tolist())
    return head, info


def cached_features(
    featurizer: EncoderFeaturizer,
    prompts: Sequence[str],
    responses: Sequence[str],
    cache_dir: str | Path,
    *,
    chunk: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """``featurizer.features`` for every row, computed chunk by chunk and kept on disk.

    Chunk i of ``chunk`` rows is stored as ``<cache_dir>/<fingerprint>-<content hash>.npy``;
    an interrupted run recomputes only the chunks it has not written (resumable), and a change
    of texts, encoder or cutting settings changes the file names.
    """
    import hashlib

    root = Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    parts = []
    n = len(prompts)
    for start in range(0, n, chunk):
        p, r = list(prompts[start : start + chunk]), list(responses[start : start + chunk])
        h = hashlib.sha1("\x00".join([*p, "\x01", *r]).encode("utf-8")).hexdigest()[:16]
        path = root / f"{featurizer.fingerprint}-{h}.npy"
        if path.is_file():
            parts.append(np.load(path))
        else:
            feats = featurizer.features(p, r)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, feats)
            tmp.replace(path)
            parts.append(feats)
        if progress is not None:
            progress(min(start + chunk, n), n)
    if not parts:
        return np.zeros((0, 2 * featurizer.hidden), dtype=np.float32)
    return np.concatenate(parts)
