"""``rewardlab train``: train a reward model (ORM, PRM, OVM, implicit PRM) from JSONL.

    rewardlab train --objective prm --data steps.jsonl --out runs/prm [--backbone DIR]
        [--steps 300 --lr 1e-4 --batch-size 16 --seed 0 --head classifier|tag --beta 0.05]
    rewardlab train --objective orm --backbone minilm --data outcome.jsonl --out runs/orm
        [--max-length 256 --finetune-layers 2 --finetune-steps 200 --finetune-lr 2e-5]

OUT receives the checkpoint (safetensors + tokenizer + ``rewardlab.json``, loadable with
``load_reward(OUT)``), ``train_log.jsonl``, ``loss.png`` and ``report.md``.

Objectives are looked up in :data:`OBJECTIVES` (``name -> "module:function"``, imported on
use); each function takes ``(cfg: RMTrainConfig, progress)`` and returns a ``TrainResult``
(:mod:`rewardlab.train.process`). Another trainer joins the command by adding one entry.
"""

from __future__ import annotations

import codecs
import importlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from rewardlab.cli.runtime import THREADS_HELP

HELP = (
    "Train a reward model on JSONL data: orm / ovm / implicit-prm from outcome rows, one per "
    'line, e.g. {"prompt": "2+3=?", "text": "2+3=5", "label": true}; prm from TRL stepwise '
    'rows, e.g. {"prompt": "2+3*4=?", "completions": ["3*4=12", "2+12=14"], "labels": [true, '
    "true]}. The objective names match the rewards they make (implicit-prm; the old name "
    "implicit still works). OUT gets the checkpoint, train_log.jsonl, loss.png and report.md."
)

OBJECTIVES: dict[str, str] = {
    "orm": "rewardlab.train.process:train_orm",
    "prm": "rewardlab.train.process:train_prm",
    "ovm": "rewardlab.train.process:train_ovm",
    "implicit-prm": "rewardlab.train.process:train_implicit",
}
#: Older objective names, kept working.
OBJECTIVE_ALIASES: dict[str, str] = {"implicit": "implicit-prm"}


def canonical_objective(name: str) -> str:
    """``name`` with an old alias replaced by its current name (``implicit``: ``implicit-prm``)."""
    return OBJECTIVE_ALIASES.get(name, name)


