"""``rewardlab eval pairwise|bon|one_to_many|overopt|distance``: evaluate outcome reward models.

    rewardlab eval pairwise --reward runs/rm-bt --data rb.jsonl --out runs/eval [--dev dev.jsonl]
    rewardlab eval bon --reward runs/rm-bt --data rb2.jsonl --out runs/eval
    rewardlab eval one_to_many --reward runs/rm-bt --data rewardmath.jsonl --out runs/eval
    rewardlab eval overopt --reward runs/rm-bt,runs/ens --data pool.jsonl --out runs/eval
    rewardlab eval distance --reward runs/rm-a,runs/rm-b --data pool.jsonl --out runs/eval
    rewardlab eval select --reward runs/orm --data labelled_pool.jsonl --out runs/eval

A ``--reward`` SPEC is a registry name or a checkpoint directory (``rewardlab.json`` inside:
preference RMs, ensembles, ORMs ...); ``ensemble:AGG:DIR1,DIR2,...`` builds an ensemble of the
listed checkpoints on the spot (AGG: mean | median | min | mean-var | mean-std). Each command
writes ``OUT/<command>.json`` (everything, per-item scores included), ``OUT/<command>.md``
(every number with its 95% bootstrap CI, the length baseline beside it) and PNG plots. The
functions are mounted by ``cli/main.py``; :data:`COMMANDS` lists them with their help.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

RewardOpt = Annotated[str, typer.Option("--reward", help="Reward SPEC (see the module doc).")]


def _data(fmt: str) -> Any:
    """The ``--data`` option with the command's file format and a one-line example."""
    return typer.Option(
        "--data", exists=True, dir_okay=False, help=f"JSONL, one record per line: {fmt}"
    )


PairwiseData = Annotated[
    Path,
    _data(
        '{"prompt", "chosen", "rejected", "subset"?} (RewardBench v1), e.g. {"prompt": "2+2?", '
        '"chosen": "4", "rejected": "5", "subset": "math-prm"}; or conversational (detected per '
        'row, one form per file): TRL message lists {"chosen": [{"role", "content"}, ...], '
        '"rejected": [...]} (optional "prompt" list), or HH-RLHF rows as shipped (.jsonl.gz, '
        ".parquet also read)."
    ),
]
BonData = Annotated[
    Path,
    _data(
        '{"prompt", "chosen": [...], "rejected": [...], "subset"?} (RewardBench v2), e.g. '
        '{"prompt": "2+2?", "chosen": ["4"], "rejected": ["5", "3", "22"]}.'
    ),
]
OneToManyData = Annotated[
    Path,
    _data(
        '{"prompt", "chosen": [one correct], "rejected": [M wrong]} (RewardMATH), e.g. '
        '{"prompt": "2+2?", "chosen": ["2+2=4"], "rejected": ["2+2=5", "2+2=3"]}.'
    ),
]
OveroptData = Annotated[
    Path,
    _data(
        '{"prompt", "responses": [...], "gold": [one score per response]?} (a candidate pool; '
        'without "gold", give --gold), e.g. {"prompt": "2+2?", "responses": ["4", "5"], '
        '"gold": [1.0, 0.0]}.'
    ),
]
DistanceData = Annotated[
    Path,
    _data(
        '{"prompt", "responses": [...]} (a candidate pool) or a pairwise file, e.g. '
        '{"prompt": "2+2?", "responses": ["4", "5", "four"]}.'
    ),
]
SelectData = Annotated[
    Path,
    _data(
        '{"prompt", "responses": [N texts], "correct": [N bools], "answers"?: [N strings or '
        'null]} (a labelled candidate pool; without "answers" they are extracted by '
        'Math-Verify), e.g. {"prompt": "2+2?", "responses": ["2+2=4 A: 4", "A: 5"], '
        '"correct": [true, false]}.'
    ),
]
OutOpt = Annotated[Path, typer.Option("--out", help="Output directory.")]
BootOpt = Annotated[int, typer.Option("--n-boot", min=10, help="Bootstrap replicates.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Bootstrap seed.")]


