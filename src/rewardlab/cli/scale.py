"""``rewardlab scale``: accuracy against compute for every offline strategy, from one pool."""

from __future__ import annotations

import json
from pathlib import Path

import typer

HELP = (
    "Sample N_max candidates per problem once, score them once with every reward, then plot "
    "accuracy vs FLOPs for pass@k (oracle), majority vote, best-of-N and weighted majority at "
    "every N <= N_max, with 95% bootstrap CIs. Writes runs/<name>/ (curves.csv, summary.json, "
    "report.md, scaling.png); re-running resumes from the stored pool."
)


def _split(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(t.strip() for t in text.split(",") if t.strip())


def scale(
    name: str = typer.Option("default", help="Run name: results go to runs/<name>/."),
    resume: Path | None = typer.Option(
        None, help="Resume a run directory (its settings are reused)."
    ),
    task: str | None = typer.Option(None, help="'arith' or a JSONL file with question/answer."),
    policy: str | None = typer.Option(None, help="'tiny' (shipped), a model dir, or a .gguf."),
    pool: Path | None = typer.Option(None, help="Import a pool sampled elsewhere (JSONL)."),
    policy_params: int | None = typer.Option(None, help="Imported pools: policy size for FLOPs."),
    n_max: int | None = typer.Option(None, min=1, help="Candidates per problem (default 64)."),
    problems: int | None = typer.Option(None, min=1, help="Number of problems (default 240)."),
    difficulty: str | None = typer.Option(None, help="arith: operations, N or LO-HI (1-8)."),
    rewards: str | None = typer.Option(
        None,
        help="Comma-separated reward names/checkpoints (default: logprob, plus the shipped "
        "orm, prm, implicit-prm when sampling arith).",
    ),
    strategies: str | None = typer.Option(None, help="Comma-separated, e.g. maj,bon:logprob."),
    seed: int | None = typer.Option(None, help="Seed for problems, sampling, resampling."),
    quick: bool = typer.Option(False, help="Smoke test: 16 problems x 8, under a minute."),
    runs_dir: Path = typer.Option(Path("runs"), help="Parent directory of runs."),
    solve_verify: str | None = typer.Option(
        None,
        help="Also compare self-consistency with this generative verifier at every (S, V) "
        "split of a fixed budget (e.g. recompute:V=8): solve_verify.{md,png,csv,json}.",
    ),
) -> None:
    from rewardlab.cli.progress import progress_bar
    from rewardlab.cli.sample import parse_range
    from rewardlab.pipelines.scale_job import ScaleConfig, run_scale, with_overrides
    from rewardlab.report.scaling import markdown_table, write_report

    if resume is not None:
        saved = (
            json.loads((resume / "summary.json").read_text())["config"]
            if (resume / "summary.json").exists()
            else None
        )
        if saved is None:
            raise typer.BadParameter(f"{resume} has no summary.json to resume from")
        saved["difficulty"] = tuple(saved["difficulty"])
        saved["rewards"] = tuple(saved["rewards"])
        saved["strategies"] = tuple(saved["strategies"])
        base, out = ScaleConfig(**saved), resume
    else:
        base = ScaleConfig.quick() if quick else ScaleConfig()
        out = runs_dir / name
    cfg = with_overrides(
        base,
        task=task,
        policy=policy,
        pool_file=str(pool) if pool else None,
        policy_params=policy_params,
        n_max=n_max,
        problems=problems,
        difficulty=parse_range(difficulty) if difficulty else None,
        rewards=_split(rewards),
        strategies=_split(strategies),
        seed=seed,
    )
    result = run_scale(cfg, out, progress=progress_bar)
    title = f"rewardlab scale — {cfg.task if not cfg.pool_file else cfg.pool_file}"
    paths = write_report(result, out, title)
    typer.echo(markdown_table(result["rows"]))
    typer.echo(f"wrote {', '.join(str(p) for p in paths.values())}")
    if isinstance(solve_verify, str):  # (demo() calls this function with its defaults)
        import sys

        from rewardlab.pipelines.solve_verify import run_solve_verify
        from rewardlab.report.solve_verify import write_solve_verify

        study = run_solve_verify(out, solve_verify, progress=progress_bar, seed=cfg.seed)
        command = "rewardlab " + " ".join(sys.argv[1:])
        sv_paths = write_solve_verify(study, out, command)
        typer.echo(sv_paths["report"].read_text())
        typer.echo(f"wrote {', '.join(str(p) for p in sv_paths.values())}")
