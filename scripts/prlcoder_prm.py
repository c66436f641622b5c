"""Experiment: a tiny PRM trained on PRLCoder line labels, line-level F1 on held-out problems.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/prlcoder_prm.py [--work runs/prlcoder]
        [--steps 300] [--holdout-every 4]

1. **Labels.** ``rewardlab label --method prlcoder --task code`` on all 42 shipped code
   problems (every one-line mutant; resumes from ``WORK/labels/pool.sqlite``).
2. **Split by problem.** Every ``--holdout-every``-th problem (file order, starting at the
   last of each block) is held out with all its records; the PRM never sees its lines.
3. **Training.** ``rewardlab train --objective prm`` on the training records, default backbone
   (the shipped tiny policy, a 4-layer Llama whose BPE covers ASCII), default settings but
   ``--steps``.
4. **Evaluation.** The PRM scores the held-out records. The backbone is causal, so a step's
   score depends on the prompt and the lines up to it only: every distinct (problem, prefix)
   is one item (the reference's lines recur as the prefix of many mutants; counted once),
   labelled good or bad as in the records. Reported: step AUROC, and line-level F1 of the
   *bad* class at the threshold that maximises it on the training items, each with a 95%
   interval over resampled held-out problems; beside them the constant predictor "every line
   bad" (its F1 = 2p/(1+p), p the bad fraction) and the same numbers on the training items.

Writes ``docs/results/prlcoder_prm.json`` and ``.md``. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "rewardlab.cli.main"]


def run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    print("+", " ".join(cmd[3:]), flush=True)
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def items(rows: list[dict[str, Any]]) -> list[tuple[str, str, tuple[str, ...], bool]]:
    """Distinct (problem, prompt, prefix, label) of the records' labelled steps."""
    seen: dict[tuple[str, tuple[str, ...]], tuple[str, str, tuple[str, ...], bool]] = {}
    for r in rows:
        for k, y in enumerate(r["labels"]):
            prefix = tuple(r["completions"][: k + 1])
            key = (r["problem"]["id"], prefix)
            if key in seen and seen[key][3] != bool(y):
                raise SystemExit(f"conflicting labels for a prefix of {key[0]}")
            seen[key] = (key[0], r["prompt"], prefix, bool(y))
    return list(seen.values())


def score(reward: Any, its: list[tuple[str, str, tuple[str, ...], bool]]) -> np.ndarray:
    """P(good) at the last step of each item's prefix (one forward pass per prefix)."""
    from rewardlab.types import Candidate, Problem

    out = []
    for s in range(0, len(its), 32):
        part = its[s : s + 32]
        probs = [Problem(pid, prompt, "") for pid, prompt, _, _ in part]
        cands = [Candidate(pid, "\n".join(pre), pre, None) for pid, _, pre, _ in part]
        out += [sc.steps[-1] if sc.steps else np.nan for sc in reward.score_steps(probs, cands)]
    return np.asarray(out, dtype=float)  # NaN: longer than the backbone's context (ungraded)