def check_spec(spec: str) -> None:
    """Check a SPEC without loading anything (a usage error, exit 2, when it names nothing)."""
    from rewardlab.cli.errors import usage_errors
    from rewardlab.rewards.registry import check_reward

    with usage_errors():
        if spec.startswith("ensemble:"):
            from rewardlab.rewards.ensemble import AGGREGATES

            _, agg, dirs = [*spec.split(":", 2), "", ""][:3]
            if agg not in AGGREGATES:
                raise ValueError(f"{spec!r}: unknown ensemble aggregation {agg!r}; {AGGREGATES}")
            members = [d for d in dirs.split(",") if d]
            if not members:
                raise ValueError(f"{spec!r}: no members (ensemble:AGG:DIR1,DIR2,...)")
            for d in members:
                check_reward(d)
        else:
            check_reward(spec)


def load_spec(spec: str) -> Any:
    """A reward from a SPEC: ``ensemble:AGG:DIR,DIR``, a registry name or a checkpoint dir."""
    from rewardlab.rewards.registry import load_reward

    if spec.startswith("ensemble:"):
        from rewardlab.rewards.ensemble import EnsembleReward

        _, agg, dirs = spec.split(":", 2)
        members = tuple(load_reward(d) for d in dirs.split(",") if d)
        return EnsembleReward(members, aggregate=agg, name=f"ensemble-{agg}[{len(members)}]")  # type: ignore[arg-type]
    return load_reward(spec)


def _split_specs(specs: str) -> list[str]:
    """Comma-separated specs; an ``ensemble:`` spec takes the rest of the string."""
    out: list[str] = []
    rest = specs
    while rest:
        if rest.startswith("ensemble:"):
            out.append(rest)
            break
        head, _, rest = rest.partition(",")
        if head:
            out.append(head)
    return out


def _finish(result: Any, out: Path, stem: str) -> None:
    from rewardlab.evaluate.reward_report import markdown, write_result

    paths = write_result(result, out, stem)
    typer.echo(markdown(result))
    typer.echo("wrote " + ", ".join(str(p) for p in paths.values()))


def pairwise(
    reward: RewardOpt,
    data: PairwiseData,
    out: OutOpt,
    dev: Annotated[
        Path | None, typer.Option(help="Pairwise dev file: fit temperature + isotonic, report ECE.")
    ] = None,
    bins: Annotated[int, typer.Option(min=2, help="ECE bins (equal width).")] = 10,
    n_boot: BootOpt = 1000,
    seed: SeedOpt = 0,
) -> None:
    """Pairwise accuracy (RewardBench v1 sections), longer-response baseline, length corr."""
    check_spec(reward)
    from rewardlab.cli.errors import usage_errors
    from rewardlab.evaluate.reward_eval import evaluate_pairwise
    from rewardlab.train.pref_io import parse_pairs, read_records

    with usage_errors():  # a malformed or mixed file is named before any model loads
        for path in (data, dev) if dev is not None else (data,):
            parse_pairs(read_records(path))

    _finish(
        evaluate_pairwise(load_spec(reward), data, dev=dev, n_boot=n_boot, seed=seed, n_bins=bins),
        out,
        "pairwise",
    )


def bon(
    reward: RewardOpt, data: BonData, out: OutOpt, n_boot: BootOpt = 1000, seed: SeedOpt = 0
) -> None:
    """Best-of-4 accuracy in RewardBench v2 format (ties share credit; Ties subset scored)."""
    check_spec(reward)
    from rewardlab.evaluate.reward_eval import evaluate_bon

    _finish(evaluate_bon(load_spec(reward), data, n_boot=n_boot, seed=seed), out, "bon")


