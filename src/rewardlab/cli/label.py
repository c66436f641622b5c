"""``rewardlab label``: automatic step labels (MC, binary search, progress, truth, consensus)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
    "Sample solutions and label every step automatically: Monte-Carlo rollouts (mc, "
    "Math-Shepherd), binary search for the first error (binary, OmegaPRM), progress / advantage "
    "labels under a Best-of-K prover (progress, PAV), the testbed's exact truth (truth), or two "
    "methods' agreement (consensus). Writes OUT/labels.jsonl (TRL stepwise format), "
    "summary.json and report.md; re-running resumes from OUT/pool.sqlite."
)


def label(
    out: Annotated[Path, typer.Option(help="Output directory (created; reused to resume).")],
    method: Annotated[str, typer.Option(help="mc | binary | progress | truth | consensus.")] = "mc",
    task: Annotated[
        str, typer.Option(help="'arith' or a JSONL file (GSM8K / MATH-500 style).")
    ] = "arith",
    policy: Annotated[
        str, typer.Option(help="'tiny' (shipped), a model dir, or a .gguf file.")
    ] = "tiny",
    problems: Annotated[int, typer.Option(min=1, help="Number of problems.")] = 20,
    samples_per_problem: Annotated[
        int, typer.Option(min=1, help="Solutions sampled per problem.")
    ] = 4,
    rollouts: Annotated[int, typer.Option(min=1, help="k: rollouts per estimated prefix.")] = 8,
    soft: Annotated[bool, typer.Option(help="mc: emit the fraction of correct rollouts.")] = False,
    difficulty: Annotated[
        str, typer.Option(help="arith: number of operations, N or LO-HI.")
    ] = "1-8",
    temperature: Annotated[float, typer.Option(min=0.0, help="Sampling temperature.")] = 1.0,
    max_new_tokens: Annotated[
        int, typer.Option(min=1, help="Token limit per sample / rollout.")
    ] = 160,
    seed: Annotated[int, typer.Option(help="Seed for problems, samples and rollouts.")] = 0,
    prover_k: Annotated[int, typer.Option(min=1, help="progress: K of the Best-of-K prover.")] = 4,
    margin: Annotated[
        float, typer.Option(help="progress: advantage <= -margin marks an error.")
    ] = 0.5,
    consensus: Annotated[str, typer.Option(help="consensus: the two methods compared.")] = (
        "mc,progress"
    ),
    truncate: Annotated[
        bool, typer.Option(help="Stop each record after its first bad step.")
    ] = True,
    chunk: Annotated[
        int,
        typer.Option(
            min=1,
            help="Samples per labelling chunk: one batch of rollouts, and the unit of work "
            "that processes labelling into the same --out divide between them.",
        ),
    ] = 16,
    device: Annotated[
        str | None, typer.Option(help="Policy device (cpu, cuda); default: auto.")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help=THREADS_HELP, show_default=False)
    ] = None,
    backend: Backend = "local",
    ray_address: RayAddress = None,
    ray_actors: RayActors = 2,
) -> None:
    from rewardlab.cli.errors import usage_errors
    from rewardlab.cli.progress import progress_bar
    from rewardlab.cli.runtime import apply_threads
    from rewardlab.cli.sample import parse_range
    from rewardlab.label.job import LabelConfig, run_label
    from rewardlab.pipelines.scale_job import check_policy, check_task_spec

    pair = tuple(m.strip() for m in consensus.split(","))
    with usage_errors():
        check_task_spec(task, parse_range(difficulty))
        check_policy(policy)
        ray = ray_backend_of(backend, ray_address, ray_actors)
    try:
        cfg = LabelConfig(
            method=method,
            task=task,
            policy=policy,
            problems=problems,
            samples_per_problem=samples_per_problem,
            rollouts=rollouts,
            soft=soft,
            difficulty=parse_range(difficulty),
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            seed=seed,
            prover_k=prover_k,
            margin=margin,
            consensus=pair,  # type: ignore[arg-type]
            truncate=truncate,
            chunk=chunk,
            device=device,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    apply_threads(threads)
    with policy_actors(ray, policy, device) as runner:
        summary = run_label(cfg, out, progress=progress_bar, runner=runner)
    typer.echo((out / "report.md").read_text())
    typer.echo(
        f"wrote {out / 'labels.jsonl'} ({summary['samples_kept']} records, "
        f"{summary['rollouts']} rollouts)"
    )
    work = summary["this_process"]
    typer.echo(
        f"this process labelled {work['chunks_labelled']} of "
        f"{work['chunks_labelled'] + work['chunks_found_done']} chunks and generated "
        f"{summary['fresh_rollouts']} rollouts (waited {work['waited_s']:.1f} s on other workers)"
    )