def objective_fn(name: str) -> Any:
    """The trainer registered as ``name`` (imported on first use), with a "did you mean"."""
    import difflib

    name = canonical_objective(name)
    if name not in OBJECTIVES:
        close = difflib.get_close_matches(name, [*OBJECTIVES, *OBJECTIVE_ALIASES], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise typer.BadParameter(f"unknown objective {name!r}: {sorted(OBJECTIVES)}{hint}")
    module, _, attr = OBJECTIVES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def train(
    objective: Annotated[
        str,
        typer.Option(help=f"One of: {', '.join(OBJECTIVES)} (alias: implicit = implicit-prm)."),
    ],
    data: Annotated[
        Path,
        typer.Option(exists=True, dir_okay=False, help="Training JSONL (formats above)."),
    ],
    out: Annotated[Path, typer.Option(help="Output checkpoint directory.")],
    backbone: Annotated[
        Path | None,
        typer.Option(
            help="Local transformers model dir (default: the tiny policy); for orm also "
            "'minilm' or a BERT-style encoder dir (frozen features + head, see --finetune-layers)."
        ),
    ] = None,
    steps: Annotated[int, typer.Option(min=1, help="Optimiser steps.")] = 300,
    lr: Annotated[float, typer.Option(help="Peak learning rate (warm-up, then cosine).")] = 1e-4,
    batch_size: Annotated[int, typer.Option(min=1, help="Examples per step.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed for the new head and the data order.")] = 0,
    head: Annotated[str, typer.Option(help="prm: 'classifier' (2-class) or 'tag' (LM).")] = (
        "classifier"
    ),
    beta: Annotated[float, typer.Option(help="implicit-prm: reward scale beta.")] = 0.05,
    separator: Annotated[str, typer.Option(help="Step separator token (escapes allowed).")] = (
        "\\n"
    ),
    name: Annotated[str | None, typer.Option(help="Reward name for rewardlab.json.")] = None,
    max_length: Annotated[
        int, typer.Option(min=8, help="orm on an encoder backbone: tokens per (prompt, text).")
    ] = 256,
    finetune_layers: Annotated[
        int,
        typer.Option(
            min=-1,
            help="orm on an encoder backbone (minilm or a BERT-style dir): after the head on "
            "frozen features, fine-tune the encoder's top K blocks (-1 = all; 0 = frozen).",
        ),
    ] = 0,
    finetune_steps: Annotated[
        int, typer.Option(min=0, help="orm on an encoder: fine-tuning steps.")
    ] = 0,
    finetune_lr: Annotated[float, typer.Option(help="orm on an encoder: fine-tuning lr.")] = 2e-5,
    threads: Annotated[int | None, typer.Option(min=1, help=THREADS_HELP)] = None,
) -> None:
    from rewardlab.cli.progress import console, progress_bar
    from rewardlab.cli.runtime import apply_threads
    from rewardlab.train.process import RMTrainConfig

    fn = objective_fn(objective)
    objective = canonical_objective(objective)
    apply_threads(threads)
    if backbone is None:
        from rewardlab.policies.registry import tiny_policy_dir

        backbone = tiny_policy_dir()
    cfg = RMTrainConfig(
        data=str(data),
        backbone=str(backbone),
        out=str(out),
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        head=head,  # type: ignore[arg-type]
        beta=beta,
        separator=codecs.decode(separator, "unicode_escape"),
        name=name,
        max_length=max_length,
        finetune_layers=finetune_layers,
        finetune_steps=finetune_steps,
        finetune_lr=finetune_lr,
    )
    with progress_bar(f"training {objective}", steps) as update:
        result = fn(cfg, update)
    plot_loss(result.history, out / "loss.png", f"{objective} on {data.name}")
    (out / "report.md").write_text(report_md(objective, cfg, result))
    console.print(
        f"saved {out} ({result.manifest.recipe}, {result.manifest.params:,} params); "
        f"final loss {result.history[-1]['loss']:.4f}"
    )


def plot_loss(history: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Training loss (and any accuracy metric) against the optimiser step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    x = [h["step"] for h in history]
    ax.plot(x, [h["loss"] for h in history], "-o", ms=2.5, label="loss")
    metrics = sorted({k for h in history for k in h if "acc" in k})
    for k in metrics:
        ax.plot(x, [h.get(k, float("nan")) for h in history], "--", label=k)
    ax.set_xlabel("optimiser step")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report_md(objective: str, cfg: Any, result: Any) -> str:
    """A short markdown report of one training run."""
    last = result.history[-1] if result.history else {}
    first = result.history[0] if result.history else {}
    skip = ("step", "lr", "seconds", "loss")
    metrics = ", ".join(
        f"{k} {v:.4f}" for k, v in last.items() if k not in skip and isinstance(v, int | float)
    )
    return "\n".join(
        [
            f"# Reward model: `{objective}` -> recipe `{result.manifest.recipe}`",
            "",
            f"- data: `{cfg.data}` ({result.examples} examples used, {result.skipped} too long)",
            f"- backbone: `{cfg.backbone}`; {result.manifest.params:,} parameters",
            f"- {cfg.steps} steps, batch {cfg.batch_size}, lr {cfg.lr}, seed {cfg.seed}",
            f"- loss: {first.get('loss', float('nan')):.4f} (first log) -> "
            f"{last.get('loss', float('nan')):.4f} (last log); {metrics or 'no other metric'}; "
            f"{last.get('seconds', float('nan')):.0f} s",
            "",
            "![loss](loss.png)",
            "",
            'Load it: `rewardlab.rewards.registry.load_reward("<this directory>")`.',
            "",
            "```json",
            json.dumps(json.loads(result.manifest.to_json()), indent=2, ensure_ascii=False),
            "```",
            "",
        ]
    )