def one_to_many(
    reward: RewardOpt, data: OneToManyData, out: OutOpt, n_boot: BootOpt = 1000, seed: SeedOpt = 0
) -> None:
    """RewardMATH one-to-many: accuracy (correct above all wrong) and MRR."""
    check_spec(reward)
    from rewardlab.evaluate.reward_eval import evaluate_one_to_many

    _finish(
        evaluate_one_to_many(load_spec(reward), data, n_boot=n_boot, seed=seed), out, "one_to_many"
    )


def overopt(
    reward: Annotated[
        str,
        typer.Option("--reward", help="Comma-separated proxy SPECs (an ensemble: spec goes last)."),
    ],
    data: OveroptData,
    out: OutOpt,
    gold: Annotated[
        str | None, typer.Option(help="Gold reward SPEC (default: the file's 'gold' column).")
    ] = None,
    n_boot: BootOpt = 1000,
    seed: SeedOpt = 0,
) -> None:
    """Gold reward of best-of-N by each proxy against KL_BoN = log N − (N−1)/N."""
    for spec in [*_split_specs(reward), *([gold] if gold else [])]:
        check_spec(spec)
    from rewardlab.evaluate.reward_eval_pool import evaluate_overopt

    proxies = {}
    for spec in _split_specs(reward):
        r = load_spec(spec)
        proxies[str(getattr(r, "name", spec))] = r
    _finish(
        evaluate_overopt(
            proxies, data, gold=load_spec(gold) if gold else None, n_boot=n_boot, seed=seed
        ),
        out,
        "overopt",
    )


def distance(
    reward: Annotated[str, typer.Option("--reward", help="Two SPECs, comma-separated: A,B.")],
    data: DistanceData,
    out: OutOpt,
    n_boot: BootOpt = 1000,
    seed: SeedOpt = 0,
) -> None:
    """STARC distance between two rewards on the same candidate pool (or pairwise file)."""
    from rewardlab.evaluate.reward_eval_pool import evaluate_distance

    specs = _split_specs(reward)
    if len(specs) != 2:
        raise typer.BadParameter(f"--reward needs exactly two SPECs A,B; got {specs}")
    for spec in specs:
        check_spec(spec)
    _finish(
        evaluate_distance(load_spec(specs[0]), load_spec(specs[1]), data, n_boot=n_boot, seed=seed),
        out,
        "distance",
    )


def select(
    reward: RewardOpt,
    data: SelectData,
    out: OutOpt,
    weights: Annotated[
        str,
        typer.Option(help="Vote weights from scores: sigmoid (a logit ORM) | raw | rank."),
    ] = "sigmoid",
    n_boot: BootOpt = 1000,
    seed: SeedOpt = 0,
) -> None:
    """Answer selection on a labelled pool: best-of-N and weighted majority by the reward,
    beside majority vote, random@1 and pass@N, with paired CIs, and AUROC."""
    check_spec(reward)
    import numpy as np

    from rewardlab.cli.errors import usage_errors
    from rewardlab.evaluate.reward_eval_pool import evaluate_selection, vote_weights

    with usage_errors():
        vote_weights(np.zeros((1, 1)), weights)
    _finish(
        evaluate_selection(load_spec(reward), data, weights=weights, n_boot=n_boot, seed=seed),
        out,
        "select",
    )


COMMANDS: dict[str, tuple[Any, str]] = {
    "pairwise": (pairwise, "Pairwise accuracy, RewardBench v1 format and sections."),
    "bon": (bon, "Best-of-4 accuracy, RewardBench v2 format and tie rule."),
    "one_to_many": (one_to_many, "RewardMATH one-to-many accuracy and MRR."),
    "overopt": (overopt, "Best-of-N overoptimisation curves against KL_BoN."),
    "distance": (distance, "STARC distance between two rewards."),
    "select": (select, "Best-of-N / weighted majority vs majority on a labelled pool."),
}
"""Command name -> (function, help), for mounting under ``rewardlab eval``."""
