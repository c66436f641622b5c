"""Make the shipped testbed reward models: ``assets/orm_arith``, ``assets/prm_arith`` and
``assets/implicit_prm_arith``.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_default_rms.py [--backbone DIR]
        [--work runs/default_rms] [--problems 2000] [--n 8] [--orm-steps 1200]
        [--prm-steps 1200] [--implicit-steps 1200] [--lr 3e-4] [--beta 0.1]

What it does, start to end (sampling resumes through ``WORK/pool.sqlite``; a finished
checkpoint with the same settings is reused, so a re-run after a crash continues):

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
3. **Training** (``rewardlab.train.process``, the shared loop), all from the tiny policy's
   backbone: an ORM (sequence head, BCE on the outcome), a PRM (2-class token head at the
   ``"\\n"`` after every step, cross-entropy on the step labels) and an implicit PRM (the
   causal LM itself, CE on ``r = beta * sum log(pi / pi_ref)`` against the outcome, Yuan et
   al. 2024; step rewards are the per-step sums of the log-ratio).
4. **Evaluation** on the held-out pool: ORM accuracy at 0.5 and AUROC; for both PRMs
   ProcessBench F1 (threshold tuned on a dev split) and step AUROC; best-of-n accuracy and
   within-problem AUROC of every model and aggregation against pass@1, majority vote, the
   policy's mean log-probability and pass@n. Written to ``WORK/eval.json`` and each asset's
   ``report.md``.
5. **Install.** Copies each checkpoint (safetensors, tokenizer, ``rewardlab.json``, log, loss
   plot, report) into ``src/rewardlab/assets/`` (``--no-install`` to skip); the implicit PRM's
   reference is the shipped tiny policy itself (``"ref": "../tiny_policy"``), not a copy.

The backbone defaults to ``src/rewardlab/assets/tiny_policy``; ``--backbone`` picks another
(e.g. a training checkpoint of the tiny policy). ``load_reward("orm")``, ``load_reward("prm")``
and ``load_reward("implicit-prm")`` load the installed models.
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
    beta: float = 0.1,
) -> tuple[Path, list[dict[str, Any]]]:
    """Train one model into ``out``; a finished checkpoint with the same settings is reused
    (the stage resumes), anything else there is replaced."""
    from rewardlab.train.process import (
        RMTrainConfig,
        train_implicit,
        train_orm,
        train_prm,
    )

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
        beta=beta,
        cpu=True,
    )
    done = _finished(out, objective, cfg)
    if done is not None:
        log(f"  {objective}: reusing the finished checkpoint in {out}")
        if not (out / "loss.png").is_file():
            from rewardlab.cli.train_rm import plot_loss

            plot_loss(done, out / "loss.png", f"{objective} on {data.name}")
        return out, done
    if out.exists():
        shutil.rmtree(out)
    t0 = time.monotonic()

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            log(f"  {objective} step {done}/{total} ({time.monotonic() - t0:.0f} s)")

    from rewardlab.cli.train_rm import plot_loss, report_md

    fn = {"orm": train_orm, "prm": train_prm, "implicit": train_implicit}[objective]
    result = fn(cfg, progress)
    plot_loss(result.history, out / "loss.png", f"{objective} on {data.name}")
    (out / "report.md").write_text(report_md(objective, cfg, result))
    log(
        f"  {objective}: final loss {result.history[-1]['loss']:.4f} "
        f"in {time.monotonic() - t0:.0f} s"
    )
    return out, result.history


def _finished(out: Path, objective: str, cfg: Any) -> list[dict[str, Any]] | None:
    """The training history of a finished checkpoint in ``out`` made with these settings."""
    man, log_file = out / "rewardlab.json", out / "train_log.jsonl"
    if not (man.is_file() and log_file.is_file()):
        return None
    t = json.loads(man.read_text()).get("training", {})
    same = (
        t.get("objective") == objective
        and Path(str(t.get("data"))).resolve() == Path(cfg.data).resolve()
        and (t.get("steps"), t.get("lr"), t.get("batch_size"), t.get("seed"))
        == (cfg.steps, cfg.lr, cfg.batch_size, cfg.seed)
    )
    if not same:
        return None
    rows = [json.loads(x) for x in log_file.read_text().splitlines() if x.strip()]
    return [r for r in rows if "step" in r]


def bon_accuracy(values: np.ndarray, correct: np.ndarray) -> float:
    """Best-of-n accuracy: mean over problems of correct[argmax score] (ties: expected; NaN
    ranks last), i.e. :func:`rewardlab.evaluate.estimators.bon_at_k` at k = n."""
    from rewardlab.evaluate.estimators import bon_at_k

    return float(bon_at_k(values, correct.astype(bool), [values.shape[1]]).mean())


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


def evaluate(dirs: dict[str, Path], probs: list, pool: list) -> dict[str, Any]:
    """Held-out metrics of every model (one scoring pass each over the whole pool).

    Outcome models (``orm``): accuracy at 0.5, AUROC, best-of-n. Process models (``prm``,
    ``implicit-prm``): ProcessBench F1 (threshold tuned on a dev split of the held-out pool),
    step AUROC, ECE (probability PRMs only), and best-of-n and within-problem AUROC with each
    aggregation.
    """
    from rewardlab.evaluate.process import auroc
    from rewardlab.rewards.learned import load_learned_reward

    flat_p = [p for p, row in zip(probs, pool, strict=True) for _ in row]
    flat_c = [c for row in pool for c in row]
    correct = np.array([[bool(c.meta["correct"]) for c in row] for row in pool], dtype=float)
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
    }
    for key, path in dirs.items():
        model = load_learned_reward(path, device="cpu")
        t0 = time.monotonic()
        if key == "orm":
            scores = model.score(flat_p, flat_c)
            seconds = time.monotonic() - t0
            ov = np.array([np.nan if x.value is None else x.value for x in scores])
            graded = ~np.isnan(ov)
            y = correct.reshape(-1)
            out[key] = {
                "accuracy@0.5": float(((ov[graded] > 0.5) == (y[graded] > 0.5)).mean()),
                "auroc": auroc(y[graded], ov[graded]),
                "bon@n": bon_accuracy(ov.reshape(correct.shape), correct),
                "auroc_within_problem": within_problem_auroc(ov.reshape(correct.shape), correct),
                "ungraded": int((~graded).sum()),
            }
        else:
            scores = model.score_steps(flat_p, flat_c)
            seconds = time.monotonic() - t0
            out[key] = step_metrics(flat_p, flat_c, scores, correct)
        out[key]["score_seconds"] = round(seconds, 1)
    return out


def step_metrics(flat_p: list, flat_c: list, scores: list, correct: np.ndarray) -> dict[str, Any]:
    """A process model's step-level and selection metrics on the held-out pool."""
    from rewardlab.evaluate.estimators import aggregate_steps
    from rewardlab.evaluate.process import auroc, evaluate_process
    from rewardlab.tasks.arith import check_steps

    first_err, step_scores, all_y, all_s = [], [], [], []
    for p, c, sc in zip(flat_p, flat_c, scores, strict=True):
        if sc.value is None:
            continue
        fe = check_steps(p, c.text).first_error
        first_err.append(fe)
        step_scores.append(list(sc.steps))
        all_y += [1.0 if fe == -1 or t < fe else 0.0 for t in range(len(sc.steps))]
        all_s += list(sc.steps)
    flat = np.array(all_s, dtype=float)
    bounded = bool(flat.size) and flat.min() >= 0.0 and flat.max() <= 1.0
    rep = evaluate_process(first_err, step_scores, dev_fraction=0.3, seed=0)
    res: dict[str, Any] = {
        "processbench_f1@0.5": rep.test_at_fixed.f1 if bounded else None,
        "processbench_f1@tuned": rep.test.f1,
        "tuned_threshold": rep.threshold,
        "step_auroc_to_first_error": rep.auroc,
        "step_auroc_all_steps": auroc(np.array(all_y), flat),
        "ece": rep.calibration.ece if bounded else None,
    }
    steps = [np.array(s.steps if s.value is not None else [], dtype=float) for s in scores]
    for how in ("last", "min", "prod", "mean") if bounded else ("last", "min", "mean", "sum"):
        v = aggregate_steps(steps, how).reshape(correct.shape)  # type: ignore[arg-type]
        res[f"bon@n[{how}]"] = bon_accuracy(v, correct)
        res[f"auroc_within_problem[{how}]"] = within_problem_auroc(v, correct)
    return res


