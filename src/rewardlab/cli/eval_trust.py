"""``rewardlab eval position|contrast|scir|bon-bias|step-ablation|ceiling``: trust diagnostics.

    rewardlab eval position      --judge lm:tiny --data pairs.jsonl --out DIR
    rewardlab eval contrast      --reward runs/rm-bt --data contrast.jsonl --out DIR
    rewardlab eval scir          --reward genrm,implicit-prm --data pairs.jsonl --out DIR
    rewardlab eval bon-bias      --reward prm --pool pool.jsonl --out DIR
    rewardlab eval step-ablation --reward prm --pool pool.jsonl --out DIR
    rewardlab eval step-ablation --retrain --train-pool train.jsonl --pool pool.jsonl --out DIR
    rewardlab eval ceiling       --reward prm,orm,oracle-prm:q=0.7 --pool pool.jsonl --out DIR

Length bias and the per-subset / per-language breakdown are part of ``rewardlab eval
pairwise``. A ``--pool`` is an ``arith`` pool in the generic pool-import format (one problem a
line with its testbed ``meta``; ``docs/pool_import.md``); ``scripts/rm_diagnostics.py``
writes one. Each command writes ``OUT/<command>.json``, ``OUT/<command>.md`` (every number with
its 95% bootstrap CI) and a PNG. Mounted by ``cli/main.py`` from :data:`COMMANDS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rewardlab.cli.eval_rm import (
    BootOpt,
    OutOpt,
    SeedOpt,
    _finish,
    _split_specs,
    check_spec,
    load_spec,
)

PairsOpt = Annotated[
    Path,
    typer.Option(
        "--data",
        exists=True,
        dir_okay=False,
        help='Pairwise JSONL: {"prompt", "chosen", "rejected"} per line (chosen = gold).',
    ),
]
PoolOpt = Annotated[
    Path,
    typer.Option(
        "--pool",
        exists=True,
        dir_okay=False,
        help='arith pool, generic import format: {"id", "question", "answer", "task": "arith", '
        '"meta": {"ops", "states", ...}, "candidates": [{"text"}, ...]} per line.',
    ),
]


def _pool(path: Path) -> tuple[list[Any], list[list[Any]]]:
    from rewardlab.cli.errors import usage_errors
    from rewardlab.evaluate.trust_eval import read_arith_pool

    with usage_errors():
        return read_arith_pool(path)


def position(
    judge: Annotated[
        str,
        typer.Option(
            "--judge",
            help="'lm:<policy>' (a causal LM shown both responses, e.g. lm:tiny) or a reward "
            "SPEC (a scalar RM: position bias 0 by construction).",
        ),
    ],
    data: PairsOpt,
    out: OutOpt,
    n_boot: BootOpt = 1000,
    seed: SeedOpt = 0,
) -> None:
    """Position bias: every pair judged in both orders (first-slot rate, consistency)."""
    from rewardlab.cli.errors import usage_errors
    from rewardlab.evaluate.trust_eval import evaluate_position
    from rewardlab.rewards.pairwise_judge import load_judge

    if not judge.startswith("lm:"):
        check_spec(judge)
    with usage_errors():
        the_judge = load_judge(judge)
    _finish(evaluate_position(the_judge, data, n_boot=n_boot, seed=seed), out, "position")


def contrast(
    reward: Annotated[str, typer.Option("--reward", help="Reward SPEC.")],
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            exists=True,
            dir_okay=False,
            help='JSONL: {"prompt1", "response1", "prompt2", "response2"} per line, response_i '
            "the gold answer to prompt_i (two lexically similar instructions).",
        ),
    ],
    out: OutOpt,
    n_boot: BootOpt = 1000,
    seed: SeedOpt = 0,
) -> None:
    """Contrast-instruction consistency (RMC): each response preferred under its own prompt."""
    check_spec(reward)
    from rewardlab.evaluate.trust_eval import evaluate_contrast

    _finish(evaluate_contrast(load_spec(reward), data, n_boot=n_boot, seed=seed), out, "contrast")


def scir(
    reward: Annotated[
        str, typer.Option("--reward", help="Two SPECs A,B: a judge and an implicit reward.")
    ],
    data: PairsOpt,
    out: OutOpt,
    n_boot: BootOpt = 1000,
    seed: SeedOpt = 0,
) -> None:
    """SCIR: agreement of two rewards and the gold precision of the pairs they agree on."""
    specs = _split_specs(reward)
    if len(specs) != 2:
        raise typer.BadParameter(f"--reward needs exactly two SPECs A,B; got {specs}")
    for spec in specs:
        check_spec(spec)
    from rewardlab.evaluate.trust_eval import evaluate_scir

    a, b = (load_spec(s) for s in specs)
    _finish(evaluate_scir(a, b, data, n_boot=n_boot, seed=seed), out, "scir")


def bon_bias(
    reward: Annotated[str, typer.Option("--reward", help="Reward SPEC (a PRM for steps/*).")],
    pool: PoolOpt,
    out: OutOpt,
    n_boot: BootOpt = 1000,
    seed: SeedOpt = 0,
) -> None:
    """BoN bias (Lessons of PRMs): answer-only / truncated shortcuts, min step at the end."""
    check_spec(reward)
    from rewardlab.evaluate.trust_eval import evaluate_bon_bias

    problems, cands = _pool(pool)
    result = evaluate_bon_bias(
        load_spec(reward), problems, cands, source=str(pool), n_boot=n_boot, seed=seed
    )
    _finish(result, out, "bon_bias")


def step_ablation(
    pool: PoolOpt,
    out: OutOpt,
    reward: Annotated[
        str | None, typer.Option("--reward", help="PRM SPEC to score (needs score_steps).")
    ] = None,
    retrain: Annotated[
        bool,
        typer.Option(
            "--retrain",
            help="Train one PRM per condition on --train-pool (the same recipe) and score "
            "each on --pool under its own condition, instead of scoring --reward.",
        ),
    ] = False,
    train_pool: Annotated[
        Path | None,
        typer.Option(
            "--train-pool",
            exists=True,
            dir_okay=False,
            help="With --retrain: the labelled training pool (arith, same format as --pool).",
        ),
    ] = None,
    backbone: Annotated[
        Path | None,
        typer.Option(
            "--backbone", exists=True, file_okay=False, help="With --retrain (default: tiny)."
        ),
    ] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="With --retrain.")] = 120,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="With --retrain.")] = 3e-4,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 16,
    n_boot: BootOpt = 300,
    seed: SeedOpt = 0,
) -> None:
    """Step ablation: bare arithmetic vs words + arithmetic vs words only (step AUROC).

    With --retrain, one PRM per condition is trained (OUT/work/<condition>/, resumable) and
    each is scored under its own condition: ProcessBench F1, step AUROC, best-of-N."""
    from rewardlab.cli.errors import usage_errors

    if retrain:
        if reward is not None or train_pool is None:
            raise typer.BadParameter("--retrain takes --train-pool (and no --reward)")
        _retrain(pool, train_pool, out, backbone, steps, lr, batch_size, n_boot, seed)
        return
    if reward is None:
        raise typer.BadParameter("--reward SPEC is required (or --retrain --train-pool FILE)")
    check_spec(reward)
    from rewardlab.evaluate.trust_eval import evaluate_step_ablation

    problems, cands = _pool(pool)
    r = load_spec(reward)
    with usage_errors():
        if not hasattr(r, "score_steps"):
            raise ValueError(f"{reward!r} has no step scores: step ablations need a PRM")
    result = evaluate_step_ablation(r, problems, cands, source=str(pool), n_boot=n_boot, seed=seed)
    _finish(result, out, "step_ablation")


def _retrain(
    pool: Path,
    train_pool: Path,
    out: Path,
    backbone: Path | None,
    steps: int,
    lr: float,
    batch_size: int,
    n_boot: int,
    seed: int,
) -> None:
    from rewardlab.cli.errors import usage_errors
    from rewardlab.pipelines import step_ablation as S
    from rewardlab.policies.registry import tiny_policy_dir

    train = _pool(train_pool)
    held = _pool(pool)
    with usage_errors():
        cfg = S.AblationConfig(
            backbone=str((backbone or tiny_policy_dir()).resolve()),
            work=str(out / "work"),
            steps=steps,
            lr=lr,
            batch_size=batch_size,
            seed=seed,
            n_boot=n_boot,
        )
        result = S.run_step_ablation(
            cfg, train, held, source=str(pool), log=lambda m: typer.echo(m, err=True)
        )
    _finish(result, out, "step_ablation_retrain")
    (out / "step_ablation_retrain_table.md").write_text(S.results_table(result))
    S.plot_results(result, out / "step_ablation_retrain.png")
    typer.echo(S.results_table(result))


def ceiling(
    reward: Annotated[str, typer.Option("--reward", help="Three or more SPECs, comma-separated.")],
    pool: PoolOpt,
    out: OutOpt,
    n: Annotated[
        int | None, typer.Option("--n", min=1, help="Best-of-N size (default: pool size).")
    ] = None,
    n_boot: BootOpt = 1000,
    seed: SeedOpt = 0,
) -> None:
    """Alignment ceiling: rank correlation of RM accuracy and best-of-N gain across rewards.

    Each reward's scores are cached in OUT/ceiling_scores/ (re-running resumes)."""
    specs = _split_specs(reward)
    if len(specs) < 3:
        raise typer.BadParameter(f"--reward needs >= 3 SPECs to rank; got {specs}")
    for spec in specs:
        check_spec(spec)
    from rewardlab.cli.errors import usage_errors
    from rewardlab.cli.progress import progress_bar
    from rewardlab.evaluate.trust_eval import evaluate_ceiling

    problems, cands = _pool(pool)
    rewards = {s: _Lazy(s) for s in specs}
    with progress_bar(f"scoring {len(specs)} rewards", len(specs)) as update:
        done = [0]

        def tick(_name: str) -> None:
            done[0] += 1
            update(done[0], len(specs))

        with usage_errors():
            result = evaluate_ceiling(
                rewards,
                problems,
                cands,
                n=n,
                source=str(pool),
                n_boot=n_boot,
                seed=seed,
                progress=tick,
                cache_dir=out / "ceiling_scores",
            )
    _finish(result, out, "ceiling")


class _Lazy:
    """A reward SPEC loaded on first use (a cached reward is never loaded)."""

    def __init__(self, spec: str) -> None:
        self.name = spec
        self._r: Any = None

    def score(self, problems: Any, candidates: Any) -> Any:
        if self._r is None:
            self._r = load_spec(self.name)
        return self._r.score(problems, candidates)


COMMANDS: dict[str, tuple[Any, str]] = {
    "position": (position, "Position bias of a pairwise judge (each pair in both orders)."),
    "contrast": (contrast, "Contrast-instruction consistency (RMC)."),
    "scir": (scir, "Judge vs implicit-reward agreement filtering (SCIR)."),
    "bon_bias": (bon_bias, "BoN-bias checks of a PRM: answer-only / truncated shortcuts."),
    "step_ablation": (
        step_ablation,
        "PRM step scores with the words or the arithmetic removed (--retrain: one PRM each).",
    ),
    "ceiling": (ceiling, "Rank correlation of RM accuracy and best-of-N gain (testbed)."),
}
"""Command name -> (function, help), for mounting under ``rewardlab eval``."""
