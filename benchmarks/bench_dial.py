"""Measurement: the dial verifier's step AUROC on real candidates of the shipped policy.

    .venv/bin/python benchmarks/bench_dial.py --run runs/tune-base [--qs 0.6,0.7,0.8,0.9,1.0]

Reads the base pool of a `rewardlab scale` run on the arith testbed (its pool.sqlite), scores
them with ``oracle-prm:q=<q>`` for each q (no model: exact truth + seeded noise), and measures
the step AUROC against the exact first-error labels (a step is good iff it and every step
before it are correct) over distinct (problem, prefix) pairs, with the Hanley-McNeil standard
error, and the ProcessBench-style AUROC (steps up to the first error only, every candidate);
plus the scoring speed. Writes benchmarks/results/dial.json and dial.md. Not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from _machine import MachineProbe, machine_line

from rewardlab.evaluate.process import auroc, step_targets
from rewardlab.rewards.oracle import OraclePRM, step_labels
from rewardlab.store import SampleStore, request_key
from rewardlab.tasks.arith import check_steps, generate
from rewardlab.types import Sampling


def hanley_mcneil_se(a: float, n_pos: int, n_neg: int) -> float:
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--qs", default="0.6,0.7,0.8,0.9,1.0")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    probe = MachineProbe()
    cfg = json.loads((args.run / "summary.json").read_text())["config"]
    if cfg["task"] != "arith" or cfg.get("pool_file"):
        raise SystemExit("the dial needs a run sampled on the arith testbed")
    problems = {
        p.id: p for p in generate(cfg["problems"], seed=cfg["seed"], n_ops=tuple(cfg["difficulty"]))
    }
    summary = json.loads((args.run / "summary.json").read_text())
    sampling = Sampling(cfg["temperature"], 1.0, cfg["max_new_tokens"], cfg["seed"])
    store = SampleStore(args.run / "pool.sqlite")
    pairs = [
        (p, c)
        for p in problems.values()
        for c in store.candidates(request_key(p, summary["policy"], sampling), summary["n_max"])
    ]
    probs = [p for p, _ in pairs]
    cands = [c for _, c in pairs]
    firsts = [check_steps(p, c.text).first_error for p, c in pairs]
    rows = []
    for q in [float(x) for x in args.qs.split(",")]:
        reward = OraclePRM(q=q)
        t0 = time.perf_counter()
        scores = reward.score_steps(probs, cands)
        seconds = time.perf_counter() - t0
        seen: dict[tuple[str, str], tuple[float, float]] = {}
        for p, c, s in zip(probs, cands, scores, strict=True):
            for i, (y, v) in enumerate(zip(step_labels(p, c.steps), s.steps, strict=True)):
                seen[(p.id, "\n".join(c.steps[: i + 1]))] = (float(y), v)
        arr = np.array(list(seen.values()))
        n_pos, n_neg = int(arr[:, 0].sum()), int((1 - arr[:, 0]).sum())
        y_pb, s_pb = step_targets(firsts, [s.steps for s in scores])
        n_steps = sum(len(c.steps) for c in cands)
        rows.append(
            {
                "q": q,
                "candidates": len(cands),
                "steps": n_steps,
                "distinct_prefixes": len(seen),
                "good": n_pos,
                "bad": n_neg,
                "auroc_distinct": auroc(arr[:, 0], arr[:, 1]),
                "se": hanley_mcneil_se(q, n_pos, n_neg),
                "auroc_processbench": auroc(y_pb, s_pb),
                "steps_per_second": n_steps / seconds,
            }
        )
    record = probe.record()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dial.json").write_text(
        json.dumps({"run": str(args.run), "rows": rows, "machine": record}, indent=2)
    )
    lines = [
        "# Dial verifier (oracle-prm): measured step AUROC on real candidates",
        "",
        f"Run `{args.run}`: {rows[0]['candidates']} candidates of the shipped policy, "
        f"{rows[0]['steps']} steps, {rows[0]['distinct_prefixes']} distinct (problem, prefix) "
        f"pairs ({rows[0]['good']} good, {rows[0]['bad']} bad under first-error labels).",
        "",
        "| requested q | AUROC (distinct prefixes) | ± SE (Hanley-McNeil) | AUROC (ProcessBench "
        "reading: up to the first error) | steps scored / s |",
        "|---|---|---|---|---|",
        *[
            f"| {r['q']:.2f} | {r['auroc_distinct']:.4f} | {r['se']:.4f} | "
            f"{r['auroc_processbench']:.4f} | {r['steps_per_second']:,.0f} |"
            for r in rows
        ],
        "",
        machine_line(record),
        "",
    ]
    (args.out / "dial.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
