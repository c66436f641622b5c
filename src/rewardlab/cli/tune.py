"""``rewardlab tune``: fit and save a compute-optimal selector from a scale run."""

from __future__ import annotations

from pathlib import Path

import typer

HELP = (
    "Compute-optimal selection (Snell et al. 2024) from a `rewardlab scale` run: per difficulty "
    "bin and budget, the config (strategy, aggregation, N, temperature / top-p) with the best "
    "accuracy, chosen by 2-fold cross-validation over problems; the efficiency multiple over "
    "best-of-N with bootstrap CIs, by bin and overall. Reads runs/NAME/pool.sqlite, "
    "summary.json and (if present) online.jsonl; writes tune.json, tune.md, tune_*.png and "
    "selector.json (for `rewardlab solve`) there. Extra pools (--temperatures/--top-p) are "
    "sampled through the run's store: re-running resumes."
)


def _floats(text: str | None, what: str) -> tuple[float, ...]:
    if not text:
        return ()
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{what}: expected comma-separated numbers, got {text!r}"
        ) from None


def tune(
    run: Path = typer.Option(..., help="A `rewardlab scale` run directory (runs/NAME)."),
    verifier: str | None = typer.Option(
        None, help="Reward whose mean final score predicts difficulty (default: the run's PRM)."
    ),
    reference: str | None = typer.Option(
        None, help="Baseline config (default wmaj[<verifier>:last], best-of-N weighted)."
    ),
    strategies: str | None = typer.Option(
        None, help="Comma-separated offline strategies (default: every selector of the run)."
    ),
    temperatures: str | None = typer.Option(None, help="Sweep: extra pools, e.g. 0.7,1.0."),
    top_p: str | None = typer.Option(None, "--top-p", help="Sweep: extra pools, e.g. 0.9,1.0."),
    match: str = typer.Option(
        "flops",
        help="'flops': any config within the reference's FLOPs; 'n': only configs at the same N.",
    ),
    mix_verifiers: bool = typer.Option(
        False, help="Let configs reading other rewards compete too (default: the verifier's)."
    ),
    online: bool = typer.Option(
        True, help="Read runs/NAME/online.jsonl when present (--no-online: offline configs)."
    ),
    probe_n: int = typer.Option(4, min=1, help="Samples `solve` scores to predict the bin."),
    n_boot: int = typer.Option(1000, min=10, help="Bootstrap replicates for the CIs."),
    seed: int = typer.Option(0, help="Seed of the folds, resampling and bootstrap."),
    out: Path | None = typer.Option(None, help="Write the outputs here (default: the run)."),
) -> None:
    from rewardlab.cli.progress import progress_bar
    from rewardlab.pipelines.tune import TuneConfig, run_tune
    from rewardlab.report.tune import multiples_table, write_tune_report

    cfg = TuneConfig(
        run=run,
        verifier=verifier,
        reference=reference,
        strategies=tuple(s.strip() for s in (strategies or "").split(",") if s.strip()),
        temperatures=_floats(temperatures, "--temperatures"),
        top_ps=_floats(top_p, "--top-p"),
        match=match,
        mix_verifiers=mix_verifiers,
        use_online=online,
        probe_n=probe_n,
        n_boot=n_boot,
        seed=seed,
    )
    try:
        result, selector = run_tune(cfg, progress=progress_bar)
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e)) from None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    paths = write_tune_report(result, selector, out or run)
    typer.echo(multiples_table(result, "predicted", ["all", "hard half"]))
    typer.echo(f"wrote {', '.join(str(p) for p in paths.values())}")
