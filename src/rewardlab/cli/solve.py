"""``rewardlab solve``: answer questions with a saved compute-optimal selector."""

from __future__ import annotations

import json
from pathlib import Path

import typer

HELP = (
    "Answer a question (or every problem of --task) with a selector saved by `rewardlab tune`: "
    "predict the difficulty bin from the verifier's scores of a few samples, then run the "
    "config chosen for that bin within the budget (--budget N, or --flops). Prints the answer; "
    "--out writes one JSON line per problem (answer, config, bin, FLOPs; correctness when the "
    "task has answers)."
)


def solve(
    question: str | None = typer.Argument(None, help="The question to answer."),
    selector: Path = typer.Option(..., help="selector.json, or the run directory holding it."),
    task: str | None = typer.Option(
        None, help="Instead of a question: 'arith' or a .jsonl file of problems."
    ),
    problems: int = typer.Option(10, min=1, help="With --task: how many problems."),
    task_seed: int = typer.Option(1, help="With --task arith: seed of the problems."),
    budget: int | None = typer.Option(None, min=1, help="Budget as N (a level of the selector)."),
    flops: float | None = typer.Option(None, help="Budget as FLOPs per problem."),
    seed: int = typer.Option(0, help="Sampling seed."),
    out: Path | None = typer.Option(None, help="Write the results as JSONL here."),
) -> None:
    from rewardlab.cli.progress import progress_bar
    from rewardlab.pipelines.solve import Solver, free_problem, solve_one
    from rewardlab.pipelines.tune import load_selector

    if (question is None) == (task is None):
        raise typer.BadParameter("give a question or --task, not both")
    if (budget is None) == (flops is None):
        raise typer.BadParameter("give exactly one budget: --budget N or --flops X")
    try:
        fitted = load_selector(selector)
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e)) from None
    solver = Solver.load(fitted)
    if task is not None:
        from rewardlab.tasks.registry import load_task

        todo = load_task(task, problems, seed=task_seed)[1]
    else:
        assert question is not None
        todo = [free_problem(question, str(fitted.meta.get("task", "")))]
    rows = []
    with progress_bar(f"solving {len(todo)} problem(s)", len(todo)) as update:
        for i, p in enumerate(todo):
            try:
                rows.append(solve_one(solver, p, n=budget, max_flops=flops, seed=seed))
            except ValueError as e:
                raise typer.BadParameter(f"{p.id}: {e}") from None
            update(i + 1, len(todo))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for r in rows:
        typer.echo(
            f"{r['problem_id']}: answer {r['answer']} (bin {r['predicted_bin']}, "
            f"{r['config']}@{r['n']}, {r['flops']:.3g} FLOPs + {r['probe_flops']:.3g} probe)"
            + ("" if r["correct"] is None else f" {'right' if r['correct'] else 'wrong'}")
        )
    graded = [r["correct"] for r in rows if r["correct"] is not None]
    if graded:
        typer.echo(f"accuracy {sum(graded) / len(graded):.3f} on {len(graded)} problems")
