"""Experiment: a PRM trained on automatic step labels beside one trained on the exact truth.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/prm_label_sources.py [--work runs/label_sources]
        [--problems 300] [--samples 4] [--rollouts 4] [--steps 600]
        [--heldout-work runs/rms_v2] [--jobs 2] [--train-seed 0]

The question every PRM paper of the seeds argues about (Math-Shepherd, OmegaPRM, "Lessons of
developing PRMs"): how much PRM quality do automatic labels cost against correct ones? On the
``arith`` testbed the truth is known, so the comparison is exact:

1. **Labels.** ``rewardlab label`` samples the same ``problems x samples`` solutions (seed 1000,
   the shipped models' training seed; 1-8 operations) for each method and labels them:
   ``truth`` (exact), ``mc`` (Math-Shepherd hard labels, k rollouts per step), ``binary``
   (OmegaPRM binary search, k rollouts per visited prefix) and ``mc-soft`` (Math-Shepherd soft
   labels: the fraction of correct rollouts, from the very rollouts of ``mc``); CLI defaults
   otherwise (records truncated after the first bad step). Up to ``--jobs`` labelers at once.
2. **Training.** ``rewardlab train --objective prm`` on each label file with the same steps,
   learning rate, batch size and seed (the shipped PRM's lr and batch size).
3. **Evaluation.** Each PRM, and the shipped ``prm_arith`` (exact labels on 16,000 rows) for
   scale, on the held-out pool of ``scripts/train_default_rms.py`` (seed 2000, 160 problems x
   8 samples; sampled into ``--heldout-work``'s store, reused when it is there) with the same
   metrics as the shipped models: ProcessBench F1 (threshold tuned on a dev split), step AUROC,
   best-of-8 and within-problem AUROC per aggregation.

Writes ``WORK/results_<tag>.json`` and ``.md``; checkpoints go to ``WORK/prm_<labels>_<tag>``
(tag ``<steps>steps``, plus ``_seed<n>`` for ``--train-seed n`` other than 0), so runs with
other steps or seeds share the labels. Every stage
resumes: a labeler resumes
from its run's store, a checkpoint whose ``rewardlab.json`` exists is reused. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import train_default_rms as rms  # noqa: E402  (the shipped models' sampling and metrics)

# label set -> `rewardlab label` arguments; mc-soft re-reads mc's rollouts (its store is seeded
# with a copy of mc's), so the two differ only in hard vs soft targets
METHODS = {
    "truth": ["--method", "truth"],
    "mc": ["--method", "mc"],
    "binary": ["--method", "binary"],
    "mc-soft": ["--method", "mc", "--soft"],
}
CLI = [sys.executable, "-m", "rewardlab.cli.main"]


def run_all(commands: dict[str, list[str]], logs: Path, jobs: int) -> None:
    """Run the commands, ``jobs`` at a time, each with one torch thread. On a failure (or
    Ctrl-C) the ones still running are stopped too; their finished work stays resumable."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    pending, running = list(commands.items()), []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                name, cmd = pending.pop(0)
                rms.log(f"start {name}: {' '.join(cmd[3:])}")
                log = (logs / f"{name}.log").open("w")
                proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
                running.append((name, proc, log))
            for item in list(running):
                name, proc, log = item
                if proc.poll() is not None:
                    log.close()
                    running.remove(item)
                    if proc.returncode:
                        raise SystemExit(f"{name} failed (exit {proc.returncode}); see {log.name}")
                    rms.log(f"done {name}")
            time.sleep(1)
    finally:
        for _, proc, log in running:
            proc.terminate()
            proc.wait()
            log.close()


def label_commands(args: argparse.Namespace, names: list[str]) -> dict[str, list[str]]:
    common = f"--problems {args.problems} --samples-per-problem {args.samples} --seed 1000"
    common += f" --difficulty 1-8 --rollouts {args.rollouts}"
    return {
        f"label-{m}": [*CLI, "label", *METHODS[m], *common.split(), "--out", str(args.work / m)]
        for m in names
        if not (args.work / m / "summary.json").exists()
    }


def seed_store(source: Path, target: Path) -> None:
    """Start ``target``'s run from a copy of ``source``'s finished store (same rollouts)."""
    if not (target / "pool.sqlite").exists():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / "pool.sqlite", target / "pool.sqlite")


def run_tag(args: argparse.Namespace) -> str:
    """``<steps>steps``, plus ``_seed<n>`` for a training seed other than 0."""
    return f"{args.steps}steps" + (f"_seed{args.train_seed}" if args.train_seed else "")


def checkpoint(args: argparse.Namespace, labels: str) -> Path:
    return args.work / f"prm_{labels}_{run_tag(args)}"


def train_commands(args: argparse.Namespace) -> dict[str, list[str]]:
    common = f"--objective prm --steps {args.steps} --lr 3e-4 --batch-size 16 --threads 1"
    common += f" --seed {args.train_seed}"
    return {
        f"train-{m}-{run_tag(args)}": [
            *CLI,
            "train",
            *common.split(),
            "--name",
            f"prm-{m}",
            "--data",
            str(args.work / m / "labels.jsonl"),
            "--out",
            str(checkpoint(args, m)),
        ]
        for m in METHODS
        if not (checkpoint(args, m) / "rewardlab.json").exists()
    }


