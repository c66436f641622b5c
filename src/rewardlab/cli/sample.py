"""``rewardlab sample``: sample a pool on a task, with step truth, resumably."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from rewardlab.cli.ray_options import (
    Backend,
    RayActors,
    RayAddress,
    policy_actors,
    ray_backend_of,
)
from rewardlab.cli.runtime import THREADS_HELP

HELP = (
    "Sample N candidates per problem into OUT (pool.sqlite + pool.jsonl with each candidate's "
    "step truth) and print pass@1 / pass@N by difficulty. Re-running resumes. --backend ray "
    "samples on a Ray actor pool of policy replicas (same pool).\n\n"
    "Example: rewardlab sample --out runs/pool --problems 20 --n 8"
)


STORE_HELP = (
    "Where samples and scores are stored: a SQLite file (default OUT/pool.sqlite, one host) or "
    "a PostgreSQL URL postgresql://user@host:5432/db that workers on several hosts share "
    "(pip install 'rewardlab[postgres]'; docs/cluster.md). Recorded in OUT/store.json."
)


def parse_range(text: str) -> tuple[int, int]:
    """``"3"`` → (3, 3); ``"1-8"`` → (1, 8)."""
    try:
        lo, _, hi = text.partition("-")
        rng = (int(lo), int(hi or lo))
    except ValueError:
        raise typer.BadParameter(f"expected N or LO-HI, got {text!r}") from None
    if rng[0] > rng[1]:
        raise typer.BadParameter(f"empty range {text!r}")
    return rng


def sample(
    out: Path = typer.Option(..., help="Output directory (created; reused to resume)."),
    task: str = typer.Option(
        "arith",
        help="'arith' or a JSONL file of problems, one per line: GSM8K "
        '{"question": "...", "answer": "... #### 18"} or MATH-500 {"problem", "answer"}.',
    ),
    policy: str = typer.Option("tiny", help="'tiny' (shipped), a model dir, or a .gguf file."),
    problems: int = typer.Option(200, min=1, help="Number of problems."),
    n: int = typer.Option(16, min=1, help="Candidates per problem."),
    difficulty: str = typer.Option("1-8", help="arith: number of operations, N or LO-HI."),
    temperature: float = typer.Option(1.0, min=0.0, help="Sampling temperature (0 = greedy)."),
    max_new_tokens: int = typer.Option(160, min=1, help="Generation limit per candidate."),
    seed: int = typer.Option(0, help="Seed for problems and sampling."),
    top_p: float = typer.Option(1.0, min=0.0, max=1.0, help="Nucleus sampling mass (0 < p <= 1)."),
    device: str | None = typer.Option(None, help="Policy device (cpu, cuda).", show_default="auto"),
    threads: int | None = typer.Option(None, min=1, help=THREADS_HELP, show_default=False),
    store: str | None = typer.Option(None, help=STORE_HELP, show_default=False),
    backend: Backend = "local",
    ray_address: RayAddress = None,
    ray_actors: RayActors = 2,
) -> None:
    from rewardlab.cli.errors import usage_errors
    from rewardlab.cli.progress import console, progress_bar
    from rewardlab.cli.runtime import apply_threads
    from rewardlab.pipelines.scale_job import check_policy, check_task_spec
    from rewardlab.policies.registry import load_policy
    from rewardlab.search.pool import PoolSpec, sample_pool_counted, summarize
    from rewardlab.store import run_store
    from rewardlab.tasks.registry import load_task
    from rewardlab.types import Sampling

    with usage_errors():
        n_ops = parse_range(difficulty)
        check_task_spec(task, n_ops)
        check_policy(policy)
        sampling = Sampling(temperature, top_p, max_new_tokens, seed)
        ray = ray_backend_of(backend, ray_address, ray_actors)
    apply_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    db = run_store(out, store)  # first: an unreachable or mismatched store fails before any work
    the_task, probs = load_task(task, problems, seed=seed, n_ops=n_ops)
    pol = load_policy(policy, **({"device": device} if device else {}))
    spec = PoolSpec(n, sampling)
    with (
        policy_actors(ray, policy, device, pol.name) as runner,
        progress_bar(f"sampling {len(probs)} x {n}", len(probs)) as update,
    ):
        pool, work = sample_pool_counted(probs, the_task, pol, spec, db, update, runner)
    write_pool_jsonl(out / "pool.jsonl", probs, pool)
    summary = summarize(probs, pool)
    (out / "summary.json").write_text(
        json.dumps(
            {
                "task": task,
                "policy": policy,
                "n": n,
                "seed": seed,
                "temperature": temperature,
                "rows": summary.as_dicts(),
            },
            indent=2,
        )
    )
    (out / "summary.md").write_text(summary_markdown(summary.as_dicts(), n))
    console.print(summary_table(summary.as_dicts(), n))
    typer.echo(f"wrote {out / 'pool.jsonl'} ({sum(len(p) for p in pool)} candidates)")
    chunks = work.computed + work.found_done
    typer.echo(
        f"this process sampled {work.computed} of {chunks} chunks ({work.found_done} were "
        f"stored already or sampled by another worker; waited {work.waited_s:.1f} s on their "
        "leases)"
    )


def write_pool_jsonl(path: Path, problems: list, pool: list) -> None:  # type: ignore[type-arg]
    """One JSON line per candidate: problem, text, steps with truth, first error, correctness.

    Written to a temporary file of this process, then renamed into place: workers sharing an
    output directory each replace the file whole, never interleave lines."""
    tmp = path.with_suffix(f".jsonl.{os.getpid()}.tmp")
    with tmp.open("w") as fh:
        for p, cands in zip(problems, pool, strict=True):
            for c in cands:
                fh.write(
                    json.dumps(
                        {
                            "problem_id": p.id,
                            "question": p.question,
                            "reference": p.answer,
                            "difficulty": p.meta.get("difficulty"),
                            "index": c.index,
                            "text": c.text,
                            "answer": c.answer,
                            "correct": c.meta.get("correct"),
                            "steps": c.meta.get("steps", [{"text": s} for s in c.steps]),
                            "first_error": c.meta.get("first_error"),
                            "prompt_tokens": c.prompt_tokens,
                            "generated_tokens": c.generated_tokens,
                            "segmentation": c.segmentation,
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )
    tmp.replace(path)


def summary_markdown(rows: list[dict], n: int) -> str:  # type: ignore[type-arg]
    lines = [
        f"| difficulty | problems | pass@1 | pass@{n} | mean generated tokens |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['difficulty']} | {r['problems']} | {r['pass@1']:.3f} | "
            f"{r['pass@n']:.3f} | {r['mean_generated_tokens']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def summary_table(rows: list[dict], n: int):  # type: ignore[no-untyped-def,type-arg]
    from rich.table import Table

    table = Table(title="pool summary")
    for col in ("difficulty", "problems", "pass@1", f"pass@{n}", "gen tokens"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["difficulty"]),
            str(r["problems"]),
            f"{r['pass@1']:.3f}",
            f"{r['pass@n']:.3f}",
            f"{r['mean_generated_tokens']:.1f}",
        )
    return table
