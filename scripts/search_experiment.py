"""Experiment: online search (beam, DVTS, MCTS, lookahead, PAV, refinement) against best-of-N
and majority vote on the testbed, as a function of the verifier's quality.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/search_experiment.py [--work runs/search_exp]
        [--problems 40] [--n-max 16] [--stages scale,tune,summary]

Stages (each resumes; a finished stage is not redone):

1. ``scale`` — one ``rewardlab scale`` run: ``--problems`` testbed problems (1-8 operations,
   equal numbers per difficulty, seed 0 as the default run), a pool of ``--n-max`` samples per
   problem scored by the shipped PRM / implicit PRM / ORM and the quality dial
   ``oracle-prm:q=0.7 … 1.0``; the offline strategies (majority, best-of-N, weighted majority
   with every aggregation); and the online strategies of :data:`ONLINE` at N = 1, 2, 4 …
   ``--n-max``. Expansions and scores live in the run's store: a re-run computes nothing twice.
2. ``tune`` — ``rewardlab tune`` per verifier (compute-optimal selection by difficulty bin,
   2-fold CV, efficiency multiple over best-of-N weighted).
3. ``summary`` — ``docs/results/search_experiment.{json,md}``: accuracy at every N for each
   strategy, overall and on the easy (1-4 operations) and hard (5-8) halves with 95% bootstrap
   CIs over problems, FLOPs per problem, and the tune multiples. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RL = str(ROOT / ".venv" / "bin" / "rewardlab")
DIALS = ("oracle-prm:q=0.7", "oracle-prm:q=0.8", "oracle-prm:q=0.9", "oracle-prm:q=1.0")
REWARDS = ("prm", "implicit-prm", "orm", *DIALS)
ONLINE = (
    *(f"beam:{r}:4" for r in ("prm", "implicit-prm", *DIALS)),
    "dvts:prm:4",
    "dvts:oracle-prm:q=0.9:4",
    "mcts:prm:4",
    "mcts:oracle-prm:q=0.9:4",
    "lookahead:prm:1",
    "pav:prm:4",
    "beam:orm:4",
    "refine:prm",
)
TUNE_VERIFIERS = ("prm", "oracle-prm-q0.7", "oracle-prm-q0.9", "oracle-prm-q1")


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def stage_scale(work: Path, problems: int, n_max: int) -> None:
    run(
        [
            RL, "scale", "--name", work.name, "--runs-dir", str(work.parent),
            "--problems", str(problems), "--n-max", str(n_max), "--difficulty", "1-8",
            "--rewards", ",".join(REWARDS), "--strategies", ",".join(ONLINE),
            "--online-n-max", str(n_max), "--threads", "1",
        ]
    )  # fmt: skip


def stage_tune(work: Path) -> None:
    for v in TUNE_VERIFIERS:
        out = work / f"tune_{v}"
        if (out / "tune.json").exists():
            continue
        run([RL, "tune", "--run", str(work), "--verifier", v, "--out", str(out)])


OFFLINE = (
    "maj",
    "bon:prm:last",
    "wmaj:prm:last",
    "bon:implicit-prm:last",
    "bon:orm",
    "wmaj:orm",
    *(
        f"{kind}:oracle-prm-q{q}:last"
        for q in ("0.7", "0.8", "0.9", "1")
        for kind in ("bon", "wmaj")
    ),
)


def stage_summary(work: Path, out: Path) -> dict[str, Any]:
    """Accuracy by strategy, N and half (easy 1-4 / hard 5-8 ops), with bootstrap CIs, and
    FLOPs per problem: offline strategies from the run's pool, online ones from online.jsonl."""
    sys.path.insert(0, str(ROOT / "src"))
    from rewardlab.evaluate.bootstrap import bootstrap_ci
    from rewardlab.evaluate.estimators import default_ks
    from rewardlab.pipelines.tune import base_pool, candidate_flops, load_run
    from rewardlab.search.offline import parse_strategy

    loaded = load_run(work)
    base = base_pool(loaded)
    ids = [p.id for p in loaded.problems]
    diff = np.array([int(p.meta.get("difficulty", 0)) for p in loaded.problems])
    ks = default_ks(loaded.n)
    per_problem: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    for spec in OFFLINE:
        strat = parse_strategy(spec)
        reward = str(getattr(strat, "reward", "") or "")
        curve = strat.curve(base.arrays, ks, 0, 200)
        per = candidate_flops(base, loaded.policy_params, loaded.reward_params.get(reward, 0))
        for j, k in enumerate(ks):
            per_problem[(strat.name, int(k))] = (curve[:, j], k * per)
    online: dict[tuple[str, int], dict[str, tuple[float, float]]] = {}
    for line in (work / "online.jsonl").read_text().splitlines():
        r = json.loads(line)
        online.setdefault((r["strategy"], int(r["n"])), {})[r["problem_id"]] = (
            float(r["correct"]),
            float(r["flops"]),
        )
    for key, by_pid in online.items():
        keep = [i for i, pid in enumerate(ids) if pid in by_pid]
        acc = np.full(len(ids), np.nan)
        flops = np.full(len(ids), np.nan)
        for i in keep:
            acc[i], flops[i] = by_pid[ids[i]]
        per_problem[key] = (acc, flops)
    halves = {"all": diff > 0, "easy": diff <= 4, "hard": diff >= 5}
    rows: list[dict[str, Any]] = []
    for (name, n), (acc, flops) in per_problem.items():
        for half, mask in halves.items():
            m = mask & ~np.isnan(acc)
            if not m.any():
                continue
            mean, low, high = (float(v[0]) for v in bootstrap_ci(acc[m][:, None], rng=0))
            rows.append(
                {
                    "strategy": name,
                    "n": n,
                    "half": half,
                    "problems": int(m.sum()),
                    "accuracy": mean,
                    "ci_low": low,
                    "ci_high": high,
                    "flops": float(np.mean(flops[m])),
                }
            )
    tunes = {}
    for v in TUNE_VERIFIERS:
        path = work / f"tune_{v}" / "tune.json"
        if path.exists():
            tunes[v] = json.loads(path.read_text()).get("headline")
    summary = {"problems": len(ids), "rows": rows, "tune": tunes}
    out.mkdir(parents=True, exist_ok=True)
    (out / "search_experiment.json").write_text(json.dumps(summary, indent=1))
    (out / "search_experiment.md").write_text(markdown(rows))
    plot(rows, out / "search_experiment.png")
    return summary