def bad_f1(bad: np.ndarray, flagged: np.ndarray) -> float:
    tp = float((bad & flagged).sum())
    fp, fn = float((~bad & flagged).sum()), float((bad & ~flagged).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")


def best_threshold(good: np.ndarray, p: np.ndarray) -> float:
    cands = np.unique(np.concatenate([p, [np.inf]]))
    f1 = [bad_f1(~good, p < t) for t in cands]
    return float(cands[int(np.nanargmax(f1))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="runs/prlcoder")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--holdout-every", type=int, default=4)
    args = ap.parse_args()
    from rewardlab.evaluate.process import auroc
    from rewardlab.evaluate.rm_metrics import grouped_stat_ci
    from rewardlab.rewards.registry import load_reward
    from rewardlab.tasks.code import bundled

    work = Path(args.work)
    load0 = os.getloadavg()[0]
    t0 = time.time()
    run(
        [
            *(*CLI, "label", "--method", "prlcoder", "--task", "code", "--problems", "42"),
            *("--chunk", "64", "--out", str(work / "labels")),
        ]
    )
    t_label = time.time() - t0
    ids = [p.id for p in bundled()]
    held = {pid for i, pid in enumerate(ids) if i % args.holdout_every == args.holdout_every - 1}
    rows = [json.loads(x) for x in (work / "labels" / "labels.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["problem"]["id"] not in held]
    test = [r for r in rows if r["problem"]["id"] in held]
    (work / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    prm = work / f"prm_{args.steps}steps"
    t1 = time.time()
    if not (prm / "rewardlab.json").exists():
        run(
            [
                *(*CLI, "train", "--objective", "prm", "--data", str(work / "train.jsonl")),
                *("--out", str(prm), "--steps", str(args.steps)),
            ]
        )
    log = (prm / "train_log.jsonl").read_text().splitlines()
    t_train = float(json.loads(log[-1])["seconds"]) if log else time.time() - t1  # the trainer's
    reward = load_reward(str(prm), device="cpu")
    result: dict[str, Any] = {
        "held_out_problems": sorted(held),
        "records": {"train": len(train), "test": len(test)},
        "steps": args.steps,
        "seconds": {"label": round(t_label, 1), "train": round(t_train, 1)},
    }
    tr_items, te_items = items(train), items(test)
    p_tr, p_te = score(reward, tr_items), score(reward, te_items)
    result["too_long"] = {"train": int(np.isnan(p_tr).sum()), "held_out": int(np.isnan(p_te).sum())}
    tr_items = [it for it, p in zip(tr_items, p_tr, strict=True) if not np.isnan(p)]
    te_items = [it for it, p in zip(te_items, p_te, strict=True) if not np.isnan(p)]
    p_tr, p_te = p_tr[~np.isnan(p_tr)], p_te[~np.isnan(p_te)]
    g_tr = np.array([y for *_, y in tr_items])
    g_te = np.array([y for *_, y in te_items])
    thr = best_threshold(g_tr, p_tr)
    groups = np.array([pid for pid, *_ in te_items])
    for name, g, p, grp in (
        ("train", g_tr, p_tr, np.array([pid for pid, *_ in tr_items])),
        ("held_out", g_te, p_te, groups),
    ):
        frac_bad = float((~g).mean())

        def f1(idx: np.ndarray, g: np.ndarray = g, p: np.ndarray = p) -> float:
            return bad_f1(~g[idx], p[idx] < thr)

        def auc(idx: np.ndarray, g: np.ndarray = g, p: np.ndarray = p) -> float:
            return auroc(g[idx].astype(float), p[idx])

        result[name] = {
            "items": int(g.size),
            "bad_items": int((~g).sum()),
            "bad_f1": grouped_stat_ci(f1, grp, n_boot=1000, rng=0),
            "auroc": grouped_stat_ci(auc, grp, n_boot=1000, rng=0),
            "all_bad_f1": 2 * frac_bad / (1 + frac_bad),
        }
    result["threshold"] = thr
    result["load_1m"] = {"before": round(load0, 2), "after": round(os.getloadavg()[0], 2)}
    out = ROOT / "docs" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "prlcoder_prm.json").write_text(json.dumps(result, indent=2) + "\n")
    md = markdown(result)
    (out / "prlcoder_prm.md").write_text(md)
    print(md)


def _ci(t: list[float] | tuple[float, ...]) -> str:
    return f"{t[0]:.3f} [{t[1]:.3f}, {t[2]:.3f}]"


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "# A tiny PRM on PRLCoder line labels",
        "",
        f"`scripts/prlcoder_prm.py`: labels on the 42 shipped code problems, "
        f"{len(r['held_out_problems'])} problems held out ({', '.join(r['held_out_problems'])}), "
        f"{r['records']['train']} training records, PRM = the shipped tiny policy backbone "
        f"trained {r['steps']} steps (`rewardlab train --objective prm`). Items are distinct "
        "(problem, line prefix) pairs; 95% intervals resample problems; items longer than the "
        f"backbone's 512 tokens are left out ({r['too_long']['train']} train, "
        f"{r['too_long']['held_out']} held-out). Threshold for F1: the "
        f"best on the training items ({r['threshold']:.3f}, on P(good)).",
        "",
        "| items | n (bad) | bad-line F1 | every-line-bad F1 | step AUROC |",
        "|---|---|---|---|---|",
    ]
    for name in ("train", "held_out"):
        s = r[name]
        lines.append(
            f"| {name.replace('_', '-')} | {s['items']} ({s['bad_items']}) | {_ci(s['bad_f1'])} "
            f"| {s['all_bad_f1']:.3f} | {_ci(s['auroc'])} |"
        )
    lines += [
        "",
        f"Wall: labels {r['seconds']['label']} s (a few s when resumed from the store), "
        f"training {r['seconds']['train']} s (the trainer's log); 1-min load "
        f"{r['load_1m']['before']} before, "
        f"{r['load_1m']['after']} after.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
