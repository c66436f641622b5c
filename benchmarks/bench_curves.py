"""Benchmark: accuracy-vs-budget curves for every offline strategy from one scored pool.

    .venv/bin/python benchmarks/bench_curves.py [--problems 1000] [--n 64] [--resamples 100]

Builds a synthetic pool (P problems x N candidates: per-problem accuracy spread, a right answer
and popular wrong answers, some no-answer candidates, a noisy outcome reward with a few ungraded
candidates, a noisy step reward), then times

- the vectorised curves (:func:`rewardlab.search.offline.curves`) for all strategies at
  k = 1, 2, 4, ..., N, plus bootstrap CIs, and
- a naive loop beside it in the same run: for each problem, each k and each of R resamples, draw
  a subset in Python and call the strategy's ``choose`` on it. The naive loop is capped at
  ``--naive-problems`` problems and its time extrapolated linearly to P (stated in the output).

Writes benchmarks/results/curves.json and curves.md. Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from _machine import MachineProbe, machine_line

from rewardlab.evaluate.estimators import AGGREGATES, bootstrap_ci, default_ks
from rewardlab.search.offline import (
    BestOfN,
    MajorityVote,
    PassAtK,
    PoolArrays,
    Selector,
    Strategy,
    WeightedMajority,
    curves,
)

RESULTS = Path(__file__).parent / "results"


def sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return out


def synthetic_pool(p: int, n: int, seed: int = 0) -> PoolArrays:
    """A realistic-looking pool; the answer key is answer id 0 in every problem."""
    rng = np.random.default_rng(seed)
    acc = rng.beta(0.7, 0.7, size=p)  # per-problem accuracy: many easy, many hard
    correct = rng.random((p, n)) < acc[:, None]
    n_wrong = 15  # wrong answers 1..15 with problem-specific popularity (some strong distractors)
    popularity = rng.dirichlet(np.full(n_wrong, 0.3), size=p)
    u = rng.random((p, n, 1))
    wrong_ids = 1 + (u > np.cumsum(popularity, axis=1)[:, None, :]).sum(axis=2)
    ids = np.where(correct, 0, np.minimum(wrong_ids, n_wrong))
    no_answer = ~correct & (rng.random((p, n)) < 0.05)
    ids[no_answer] = -1
    # outcome reward: signal + per-problem offset + noise; 1% ungraded
    logit = 1.2 * (2 * correct - 1) + rng.normal(0, 0.7, (p, 1)) + rng.normal(0, 1.5, (p, n))
    orm = sigmoid(logit)
    orm[rng.random((p, n)) < 0.01] = np.nan
    # step reward: wrong solutions go wrong at a random step, scores drop after it
    steps: list[list[np.ndarray]] = []
    lengths = rng.integers(2, 9, size=(p, n))
    for i in range(p):
        row = []
        for j in range(n):
            m = int(lengths[i, j])
            mu = np.full(m, 1.5)
            if not correct[i, j]:
                mu[rng.integers(0, m) :] = -0.5
            row.append(sigmoid(rng.normal(mu, 1.3)))
        steps.append(row)
    return PoolArrays(correct, ids, scores={"orm": orm}, step_scores={"prm": steps})


STRATEGIES: list[Strategy] = [
    PassAtK(),
    MajorityVote(),
    BestOfN("orm"),
    WeightedMajority("orm"),
    *(BestOfN("prm", a) for a in ("last", "min", "prod", "mean")),
    WeightedMajority("prm", "last"),
    WeightedMajority("prm", "min"),
]


def time_vectorised(
    pool: PoolArrays, ks: list[int], resamples: int, repeats: int
) -> tuple[dict[str, np.ndarray], dict[str, float], list[float]]:
    totals: list[float] = []
    per: dict[str, list[float]] = {s.name: [] for s in STRATEGIES}
    out: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        for s in STRATEGIES:
            t = time.perf_counter()
            out[s.name] = s.curve(pool, ks, rng=0, n_resamples=resamples)
            per[s.name].append(time.perf_counter() - t)
        totals.append(time.perf_counter() - t0)
    assert out.keys() == curves(STRATEGIES, pool, [1]).keys()
    return out, {k: min(v) for k, v in per.items()}, totals


def naive(
    pool: PoolArrays, problems: int, ks: list[int], resamples: int
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The loop people write: per problem, per k, per resample, pick a subset and choose."""
    rng = np.random.default_rng(1)
    n = pool.shape[1]
    out, secs = {}, {}
    for s in STRATEGIES:
        scores = None
        if isinstance(s, BestOfN | WeightedMajority):
            scores = pool.reward(s.reward, s.aggregate)  # once, outside the loop (fair to naive)
        acc = np.zeros((problems, len(ks)))
        t = time.perf_counter()
        for p in range(problems):
            ids, ok = pool.answer_ids[p], pool.correct[p]
            for j, k in enumerate(ks):
                hits = 0.0
                for _ in range(resamples):
                    sub = rng.choice(n, size=k, replace=False)
                    if isinstance(s, Selector):
                        i = s.choose(ids[sub], None if scores is None else scores[p, sub], rng=rng)
                        hits += 0.0 if i is None else float(ok[sub[i]])
                    else:  # the oracle
                        hits += float(ok[sub].any())
                acc[p, j] = hits / resamples
        secs[s.name] = time.perf_counter() - t
        out[s.name] = acc
    return out, secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=1000)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--resamples", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--naive-problems", type=int, default=10)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    probe = MachineProbe()
    t = time.perf_counter()
    pool = synthetic_pool(args.problems, args.n)
    build_s = time.perf_counter() - t
    ks = default_ks(args.n)
    t = time.perf_counter()
    pool.reward("prm", "last")  # the first use flattens the ragged step scores (once per pool)
    flatten_s = time.perf_counter() - t
    t = time.perf_counter()
    for a in AGGREGATES:
        pool.reward("prm", a)
    aggregate_s = (time.perf_counter() - t) / 4
    vec, per_strategy, totals = time_vectorised(pool, ks, args.resamples, args.repeats)
    t = time.perf_counter()
    cis = {name: bootstrap_ci(c, n_boot=1000, rng=0) for name, c in vec.items()}
    boot_s = time.perf_counter() - t

    m = min(args.naive_problems, args.problems)
    slow, slow_secs = naive(pool, m, ks, args.resamples)
    naive_total = sum(slow_secs.values()) * args.problems / m
    agreement = {n: float(np.abs(slow[n].mean(0) - vec[n][:m].mean(0)).max()) for n in slow}

    report = {
        "config": {
            "problems": args.problems,
            "n": args.n,
            "ks": ks,
            "resamples": args.resamples,
            "repeats": args.repeats,
            "strategies": [s.name for s in STRATEGIES],
        },
        "machine": probe.record(),
        "seconds": {
            "build_pool": build_s,
            "flatten_step_scores_once": flatten_s,
            "aggregate_steps_each": aggregate_s,
            "vectorised_all_strategies_min": min(totals),
            "vectorised_all_strategies_median": statistics.median(totals),
            "vectorised_per_strategy_min": per_strategy,
            "bootstrap_ci_all_strategies": boot_s,
            "naive_measured_problems": m,
            "naive_measured": sum(slow_secs.values()),
            "naive_per_strategy_measured": slow_secs,
            "naive_extrapolated_to_all_problems": naive_total,
        },
        "speedup_vs_naive": naive_total / min(totals),
        "naive_vs_vectorised_max_abs_diff_of_mean_curve": agreement,
        "curves": {
            name: {"mean": mean.tolist(), "low": low.tolist(), "high": high.tolist()}
            for name, (mean, low, high) in cis.items()
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "curves.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "curves.md").write_text(markdown(report))
    print(markdown(report))


def markdown(r: dict[str, Any]) -> str:
    c, s = r["config"], r["seconds"]
    lines = [
        "# Accuracy vs budget from one scored pool (synthetic)",
        "",
        f"P = {c['problems']} problems x N = {c['n']} candidates, R = {c['resamples']} resamples "
        "for the votes.",
        machine_line(r["machine"]),
        "",
        "| step | seconds |",
        "|---|---|",
        f"| all {len(c['strategies'])} curves, vectorised (min of {c['repeats']}) "
        f"| {s['vectorised_all_strategies_min']:.3f} |",
        f"| same, median | {s['vectorised_all_strategies_median']:.3f} |",
        f"| bootstrap CIs, all curves (1000 replicates) | {s['bootstrap_ci_all_strategies']:.3f} |",
        f"| flatten the step scores ({c['problems'] * c['n']} ragged arrays), once per pool "
        f"| {s['flatten_step_scores_once']:.3f} |",
        f"| aggregate step scores, one way (included in the curves) "
        f"| {s['aggregate_steps_each']:.3f} |",
        f"| naive loop, measured on {s['naive_measured_problems']} problems "
        f"| {s['naive_measured']:.1f} |",
        f"| naive loop, extrapolated linearly to {c['problems']} problems "
        f"| {s['naive_extrapolated_to_all_problems']:.0f} |",
        "",
        f"Speed-up over the naive loop: {r['speedup_vs_naive']:.0f}x.",
        "",
        "| strategy | seconds | " + " | ".join(f"k={k}" for k in c["ks"]) + " |",
        "|---|---|" + "---|" * len(c["ks"]),
    ]
    for name, cur in r["curves"].items():
        cells = [
            f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
            for m, lo, hi in zip(cur["mean"], cur["low"], cur["high"], strict=True)
        ]
        secs = s["vectorised_per_strategy_min"][name]
        lines.append(f"| {name} | {secs:.3f} | " + " | ".join(cells) + " |")
    lines += ["", "Mean accuracy [95% percentile-bootstrap CI over problems].", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
