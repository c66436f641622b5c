"""Make the shipped testbed reward models: ``assets/orm_arith`` and ``assets/prm_arith``.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_default_rms.py [--backbone DIR]
        [--work runs/default_rms] [--problems 600] [--n 8] [--orm-steps 500] [--prm-steps 500]

What it does, start to end (every stage is resumable through ``WORK/pool.sqlite``):

1. **Pools.** Samples ``--n`` candidates per problem from the tiny policy (T = 1.0, 160 new
   tokens at most) on fresh ``arith`` problems: ``--problems`` training problems from seed 1000
   and ``--heldout`` evaluation problems from seed 2000, difficulties 1..8 operations. The
   scaling job's default problems come from seed 0, so none of them is trained on.
2. **Labels.** Outcome label = the candidate's final answer is right. Step labels = the exact
   step truth of the testbed (``rewardlab.label.truth.TruthLabeler`` over
   ``tasks.arith.check_steps``, ``truncate=False``): a step is good iff it and every earlier
   step are correct, so every step after the first error is bad (what ``last`` aggregation
   needs). One training row per sample, duplicates kept (the policy's distribution: most of
   its repeats are right answers; ``--dedup`` keeps one row per distinct (problem, text)).
3. **Training.** ``rewardlab.train.process``: an ORM (sequence head, BCE on the outcome) and a
   PRM (2-class token head at the ``"\\n"`` after every step, cross-entropy on the step labels),
   both from the tiny policy's backbone, on the shared training loop.
4. **Evaluation** on the held-out pool: ORM accuracy at 0.5 and AUROC; PRM ProcessBench F1
   and step AUROC (``rewardlab.evaluate.process``); best-of-n accuracy of both against
   pass@1, majority vote and pass@n. Written to ``WORK/eval.json`` and each asset's
   ``report.md``.
5. **Install.** Copies each checkpoint (safetensors, tokenizer, ``rewardlab.json``, log, loss
   plot, report) into ``src/rewardlab/assets/{orm,prm}_arith`` (``--no-install`` to skip).

The backbone defaults to ``src/rewardlab/assets/tiny_policy``; ``--backbone`` picks another
(e.g. a training checkpoint of the tiny policy). ``load_reward("orm")`` / ``load_reward("prm")``
load the installed models through ``rewardlab.rewards.learned.load_default_orm`` / ``_prm``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "src" / "rewardlab" / "assets"
ASSET_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "rewardlab.json",
    "train_log.jsonl",
    "loss.png",
    "report.md",
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sample(backbone: Path, work: Path, seed: int, problems: int, n: int) -> tuple[list, list]:
    """``problems`` arith problems from ``seed`` and ``n`` candidates each (through the store)."""
    from rewardlab.policies.registry import load_policy
    from rewardlab.search.pool import PoolSpec, sample_pool
    from rewardlab.store import SampleStore
    from rewardlab.tasks.registry import load_task
    from rewardlab.types import Sampling

    task, probs = load_task("arith", problems, seed=seed, n_ops=(1, 8))
    probs = sorted(probs, key=lambda p: int(p.meta["difficulty"]))  # similar lengths per chunk
    policy = load_policy(str(backbone), device="cpu", name="tiny")
    spec = PoolSpec(n, Sampling(1.0, 1.0, 160, seed), chunk_problems=8)
    t0 = time.monotonic()

    def progress(done: int, total: int) -> None:
        if done % 64 == 0 or done == total:
            log(f"  sampled {done}/{total} problems ({time.monotonic() - t0:.0f} s)")

    pool = sample_pool(probs, task, policy, spec, SampleStore(work / "pool.sqlite"), progress)
    return probs, pool


def write_training_data(
    work: Path, probs: list, pool: list, dedup: bool = False
) -> tuple[Path, Path, dict]:
    """TRL stepwise rows (truth step labels) and outcome rows, one per sample (``dedup``: one
    per distinct (problem, text), which under-weights the policy's frequent right answers)."""
    from rewardlab.label.truth import TruthLabeler
    from rewardlab.tasks.arith import ArithTask

    labeler = TruthLabeler(ArithTask(), truncate=False)
    steps_rows, outcome_rows, seen = [], [], set()
    for p, row in zip(probs, pool, strict=True):
        for c in row:
            if not c.steps or (dedup and (p.id, c.text) in seen):
                continue
            seen.add((p.id, c.text))
            (lab,) = labeler.label([p], [c])
            steps_rows.append(
                {
                    "prompt": p.question,
                    "completions": list(c.steps),
                    "labels": [bool(x) for x in lab.labels],
                }
            )
            outcome_rows.append(
                {
                    "prompt": p.question,
                    "completions": list(c.steps),
                    "label": bool(c.meta["correct"]),
                }
            )
    sp, op = work / "prm_train.jsonl", work / "orm_train.jsonl"
    sp.write_text("".join(json.dumps(r) + "\n" for r in steps_rows))
    op.write_text("".join(json.dumps(r) + "\n" for r in outcome_rows))
    n_steps = sum(len(r["labels"]) for r in steps_rows)
    stats = {
        "rows": len(steps_rows),
        "correct_rate": float(np.mean([r["label"] for r in outcome_rows])),
        "steps": n_steps,
        "good_step_rate": sum(sum(r["labels"]) for r in steps_rows) / max(1, n_steps),
    }
    return sp, op, stats


def train(
    objective: str,
    data: Path,
    backbone: Path,
    out: Path,
    steps: int,
    lr: float,
    batch_size: int,
    name: str,
) -> Any:
    from rewardlab.train.process import RMTrainConfig, train_orm, train_prm

    if out.exists():
        shutil.rmtree(out)
    cfg = RMTrainConfig(
        data=str(data),
        backbone=str(backbone),
        out=str(out),
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        seed=0,
        warmup_steps=30,
        log_every=25,
        name=name,
        cpu=True,
    )
    t0 = time.monotonic()

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            log(f"  {objective} step {done}/{total} ({time.monotonic() - t0:.0f} s)")

    from rewardlab.cli.train_rm import plot_loss, report_md

    fn = train_orm if objective == "orm" else train_prm
    result = fn(cfg, progress)
    plot_loss(result.history, out / "loss.png", f"{objective} on {data.name}")
    (out / "report.md").write_text(report_md(objective, cfg, result))
    log(
        f"  {objective}: final loss {result.history[-1]['loss']:.4f} "
        f"in {time.monotonic() - t0:.0f} s"
    )
    return result


def bon_accuracy(values: np.ndarray, correct: np.ndarray) -> float:
    """Best-of-n accuracy: mean over problems of correct[argmax score] (ties: expected)."""
    acc = []
    for v, c in zip(values, correct, strict=True):
        v = np.where(np.isnan(v), -np.inf, v)
        top = v == v.max()
        acc.append(float(c[top].mean()))
    return float(np.mean(acc))


def within_problem_auroc(values: np.ndarray, correct: np.ndarray) -> float:
    """Mean AUROC over problems with both right and wrong candidates (ranking, not difficulty)."""
    from rewardlab.evaluate.process import auroc

    per = [auroc(c, v) for v, c in zip(values, correct, strict=True) if 0 < c.sum() < c.size]
    return float(np.nanmean(per)) if per else float("nan")


def majority_accuracy(pool: list, correct: np.ndarray) -> float:
    acc = []
    for row, c in zip(pool, correct, strict=True):
        votes = Counter(x.answer for x in row if x.answer is not None)
        if not votes:
            acc.append(0.0)
            continue
        top = max(votes.values())
        winners = [a for a, k in votes.items() if k == top]
        right = [float(c[[x.answer for x in row].index(a)]) for a in winners]
        acc.append(float(np.mean(right)))
    return float(np.mean(acc))


def evaluate(orm_dir: Path, prm_dir: Path, probs: list, pool: list) -> dict[str, Any]:
    """Held-out metrics of both models (one scoring pass each over the whole pool)."""
    from rewardlab.evaluate.process import auroc, evaluate_process
    from rewardlab.rewards.learned import load_learned_reward
    from rewardlab.tasks.arith import check_steps

    flat_p = [p for p, row in zip(probs, pool, strict=True) for _ in row]
    flat_c = [c for row in pool for c in row]
    correct = np.array([[bool(c.meta["correct"]) for c in row] for row in pool], dtype=float)
    orm = load_learned_reward(orm_dir, device="cpu")
    prm = load_learned_reward(prm_dir, device="cpu")
    t0 = time.monotonic()
    o = orm.score(flat_p, flat_c)
    t_orm = time.monotonic() - t0
    t0 = time.monotonic()
    s = prm.score_steps(flat_p, flat_c)
    t_prm = time.monotonic() - t0
    ov = np.array([np.nan if x.value is None else x.value for x in o])
    graded = ~np.isnan(ov)
    y = correct.reshape(-1)
    out: dict[str, Any] = {
        "candidates": len(flat_c),
        "problems": len(probs),
        "n": correct.shape[1],
        "pass@1": float(correct.mean()),
        "pass@n": float(correct.max(axis=1).mean()),
        "majority@n": majority_accuracy(pool, correct),
        "bon@n[policy mean logprob]": bon_accuracy(
            np.array([[c.mean_logprob or np.nan for c in row] for row in pool]), correct
        ),
        "orm": {
            "accuracy@0.5": float(((ov[graded] > 0.5) == (y[graded] > 0.5)).mean()),
            "auroc": auroc(y[graded], ov[graded]),
            "bon@n": bon_accuracy(ov.reshape(correct.shape), correct),
            "auroc_within_problem": within_problem_auroc(ov.reshape(correct.shape), correct),
            "ungraded": int((~graded).sum()),
            "score_seconds": round(t_orm, 1),
        },
    }
    first_err, step_scores, all_y, all_s = [], [], [], []
    for p, c, sc in zip(flat_p, flat_c, s, strict=True):
        if sc.value is None:
            continue
        fe = check_steps(p, c.text).first_error
        first_err.append(fe)
        step_scores.append(list(sc.steps))
        all_y += [1.0 if fe == -1 or t < fe else 0.0 for t in range(len(sc.steps))]
        all_s += list(sc.steps)
    rep = evaluate_process(first_err, step_scores, dev_fraction=0.3, seed=0)
    prm_out: dict[str, Any] = {
        "processbench_f1@0.5": rep.test_at_fixed.f1,
        "processbench_f1@tuned": rep.test.f1,
        "tuned_threshold": rep.threshold,
        "step_auroc_to_first_error": rep.auroc,
        "step_auroc_all_steps": auroc(np.array(all_y), np.array(all_s)),
        "ece": rep.calibration.ece,
        "score_seconds": round(t_prm, 1),
    }
    for how in ("last", "min", "prod", "mean"):
        from rewardlab.rewards.prm import aggregate

        v = np.array([np.nan if x.value is None else aggregate(x.steps, how) for x in s])
        prm_out[f"bon@n[{how}]"] = bon_accuracy(v.reshape(correct.shape), correct)
        prm_out[f"auroc_within_problem[{how}]"] = within_problem_auroc(
            v.reshape(correct.shape), correct
        )
    out["prm"] = prm_out
    return out


def install(src: Path, name: str, evaluation: dict[str, Any], key: str) -> Path:
    dest = ASSETS / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for f in ASSET_FILES:
        if (src / f).is_file():
            shutil.copy2(src / f, dest / f)
    report = (src / "report.md").read_text() if (src / "report.md").is_file() else ""
    report += "\n## Held-out evaluation (scripts/train_default_rms.py)\n\n```json\n"
    shared = {k: v for k, v in evaluation.items() if k not in ("orm", "prm")}
    report += json.dumps({**shared, key: evaluation[key]}, indent=2) + "\n```\n"
    (dest / "report.md").write_text(report)
    size = sum(f.stat().st_size for f in dest.iterdir())
    log(f"installed {dest} ({size / 1e6:.1f} MB)")
    return dest


def default_backbone() -> Path:
    shipped = ASSETS / "tiny_policy"
    if (shipped / "config.json").is_file():
        return shipped
    raise SystemExit("no shipped tiny policy yet: pass --backbone DIR (a tiny-policy checkpoint)")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "default_rms")
    ap.add_argument("--problems", type=int, default=600)
    ap.add_argument("--heldout", type=int, default=160)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--orm-steps", type=int, default=500)
    ap.add_argument("--prm-steps", type=int, default=500)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dedup", action="store_true", help="one row per distinct solution text")
    ap.add_argument("--no-install", action="store_true")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    backbone = (args.backbone or default_backbone()).resolve()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    log(f"backbone {backbone}; work dir {work}")
    log(f"sampling the training pool: {args.problems} problems (seed 1000) x {args.n}")
    train_p, train_pool = sample(backbone, work, 1000, args.problems, args.n)
    log(f"sampling the held-out pool: {args.heldout} problems (seed 2000) x {args.n}")
    held_p, held_pool = sample(backbone, work, 2000, args.heldout, args.n)
    steps_file, outcome_file, stats = write_training_data(work, train_p, train_pool, args.dedup)
    log(f"training data: {stats}")
    orm = train(
        "orm",
        outcome_file,
        backbone,
        work / "orm_arith",
        args.orm_steps,
        args.lr,
        args.batch_size,
        "orm_arith",
    )
    prm = train(
        "prm",
        steps_file,
        backbone,
        work / "prm_arith",
        args.prm_steps,
        args.lr,
        args.batch_size,
        "prm_arith",
    )
    log("evaluating on the held-out pool")
    evaluation = evaluate(orm.out, prm.out, held_p, held_pool)
    summary = {
        "backbone": str(backbone),
        "labels": "exact step truth (TruthLabeler, truncate=False)",
        "dedup": args.dedup,
        "training_data": stats,
        "orm_history": orm.history,
        "prm_history": prm.history,
        "heldout": evaluation,
    }
    (work / "eval.json").write_text(json.dumps(summary, indent=2))
    log(json.dumps(evaluation, indent=2))
    if not args.no_install:
        install(orm.out, "orm_arith", evaluation, "orm")
        install(prm.out, "prm_arith", evaluation, "prm")
    return summary


if __name__ == "__main__":
    main()
