"""One training loop for every reward-model objective, on ``accelerate``.

An objective is a small function ``loss_fn(model, batch) -> (loss, metrics)``; the loop owns
the optimiser, schedule, gradient clipping, accumulation, device placement, logging and
checkpoints. Every trainer (ORM, PRM, OVM, implicit PRM, Bradley-Terry and friends) calls
:func:`fit` with its own objective and collator: there is no second loop.

The optimiser is AdamW, fused (one kernel over all parameters) where torch supports it (CPU,
CUDA): on MiniLM the step is ~5x faster than the multi-tensor default, with the same update
rule. ``disable_dropout`` sets every dropout module's ``p`` to 0 while training (restored
after), as TRL's ``RewardTrainer`` does by default: the reward trained is then the reward
scored, and a BERT-style model skips the dropout masks (half the forward time of MiniLM on a
CPU: ``benchmarks/results/pref_train.md``).

>>> cfg = LoopConfig(steps=100, lr=1e-4)  # doctest: +SKIP
>>> history = fit(model, batches, loss_fn, cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LossFn = Callable[[Any, Mapping[str, Any]], tuple[Any, Mapping[str, float]]]


@dataclass(frozen=True)
class LoopConfig:
    """Optimisation settings shared by all objectives."""

    steps: int = 500
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 20
    schedule: str = "cosine"  # cosine | constant | linear
    grad_clip: float = 1.0
    grad_accum: int = 1
    log_every: int = 10
    seed: int = 0
    mixed_precision: str = "no"  # passed to accelerate: no | fp16 | bf16
    cpu: bool = False  # force CPU even where a GPU is present
    disable_dropout: bool = False  # every dropout module at p=0 while training (TRL's default)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.grad_accum < 1:
            raise ValueError("steps and grad_accum must be >= 1")
        if self.schedule not in ("cosine", "constant", "linear"):
            raise ValueError(f"unknown schedule {self.schedule!r}: cosine | constant | linear")


def lr_factor(step: int, cfg: LoopConfig) -> float:
    """Linear warm-up, then the chosen decay (to 0 at ``cfg.steps``)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    if cfg.schedule == "linear":
        return max(0.0, 1.0 - frac)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))


_FUSED_DEVICES = ("cpu", "cuda")
_DROPOUTS = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout")


def make_adamw(params: list[Any], lr: float, weight_decay: float) -> Any:
    """``torch.optim.AdamW``, fused where every parameter is a float tensor on CPU or CUDA.

    Fused and multi-tensor (foreach) AdamW apply the same update (Loshchilov & Hutter 2019);
    only the kernel differs (results agree to float rounding).
    """
    import torch

    fused = bool(params) and all(
        p.device.type in _FUSED_DEVICES and p.is_floating_point() for p in params
    )
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


@contextmanager
def dropout_disabled(model: Any, enabled: bool = True) -> Iterator[int]:
    """Inside the block every ``torch.nn.Dropout*`` module of ``model`` has ``p = 0`` (TRL's
    ``disable_dropout_in_model``); the old values come back on exit, also on an error.

    Yields how many modules were switched off (0 when ``enabled`` is False). Models whose
    attention reads a dropout module's ``p`` (BERT) lose attention dropout too; a float
    ``attention_dropout`` in a config (Llama: 0.0 by default) is left alone.
    """
    import torch

    kinds = tuple(getattr(torch.nn, name) for name in _DROPOUTS)
    mods = [m for m in model.modules() if isinstance(m, kinds)] if enabled else []
    saved = [m.p for m in mods]
    for m in mods:
        m.p = 0.0
    try:
        yield len(mods)
    finally:
        for m, p in zip(mods, saved, strict=True):
            m.p = p


def _cycle(batches: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    while True:
        empty = True
        for b in batches:
            empty = False
            yield b
        if empty:
            raise ValueError("the batch iterable is empty")


def fit(
    model: Any,
    batches: Iterable[Mapping[str, Any]],
    loss_fn: LossFn,
    cfg: LoopConfig,
    *,
    log_path: Path | None = None,
    on_log: Callable[[dict[str, Any]], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` in place for ``cfg.steps`` optimiser steps; returns the logged history.

    ``batches`` is re-iterated as needed (a list or a re-iterable dataset). Each logged record
    holds the step, the learning rate, the mean loss and the mean of every metric the objective
    returned since the last log. Logs are appended to ``log_path`` as JSON lines.
    With ``cfg.disable_dropout`` the model's dropout is off while training (see
    :func:`dropout_disabled`) and restored when ``fit`` returns.
    """
    with dropout_disabled(model, cfg.disable_dropout):
        return _fit(model, batches, loss_fn, cfg, log_path, on_log, progress)


def _fit(
    model: Any,
    batches: Iterable[Mapping[str, Any]],
    loss_fn: LossFn,
    cfg: LoopConfig,
    log_path: Path | None,
    on_log: Callable[[dict[str, Any]], None] | None,
    progress: Callable[[int, int], None] | None,
) -> list[dict[str, Any]]:
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    set_seed(cfg.seed)
    acc = Accelerator(
        gradient_accumulation_steps=cfg.grad_accum,
        mixed_precision=cfg.mixed_precision,
        cpu=cfg.cpu,
    )
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_adamw(params, cfg.lr, cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    model, opt = acc.prepare(model, opt)
    model.train()
    history: list[dict[str, Any]] = []
    window: dict[str, list[float]] = {}
    it = _cycle(batches)
    t0 = time.monotonic()
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a") as fh:
            fh.write(json.dumps({"config": asdict(cfg)}) + "\n")
    for step in range(cfg.steps):
        for _ in range(cfg.grad_accum):
            batch = {k: (v.to(acc.device) if hasattr(v, "to") else v) for k, v in next(it).items()}
            with acc.accumulate(model):
                loss, metrics = loss_fn(model, batch)
                acc.backward(loss)
                if acc.sync_gradients and cfg.grad_clip > 0:
                    norm = float(acc.clip_grad_norm_(params, cfg.grad_clip))
                    if not math.isfinite(norm):  # clipping would turn it into a silent no-op step
                        raise FloatingPointError(
                            f"step {step + 1}: the gradient norm is {norm} (a loss or input "
                            "that overflows: e.g. a feature divided by a near-zero std)"
                        )
                opt.step()
                opt.zero_grad(set_to_none=True)
            window.setdefault("loss", []).append(float(loss.detach()))
            for k, v in metrics.items():
                window.setdefault(k, []).append(float(v))
        sched.step()
        if progress is not None:
            progress(step + 1, cfg.steps)
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            record = {
                "step": step + 1,
                "lr": sched.get_last_lr()[0],
                "seconds": round(time.monotonic() - t0, 2),
                **{k: sum(v) / len(v) for k, v in window.items()},
            }
            window = {}
            history.append(record)
            if log_path is not None:
                with log_path.open("a") as fh:
                    fh.write(json.dumps(record) + "\n")
            if on_log is not None:
                on_log(record)
    model.eval()
    return history