def install(src: Path, name: str, evaluation: dict[str, Any], key: str) -> Path:
    """Copy a checkpoint into ``rewardlab/assets/<name>`` with its held-out evaluation. An
    implicit PRM whose reference equals the shipped tiny policy points its manifest at
    ``../tiny_policy`` instead of shipping a second copy of the same weights."""
    dest = ASSETS / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for f in ASSET_FILES:
        if (src / f).is_file():
            shutil.copy2(src / f, dest / f)
    man = json.loads((src / "rewardlab.json").read_text())
    if man.get("ref"):
        tiny = ASSETS / "tiny_policy" / "model.safetensors"
        ref = src / man["ref"] / "model.safetensors"
        if tiny.is_file() and _same_tensors(ref, tiny):
            man["ref"] = "../tiny_policy"
        else:
            shutil.copytree(src / man["ref"], dest / man["ref"])
    man["name"] = name
    tiny_dir = (ASSETS / "tiny_policy").resolve()
    if man.get("backbone") and Path(man["backbone"]).resolve() == tiny_dir:
        man["backbone"] = "../tiny_policy"  # provenance without this machine's path
    (dest / "rewardlab.json").write_text(json.dumps(man, indent=2) + "\n")
    report = (src / "report.md").read_text() if (src / "report.md").is_file() else ""
    report += "\n## Held-out evaluation (scripts/train_default_rms.py)\n\n```json\n"
    shared = {k: v for k, v in evaluation.items() if not isinstance(v, dict)}
    report += json.dumps({**shared, key: evaluation[key]}, indent=2) + "\n```\n"
    (dest / "report.md").write_text(report)
    size = sum(f.stat().st_size for f in dest.iterdir())
    log(f"installed {dest} ({size / 1e6:.1f} MB)")
    return dest


