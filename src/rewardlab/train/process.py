"""Reward-model trainers: ORM, PRM, OVM and implicit PRM, all on the one loop of ``train.loop``.

Run: ``rewardlab train --objective prm --data steps.jsonl --backbone DIR --out DIR``

Each objective is a small pure loss function on tensors plus a ``loss_fn(model, batch)`` that
reads the model exactly where the matching scoring recipe reads it (the ``*_logits`` functions
of :mod:`rewardlab.rewards`), on inputs laid out by the shared
:class:`~rewardlab.rewards.step_format.StepFormat`.

- ``orm`` (outcome data): sequence head with 1 label at the last token; BCE on the outcome
  (Cobbe et al. 2021). Saves recipe ``orm``.
- ``prm`` (stepwise data): 2-class token head (``head="classifier"``, Qwen2.5-Math-PRM, TRL
  ``PRMTrainer``) or the LM's good/bad token logits (``head="tag"``, Math-Shepherd);
  cross-entropy at every step boundary, hard or soft targets. Saves ``prm-classifier`` /
  ``prm-tag``.
- ``ovm`` (outcome data): 1-output token head; MSE at every step boundary to the outcome
  label (Yu et al. 2024). Saves ``ovm``.
- ``implicit`` (outcome data): causal LM + frozen reference; CE on
  ``r = beta * sum log(pi/pi_ref)`` over the response (Yuan et al. 2024). Saves
  ``implicit-prm`` (the reference goes into the checkpoint's ``ref/``).

Data (JSONL, one object per line): stepwise = TRL's PRM format ``{"prompt", "completions":
[step, ...], "labels": [bool | float, ...]}``; outcome = ``{"prompt", "completions": [step, ...]
| "text": str, "label": bool | float}`` (``text`` is split into steps by ``segmentation``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rewardlab.policies.prompts import PLAIN_PROMPT
from rewardlab.rewards.implicit import log_ratio
from rewardlab.rewards.learned import Manifest, save_checkpoint
from rewardlab.rewards.orm import sequence_logits
from rewardlab.rewards.prm import classifier_logits, param_count, tag_logits, token_id
from rewardlab.rewards.step_format import (
    StepFormat,
    ensure_separator,
    pad_id_of,
)
from rewardlab.train.loop import LoopConfig, fit
from rewardlab.train.process_data import Batches, Example, load_outcome, load_stepwise

if TYPE_CHECKING:
    from rewardlab.train.encoder_orm import EncoderTrainResult

Progress = Callable[[int, int], None]

# --------------------------------------------------------------------------- pure objectives


def outcome_bce_loss(logits: Any, labels: Any) -> Any:
    """ORM: ``mean -[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))]`` over candidates."""
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(logits, labels)


def step_ce_loss(logits: Any, targets: Any) -> Any:
    """PRM: two-class cross-entropy at step boundaries, ``logits[:, 0]`` bad, ``[:, 1]`` good.

    ``mean -[y log p_good + (1 - y) log p_bad]`` over all steps of the batch; a hard label is
    ``y in {0, 1}``, a soft (Monte-Carlo) label any ``y in [0, 1]``: then this is BCE with float
    targets on ``z = logit_good - logit_bad`` (Math-Shepherd's hard/soft estimates).
    """
    logp = logits.log_softmax(-1)
    return -(targets * logp[:, 1] + (1 - targets) * logp[:, 0]).mean()


def value_mse_loss(values: Any, targets: Any) -> Any:
    """OVM: ``mean (v_t - y)^2`` over every step boundary, ``y`` the candidate's outcome."""
    return ((values - targets) ** 2).mean()


def implicit_ce_loss(log_ratio_sums: Any, labels: Any, beta: float) -> Any:
    """Implicit PRM (Yuan et al. 2024, CE variant): ``r = beta * sum log(pi/pi_ref)`` over the
    response, ``L = mean -[y log sigmoid(r) + (1 - y) log(1 - sigmoid(r))]``."""
    return outcome_bce_loss(beta * log_ratio_sums, labels)


# ---------------------------------------------------------------------------------- trainers


@dataclass(frozen=True)
class RMTrainConfig:
    """One reward-model training run (the CLI's flags; saved in the checkpoint's json)."""

    data: str
    backbone: str
    out: str
    steps: int = 300
    lr: float = 1e-4
    batch_size: int = 16
    seed: int = 0
    head: Literal["classifier", "tag"] = "classifier"  # prm only
    beta: float = 0.05  # implicit only
    separator: str = "\n"
    template: str = PLAIN_PROMPT
    good_token: str = "+"  # prm with head="tag"
    bad_token: str = "-"
    aggregate: str | None = None  # default: "sum" for implicit, else "last"
    name: str | None = None
    segmentation: str = "lines"  # outcome rows given as "text"
    warmup_steps: int = 20
    weight_decay: float = 0.0
    log_every: int = 10
    cpu: bool = False
    # orm on an encoder backbone (rewardlab.train.encoder_orm): token budget and fine-tuning
    max_length: int = 256
    finetune_layers: int = 0  # top-k blocks fine-tuned after the head; -1 = all; 0 = frozen
    finetune_steps: int = 0
    finetune_lr: float = 2e-5

    def __post_init__(self) -> None:
        if self.head not in ("classifier", "tag"):
            raise ValueError(f"head must be 'classifier' or 'tag', got {self.head!r}")
        if self.batch_size < 1 or self.beta <= 0:
            raise ValueError("batch_size must be >= 1 and beta > 0")

    @property
    def fmt(self) -> StepFormat:
        return StepFormat(self.separator, self.template)

    def loop(self) -> LoopConfig:
        return LoopConfig(
            steps=self.steps,
            lr=self.lr,
            seed=self.seed,
            warmup_steps=min(self.warmup_steps, self.steps),
            weight_decay=self.weight_decay,
            log_every=self.log_every,
            cpu=self.cpu,
        )


@dataclass(frozen=True)
class TrainResult:
    """What a trainer returns: the checkpoint, the logged history and the data it used."""

    out: Path
    history: list[dict[str, Any]]
    manifest: Manifest
    examples: int
    skipped: int


LossFn = Callable[[Any, Mapping[str, Any]], tuple[Any, dict[str, float]]]


def _load_backbone(cfg: RMTrainConfig, auto_class: str, num_labels: int | None) -> tuple[Any, Any]:
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(cfg.backbone, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(cfg.seed)
    extra = {} if num_labels is None else {"num_labels": num_labels}
    model = getattr(transformers, auto_class).from_pretrained(
        cfg.backbone, local_files_only=True, dtype=torch.float32, **extra
    )
    if ensure_separator(tokenizer, cfg.fmt):
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = pad_id_of(tokenizer, model)
    return model, tokenizer


def _batches(
    cfg: RMTrainConfig, examples: Sequence[Example], tokenizer: Any, model: Any, stepwise: bool
) -> tuple[Batches, int]:
    limit = getattr(model.config, "max_position_embeddings", None)
    enc, step_t, out_t, skipped = [], [], [], 0
    for ex in examples:
        e = cfg.fmt.encode(tokenizer, ex.prompt, ex.steps)
        if isinstance(limit, int) and len(e) > limit:
            skipped += 1
            continue
        label = ex.label if ex.label is not None else float(min(ex.step_labels))
        enc.append(e)
        step_t.append(ex.step_labels if stepwise else (label,) * len(ex.steps))
        out_t.append(label)
    if len(enc) < cfg.batch_size:
        raise ValueError(f"{len(enc)} usable examples, fewer than one batch of {cfg.batch_size}")
    pad = pad_id_of(tokenizer, model)
    return Batches(tuple(enc), tuple(step_t), tuple(out_t), cfg.batch_size, pad, cfg.seed), skipped


def _run(
    cfg: RMTrainConfig,
    objective: str,
    recipe: str,
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    loss_fn: LossFn,
    progress: Progress | None,
    stepwise: bool,
    reference: Any | None = None,
    **manifest: Any,
) -> TrainResult:
    batches, skipped = _batches(cfg, examples, tokenizer, model, stepwise)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_log.jsonl").unlink(missing_ok=True)  # a new run, not a continuation
    history = fit(
        model, batches, loss_fn, cfg.loop(), log_path=out / "train_log.jsonl", progress=progress
    )
    labels = [y for ex in examples for y in (ex.step_labels or (ex.label,))]
    hard = all(y in (0.0, 1.0) for y in labels)
    man = Manifest(
        recipe=recipe,
        separator=cfg.separator,
        template=cfg.template,
        aggregate=cfg.aggregate or ("sum" if recipe == "implicit-prm" else "last"),
        params=param_count(model) + (param_count(reference) if reference is not None else 0),
        name=cfg.name,
        backbone=str(cfg.backbone),
        training={
            "objective": objective,
            "labels": "hard" if hard else "soft",
            "data": str(cfg.data),
            "steps": cfg.steps,
            "lr": cfg.lr,
            "batch_size": cfg.batch_size,
            "seed": cfg.seed,
            "examples": len(batches.encoded),
            "skipped_too_long": skipped,
            "final_loss": history[-1]["loss"] if history else None,
        },
        **manifest,
    )
    model.eval()
    save_checkpoint(out, model, tokenizer, man, ref=reference)
    return TrainResult(out, history, man, len(batches.encoded), skipped)


def _acc(logits: Any, targets: Any) -> float:
    return float(((logits > 0).float() == (targets > 0.5).float()).float().mean())


def train_orm(
    cfg: RMTrainConfig, progress: Progress | None = None
) -> TrainResult | EncoderTrainResult:
    """Outcome RM: sequence head (1 label) at the last token, BCE on the outcome label.

    On an encoder backbone (``"minilm"``, a BERT-style directory) this is the encoder ORM of
    :func:`rewardlab.train.encoder_orm.train_encoder_orm` (frozen features + head, then optional
    fine-tuning), which returns a result of the same shape.
    """
    from rewardlab.train.encoder_orm import is_encoder_backbone, train_encoder_orm

    if is_encoder_backbone(cfg.backbone):
        return train_encoder_orm(cfg, progress)
    model, tok = _load_backbone(cfg, "AutoModelForSequenceClassification", 1)

    def loss_fn(m: Any, b: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        z = sequence_logits(m, b["ids"], b["mask"])
        return outcome_bce_loss(z, b["targets"]), {"acc": _acc(z, b["targets"])}

    data = load_outcome(cfg.data, cfg.segmentation)
    return _run(cfg, "orm", "orm", model, tok, data, loss_fn, progress, stepwise=False)


def train_prm(cfg: RMTrainConfig, progress: Progress | None = None) -> TrainResult:
    """PRM: cross-entropy on good/bad at every step boundary (hard or soft step labels)."""
    tag = cfg.head == "tag"
    model, tok = _load_backbone(
        cfg,
        "AutoModelForCausalLM" if tag else "AutoModelForTokenClassification",
        None if tag else 2,
    )
    good, bad = (token_id(tok, cfg.good_token), token_id(tok, cfg.bad_token)) if tag else (0, 0)

    def loss_fn(m: Any, b: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        args = (m, b["ids"], b["mask"], b["rows"], b["pos"])
        z = tag_logits(*args, good, bad) if tag else classifier_logits(*args)
        y = b["step_targets"]
        return step_ce_loss(z, y), {"step_acc": _acc(z[:, 1] - z[:, 0], y)}

    extra = {"good_token": cfg.good_token, "bad_token": cfg.bad_token} if tag else {}
    recipe = "prm-tag" if tag else "prm-classifier"
    return _run(
        cfg,
        "prm",
        recipe,
        model,
        tok,
        load_stepwise(cfg.data),
        loss_fn,
        progress,
        stepwise=True,
        **extra,
    )


def train_ovm(cfg: RMTrainConfig, progress: Progress | None = None) -> TrainResult:
    """OVM: a value head regressed (MSE) on the outcome label at every step boundary."""
    model, tok = _load_backbone(cfg, "AutoModelForTokenClassification", 1)

    def loss_fn(m: Any, b: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        v = classifier_logits(m, b["ids"], b["mask"], b["rows"], b["pos"])[:, 0]
        return value_mse_loss(v, b["step_targets"]), {}

    data = load_outcome(cfg.data, cfg.segmentation)
    return _run(cfg, "ovm", "ovm", model, tok, data, loss_fn, progress, stepwise=False)


def train_implicit(cfg: RMTrainConfig, progress: Progress | None = None) -> TrainResult:
    """Implicit PRM: CE on ``r = beta * log(pi/pi_ref)`` summed over the response tokens."""
    model, tok = _load_backbone(cfg, "AutoModelForCausalLM", None)
    ref, _ = _load_backbone(cfg, "AutoModelForCausalLM", None)
    ref.requires_grad_(False)
    ref.eval()

    def loss_fn(m: Any, b: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        if next(ref.parameters()).device != b["ids"].device:
            ref.to(b["ids"].device)
        sums = (log_ratio(m, ref, b["ids"], b["mask"]) * b["response"]).sum(-1)
        y = b["targets"]
        return implicit_ce_loss(sums, y, cfg.beta), {"acc": _acc(sums, y)}

    data = load_outcome(cfg.data, cfg.segmentation)
    return _run(
        cfg,
        "implicit",
        "implicit-prm",
        model,
        tok,
        data,
        loss_fn,
        progress,
        stepwise=False,
        reference=ref,
        beta=cfg.beta,
        ref="ref",
    )
