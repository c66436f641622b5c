"""Benchmark: automatic step labels against the testbed's exact truth, per rollout spent.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_labels.py [--policy DIR] [--problems 12]
        [--samples 4] [--ks 1,2,4,8] [--difficulty 2-5]

One policy samples ``problems x samples`` solutions of the ``arith`` testbed once; every labeler
then labels the same solutions at every k (rollouts per estimated prefix): full Monte-Carlo
(``mc-hard``, Math-Shepherd: k rollouts at every step), binary search for the first error
(``binary``, OmegaPRM: k rollouts only at the prefixes the search visits), progress labels
(``progress``, PAV with a Best-of-4 prover) and consensus of MC with progress. Each labeler's
first-error estimates are compared with ``check_steps``' exact first errors: precision, recall,
F1, exact accuracy and ProcessBench F1, against the rollouts per sample it spent.

Rollouts are counted per method, cached ones included (all methods share one store, so larger k
and later methods reuse earlier rollouts; the counts are what each method would cost alone).
Policy: ``load_policy("tiny")`` when the shipped tiny policy exists, else ``--policy`` (default:
the newest checkpoint under /work/tiny_run/a/checkpoints). Writes benchmarks/results/labels.json,
labels.md and labels.png. Not a test.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from _machine import MachineProbe, machine_line

from rewardlab.label.base import Labeler
from rewardlab.label.binary import BinarySearchLabeler
from rewardlab.label.consensus import ConsensusLabeler
from rewardlab.label.mc import MonteCarloLabeler
from rewardlab.label.progress import ProgressLabeler
from rewardlab.label.quality import QualityRow, plot_quality, quality_markdown, quality_row, sweep
from rewardlab.label.rollouts import RolloutEstimator
from rewardlab.label.truth import TruthLabeler
from rewardlab.policies.registry import load_policy, tiny_policy_dir
from rewardlab.search.pool import PoolSpec, sample_pool
from rewardlab.store import SampleStore
from rewardlab.tasks import arith
from rewardlab.types import Sampling

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CHECKPOINTS = Path("/work/tiny_run/a/checkpoints")


def default_policy() -> str:
    """The shipped tiny policy, else the newest training checkpoint."""
    try:
        return str(tiny_policy_dir())
    except FileNotFoundError:
        found = sorted(CHECKPOINTS.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
        if not found:
            raise SystemExit("no tiny policy: pass --policy DIR") from None
        return str(found[-1])


def builders(est: RolloutEstimator) -> dict[str, Any]:
    def mc(k: int) -> Labeler:
        return MonteCarloLabeler(est, k=k)

    def binary(k: int) -> Labeler:
        return BinarySearchLabeler(est, k=k)

    def progress(k: int) -> Labeler:
        return ProgressLabeler(est, k=k, prover_k=4)

    def consensus(k: int) -> Labeler:
        return ConsensusLabeler(mc(k), progress(k))

    return {
        "mc-hard": mc,
        "binary": binary,
        "progress": progress,
        "consensus(mc,progress)": consensus,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    probe = MachineProbe()
    torch.set_num_threads(1)
    spec = args.policy or default_policy()
    policy = load_policy(spec, device="cpu")
    lo, _, hi = args.difficulty.partition("-")
    problems = arith.generate(args.problems, seed=args.seed, n_ops=(int(lo), int(hi or lo)))
    task = arith.ArithTask()
    sampling = Sampling(args.temperature, 1.0, args.max_new_tokens, args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        store = SampleStore(Path(args.store) if args.store else Path(scratch) / "pool.sqlite")
        started, stored_before = time.time(), store.count()
        pool = sample_pool(problems, task, policy, PoolSpec(args.samples, sampling), store)
        pairs = [(p, c) for p, row in zip(problems, pool, strict=True) for c in row if c.steps]
        probs, samples = [p for p, _ in pairs], [c for _, c in pairs]
        truth_records = TruthLabeler(task).label(probs, samples)
        truth = [r.first_error for r in truth_records]
        est = RolloutEstimator(policy, task, sampling, store)
        ks = [int(k) for k in args.ks.split(",")]
        rows: list[QualityRow] = [quality_row(truth_records, truth, 0)]
        rows += sweep(
            builders(est),
            ks,
            probs,
            samples,
            truth,
            lambda d, t: print(f"  labeler x k runs: {d}/{t}", flush=True),
        )
        seconds = time.time() - started
        rollouts_stored = store.count() - sum(len(r) for r in pool)
        sampled_now = store.count() - stored_before
    return {
        "policy": spec,
        "policy_params": policy.params,
        "problems": args.problems,
        "samples_per_problem": args.samples,
        "samples": len(samples),
        "samples_correct": sum(bool(c.meta.get("correct")) for c in samples),
        "difficulty": args.difficulty,
        "temperature": args.temperature,
        "max_new_tokens": args.max_new_tokens,
        "seed": args.seed,
        "ks": ks,
        "true_first_errors": dict(sorted(Counter(truth).items())),
        "mean_steps": sum(len(s.steps) for s in samples) / len(samples),
        "rollouts_sampled": rollouts_stored,
        "samples_and_rollouts_sampled_by_this_run": sampled_now,
        "seconds": round(seconds, 1),
        "rows": [r.as_dict() for r in rows],
        "machine": probe.record(),
        "_rows": rows,
    }


def comparison(rows: list[QualityRow]) -> str:
    """Binary search beside full MC at each k: rollouts per sample and exact accuracy."""
    by = {(r.labeler, r.k): r for r in rows}
    lines = [
        "| k | MC rollouts / sample | binary rollouts / sample | MC / binary | MC accuracy | "
        "binary accuracy | MC F1 | binary F1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (name, k), mc in sorted(by.items(), key=lambda kv: kv[0][1]):
        b = by.get(("binary", k))
        if name != "mc-hard" or b is None:
            continue
        ratio = mc.rollouts / b.rollouts if b.rollouts else float("inf")
        lines.append(
            f"| {k} | {mc.rollouts_per_sample:.1f} | {b.rollouts_per_sample:.1f} | {ratio:.2f}x | "
            f"{mc.quality.accuracy:.3f} | {b.quality.accuracy:.3f} | {mc.quality.f1:.3f} | "
            f"{b.quality.f1:.3f} |"
        )
    return "\n".join(lines) + "\n"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    errs = report["true_first_errors"]
    return "\n".join(
        [
            "# Step labels against the exact truth: rollouts spent vs first-error quality",
            "",
            f"Policy `{report['policy']}` ({report['policy_params'] / 1e6:.2f}M parameters); "
            f"arith testbed, {report['problems']} problems (operations {report['difficulty']}) x "
            f"{report['samples_per_problem']} samples -> {report['samples']} labelled solutions "
            f"({report['samples_correct']} with a right answer; mean {report['mean_steps']:.1f} "
            f"steps), T={report['temperature']}, "
            f"max_new_tokens={report['max_new_tokens']}, seed {report['seed']}.",
            f"True first errors (step: count, -1 = none): {errs}.",
            f"{report['rollouts_sampled']} distinct rollouts in the store "
            f"({report['samples_and_rollouts_sampled_by_this_run']} samples and rollouts "
            f"generated by this run); {report['seconds']} s.",
            machine_line(m),
            "",
            "## Binary search beside full Monte-Carlo",
            "",
            comparison(report["_rows"]),
            "## Every labeler against the truth",
            "",
            "Precision = exact first-error hits / samples flagged with an error; recall = hits / "
            "samples with a true error; accuracy = share of samples whose first error (-1 "
            "included) is exactly right. Rollouts are per method, cached ones included.",
            "",
            quality_markdown(report["_rows"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", default=None, help="policy spec (default: see docstring)")
    parser.add_argument("--problems", type=int, default=12)
    parser.add_argument("--samples", type=int, default=4, help="solutions per problem")
    parser.add_argument("--ks", default="1,2,4,8", help="rollouts per estimate, comma-separated")
    parser.add_argument("--difficulty", default="2-5", help="arith operations, N or LO-HI")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", default=None, help="keep rollouts in this sqlite file")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(report)
    plot_quality(report["_rows"], args.out / "labels.png", "first-error quality vs rollouts")
    report.pop("_rows")
    (args.out / "labels.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "labels.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
