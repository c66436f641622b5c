"""Experiment: do synthetic wrong answer lines teach a PRM to check the final line?

    OMP_NUM_THREADS=1 .venv/bin/python scripts/answer_line_negatives.py
        [--work runs/label_sources] [--steps 200] [--seed 0]

The shipped ORM/PRM/implicit PRM score "... = 248 / The answer is 249." like the right line
(docs/reward_models.md): the tiny policy never writes a final line that disagrees with its last
step, so no training row shows one. This script measures whether adding such rows fixes it:

1. **Data.** The truth labels of ``scripts/prm_label_sources.py`` (``WORK/truth/labels.jsonl``,
   1,200 solutions). Every fully correct record ending in ``The answer is n.`` gets a copy whose
   final line says ``n + d`` (d a non-zero integer in [-9, 9], seeded), labelled wrong at that
   step only (the testbed's checker agrees: the step is checked with ``check_steps``).
2. **Training.** ``rewardlab train --objective prm`` on the original rows and on the augmented
   rows, same steps, learning rate, batch size and seed as the label-sources experiment.
3. **Probe.** Every held-out candidate right at every step (the shipped models' pool: 160
   problems, seed 2000, x 8) beside the same candidate with its final line corrupted the same
   way: pairwise accuracy of the final-step score (right line above wrong line; ties count one
   half). Held-out step metrics of both PRMs show what the extra rows cost. The shipped models
   are probed too.

Writes ``WORK/answer_line_<steps>steps.{json,md}``. Not a test.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import prm_label_sources as pls  # noqa: E402
import train_default_rms as rms  # noqa: E402

ANSWER = re.compile(r"^The answer is (-?\d+)\.$")


def corrupt(line: str, rng: random.Random) -> str | None:
    """``The answer is n.`` -> ``The answer is n+d.`` with d in [-9, 9] \\ {0}; else None."""
    m = ANSWER.match(line.strip())
    if m is None:
        return None
    d = rng.choice([x for x in range(-9, 10) if x != 0])
    return f"The answer is {int(m.group(1)) + d}."


def augment(rows: list[dict[str, Any]], seed: int) -> tuple[list[dict[str, Any]], int]:
    """The rows plus one wrong-answer-line copy of each fully correct one; and how many."""
    rng = random.Random(seed)
    extra = []
    for row in rows:
        if not row["labels"] or not all(row["labels"]):
            continue
        wrong = corrupt(row["completions"][-1], rng)
        if wrong is None:
            continue
        extra.append(
            {
                **row,
                "completions": [*row["completions"][:-1], wrong],
                "labels": [*row["labels"][:-1], False],
                "id": f"{row['id']}+wrong-answer",
                "first_error": len(row["labels"]) - 1,
            }
        )
    return rows + extra, len(extra)


def probe_pairs(probs: list, pool: list, seed: int) -> tuple[list, list, list]:
    """(problems, candidates, corrupted copies) for every held-out candidate right at every step."""
    from rewardlab.tasks.arith import check_steps

    rng = random.Random(seed + 1)
    ps, right, wrong = [], [], []
    for p, row in zip(probs, pool, strict=True):
        for c in row:
            if not c.steps or check_steps(p, c.text).first_error != -1:
                continue  # only candidates right at every step (a right answer can hide a slip)
            line = corrupt(c.steps[-1], rng)
            if line is None:
                continue
            steps = (*c.steps[:-1], line)
            text = "\n".join(steps)
            report = check_steps(p, text)
            assert report.first_error == len(steps) - 1, (text, report)
            ps.append(p)
            right.append(c)
            wrong.append(replace(c, text=text, steps=steps, answer=line.split()[-1].rstrip(".")))
    return ps, right, wrong


def final_scores(model: Any, probs: list, cands: list) -> list[float]:
    """The score of the final step (process models) or of the whole solution (outcome models)."""
    if hasattr(model, "score_steps"):
        return [
            s.steps[-1] if s.value is not None else float("nan")
            for s in model.score_steps(probs, cands)
        ]
    return [float("nan") if s.value is None else s.value for s in model.score(probs, cands)]


def pairwise_accuracy(right: list[float], wrong: list[float]) -> float:
    wins = sum(1.0 if r > w else 0.5 if r == w else 0.0 for r, w in zip(right, wrong, strict=True))
    return wins / len(right)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "label_sources")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heldout-work", type=Path, default=ROOT / "runs" / "rms_v2")
    args = ap.parse_args(argv)
    work = args.work.resolve()
    started = time.monotonic()

    rows = [json.loads(x) for x in (work / "truth" / "labels.jsonl").read_text().splitlines()]
    augmented, added = augment(rows, args.seed)
    data = work / "truth_answer_negatives" / "labels.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("".join(json.dumps(r) + "\n" for r in augmented))
    rms.log(f"{len(rows)} rows + {added} wrong-answer-line copies -> {data}")

    tag = f"{args.steps}steps" + (f"_seed{args.seed}" if args.seed else "")
    plan = {"truth": work / "truth" / "labels.jsonl", "truth + answer negatives": data}
    dirs = {name: work / f"prm_{name.replace(' + ', '_').replace(' ', '_')}_{tag}" for name in plan}
    commands = {
        f"train-{name.replace(' ', '')}-{tag}": [
            *pls.CLI,
            "train",
            "--objective",
            "prm",
            "--steps",
            str(args.steps),
            "--lr",
            "3e-4",
            "--batch-size",
            "16",
            "--threads",
            "1",
            "--seed",
            str(args.seed),
            "--data",
            str(plan[name]),
            "--out",
            str(dirs[name]),
        ]
        for name in plan
        if not (dirs[name] / "rewardlab.json").exists()
    }
    pls.run_all(commands, work, 2)

    import torch

    from rewardlab.policies.registry import tiny_policy_dir
    from rewardlab.rewards.learned import load_learned_reward

    torch.set_num_threads(1)
    probs, pool = rms.sample(tiny_policy_dir(), args.heldout_work.resolve(), 2000, 160, 8)
    ps, right, wrong = probe_pairs(probs, pool, args.seed)
    rms.log(f"probe: {len(right)} held-out candidates right at every step, and corrupted copies")
    heldout = rms.evaluate(dirs, probs, pool)
    probed = {
        **dirs,
        "shipped prm": rms.ASSETS / "prm_arith",
        "shipped orm": rms.ASSETS / "orm_arith",
        "shipped implicit-prm": rms.ASSETS / "implicit_prm_arith",
    }
    result: dict[str, Any] = {"config": {**vars(args), "work": str(work)}, "rows": len(rows)}
    result["added"], result["probe_pairs"], result["models"] = added, len(right), {}
    for name, path in probed.items():
        model = load_learned_reward(path, device="cpu")
        r, w = final_scores(model, ps, right), final_scores(model, ps, wrong)
        result["models"][name] = {
            "checkpoint": str(path),
            "answer_line_pairwise_accuracy": pairwise_accuracy(r, w),
            "mean_final_score_right": sum(r) / len(r),
            "mean_final_score_wrong": sum(w) / len(w),
            "heldout": heldout.get(name),
        }
    result["seconds"] = time.monotonic() - started
    stem = work / f"answer_line_{tag}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    text = markdown(result)
    stem.with_suffix(".md").write_text(text)
    print(text)
    return result


def markdown(res: dict[str, Any]) -> str:
    lines = [
        "# Wrong final answer lines: does a PRM notice?",
        "",
        f"{res['rows']} truth-labelled rows (+ {res['added']} wrong-answer-line copies for the "
        f"augmented PRM); {res['config']['steps']} training steps, seed {res['config']['seed']}. "
        f"Probe: {res['probe_pairs']} held-out candidates right at every step, each beside a "
        "copy whose final line is off by 1-9.",
        "",
        "| model | answer-line pairwise accuracy | final score, right / wrong line | "
        "PB F1 (tuned) | step AUROC | best-of-8 `min` |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in res["models"].items():
        ev = m["heldout"]
        tail = (
            f"{ev['processbench_f1@tuned']:.3f} | {ev['step_auroc_to_first_error']:.3f} | "
            f"{ev['bon@n[min]']:.3f}"
            if ev
            else "- | - | -"
        )
        lines.append(
            f"| {name} | {m['answer_line_pairwise_accuracy']:.3f} | "
            f"{m['mean_final_score_right']:.3f} / {m['mean_final_score_wrong']:.3f} | {tail} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
