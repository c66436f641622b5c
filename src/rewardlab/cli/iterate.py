"""``rewardlab iterate``: expert iteration (ReST-EM / SuperHF) — best-of-K by a reward, fine-tune
on the winners, repeat; resumable per round."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rewardlab.cli.runtime import THREADS_HELP

HELP = (
    "Expert iteration (ReST-EM / SuperHF): each round samples K solutions per training problem, "
    "keeps the best by --reward, fine-tunes the policy on them and measures greedy held-out "
    "accuracy (95% CI). Writes rounds.jsonl, report.md and progress.png to OUT; an interrupted "
    "run resumes at its first unfinished round."
)


def iterate(
    out: Path = typer.Option(..., help="Run directory (created; resumed if it exists)."),
    policy: str = typer.Option("tiny", help="'tiny' (the shipped policy) or a model directory."),
    reward: str = typer.Option("exact", help="Reward spec that picks the best of K."),
    task: str = typer.Option("arith", help="'arith' or a .jsonl problem file."),
    problems: int = typer.Option(64, min=1, help="Training problems."),
    held_out: int = typer.Option(100, min=1, help="Held-out problems for evaluation."),
    min_ops: int = typer.Option(2, min=1, help="arith: fewest operations."),
    max_ops: int = typer.Option(5, min=1, help="arith: most operations."),
    k: int = typer.Option(8, min=1, help="Samples per problem per round."),
    rounds: int = typer.Option(3, min=1, help="Rounds."),
    steps: int = typer.Option(40, min=1, help="Fine-tuning optimiser steps per round."),
    lr: float = typer.Option(1e-4, help="Fine-tuning learning rate."),
    batch_size: int = typer.Option(8, min=1, help="Fine-tuning batch size."),
    min_reward: float | None = typer.Option(
        None, help="Keep a winner only if its reward is at least this (ReST-EM: 1 with exact)."
    ),
    from_base: bool = typer.Option(
        False, "--from-base/--continue", help="Fine-tune the base each round (ReST-EM) or continue."
    ),
    kl_coef: float = typer.Option(0.0, min=0.0, help="SuperHF KL penalty to the base policy."),
    temperature: float = typer.Option(1.0, help="Sampling temperature (> 0)."),
    max_new_tokens: int = typer.Option(128, min=1, help="Tokens per sample."),
    seed: int = typer.Option(0, help="Seed for problems, sampling and training."),
    threads: int | None = typer.Option(None, min=1, help=THREADS_HELP, show_default=False),
) -> None:
    from rewardlab.cli.errors import usage_errors
    from rewardlab.cli.runtime import apply_threads
    from rewardlab.pipelines.iterate import IterateConfig
    from rewardlab.pipelines.iterate import iterate as run
    from rewardlab.report.iterate import write_report

    with usage_errors():
        if min_ops > max_ops:
            raise ValueError(f"--min-ops {min_ops} is above --max-ops {max_ops}")
        if policy == "tiny":
            from rewardlab.policies.registry import tiny_policy_dir

            policy = str(tiny_policy_dir())
        cfg = IterateConfig(
            policy=policy,
            reward=reward,
            task=task,
            problems=problems,
            held_out=held_out,
            n_ops=(min_ops, max_ops),
            k=k,
            rounds=rounds,
            steps=steps,
            lr=lr,
            batch_size=batch_size,
            min_reward=min_reward,
            from_base=from_base,
            kl_coef=kl_coef,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            seed=seed,
        )
    apply_threads(threads)
    last: dict[str, int] = {}

    def progress(what: str, done: int, total: int) -> None:
        # one line per phase, and every quarter of a long phase
        quarter = (4 * done) // max(total, 1)
        if last.get(what) != quarter:
            last[what] = quarter
            typer.echo(f"{what}: {done}/{total}", err=True)

    rows = run(cfg, out, progress)
    paths = write_report(out, rows, json.loads((out / "settings.json").read_text()))
    for r in rows:
        typer.echo(
            f"round {r['round']}: held-out accuracy {r['accuracy']:.3f} "
            f"[{r['accuracy_low']:.3f}, {r['accuracy_high']:.3f}]"
        )
    typer.echo(f"wrote {out / 'rounds.jsonl'}, {paths['report']}, {paths['plot']}")
