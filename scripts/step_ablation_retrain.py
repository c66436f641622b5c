"""Step ablation by retraining (Ma et al. 2025): the shipped PRM's recipe trained and scored on
full steps (``words+math``), on the bare arithmetic (``math``) and on the words only
(``words``); writes ``docs/results/step_ablation_retrain.{json,md,png}``.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/step_ablation_retrain.py \\
        [--train-problems 200 --heldout-problems 160 --n 8 --steps 120]

1. Pools, through stores in ``--work`` (a re-run samples nothing): the shipped tiny policy at
   T = 1 on ``--train-problems`` ``arith`` problems of seed 1000 (the shipped RMs' training
   seed) and on ``--heldout-problems`` of seed 2000 (their held-out seed; with the defaults the
   same pool as ``scripts/rm_diagnostics.py``), 1..8 operations, ``--n`` samples each.
2. :func:`rewardlab.pipelines.step_ablation.run_step_ablation`: one PRM per condition from the
   tiny policy's backbone (2-class token head, CE at every step boundary, exact step labels;
   the shipped PRM's recipe at a smaller budget), each scored on the held-out pool under its
   own condition. Resumable per condition (``WORK/<condition>/``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from rewardlab.evaluate.reward_report import write_result  # noqa: E402
from rewardlab.pipelines import step_ablation as S  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sample(store: Path, seed: int, problems: int, n: int) -> tuple[list[Any], list[Any]]:
    """``problems`` arith problems of ``seed`` x ``n`` samples of the tiny policy (T = 1),
    keyed as ``rewardlab sample --seed SEED`` and ``scripts/rm_diagnostics.py``."""
    from rewardlab.policies.registry import load_policy
    from rewardlab.search.pool import PoolSpec, sample_pool
    from rewardlab.store import SampleStore
    from rewardlab.tasks.registry import load_task
    from rewardlab.types import Sampling

    task, probs = load_task("arith", problems, seed=seed, n_ops=(1, 8))
    spec = PoolSpec(n, Sampling(1.0, 1.0, 160, seed))
    t0 = time.monotonic()

    def progress(done: int, total: int) -> None:
        if done % 64 == 0 or done == total:
            log(f"  sampled {done}/{total} problems ({time.monotonic() - t0:.0f} s)")

    pool = sample_pool(probs, task, load_policy("tiny"), spec, SampleStore(store), progress)
    return probs, pool


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-problems", type=int, default=200)
    ap.add_argument("--heldout-problems", type=int, default=160)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--steps", type=int, default=120, help="optimiser steps per condition")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backbone", type=Path, default=None, help="default: the tiny policy")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "step_ablation")
    ap.add_argument("--results", type=Path, default=ROOT / "docs" / "results")
    ap.add_argument(
        "--conditions",
        default=",".join(S.STEP_CONDITIONS),
        help="comma-separated; one process per condition can train them side by side (same "
        "--work), then a run with all of them reuses every checkpoint and writes the table",
    )
    ap.add_argument(
        "--heldout-store",
        type=Path,
        default=None,
        help="sample store of the held-out pool (default WORK/heldout_pool.sqlite; "
        "runs/rm_diagnostics/pool.sqlite holds the same keys)",
    )
    args = ap.parse_args(argv)

    import torch
    from _machine import MachineProbe, machine_line

    from rewardlab.policies.registry import tiny_policy_dir

    torch.set_num_threads(args.threads)
    probe = MachineProbe()
    t0 = time.time()
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    log(f"training pool: {args.train_problems} problems (seed 1000) x {args.n}")
    train = sample(work / "train_pool.sqlite", 1000, args.train_problems, args.n)
    log(f"held-out pool: {args.heldout_problems} problems (seed 2000) x {args.n}")
    held_store = args.heldout_store or work / "heldout_pool.sqlite"
    held = sample(held_store, 2000, args.heldout_problems, args.n)
    sample_s = time.time() - t0
    cfg = S.AblationConfig(
        backbone=str((args.backbone or tiny_policy_dir()).resolve()),
        work=str(work),
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch_size,
        n_boot=args.n_boot,
        conditions=tuple(c.strip() for c in args.conditions.split(",") if c.strip()),
    )
    result = S.run_step_ablation(cfg, train, held, source="arith seed 2000", log=log)
    total = time.time() - t0
    machine = probe.record()
    args.results.mkdir(parents=True, exist_ok=True)
    stem = "step_ablation_retrain"
    write_result(result, work, stem)
    S.plot_results(result, args.results / f"{stem}.png")
    summary = {
        "machine": machine,
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("work", "results", "heldout_store")
        },
        "timings_s": {"sample": round(sample_s, 1), "total": round(total, 1)},
        "result": result.as_dict(),
    }
    text = json.dumps(summary, indent=1, default=float).replace(f"{ROOT}/", "")
    (args.results / f"{stem}.json").write_text(text)
    conds = result.details["conditions"]
    secs = {c: (d["train"].get("train_seconds"), d["score_seconds"]) for c, d in conds.items()}
    md = [
        "# Step ablation by retraining (arith testbed)",
        "",
        f"One PRM per condition, the shipped PRM's recipe (tiny-policy backbone, 2-class token "
        f"head, CE on exact step labels) at {args.steps} steps x batch {args.batch_size}, lr "
        f"{args.lr:g}, on {args.train_problems} training problems (seed 1000) x {args.n} "
        f"samples; evaluated on {args.heldout_problems} held-out problems (seed 2000) x "
        f"{args.n}. 95% bootstrap CIs over problems ({args.n_boot} replicates). ProcessBench "
        "F1: threshold tuned on a 30% dev split of the distinct held-out solutions, reported "
        "on the rest. Generated by `scripts/step_ablation_retrain.py`.",
        "",
        machine_line(machine)
        + f" Wall time {total:.0f} s (sampling {sample_s:.0f} s); per condition (train s, "
        f"score s): {json.dumps(secs)}",
        "",
        S.results_table(result),
        "Example (the first held-out solution in each condition):",
        "",
    ]
    for c, steps in result.details.get("example", {}).items():
        md += [f"- `{c}`: " + " / ".join(f"`{s}`" for s in steps)]
    (args.results / f"{stem}.md").write_text("\n".join(md) + "\n")
    log(f"done in {total:.0f} s; wrote {args.results / stem}.md")


if __name__ == "__main__":
    main()
