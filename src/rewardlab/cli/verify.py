"""``rewardlab verify``: run a verifier over a stored pool (a ``rewardlab scale`` run)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from rewardlab.cli.ray_options import Backend, RayActors, RayAddress, ray_backend_of

HELP = (
    "Run a verifier (a reward spec, e.g. recompute, recompute:V=4, judge-yes-no, "
    "codecheck, or a checkpoint) over a run's stored pool (runs/<name>/pool.sqlite). Scores go "
    "through the store, so an interrupted run resumes and `rewardlab scale --rewards` reuses "
    "them. Writes <run>/verify-<name>/verify.jsonl (one line per candidate), verify.json and "
    "verify.md (AUROC, best-of-N vs majority, step F1 where the pool has step truth, tokens, "
    "FLOPs and λ). --backend ray runs the verifier (and any missing samples) on Ray actor "
    "pools, with the same scores."
)


def verify(
    run: Path = typer.Argument(..., help="A run directory written by `rewardlab scale`."),
    verifier: str = typer.Option(
        "recompute", "--verifier", "-v", help="Reward spec: name[:key=value,...] or a dir."
    ),
    out: Path | None = typer.Option(None, help="Output dir (default <run>/verify-<name>)."),
    store: str | None = typer.Option(
        None,
        help="The run's store when it is not the one the run recorded (RUN/store.json) or "
        "RUN/pool.sqlite: a SQLite file or a postgresql:// URL (docs/cluster.md).",
        show_default=False,
    ),
    backend: Backend = "local",
    ray_address: RayAddress = None,
    ray_actors: RayActors = 2,
) -> None:
    from rewardlab.cli.progress import progress_bar
    from rewardlab.pipelines.solve_verify import run_verify
    from rewardlab.report.solve_verify import verify_markdown

    if not run.is_dir():
        raise typer.BadParameter(f"{run} is not a directory")
    ray = ray_backend_of(backend, ray_address, ray_actors)
    try:
        result = run_verify(run, verifier, out, progress=progress_bar, store=store, ray=ray)
    except FileNotFoundError as e:
        raise typer.BadParameter(str(e)) from None
    text = verify_markdown(result["summary"], "rewardlab " + " ".join(sys.argv[1:]))
    (result["out"] / "verify.md").write_text(text)
    typer.echo(text)
    typer.echo(f"wrote {result['out']}/verify.jsonl, verify.json, verify.md")
