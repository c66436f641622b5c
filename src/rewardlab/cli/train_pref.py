"""``rewardlab train --objective bt|...``: train a preference reward model (or an ensemble).

    rewardlab train --objective bt --data pairs.jsonl --out runs/rm-bt [--backbone DIR]
        [--ensemble K --aggregate mean-std] [--steps 200 --lr 1e-4 --batch-size 16 --seed 0]
    rewardlab train --objective helpsteer2 --data pairs.jsonl --ratings ratings.jsonl --out ...

Objectives are :data:`PREFERENCE_OBJECTIVES` (``bt``, ``bt-margin``, ``centered``,
``scaled-bt``, ``regression``, ``helpsteer2``, ``label-smoothing``, ``noise-robust``, ``prdp``,
``gpm``, ``vpl``, ``ctrl-u``, ``dpo``, ``t-reg``; see :mod:`rewardlab.train.preference`).
``--data`` is pairwise (prompt, chosen, rejected[, margin][, user]) or, for ``regression``,
rating format (prompt, response, rating); JSONL or Parquet. ``vpl`` needs a ``user`` column,
``prdp`` a ``margin`` (the reward difference) on every row; ``dpo``/``t-reg`` need a causal LM
``--backbone`` (the policy; it is also the frozen reference).
OUT receives a checkpoint loadable with ``load_reward(OUT)`` (``rewardlab.json`` inside),
``train_log.jsonl`` and ``report.md``; with ``--ensemble K``, ``OUT/member-<i>/`` for each
member and an ensemble ``rewardlab.json`` in OUT.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from rewardlab.cli.runtime import THREADS_HELP
from rewardlab.train.preference import PREFERENCE_OBJECTIVES

__all__ = ["HELP", "PREFERENCE_OBJECTIVES", "train_preference"]

HELP = (
    "Train a preference reward model (Bradley-Terry and variants, regression, HelpSteer2, "
    "noise-robust, PRDP, GPM, VPL, Ctrl-U, DPO / T-REG implicit rewards) or an ensemble of K "
    "of them on pairwise/rating JSONL or Parquet."
)


def _report(out: Path, cfg: Any, history: list[dict[str, Any]], info: dict[str, Any]) -> Path:
    last = {}
    for rec in history:
        last[rec.get("stage", "train")] = rec
    lines = [
        f"# preference RM: {cfg.objective}",
        "",
        "| stage | step | loss | accuracy |",
        "|---|---|---|---|",
    ]
    for stage, rec in last.items():
        acc = rec.get("accuracy")
        lines.append(
            f"| {stage} | {rec['step']} | {rec['loss']:.4f} | "
            f"{'' if acc is None else f'{acc:.3f}'} |"
        )
    lines += ["", "```json", json.dumps(info, indent=1, default=str)[:4000], "```", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def train_preference(
    objective: Annotated[str, typer.Option(help=f"One of: {', '.join(PREFERENCE_OBJECTIVES)}.")],
    data: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="Pairwise (or rating) JSONL/Parquet.")
    ],
    out: Annotated[Path, typer.Option(help="Output checkpoint directory.")],
    ratings: Annotated[
        Path | None, typer.Option(help="Rating file (helpsteer2's regression stage).")
    ] = None,
    backbone: Annotated[
        list[Path] | None,
        typer.Option(
            help="Local transformers model dir; repeat for ensemble members (default: tiny policy)."
        ),
    ] = None,
    ensemble: Annotated[
        int, typer.Option(min=1, help="Train K members (seeds seed..seed+K-1).")
    ] = 1,
    aggregate: Annotated[str, typer.Option(help="Ensemble aggregation saved with it.")] = "mean",
    lam: Annotated[float, typer.Option(help="λ of mean-var / mean-std.")] = 0.5,
    head: Annotated[
        str, typer.Option(help="seqcls (num_labels=1) or value (LM trunk + head).")
    ] = "seqcls",
    steps: Annotated[int, typer.Option(min=1, help="Optimiser steps per stage.")] = 200,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-4,
    batch_size: Annotated[int, typer.Option(min=1, help="Pairs (or rated rows) per step.")] = 16,
    max_length: Annotated[int, typer.Option(min=8, help="Max tokens (keeps the end).")] = 512,
    seed: Annotated[int, typer.Option(help="Seed of head init and data order.")] = 0,
    centering_coef: Annotated[float, typer.Option(help="centered: penalty weight.")] = 0.01,
    smoothing: Annotated[float, typer.Option(help="label-smoothing: alpha.")] = 0.1,
    noise_members: Annotated[int, typer.Option(help="noise-robust: ensemble size.")] = 3,
    flip_z: Annotated[float, typer.Option(help="noise-robust: flip if mean < -z·std.")] = 1.0,
    gpm_dim: Annotated[int, typer.Option(help="gpm: embedding size 2k (even).")] = 4,
    gpm_tau: Annotated[float, typer.Option(help="gpm: temperature τ.")] = 0.1,
    vpl_latent: Annotated[int, typer.Option(help="vpl: user latent size.")] = 8,
    vpl_context: Annotated[int, typer.Option(help="vpl: context pairs per user group.")] = 4,
    vpl_targets: Annotated[int, typer.Option(help="vpl: target pairs per user group.")] = 4,
    vpl_beta: Annotated[float, typer.Option(help="vpl: KL weight β.")] = 0.001,
    ctrl_u_drop: Annotated[float, typer.Option(help="ctrl-u: token-drop rate per pass.")] = 0.1,
    beta: Annotated[float, typer.Option(help="dpo / t-reg: β.")] = 0.1,
    treg_alpha: Annotated[float, typer.Option(help="t-reg: weight of the token term.")] = 1.0,
    threads: Annotated[
        int | None, typer.Option(min=1, help=THREADS_HELP, show_default=False)
    ] = None,
) -> Path:
    """Train and save; returns OUT."""

    from rewardlab.train.loop import LoopConfig
    from rewardlab.train.pref_io import data_format, read_pairs, read_ratings
    from rewardlab.train.pref_trainer import save_trained, train_ensemble, train_preference_model
    from rewardlab.train.preference import PreferenceConfig

    if objective not in PREFERENCE_OBJECTIVES:
        import difflib

        close = difflib.get_close_matches(objective, list(PREFERENCE_OBJECTIVES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise typer.BadParameter(f"unknown objective {objective!r}{hint}")
    from rewardlab.cli.runtime import apply_threads

    apply_threads(threads)
    fmt = data_format(data)
    pairs = read_pairs(data) if fmt == "pairwise" else None
    rating_rows = read_ratings(data) if fmt == "rating" else None
    if ratings is not None:
        rating_rows = read_ratings(ratings)
    if backbone:
        backbones = [str(b) for b in backbone]
    else:
        from rewardlab.policies.registry import tiny_policy_dir

        backbones = [str(tiny_policy_dir())]
    cfg = PreferenceConfig(
        objective=objective,
        loop=LoopConfig(steps=steps, lr=lr, seed=seed, warmup_steps=min(20, steps // 10)),
        head=head,  # type: ignore[arg-type]
        batch_size=batch_size,
        max_length=max_length,
        centering_coef=centering_coef,
        smoothing=smoothing,
        noise_members=noise_members,
        flip_z=flip_z,
        gpm_dim=gpm_dim,
        gpm_tau=gpm_tau,
        vpl_latent=vpl_latent,
        vpl_context=vpl_context,
        vpl_targets=vpl_targets,
        vpl_beta=vpl_beta,
        ctrl_u_drop=ctrl_u_drop,
        dpo_beta=beta,
        treg_alpha=treg_alpha,
    )

    def log(rec: dict[str, Any]) -> None:
        typer.echo(json.dumps(rec), err=True)

    if ensemble > 1:
        path = train_ensemble(
            backbones, ensemble, cfg, out, pairs, rating_rows, aggregate=aggregate, lam=lam, log=log
        )
        typer.echo(f"wrote ensemble of {ensemble} to {path}")
        return path
    trained = train_preference_model(backbones[0], cfg, pairs, rating_rows, log=log)
    path = save_trained(trained, out, cfg, name=out.name)
    _report(path, cfg, list(trained.history), trained.info)
    typer.echo(f"wrote {path}")
    return path