def label_summary(work: Path, method: str) -> dict[str, Any]:
    """``rewardlab label``'s own summary: rows, steps, good fraction, cost, quality vs truth."""
    summary: dict[str, Any] = json.loads((work / method / "summary.json").read_text())
    return summary


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def markdown(res: dict[str, Any]) -> str:
    cfg = res["config"]
    lines = [
        "# PRMs trained on automatic step labels vs on the exact truth",
        "",
        f"{cfg['problems']} arith problems (seed 1000, 1-8 operations) x {cfg['samples']} "
        f"samples of the shipped tiny policy, labelled by each method (k = {cfg['rollouts']} "
        f"rollouts per estimate); a classifier PRM trained on each ({cfg['steps']} steps, lr "
        f"3e-4, batch 16, seed {cfg.get('train_seed', 0)}); evaluated on the held-out pool "
        "(160 problems, seed 2000, x 8). "
        f"{res['seconds']:.0f} s in all (stages that were already done are not re-timed).",
        "",
        "| labels | rows | label steps | good-step rate | label first-error F1 vs truth | "
        "rollouts | PB F1 (tuned) | step AUROC | best-of-8 `min` | best-of-8 `last` | "
        "within-problem AUROC `min` |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in res["models"].items():
        lab, ev = row["labels"], row["heldout"]
        f1 = ((lab.get("quality") or {}).get("quality") or {}).get("f1")
        cells = (
            [str(lab["samples_kept"]), str(lab["steps_labelled"]), _num(lab["good_fraction"])]
            if lab
            else ["16000 (all steps)", "-", "-"]
        )
        cells += [_num(f1), str(lab.get("rollouts", "-"))]
        cells += [
            f"{ev['processbench_f1@tuned']:.3f}",
            f"{ev['step_auroc_to_first_error']:.3f}",
            f"{ev['bon@n[min]']:.3f}",
            f"{ev['bon@n[last]']:.3f}",
            f"{ev['auroc_within_problem[min]']:.3f}",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    base = res["baselines"]
    lines += [
        "",
        f"Held-out baselines: pass@1 {base['pass@1']:.3f}, majority@8 {base['majority@n']:.3f}, "
        f"best-of-8 by the policy's mean log-probability "
        f"{base['bon@n[policy mean logprob]']:.3f}, pass@8 {base['pass@n']:.3f}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "label_sources")
    ap.add_argument("--problems", type=int, default=300)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--rollouts", type=int, default=4)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--heldout-work", type=Path, default=ROOT / "runs" / "rms_v2")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--train-seed", type=int, default=0, help="seed of the PRM head and data order")
    args = ap.parse_args(argv)
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    run_all(label_commands(args, ["truth", "mc", "binary"]), args.work, args.jobs)
    seed_store(args.work / "mc", args.work / "mc-soft")
    run_all(label_commands(args, ["mc-soft"]), args.work, args.jobs)
    run_all(train_commands(args), args.work, args.jobs)

    import torch

    from rewardlab.policies.registry import tiny_policy_dir

    torch.set_num_threads(1)
    rms.log("held-out pool (seed 2000, 160 x 8)")
    probs, pool = rms.sample(tiny_policy_dir(), args.heldout_work.resolve(), 2000, 160, 8)
    dirs = {m: checkpoint(args, m) for m in METHODS}
    dirs["shipped prm (truth, 16,000 rows)"] = rms.ASSETS / "prm_arith"
    evaluation = rms.evaluate(dirs, probs, pool)
    models: dict[str, Any] = {}
    for (key, path), method in zip(dirs.items(), [*METHODS, None], strict=True):
        models[key] = {
            "checkpoint": str(path),
            "labels": label_summary(args.work, method) if method else {},
            "heldout": evaluation[key],
        }
    result = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "seconds": time.monotonic() - started,
        "baselines": {k: v for k, v in evaluation.items() if not isinstance(v, dict)},
        "models": models,
    }
    stem = args.work / f"results_{run_tag(args)}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    stem.with_suffix(".md").write_text(text)
    print(text)
    seeds = seed_summary(args.work, args.steps)
    if seeds:
        (args.work / f"results_{args.steps}steps_seeds.md").write_text(seeds)
        print(seeds)
    return result


SUMMARY_METRICS = {
    "PB F1 (tuned)": "processbench_f1@tuned",
    "step AUROC": "step_auroc_to_first_error",
    "best-of-8 `min`": "bon@n[min]",
    "best-of-8 `last`": "bon@n[last]",
    "within-problem AUROC `min`": "auroc_within_problem[min]",
}


def seed_summary(work: Path, steps: int) -> str | None:
    """Mean and range over every training seed of ``steps`` found in ``work`` (None if < 2)."""
    runs = [json.loads(p.read_text()) for p in sorted(work.glob(f"results_{steps}steps*.json"))]
    if len(runs) < 2:
        return None
    seeds = sorted(r["config"].get("train_seed", 0) for r in runs)
    lines = [
        f"# {steps}-step PRMs over {len(runs)} training seeds {seeds}: mean (min–max)",
        "",
        "| labels | " + " | ".join(SUMMARY_METRICS) + " |",
        "|---|" + "---:|" * len(SUMMARY_METRICS),
    ]
    for name in runs[0]["models"]:
        cells = []
        for key in SUMMARY_METRICS.values():
            v = [r["models"][name]["heldout"][key] for r in runs]
            cells.append(f"{sum(v) / len(v):.3f} ({min(v):.3f}–{max(v):.3f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