PLOT_LINES = (
    "maj",
    "wmaj[oracle-prm-q0.9:last]",
    "beam[oracle-prm:q=0.9:4]",
    "dvts[oracle-prm:q=0.9:4]",
    "mcts[oracle-prm:q=0.9:4]",
    "beam[oracle-prm:q=1.0:4]",
    "wmaj[oracle-prm-q1:last]",
    "wmaj[prm:last]",
    "beam[prm:4]",
)


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Accuracy vs FLOPs per problem, all problems and the hard half, for the key lines."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), sharey=True)
    for ax, half in zip(axes, ("all", "hard"), strict=True):
        for name in PLOT_LINES:
            pts = sorted(
                (r for r in rows if r["strategy"] == name and r["half"] == half),
                key=lambda r: r["n"],
            )
            if not pts:
                continue
            x = [r["flops"] for r in pts]
            style = "--" if name.startswith(("wmaj", "maj")) else "-"
            ax.plot(x, [r["accuracy"] for r in pts], style, marker="o", label=name)
            ax.fill_between(x, [r["ci_low"] for r in pts], [r["ci_high"] for r in pts], alpha=0.08)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("FLOPs per problem (policy + verifier)")
        ax.set_title("all 40 problems" if half == "all" else "hard half (5-8 operations)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (95% bootstrap CI)")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle("Online search vs best-of-N weighted and majority (N = 1 ... 16 per line)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| strategy | N | all | easy (1-4 ops) | hard (5-8 ops) | FLOPs/problem |"]
    lines.append("|---|---|---|---|---|---|")
    keyed = {(r["strategy"], r["n"], r["half"]): r for r in rows}
    for name, n in sorted({(r["strategy"], r["n"]) for r in rows}):

        def cell(h: str, name: str = name, n: int = n) -> str:
            r = keyed.get((name, n, h))
            return (
                "" if r is None else f"{r['accuracy']:.3f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
            )

        flops = keyed.get((name, n, "all"), {}).get("flops", float("nan"))
        lines.append(
            f"| {name} | {n} | {cell('all')} | {cell('easy')} | {cell('hard')} | {flops:.3g} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "search_exp")
    ap.add_argument("--problems", type=int, default=40)
    ap.add_argument("--n-max", type=int, default=16)
    ap.add_argument("--stages", default="scale,tune,summary")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    stages = set(args.stages.split(","))
    if "scale" in stages:
        stage_scale(args.work, args.problems, args.n_max)
    if "tune" in stages:
        stage_tune(args.work)
    if "summary" in stages:
        s = stage_summary(args.work, args.out)
        print(markdown(s["rows"]))


if __name__ == "__main__":
    main()