def _same_tensors(a: Path, b: Path) -> bool:
    from safetensors.numpy import load_file

    x, y = load_file(str(a)), load_file(str(b))
    return x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)


def default_backbone() -> Path:
    shipped = ASSETS / "tiny_policy"
    if (shipped / "config.json").is_file():
        return shipped
    raise SystemExit("no shipped tiny policy yet: pass --backbone DIR (a tiny-policy checkpoint)")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "default_rms")
    ap.add_argument("--problems", type=int, default=2000)
    ap.add_argument("--heldout", type=int, default=160)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--orm-steps", type=int, default=1200)
    ap.add_argument("--prm-steps", type=int, default=1200)
    ap.add_argument("--implicit-steps", type=int, default=1200)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--beta", type=float, default=0.1, help="implicit PRM reward scale")
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
    plan = {  # key: (objective, data, steps, work subdir, asset name)
        "orm": ("orm", outcome_file, args.orm_steps, "orm_arith"),
        "prm": ("prm", steps_file, args.prm_steps, "prm_arith"),
        "implicit-prm": ("implicit", outcome_file, args.implicit_steps, "implicit_prm_arith"),
    }
    dirs, histories = {}, {}
    for key, (objective, data, steps, sub) in plan.items():
        dirs[key], histories[key] = train(
            objective,
            data,
            backbone,
            work / sub,
            steps,
            args.lr,
            args.batch_size,
            sub,
            args.beta,
        )
    log("evaluating on the held-out pool")
    evaluation = evaluate(dirs, held_p, held_pool)
    summary = {
        "backbone": str(backbone),
        "labels": "exact step truth (TruthLabeler, truncate=False)",
        "dedup": args.dedup,
        "training_data": stats,
        "histories": histories,
        "heldout": evaluation,
    }
    (work / "eval.json").write_text(json.dumps(summary, indent=2))
    log(json.dumps(evaluation, indent=2))
    if not args.no_install:
        for key, (_, _, _, sub) in plan.items():
            install(dirs[key], sub, evaluation, key)
    return summary


if __name__ == "__main__":
    main()
