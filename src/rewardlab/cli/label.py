"""``rewardlab label``: automatic step labels (MC, binary search, progress, truth, consensus),
and line labels of code from mutation (prlcoder)."""

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
from rewardlab.cli.sample import STORE_HELP

HELP = (
    "Sample solutions and label every step automatically: Monte-Carlo rollouts (mc, "
    "Math-Shepherd), binary search for the first error (binary, OmegaPRM), progress / advantage "
    "labels under a Best-of-K prover (progress, PAV), the testbed's exact truth (truth), or two "
    "methods' agreement (consensus); or, for code, line labels from one-line mutants of each "
    "problem's reference solution run against its tests in the sandbox (prlcoder, PRLCoder; "
    "--task code or a HumanEval/MBPP JSONL; the policy and rollout options do not apply). "
    "Writes OUT/labels.jsonl (TRL stepwise format), summary.json and report.md; re-running "
    "resumes from OUT/pool.sqlite."
)


def label(
    out: Annotated[Path, typer.Option(help="Output directory (created; reused to resume).")],
    method: Annotated[
        str, typer.Option(help="mc | binary | progress | truth | consensus | prlcoder.")
    ] = "mc",
    task: Annotated[
        str,
        typer.Option(
            help="'arith' or a JSONL file (GSM8K / MATH-500 style); prlcoder: 'code' (the "
            "bundled code problems) or a HumanEval/MBPP-style JSONL with reference solutions."
        ),
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
    store: Annotated[str | None, typer.Option(help=STORE_HELP, show_default=False)] = None,
    mutants_per_line: Annotated[
        int | None,
        typer.Option(
            min=1, help="prlcoder: keep at most this many mutants per line (seeded); default all."
        ),
    ] = None,
    survivors: Annotated[
        str,
        typer.Option(
            help="prlcoder: a mutant that still passes every test labels its line 'positive' "
            "(the paper's rule) or is left out ('drop')."
        ),
    ] = "positive",
    test_timeout: Annotated[
        float, typer.Option(min=0.01, help="prlcoder: seconds per test in the sandbox.")
    ] = 2.0,
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

    own = {
        "--mutants-per-line": mutants_per_line is not None,
        "--survivors": survivors != "positive",
    }
    own["--test-timeout"] = test_timeout != 2.0
    policy_side = {
        "--policy": policy != "tiny",
        "--samples-per-problem": samples_per_problem != 4,
        "--rollouts": rollouts != 8,
        "--soft": soft,
        "--difficulty": difficulty != "1-8",
        "--temperature": temperature != 1.0,
        "--max-new-tokens": max_new_tokens != 160,
        "--prover-k": prover_k != 4,
        "--margin": margin != 0.5,
        "--consensus": consensus != "mc,progress",
        "--device": device is not None,
        "--backend": backend != "local",
        "--ray-address": ray_address is not None,
    }
    stray = [k for k, v in (policy_side if method == "prlcoder" else own).items() if v]
    if stray:  # an option the method never reads is an error, not silently ignored
        which = "prlcoder samples no policy" if method == "prlcoder" else "only prlcoder reads it"
        raise typer.BadParameter(
            f"{', '.join(stray)} does not apply to --method {method} ({which})"
        )
    if method == "prlcoder":
        _prlcoder(
            out,
            task,
            problems,
            seed,
            mutants_per_line,
            survivors,
            truncate,
            chunk,
            test_timeout,
            store,
        )
        return
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
        summary = run_label(cfg, out, progress=progress_bar, store_at=store, runner=runner)
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


def _prlcoder(
    out: Path,
    task: str,
    problems: int,
    seed: int,
    mutants_per_line: int | None,
    survivors: str,
    truncate: bool,
    chunk: int,
    test_timeout: float = 2.0,
    store: str | None = None,
) -> None:
    from rewardlab.cli.errors import usage_errors
    from rewardlab.cli.progress import progress_bar
    from rewardlab.label.prlcoder import PRLCoderConfig, load_code_problems, run_prlcoder

    with usage_errors():
        cfg = PRLCoderConfig(
            task=task,
            problems=problems,
            seed=seed,
            mutants_per_line=mutants_per_line,
            survivors=survivors,  # type: ignore[arg-type]
            truncate=truncate,
            chunk=chunk,
            test_timeout_s=test_timeout,
        )
        load_code_problems(task, problems)
    summary = run_prlcoder(cfg, out, progress=progress_bar, store_at=store)
    typer.echo((out / "report.md").read_text())
    typer.echo(
        f"wrote {out / 'labels.jsonl'} ({summary['records_kept']} records, "
        f"{summary['steps_labelled']} step labels; this process judged "
        f"{summary['this_process']['judged']} programs, {summary['this_process']['cached']} "
        "came from the store)"
    )
