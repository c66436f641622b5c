"""Fine-tune a pretrained encoder (all of it, or its top k blocks) with its reward head.

The frozen-feature path (:mod:`rewardlab.train.encoder_pref`, :mod:`rewardlab.train.encoder_orm`)
trains only a head on cached features. Here the encoder's weights move too: the model is
:class:`~rewardlab.rewards.encoder_rm.EncoderScorer` (encoder → the same pooled features →
head), trained through the one loop :func:`rewardlab.train.loop.fit` with

- a **preference** objective (:func:`finetune_pairs`): any pairwise loss of
  :data:`rewardlab.train.preference.PREFERENCE_OBJECTIVES` (``bt``: Bradley & Terry 1952,
  ``-log σ(r_c − r_r)``) on (prompt, chosen, rejected);
- the **outcome** objective (:func:`finetune_outcome`): the ORM's binary cross-entropy
  (:func:`rewardlab.train.process.outcome_bce_loss`, Cobbe et al. 2021) on (prompt, response,
  label).

The head may start from a head trained on the frozen features (linear probing, then fine-tuning:
Kumar et al. 2022, "Fine-tuning can distort pretrained features", LP-FT), which keeps the first
steps from pushing random-head gradients into the encoder. ``layers`` picks what trains:
``-1`` the whole encoder (embeddings included), ``k`` its top k blocks; the head always trains.
Rows are cut exactly as for scoring (:meth:`EncoderFeaturizer.pair_ids`); each epoch is a seeded
permutation of the rows, the last incomplete batch dropped.

>>> hist = finetune_pairs(feat, head, prompts, chosen, rejected, pref, layers=-1)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rewardlab.rewards.encoder_rm import (
    EncoderFeaturizer,
    EncoderScorer,
    FeatureHead,
    collate_rows,
    set_trainable_layers,
)
from rewardlab.train.loop import LoopConfig, fit
from rewardlab.train.preference import PREFERENCE_OBJECTIVES, PreferenceConfig

Log = Callable[[dict[str, Any]], None]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class FinetuneReport:
    """What a fine-tuning run did: rows seen, steps, trainable parameters, logged history."""

    rows: int
    steps: int
    batch_size: int
    epochs: float
    trainable_params: int
    history: list[dict[str, Any]]


def epoch_batches(n_rows: int, batch_size: int, n_batches: int, seed: int) -> list[list[int]]:
    """``n_batches`` index batches of ``batch_size``, epoch after epoch of seeded permutations
    (the last incomplete batch of each epoch is dropped)."""
    if n_rows < 1 or batch_size < 1:
        raise ValueError(f"need rows and a batch size >= 1, got {n_rows} rows, {batch_size}")
    size = min(batch_size, n_rows)
    rng = random.Random(seed)
    out: list[list[int]] = []
    while len(out) < n_batches:
        perm = list(range(n_rows))
        rng.shuffle(perm)
        out.extend(perm[i : i + size] for i in range(0, n_rows - size + 1, size))
    return out[:n_batches]


def steps_for_epochs(n_rows: int, batch_size: int, epochs: float) -> int:
    """Optimiser steps that cover ``epochs`` passes over ``n_rows`` rows (at least one)."""
    return max(1, math.floor(epochs * (n_rows // max(1, min(batch_size, n_rows)))))


class _Batches:
    """A re-iterable list of collated batches, built lazily (the loop draws them in order)."""

    def __init__(self, index: list[list[int]], make: Callable[[list[int]], dict[str, Any]]):
        self.index, self.make = index, make

    def __iter__(self) -> Any:
        return (self.make(b) for b in self.index)


def _prepare(
    featurizer: EncoderFeaturizer, head: FeatureHead, layers: int
) -> tuple[EncoderScorer, int]:
    trainable = set_trainable_layers(featurizer.model, layers)
    head.requires_grad_(True)
    return EncoderScorer(featurizer.model, head), trainable


def _finish(scorer: EncoderScorer) -> None:
    scorer.eval()
    scorer.model.requires_grad_(False)


def finetune_pairs(
    featurizer: EncoderFeaturizer,
    head: FeatureHead,
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    pref: PreferenceConfig,
    *,
    layers: int = -1,
    margin: Sequence[float] | None = None,
    log: Log | None = None,
    progress: Progress | None = None,
) -> FinetuneReport:
    """Train ``featurizer.model`` (per ``layers``) and ``head`` in place on pairs with
    ``pref.objective``'s pairwise loss for ``pref.loop.steps`` steps of ``pref.batch_size``
    pairs. ``margin`` [n] feeds bt-margin / scaled-bt (NaN = absent). Both end in eval mode."""
    n = len(prompts)
    if not n == len(chosen) == len(rejected):
        raise ValueError(f"{n} prompts, {len(chosen)} chosen, {len(rejected)} rejected")
    loss = PREFERENCE_OBJECTIVES[pref.objective].pair_loss
    if loss is None:
        raise ValueError(f"objective {pref.objective!r} needs rating data, not pairs")
    m = torch.full((n,), float("nan")) if margin is None else torch.tensor(margin).float()
    if m.shape != (n,):
        raise ValueError(f"margin must have one value per pair ({n}), got {tuple(m.shape)}")
    rows_c = [featurizer.pair_ids(p, r) for p, r in zip(prompts, chosen, strict=True)]
    rows_r = [featurizer.pair_ids(p, r) for p, r in zip(prompts, rejected, strict=True)]
    scorer, trainable = _prepare(featurizer, head, layers)
    loop = pref.loop
    index = epoch_batches(n, pref.batch_size, loop.steps * loop.grad_accum, loop.seed)

    def make(idx: list[int]) -> dict[str, Any]:
        ids, types, mask = collate_rows(
            [rows_c[i] for i in idx] + [rows_r[i] for i in idx], featurizer.pad_id
        )
        mb = m[idx]
        return {
            "ids": ids,
            "mask": mask,
            "types": types,
            "margin": torch.nan_to_num(mb, nan=0.0),
            "strength": torch.where(torch.isnan(mb), torch.ones_like(mb), mb),
        }

    def loss_fn(model: Any, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        r = model(batch["ids"], batch["mask"], batch["types"])
        b = r.shape[0] // 2
        value = loss(r[:b], r[b:], batch, pref)
        with torch.no_grad():
            acc = float((r[:b] > r[b:]).float().mean())
        return value, {"accuracy": acc}

    history = fit(scorer, _Batches(index, make), loss_fn, loop, on_log=log, progress=progress)
    _finish(scorer)
    size = len(index[0])
    return FinetuneReport(n, loop.steps, size, len(index) * size / n, trainable, history)


def finetune_outcome(
    featurizer: EncoderFeaturizer,
    head: FeatureHead,
    prompts: Sequence[str],
    responses: Sequence[str],
    labels: Sequence[float],
    loop: LoopConfig,
    *,
    batch_size: int = 16,
    layers: int = -1,
    log: Log | None = None,
    progress: Progress | None = None,
) -> FinetuneReport:
    """Train ``featurizer.model`` (per ``layers``) and ``head`` in place as an outcome RM:
    binary cross-entropy of ``head`` (a logit) against ``labels`` in [0, 1]."""
    from rewardlab.train.process import outcome_bce_loss

    n = len(prompts)
    if not n == len(responses) == len(labels):
        raise ValueError(f"{n} prompts, {len(responses)} responses, {len(labels)} labels")
    y = torch.tensor([float(v) for v in labels])
    if ((y < 0) | (y > 1)).any() or torch.isnan(y).any():
        raise ValueError("outcome labels must lie in [0, 1]")
    rows = [featurizer.pair_ids(p, r) for p, r in zip(prompts, responses, strict=True)]
    scorer, trainable = _prepare(featurizer, head, layers)
    index = epoch_batches(n, batch_size, loop.steps * loop.grad_accum, loop.seed)

    def make(idx: list[int]) -> dict[str, Any]:
        ids, types, mask = collate_rows([rows[i] for i in idx], featurizer.pad_id)
        return {"ids": ids, "mask": mask, "types": types, "targets": y[idx]}

    def loss_fn(model: Any, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        z = model(batch["ids"], batch["mask"], batch["types"])
        t = batch["targets"]
        with torch.no_grad():
            acc = float(((z > 0).float() == (t > 0.5).float()).float().mean())
        return outcome_bce_loss(z, t), {"accuracy": acc}

    history = fit(scorer, _Batches(index, make), loss_fn, loop, on_log=log, progress=progress)
    _finish(scorer)
    size = len(index[0])
    return FinetuneReport(n, loop.steps, size, len(index) * size / n, trainable, history)
