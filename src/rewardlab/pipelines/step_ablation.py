"""Step ablation by retraining: the same PRM recipe trained and scored per input condition.

Ma et al. 2025, "What are step-level reward models rewarding? Counterintuitive findings from
MCTS-boosted mathematical reasoning", train one step-level RM per input condition and compare
them: full steps, steps stripped to their maths expressions, and the reverse. Here, on the
``arith`` testbed, where the step truth is exact:

1. **Conditions** (:func:`rewardlab.evaluate.trust_eval.ablate_steps`): ``words+math`` (each
   equation behind the question's sentence for it: the full steps), ``math`` (the words
   removed: the bare arithmetic), ``words`` (the arithmetic removed).
2. **Training data** (:func:`training_rows`): every candidate of one labelled training pool,
   its steps transformed, its labels the exact step truth of the original steps
   (:func:`rewardlab.rewards.oracle.step_labels`: step i is good iff steps 0..i are correct).
   The transform keeps one step per step, so the labels are the same in every condition; only
   the text differs.
3. **Training**: :func:`rewardlab.train.process.train_prm` with one :class:`AblationConfig`
   (backbone, steps, lr, batch, seed) for every condition.
4. **Evaluation** on one held-out pool, transformed the same way (:func:`condition_metrics`):
   ProcessBench F1 (threshold tuned on a seeded dev split of the distinct held-out solutions,
   reported on the rest), step AUROC against the exact labels over all steps, and best-of-N
   accuracy (exact expectation over ties) per step aggregation; every number with a 95%
   bootstrap CI that resamples problems. pass@1 and pass@N are the baselines.

Resumable per condition: ``WORK/<condition>/`` holds the training rows, the checkpoint, an
``ablation.json`` stamp (settings + a fingerprint of the training rows) and the held-out step
scores (keyed by a fingerprint of the held-out pool); a re-run reuses what matches.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.evaluate import trust as T
from rewardlab.evaluate.estimators import aggregate_steps, bon_at_k
from rewardlab.evaluate.process import choose_threshold, predicted_first_error, split_dev_test
from rewardlab.evaluate.reward_eval import Estimate, EvalResult
from rewardlab.evaluate.rm_metrics import grouped_replicates, interval
from rewardlab.evaluate.trust_eval import STEP_CONDITIONS, ablate_steps, pool_correct
from rewardlab.rewards.oracle import step_labels
from rewardlab.tasks.arith import check_steps
from rewardlab.types import Candidate, Problem

Log = Callable[[str], None]
AGGREGATES = ("last", "min")
PRIOR = "no text"
"""The baseline that reads no step text (:func:`position_prior`), in ``baseline``."""
FULL = "words+math"
"""The full steps: the paired differences (``delta/*``) are taken against this condition."""


@dataclass(frozen=True)
class AblationConfig:
    """One retraining ablation: the PRM recipe every condition is trained with, and the
    evaluation settings. ``work`` holds one folder per condition."""

    backbone: str
    work: str
    steps: int = 120
    lr: float = 3e-4
    batch_size: int = 16
    seed: int = 0
    warmup_steps: int = 30
    conditions: tuple[str, ...] = STEP_CONDITIONS
    aggregates: tuple[str, ...] = AGGREGATES
    dev_fraction: float = 0.3
    n_boot: int = 1000

    def __post_init__(self) -> None:
        bad = [c for c in self.conditions if c not in STEP_CONDITIONS]
        if bad or not self.conditions:
            raise ValueError(f"conditions must be among {STEP_CONDITIONS}, got {self.conditions}")
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("steps and batch_size must be >= 1 and lr > 0")
        if not 0.0 < self.dev_fraction < 1.0:
            raise ValueError(f"dev_fraction must be in (0, 1), got {self.dev_fraction}")

    def recipe(self) -> dict[str, Any]:
        """The settings a finished checkpoint must share to be reused."""
        keys = ("backbone", "steps", "lr", "batch_size", "seed", "warmup_steps")
        return {k: asdict(self)[k] for k in keys}


# ------------------------------------------------------------------------------ pure parts


def training_rows(
    problems: Sequence[Problem], pool: Sequence[Sequence[Candidate]], condition: str
) -> list[dict[str, Any]]:
    """TRL stepwise rows ``{"prompt", "completions", "labels"}``: one per candidate with steps
    (duplicates kept, as the shipped PRM's data), steps under ``condition``, labels the exact
    step truth of the original steps."""
    rows = []
    for p, cands in zip(problems, pool, strict=True):
        for c in cands:
            if not c.steps:
                continue
            rows.append(
                {
                    "prompt": p.question,
                    "completions": list(ablate_steps(p, c.steps, condition)),
                    "labels": step_labels(p, c.steps),
                }
            )
    if not rows:
        raise ValueError("the training pool has no candidate with steps")
    return rows


def fingerprint(obj: Any) -> str:
    """A short sha256 of ``obj``'s JSON (stable across processes)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _distinct(
    problems: Sequence[Problem], pool: Sequence[Sequence[Candidate]]
) -> list[tuple[int, Candidate]]:
    out = []
    for i, cands in enumerate(pool):
        seen: set[str] = set()
        for c in cands:
            if c.text not in seen and c.steps:
                seen.add(c.text)
                out.append((i, c))
    return out


def condition_metrics(
    problems: Sequence[Problem],
    pool: Sequence[Sequence[Candidate]],
    scores: dict[tuple[int, str], tuple[float, ...]],
    *,
    aggregates: Sequence[str] = AGGREGATES,
    dev_fraction: float = 0.3,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[dict[str, Estimate], dict[str, Any]]:
    """Held-out metrics of one condition's PRM from its step scores.

    ``scores[(problem index, text)]`` holds the step scores of each distinct candidate (one per
    step; a missing key or a wrong length counts as ungraded). Metrics (problems resampled):

    - ``f1``, ``acc_error``, ``acc_correct``: ProcessBench's (:func:`.trust.processbench_f1_ci`)
      on the test part of a seeded, stratified dev/test split of the graded distinct solutions;
      the first error predicted is the first step below the dev-tuned threshold;
    - ``step_auroc``: :func:`.trust.step_auroc` over every graded step, against the exact step
      labels (step i good iff steps 0..i are correct);
    - ``bon@N/<agg>``: best-of-N accuracy over the whole pool (all N samples, exact over ties,
      ungraded last) with the step scores aggregated by ``agg``.
    """
    items = _distinct(problems, pool)
    graded: list[list[float]] = []
    first_err: list[int] = []
    labels: list[bool] = []
    flat: list[float] = []
    groups: list[int] = []
    ungraded = 0
    for i, c in items:
        s = scores.get((i, c.text))
        if s is None or len(s) != len(c.steps) or any(math.isnan(v) for v in s):
            ungraded += 1
            continue
        graded.append(list(s))
        first_err.append(check_steps(problems[i], c.text).first_error)
        labels.extend(step_labels(problems[i], c.steps))
        flat.extend(s)
        groups.append(i)
    if not graded:
        raise ValueError("no held-out solution was graded")
    gi = np.asarray(groups)
    step_groups = np.concatenate([np.full(len(s), g) for s, g in zip(graded, groups, strict=True)])
    metrics: dict[str, Estimate] = {}
    metrics["step_auroc"] = Estimate(
        *T.step_auroc(np.asarray(flat), np.asarray(labels, bool), step_groups, n_boot, seed)
    )
    dev, test = split_dev_test(first_err, dev_fraction, seed)
    threshold, dev_f1 = choose_threshold([first_err[k] for k in dev], [graded[k] for k in dev])
    preds = [predicted_first_error(graded[k], threshold) for k in test]
    pb = T.processbench_f1_ci([first_err[k] for k in test], preds, gi[test], n_boot, seed)
    metrics.update({k: Estimate(*v) for k, v in pb.items()})
    n = min(len(c) for c in pool)
    for how in aggregates:
        per = bon_per_problem(problems, pool, scores, how)
        metrics[f"bon@{n}/{how}"] = Estimate(*T.mean_stats({"v": per}, n_boot, seed)["v"])
    details = {
        "solutions": len(items),
        "graded": len(graded),
        "ungraded": ungraded,
        "steps": len(flat),
        "good_steps": int(np.sum(labels)),
        "threshold": threshold,
        "dev_f1": dev_f1,
        "n_dev": int(dev.size),
        "n_test": int(test.size),
    }
    return metrics, details


def bon_per_problem(
    problems: Sequence[Problem],
    pool: Sequence[Sequence[Candidate]],
    scores: dict[tuple[int, str], tuple[float, ...]],
    how: str,
) -> np.ndarray:
    """Best-of-N accuracy per problem [P] (N = the smallest pool; exact over ties,
    :func:`rewardlab.evaluate.estimators.bon_at_k`), candidates valued by their step scores
    aggregated by ``how``; an ungraded candidate ranks last."""
    correct = pool_correct(problems, pool)
    n = correct.shape[1]
    steps = []
    for i, cands in enumerate(pool):
        for c in cands[:n]:
            s = np.asarray(scores.get((i, c.text), ()), dtype=float)
            ok = s.size == len(c.steps) and s.size > 0 and not np.isnan(s).any()
            steps.append(s if ok else np.array([]))
    v = aggregate_steps(steps, how).reshape(correct.shape)  # type: ignore[arg-type]
    out: np.ndarray = bon_at_k(v, correct.astype(bool), [n])[:, 0]
    return out


def auroc_delta(
    a: Sequence[float],
    b: Sequence[float],
    labels: Sequence[bool],
    groups: Sequence[int],
    n_boot: int = 1000,
    seed: int = 0,
) -> Estimate:
    """AUROC(a) − AUROC(b) on the same labelled steps, with a paired percentile CI over
    resampled groups (replicates where a class is missing are left out)."""
    av, bv, yv = np.asarray(a, float), np.asarray(b, float), np.asarray(labels, bool)
    point, reps = grouped_replicates(
        lambda k: T.auroc(av[k], yv[k]) - T.auroc(bv[k], yv[k]), np.asarray(groups), n_boot, seed
    )
    ok = reps[~np.isnan(reps)]
    lo, hi = interval(point, ok)[1:] if ok.size else (math.nan, math.nan)
    return Estimate(point, lo, hi, int(av.size))


def paired_deltas(
    problems: Sequence[Problem],
    pool: Sequence[Sequence[Candidate]],
    scores: dict[str, dict[tuple[int, str], tuple[float, ...]]],
    base: str,
    *,
    aggregates: Sequence[str] = AGGREGATES,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Estimate]:
    """``<condition>/<metric>`` = metric(condition) − metric(``base``) for step AUROC and
    best-of-N, with a paired CI: every replicate resamples problems once for both conditions.
    Step AUROC is compared on the steps graded in both."""
    if base not in scores:
        raise ValueError(f"base condition {base!r} was not scored")
    items = _distinct(problems, pool)
    out: dict[str, Estimate] = {}
    n = min(len(c) for c in pool)
    for cond in scores:
        if cond == base:
            continue
        a_s: list[float] = []
        b_s: list[float] = []
        y: list[bool] = []
        g: list[int] = []
        for i, c in items:
            a, b = scores[cond].get((i, c.text)), scores[base].get((i, c.text))
            if a is None or b is None or not len(a) == len(b) == len(c.steps):
                continue
            if any(math.isnan(v) for v in (*a, *b)):
                continue
            a_s.extend(a)
            b_s.extend(b)
            y.extend(step_labels(problems[i], c.steps))
            g.extend([i] * len(a))
        out[f"{cond}/step_auroc"] = auroc_delta(a_s, b_s, y, g, n_boot, seed)
        for how in aggregates:
            d = bon_per_problem(problems, pool, scores[cond], how) - bon_per_problem(
                problems, pool, scores[base], how
            )
            out[f"{cond}/bon@{n}/{how}"] = Estimate(*T.mean_stats({"v": d}, n_boot, seed)["v"])
    return out


def position_prior(
    train_problems: Sequence[Problem],
    train_pool: Sequence[Sequence[Candidate]],
    problems: Sequence[Problem],
    pool: Sequence[Sequence[Candidate]],
) -> dict[tuple[int, str], tuple[float, ...]]:
    """A scorer that reads no step text: step t of a solution to a k-operation problem scores
    the training pool's Laplace-smoothed rate of good steps at index t among k-operation
    problems, ``(good + 1) / (all + 2)``. What step AUROC and best-of-N give for position and
    difficulty alone; keyed like :func:`condition_metrics`' ``scores``."""
    good: dict[tuple[int, int], int] = {}
    seen: dict[tuple[int, int], int] = {}
    for p, cands in zip(train_problems, train_pool, strict=True):
        k = len(p.meta["ops"])
        for c in cands:
            for t, y in enumerate(step_labels(p, c.steps) if c.steps else []):
                good[(k, t)] = good.get((k, t), 0) + int(y)
                seen[(k, t)] = seen.get((k, t), 0) + 1
    out: dict[tuple[int, str], tuple[float, ...]] = {}
    for i, c in _distinct(problems, pool):
        k = len(problems[i].meta["ops"])
        out[(i, c.text)] = tuple(
            (good.get((k, t), 0) + 1) / (seen.get((k, t), 0) + 2) for t in range(len(c.steps))
        )
    return out


def pool_baselines(
    pool_correct_matrix: np.ndarray, n_boot: int = 1000, seed: int = 0
) -> dict[str, Estimate]:
    """``pass@1`` (mean correctness) and ``pass@N`` (any correct) per problem, with CIs."""
    c = np.asarray(pool_correct_matrix, dtype=float)
    stats = T.mean_stats({"pass@1": c.mean(1), f"pass@{c.shape[1]}": c.max(1)}, n_boot, seed)
    return {k: Estimate(*v) for k, v in stats.items()}


# ------------------------------------------------------------------------ train and score


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)


def train_condition(
    cfg: AblationConfig,
    condition: str,
    problems: Sequence[Problem],
    pool: Sequence[Sequence[Candidate]],
    log: Log | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Train (or reuse) the condition's PRM in ``WORK/<condition>/prm``; returns the checkpoint
    and its stamp (settings, data fingerprint, rows, final loss, seconds)."""
    from rewardlab.train.process import RMTrainConfig, train_prm

    say = log or (lambda _m: None)
    folder = Path(cfg.work) / _safe(condition)
    folder.mkdir(parents=True, exist_ok=True)
    rows = training_rows(problems, pool, condition)
    want = {"condition": condition, "recipe": cfg.recipe(), "data": fingerprint(rows)}
    stamp_path, ckpt = folder / "ablation.json", folder / "prm"
    if stamp_path.is_file() and (ckpt / "rewardlab.json").is_file():
        stamp = json.loads(stamp_path.read_text())
        if {k: stamp.get(k) for k in want} == want:
            say(f"{condition}: reusing the finished PRM in {ckpt}")
            return ckpt, dict(stamp)
    if ckpt.exists():
        shutil.rmtree(ckpt)
    stamp_path.unlink(missing_ok=True)
    data = folder / "prm_train.jsonl"
    _write_jsonl(data, rows)
    tcfg = RMTrainConfig(
        data=str(data),
        backbone=cfg.backbone,
        out=str(ckpt),
        steps=cfg.steps,
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        warmup_steps=cfg.warmup_steps,
        log_every=25,
        name=f"prm-{_safe(condition)}",
        cpu=True,
    )
    t0 = time.monotonic()

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            say(f"{condition}: step {done}/{total} ({time.monotonic() - t0:.0f} s)")

    result = train_prm(tcfg, progress)
    stamp = {
        **want,
        "rows": len(rows),
        "steps_labelled": sum(len(r["labels"]) for r in rows),
        "examples": result.examples,
        "skipped_too_long": result.skipped,
        "final_loss": result.history[-1]["loss"] if result.history else None,
        "train_seconds": round(time.monotonic() - t0, 1),
    }
    stamp_path.write_text(json.dumps(stamp, indent=1))
    return ckpt, stamp


def score_condition(
    ckpt: Path,
    condition: str,
    problems: Sequence[Problem],
    pool: Sequence[Sequence[Candidate]],
    cache: Path | None = None,
    batch: int = 64,
) -> dict[tuple[int, str], tuple[float, ...]]:
    """Step scores of every distinct held-out candidate under ``condition`` by the PRM in
    ``ckpt`` (cached in ``cache``, keyed by the pool, the condition and the checkpoint's
    stamp, so a re-run scores nothing)."""
    from rewardlab.rewards.learned import load_learned_reward

    items = _distinct(problems, pool)
    stamp = ckpt.parent / "ablation.json"
    key = fingerprint(
        [condition, stamp.read_text() if stamp.is_file() else ""]
        + [[problems[i].id, c.text] for i, c in items]
    )
    if cache is not None and cache.is_file():
        saved = json.loads(cache.read_text())
        if saved.get("key") == key:
            return {(int(i), t): tuple(s) for i, t, s in saved["scores"]}
    prm = load_learned_reward(ckpt, device="cpu")
    out: dict[tuple[int, str], tuple[float, ...]] = {}
    for start in range(0, len(items), batch):
        part = items[start : start + batch]
        probs = [problems[i] for i, _ in part]
        ablated = [
            ablate_steps(p, c.steps, condition) for p, (_, c) in zip(probs, part, strict=True)
        ]
        cands = [
            Candidate(p.id, "\n".join(a), a, c.answer, index=c.index, segmentation="lines")
            for p, a, (_, c) in zip(probs, ablated, part, strict=True)
        ]
        for (i, c), sc in zip(part, prm.score_steps(probs, cands), strict=True):
            vals = tuple(float(v) for v in sc.steps) if sc.value is not None else ()
            out[(i, c.text)] = vals
    if cache is not None:
        rows = [[i, t, list(s)] for (i, t), s in out.items()]
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "scores": rows}))
        tmp.replace(cache)
    return out


def _safe(condition: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", condition)


def run_step_ablation(
    cfg: AblationConfig,
    train: tuple[Sequence[Problem], Sequence[Sequence[Candidate]]],
    heldout: tuple[Sequence[Problem], Sequence[Sequence[Candidate]]],
    *,
    source: str = "",
    log: Log | None = None,
) -> EvalResult:
    """Train one PRM per condition on ``train`` and evaluate each on ``heldout``.

    ``metrics[f"{condition}/{name}"]`` are :func:`condition_metrics`' numbers; ``baseline``
    holds pass@1 and pass@N of the held-out pool; ``details`` each condition's training stamp
    and counts, and an example solution in every condition.
    """
    say = log or (lambda _m: None)
    tp, tpool = train
    hp, hpool = heldout
    metrics: dict[str, Estimate] = {}
    details: dict[str, Any] = {
        "config": asdict(cfg),
        "train_problems": len(tp),
        "heldout_problems": len(hp),
        "conditions": {},
    }
    all_scores: dict[str, dict[tuple[int, str], tuple[float, ...]]] = {}
    for cond in cfg.conditions:
        ckpt, stamp = train_condition(cfg, cond, tp, tpool, say)
        say(f"{cond}: scoring the held-out pool")
        t0 = time.monotonic()
        scores = score_condition(ckpt, cond, hp, hpool, ckpt.parent / "heldout_scores.json")
        m, d = condition_metrics(
            hp,
            hpool,
            scores,
            aggregates=cfg.aggregates,
            dev_fraction=cfg.dev_fraction,
            n_boot=cfg.n_boot,
            seed=cfg.seed,
        )
        metrics.update({f"{cond}/{k}": v for k, v in m.items()})
        all_scores[cond] = scores
        details["conditions"][cond] = {
            "train": stamp,
            "heldout": d,
            "score_seconds": round(time.monotonic() - t0, 1),
        }
        say(f"{cond}: step AUROC {m['step_auroc'].value:.3f}, F1 {m['f1'].value:.3f}")
    base = FULL if FULL in all_scores else cfg.conditions[0]
    if len(all_scores) > 1:
        deltas = paired_deltas(
            hp, hpool, all_scores, base, aggregates=cfg.aggregates, n_boot=cfg.n_boot, seed=cfg.seed
        )
        metrics.update({f"delta/{k}": v for k, v in deltas.items()})
        details["delta_base"] = base
    example = next((c for c in hpool[0] if c.steps), None) if hpool else None
    if example is not None:
        details["example"] = {
            c: list(ablate_steps(hp[0], example.steps, c)) for c in cfg.conditions
        }
    baseline = pool_baselines(pool_correct(hp, hpool), cfg.n_boot, cfg.seed)
    prior, _ = condition_metrics(
        hp,
        hpool,
        position_prior(tp, tpool, hp, hpool),
        aggregates=cfg.aggregates,
        dev_fraction=cfg.dev_fraction,
        n_boot=cfg.n_boot,
        seed=cfg.seed,
    )
    baseline.update({f"{PRIOR}/{k}": v for k, v in prior.items()})
    return EvalResult("step_ablation_retrain", "prm recipe", source, metrics, baseline, details)


def results_table(result: EvalResult) -> str:
    """The markdown table: one row per condition, every number with its 95% CI."""
    conds = list(result.details["conditions"])
    bons = sorted(
        {k.split("/", 1)[1] for k in result.metrics if "/bon@" in k and not k.startswith("delta/")}
    )
    cols = ["ProcessBench F1", "step AUROC", *(b.replace("/", " ") for b in bons)]
    lines = [
        "| condition | " + " | ".join(cols) + " | train rows | final loss |",
        "|---|" + "---|" * (len(cols) + 2),
    ]

    def cell(e: Estimate) -> str:
        return f"{e.value:.3f} [{e.low:.3f}, {e.high:.3f}]"

    for c in conds:
        m = result.metrics
        t = result.details["conditions"][c]["train"]
        loss = t.get("final_loss")
        vals = [
            cell(m[f"{c}/f1"]),
            cell(m[f"{c}/step_auroc"]),
            *(cell(m[f"{c}/{b}"]) for b in bons),
        ]
        lines.append(
            f"| {c} | "
            + " | ".join(vals)
            + f" | {t.get('rows')} | "
            + (f"{loss:.3f}" if loss is not None else "")
            + " |"
        )
    if f"{PRIOR}/f1" in result.baseline:
        b = result.baseline
        vals = [cell(b[f"{PRIOR}/f1"]), cell(b[f"{PRIOR}/step_auroc"])]
        vals += [cell(b[f"{PRIOR}/{x}"]) for x in bons]
        lines.append(f"| {PRIOR} (step index x #operations prior) | " + " | ".join(vals) + " | | |")
    base = " ; ".join(f"{k} {cell(v)}" for k, v in result.baseline.items() if "/" not in k)
    lines += ["", f"Baselines (held-out pool): {base}"]
    ref = result.details.get("delta_base")
    if ref:
        deltas = sorted({k.split("/", 2)[2] for k in result.metrics if k.startswith("delta/")})
        lines += [
            "",
            f"Paired differences against `{ref}` (problems resampled once for both):",
            "",
            "| condition | " + " | ".join(f"Δ {d.replace('/', ' ')}" for d in deltas) + " |",
            "|---|" + "---|" * len(deltas),
        ]
        for c in conds:
            if c != ref:
                vals = [cell(result.metrics[f"delta/{c}/{d}"]) for d in deltas]
                lines.append(f"| {c} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def plot_results(result: EvalResult, path: Path) -> Path:
    """Bars per condition for F1, step AUROC and best-of-N, with their 95% CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = list(result.details["conditions"])
    names = [
        "f1",
        "step_auroc",
        *sorted({k.split("/", 1)[1] for k in result.metrics if "/bon@" in k and "delta/" not in k}),
    ]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(conds)
    for j, c in enumerate(conds):
        es = [result.metrics[f"{c}/{n}"] for n in names]
        x = np.arange(len(names)) + j * width
        err = np.array([[e.value - e.low for e in es], [e.high - e.value for e in es]])
        ax.bar(x, [e.value for e in es], width, yerr=err, capsize=3, label=c)
    ax.set_xticks(np.arange(len(names)) + width * (len(conds) - 1) / 2, names)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("PRM retrained per step condition (held-out, 95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
