"""``rewardlab train-policy``: train the built-in tiny policy from scratch on testbed traces."""

from __future__ import annotations

from pathlib import Path

import typer

from rewardlab.cli.runtime import THREADS_HELP

HELP = (
    "Train the tiny testbed policy from scratch (time-budgeted; checkpoints and an accuracy "
    "log by number of operations go to OUT). The shipped weights were made with this command."
)


def train_policy(
    out: Path = typer.Option(..., help="Output directory (transformers format)."),
    minutes: float = typer.Option(100.0, help="Wall-clock training budget in minutes."),
    seed: int = typer.Option(0, help="Seed for data, init and tokenizer."),
    threads: int | None = typer.Option(None, min=1, help=THREADS_HELP, show_default=False),
    eval_every: float = typer.Option(10.0, help="Minutes between evaluations/checkpoints."),
    init_from: Path | None = typer.Option(None, help="Continue from a checkpoint directory."),
    lr: float = typer.Option(1.5e-3, help="Peak learning rate."),
    warmup: int = typer.Option(200, help="Warm-up steps."),
) -> None:
    from rewardlab.cli.runtime import apply_threads
    from rewardlab.train.tiny_policy import TinyPolicyConfig, train

    apply_threads(threads)
    cfg = TinyPolicyConfig(
        minutes=minutes,
        seed=seed,
        eval_every_min=eval_every,
        init_from=str(init_from) if init_from else None,
        lr=lr,
        warmup_steps=warmup,
    )
    record = train(cfg, out, log=lambda s: typer.echo(s, err=True))
    typer.echo(f"final: {record}")
