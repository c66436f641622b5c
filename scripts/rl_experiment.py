"""RL on the testbed, on CPU: are process rewards hacked under GRPO, and does shaping help?

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/rl_experiment.py [--work runs/rl_exp]
        [--steps 16] [--stages grpo,dpo,iterate,report] [--variants outcome,prm_raw,...]

Stages and variants may run in separate processes side by side (each writes only its own
run directories); ``--stages report`` then collects whatever has finished. The defaults are
the committed results' settings, sized for a 2-core machine shared with other work.

Stages (each resumes: a finished run has its ``done.json`` and is not redone; an unfinished
one restarts from its beginning, fixed seeds):

1. ``grpo`` — TRL ``GRPOTrainer`` on the shipped tiny policy, testbed problems with 2-4
   operations, one run per reward variant (:data:`VARIANTS`): the outcome reward alone (exact
   testbed correctness, 0/1), outcome + the shipped PRM's step scores summed raw, Clip-shaped,
   Delta-shaped (Gao et al. 2024), and PRIME (the shipped implicit PRM updated online from the
   outcome labels). Every ``--eval-every`` steps: greedy held-out accuracy with a 95% bootstrap
   CI, steps per solution, empty (repeated / unparsed / identity / extra) steps, the PRM's mean
   step score; every training rollout's step statistics are logged too.
2. ``dpo`` — TRL ``DPOTrainer`` on the testbed's controlled-truth preference pairs
   (:func:`rewardlab.label.pref_sets.build_sets`) at several β; every ``--dpo-eval-every`` steps
   the gold reward (exact correctness of sampled answers on held-out problems) and
   KL(π‖π_ref) estimated on those samples.
3. ``iterate`` — ``rewardlab iterate`` (expert iteration, best-of-K by a reward) on the testbed.
4. ``report`` — ``docs/results/rl_{grpo,dpo,iterate}.json``, ``docs/results/rl_experiment.md``
   and the plots ``docs/rl_*.png``. Not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _machine import MachineProbe  # noqa: E402

from rewardlab.evaluate.bootstrap import bootstrap_ci  # noqa: E402
from rewardlab.evaluate.rl_metrics import solution_stats, summarise  # noqa: E402
from rewardlab.policies.prompts import plain_prompt  # noqa: E402
from rewardlab.rewards.shaping import Clip, Delta  # noqa: E402
from rewardlab.tasks import arith  # noqa: E402
from rewardlab.types import Problem  # noqa: E402

VARIANTS = ("outcome", "prm_raw", "prm_clip", "prm_delta", "prime")
N_OPS = (2, 4)
ETA = 0.5  # Clip threshold on the [0, 1] PRM (papers.md §5: unverified; the sigmoid boundary)
PRIME_LR = 1e-4
POLICY = ROOT / "src" / "rewardlab" / "assets" / "tiny_policy"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(row) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def label_of(p: Problem) -> str:
    return json.dumps({"answer": p.answer, "meta": {"states": list(p.meta["states"])}})


def dataset_rows(problems: Sequence[Problem]) -> list[dict[str, Any]]:
    return [
        {
            "prompt": plain_prompt(p.question),
            "question": p.question,
            "answer": label_of(p),
            "pid": p.id,
        }
        for p in problems
    ]


def ci(values: Sequence[float], seed: int = 0) -> tuple[float, float, float]:
    mean, low, high = bootstrap_ci(np.asarray(values, dtype=float)[:, None], rng=seed)
    return float(mean[0]), float(low[0]), float(high[0])


# ----------------------------------------------------------------------------- evaluation


def evaluate_policy(
    model: Any, tokenizer: Any, problems: Sequence[Problem], prm: Any, max_new_tokens: int
) -> dict[str, Any]:
    """Greedy held-out solutions: accuracy (95% CI), step statistics, the PRM's step scores."""
    from rewardlab.integrations.common import make_pair
    from rewardlab.policies.hf_batch import generate_texts

    texts = generate_texts(
        model, tokenizer, [plain_prompt(p.question) for p in problems], max_new_tokens
    )
    stats = [solution_stats(p, t) for p, t in zip(problems, texts, strict=True)]
    row: dict[str, Any] = summarise(stats)
    mean, low, high = ci([float(s.correct) for s in stats])
    row.update(accuracy=mean, accuracy_low=low, accuracy_high=high)
    pairs = [make_pair(p.question, t) for p, t in zip(problems, texts, strict=True)]
    scores = prm.score_steps([q for q, _ in pairs], [c for _, c in pairs])
    steps = [v for s in scores for v in s.steps]
    row["prm_step_mean"] = float(np.mean(steps)) if steps else float("nan")
    row["prm_ungraded"] = sum(s.value is None for s in scores)
    row["texts"] = texts
    return row


# ----------------------------------------------------------------------------------- GRPO


class ProcessTerm:
    """A GRPO reward function: the shipped PRM's step scores through a transform, summed; also
    logs every rollout's step statistics (so the outcome-only run, weight 0, is measured too)."""

    def __init__(
        self,
        prm_adapter: Any,
        transform: Callable[[Sequence[float]], Sequence[float]] | None,
        problems: dict[str, Problem],
        rollouts: Path,
        name: str,
    ) -> None:
        self.adapter = prm_adapter
        self.transform = transform
        self.problems = problems
        self.rollouts = rollouts
        self.__name__ = name

    def __call__(self, prompts: Any, completions: Any, **kwargs: Any) -> list[float | None]:
        scores = self.adapter.scores(prompts, completions, **kwargs)
        state = kwargs.get("trainer_state")
        step = int(getattr(state, "global_step", -1))
        out: list[float | None] = []
        rows = []
        for pid, text, s in zip(kwargs["pid"], completions, scores, strict=True):
            st = solution_stats(self.problems[pid], text)
            raw = list(s.steps) if s.value is not None else []
            shaped = list(self.transform(raw)) if (raw and self.transform) else raw
            out.append(float(sum(shaped)) if raw else None)
            rows.append(
                {
                    "step": step,
                    **st.as_dict(),
                    "prm_steps": len(raw),
                    "prm_sum": float(sum(raw)),
                    "term": float(sum(shaped)) if raw else None,
                    "chars": len(text),
                    "pid": pid,
                    "text": text,
                }
            )
        with self.rollouts.open("a") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
        return out


def grpo_run(
    variant: str, work: Path, train: list[Problem], held: list[Problem], args: argparse.Namespace
) -> None:
    import torch
    import trl
    from accelerate.state import AcceleratorState
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from rewardlab.integrations.common import load_scorer
    from rewardlab.integrations.prime import OnlineImplicitPRM
    from rewardlab.integrations.trl import TRLReward
    from rewardlab.rewards.learned import load_default_implicit_prm

    out = work / "grpo" / variant
    if (out / "done.json").is_file():
        log(f"grpo {variant}: done already")
        return
    if out.exists():
        shutil.rmtree(out)  # an interrupted run restarts from its beginning (fixed seeds)
    out.mkdir(parents=True)
    torch.manual_seed(args.seed)
    by_id = {p.id: p for p in train}
    prm_scorer = load_scorer("prm", device="cpu")
    prm = prm_scorer.reward
    prm_adapter = TRLReward(prm_scorer, question_column="question")
    outcome = TRLReward(load_scorer("exact"), name="outcome")
    transform = {"prm_clip": Clip(ETA), "prm_delta": Delta()}.get(variant)
    term = ProcessTerm(prm_adapter, transform, by_id, out / "rollouts.jsonl", f"prm_{variant}")
    funcs: list[Any] = [outcome, term]
    weights = [1.0, 0.0 if variant in ("outcome", "prime") else 1.0]
    prime = None
    if variant == "prime":

        def correct(kw: dict[str, Any], i: int, text: str) -> bool:
            return arith.check_steps(by_id[kw["pid"][i]], text).correct

        prime = OnlineImplicitPRM(load_default_implicit_prm(device="cpu"), correct, lr=PRIME_LR)
        funcs.append(prime)
        weights.append(1.0)
    model = AutoModelForCausalLM.from_pretrained(POLICY)
    tok = AutoTokenizer.from_pretrained(POLICY)
    evals = out / "evals.jsonl"

    def do_eval(step: int) -> None:
        t0 = time.monotonic()
        row = evaluate_policy(model, tok, held, prm, args.max_len)
        row.update(step=step, seconds=round(time.monotonic() - t0, 1), load=os.getloadavg()[0])
        if prime is not None:
            row["prime_updates"] = prime.stats.updates
            row["prime_loss"] = prime.stats.last_loss
        append_jsonl(evals, row)
        log(
            f"grpo {variant} step {step}: acc {row['accuracy']:.3f} steps {row['steps']:.2f} "
            f"empty {row['empty']:.2f} prm/step {row['prm_step_mean']:.3f}"
        )

    class EvalCallback(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, a: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step % args.eval_every == 0:
                do_eval(state.global_step)

    cfg = trl.GRPOConfig(
        output_dir=str(out / "trainer"),
        per_device_train_batch_size=args.prompts * args.generations,
        num_generations=args.generations,
        max_completion_length=args.max_len,
        max_steps=args.steps,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        beta=0.0,
        temperature=1.0,
        reward_weights=weights,
        logging_steps=5,
        report_to=[],
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        save_strategy="no",
        seed=args.seed,
        data_seed=args.seed,
        dataloader_num_workers=0,
    )
    t0 = time.monotonic()
    do_eval(0)
    try:
        trainer = trl.GRPOTrainer(
            model=model,
            reward_funcs=funcs,
            args=cfg,
            train_dataset=Dataset.from_list(dataset_rows(train)),
            processing_class=tok,
            callbacks=[EvalCallback()],
        )
        trainer.train()
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    if args.steps % args.eval_every:
        do_eval(args.steps)
    (out / "train_log.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    write_json(
        out / "done.json",
        {
            "variant": variant,
            "minutes": round((time.monotonic() - t0) / 60, 2),
            "load_end": os.getloadavg()[0],
            "weights": weights,
        },
    )


def stage_grpo(work: Path, args: argparse.Namespace) -> None:
    train = arith.generate(n=args.steps * args.prompts, seed=args.seed, n_ops=N_OPS)
    held = arith.generate(n=args.held_out, seed=1000 + args.seed, n_ops=N_OPS)
    for v in args.variants.split(","):
        if v not in VARIANTS:
            raise SystemExit(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
        grpo_run(v, work, train, held, args)


# ------------------------------------------------------------------------------------ DPO


def dpo_sets(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Training pairs (policy prompt format) and held-out problems, by problem."""
    from rewardlab.label.pref_sets import PrefSetSpec, build_sets

    spec = PrefSetSpec(problems=args.dpo_problems, n_ops=N_OPS, seed=args.seed)
    sets = build_sets(spec)
    rows = [
        {"prompt": plain_prompt(r["prompt"]), "chosen": r["chosen"], "rejected": r["rejected"]}
        for r in sets["train_pairs"]
    ]
    held_ids = {r["problem_id"] for r in sets["test_pool"]}
    held = [
        p
        for p in arith.generate(spec.problems, seed=spec.seed, n_ops=spec.n_ops)
        if p.id in held_ids
    ]
    return rows, held


def gold_and_kl(
    model: Any, ref: Any, tok: Any, held: Sequence[Problem], max_len: int, samples: int, seed: int
) -> dict[str, Any]:
    """Gold reward (exact correctness of T=1 samples) and KL(π‖π_ref) estimated on the same
    samples: mean over samples of log π(y|x) − log π_ref(y|x) (a Monte-Carlo estimate of the
    sequence KL; unbiased, can be slightly negative near 0)."""
    from rewardlab.policies.hf_batch import completion_logprobs, generate_texts

    problems = [p for p in held for _ in range(samples)]
    prompts = [plain_prompt(p.question) for p in problems]
    texts = generate_texts(model, tok, prompts, max_len, temperature=1.0, seed=seed)
    lp = completion_logprobs(model, tok, prompts, texts)
    lp_ref = completion_logprobs(ref, tok, prompts, texts)
    correct = np.array(
        [arith.check_steps(p, t).correct for p, t in zip(problems, texts, strict=True)]
    )
    per_problem = correct.reshape(len(held), samples).mean(axis=1)
    mean, low, high = ci(per_problem.tolist())
    stats = summarise([solution_stats(p, t) for p, t in zip(problems, texts, strict=True)])
    return {
        "gold": mean,
        "gold_low": low,
        "gold_high": high,
        "kl": float(np.mean(lp - lp_ref)),
        "kl_se": float(np.std(lp - lp_ref, ddof=1) / math.sqrt(len(lp))),
        "steps": stats["steps"],
        "empty": stats["empty"],
        "chars": float(np.mean([len(t) for t in texts])),
    }


def dpo_run(beta: float, work: Path, args: argparse.Namespace) -> None:
    import torch
    import trl
    from accelerate.state import AcceleratorState
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    out = work / "dpo" / f"beta{beta:g}"
    if (out / "done.json").is_file():
        log(f"dpo beta {beta:g}: done already")
        return
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    torch.manual_seed(args.seed)
    rows, held = dpo_sets(args)
    held = held[: args.dpo_held_out]
    model = AutoModelForCausalLM.from_pretrained(POLICY)
    ref = AutoModelForCausalLM.from_pretrained(POLICY).eval()
    tok = AutoTokenizer.from_pretrained(POLICY)
    evals = out / "evals.jsonl"

    def do_eval(step: int) -> None:
        t0 = time.monotonic()
        row = gold_and_kl(model, ref, tok, held, args.max_len, args.dpo_samples, args.seed)
        row.update(step=step, beta=beta, seconds=round(time.monotonic() - t0, 1))
        row["load"] = os.getloadavg()[0]
        append_jsonl(evals, row)
        log(f"dpo beta {beta:g} step {step}: gold {row['gold']:.3f} KL {row['kl']:.2f}")

    class EvalCallback(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, a: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step % args.dpo_eval_every == 0:
                do_eval(state.global_step)

    cfg = trl.DPOConfig(
        output_dir=str(out / "trainer"),
        beta=beta,
        per_device_train_batch_size=8,
        max_steps=args.dpo_steps,
        learning_rate=args.dpo_lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_length=256,
        logging_steps=10,
        report_to=[],
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        save_strategy="no",
        seed=args.seed,
        data_seed=args.seed,
    )
    t0 = time.monotonic()
    do_eval(0)
    try:
        trainer = trl.DPOTrainer(
            model=model,
            ref_model=ref,
            args=cfg,
            train_dataset=Dataset.from_list(rows),
            processing_class=tok,
            callbacks=[EvalCallback()],
        )
        trainer.train()
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    (out / "train_log.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    write_json(
        out / "done.json",
        {
            "beta": beta,
            "pairs": len(rows),
            "held_out": len(held),
            "minutes": round((time.monotonic() - t0) / 60, 2),
            "load_end": os.getloadavg()[0],
        },
    )


def stage_dpo(work: Path, args: argparse.Namespace) -> None:
    for beta in (float(b) for b in args.dpo_betas.split(",")):
        dpo_run(beta, work, args)


# -------------------------------------------------------------------------------- iterate


def stage_iterate(work: Path, args: argparse.Namespace) -> None:
    from rewardlab.pipelines.iterate import IterateConfig, iterate

    for name, extra in (("continue", {}),):
        cfg = IterateConfig(
            policy=str(POLICY),
            reward="exact",
            problems=args.it_problems,
            held_out=args.held_out,
            n_ops=N_OPS,
            k=args.it_k,
            rounds=args.it_rounds,
            steps=args.it_steps,
            lr=args.it_lr,
            min_reward=1.0,
            max_new_tokens=args.max_len,
            seed=args.seed,
            **extra,
        )
        t0 = time.monotonic()
        iterate(cfg, work / "iterate" / name, lambda what, d, t: None)
        log(f"iterate {name}: {(time.monotonic() - t0) / 60:.1f} min")


# --------------------------------------------------------------------------------- report


def _bins(rows: Sequence[dict[str, Any]], width: int) -> list[dict[str, Any]]:
    """Rollout rows averaged over windows of ``width`` training steps."""
    by: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(int(r["step"]) // width, []).append(r)
    out = []
    for b in sorted(by):
        rs = by[b]
        n_steps = sum(r["steps"] for r in rs)
        graded = [r for r in rs if r["term"] is not None and r["prm_steps"]]
        out.append(
            {
                "step": b * width + (width - 1) / 2,
                "n": len(rs),
                "accuracy": float(np.mean([r["correct"] for r in rs])),
                "steps": float(np.mean([r["steps"] for r in rs])),
                "empty": float(np.mean([r["empty"] for r in rs])),
                "empty_frac": sum(r["empty"] for r in rs) / n_steps if n_steps else 0.0,
                "chars": float(np.mean([r["chars"] for r in rs])),
                "prm_per_step": float(np.mean([r["prm_sum"] / r["prm_steps"] for r in graded]))
                if graded
                else None,
                "term_per_step": float(np.mean([r["term"] / r["prm_steps"] for r in graded]))
                if graded
                else None,
            }
        )
    return out


def grpo_summary(work: Path, width: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v in VARIANTS:
        d = work / "grpo" / v
        rollouts = read_jsonl(d / "rollouts.jsonl")
        if not rollouts:
            continue
        # an unfinished run is reported as far as it got (``finished: false``)
        done = json.loads((d / "done.json").read_text()) if (d / "done.json").is_file() else {}
        done["finished"] = bool(done)
        evals = [
            {k: x for k, x in r.items() if k != "texts"} for r in read_jsonl(d / "evals.jsonl")
        ]
        out[v] = {
            "done": done,
            "evals": evals,
            "rollouts": _bins(rollouts, width),
        }
    return out


def dpo_summary(work: Path) -> dict[str, Any]:
    from rewardlab.evaluate.overopt import fit_gao_rl

    out: dict[str, Any] = {}
    for d in sorted((work / "dpo").glob("beta*")):
        rows = read_jsonl(d / "evals.jsonl")
        if not rows:
            continue
        done = json.loads((d / "done.json").read_text()) if (d / "done.json").is_file() else {}
        done.update(finished=bool(done), beta=rows[0]["beta"])
        entry: dict[str, Any] = {"done": done, "evals": rows}
        try:
            a, b = fit_gao_rl(
                np.array([r["kl"] for r in rows]), np.array([r["gold"] for r in rows])
            )
            entry["fit_rl"] = {"alpha": a, "beta": b}
        except ValueError as e:
            entry["fit_rl"] = {"error": str(e)}
        out[d.name] = entry
    return out


def _fmt_ci(r: dict[str, Any], key: str) -> str:
    return f"{r[key]:.3f} [{r[key + '_low']:.3f}, {r[key + '_high']:.3f}]"


def grpo_table(g: dict[str, Any]) -> str:
    lines = [
        "| reward | held-out acc, step 0 | held-out acc, last [95% CI] | steps/solution 0 → last "
        "| empty steps 0 → last | rollouts: steps first → last window | rollouts: empty steps "
        "| rollouts: PRM score/step | rollouts: process term/step | minutes |",
        "|---|---|---|---|---|---|---|---|---|---:|",
    ]
    for v, e in g.items():
        first, last = e["evals"][0], e["evals"][-1]
        r0, r1 = e["rollouts"][0], e["rollouts"][-1]

        def arrow(a: Any, b: Any, f: str = ".2f") -> str:
            if a is None or b is None:
                return "—"
            return f"{a:{f}} → {b:{f}}"

        term = (
            {"outcome": "— (weight 0)", "prime": "— (implicit PRM instead)"}[v]
            if v in ("outcome", "prime")
            else arrow(r0["term_per_step"], r1["term_per_step"], ".3f")
        )
        lines.append(
            f"| {v} | {first['accuracy']:.3f} | {_fmt_ci(last, 'accuracy')} (step {last['step']}) "
            f"| {arrow(first['steps'], last['steps'])} | {arrow(first['empty'], last['empty'])} "
            f"| {arrow(r0['steps'], r1['steps'])} | {arrow(r0['empty'], r1['empty'])} "
            f"| {arrow(r0['prm_per_step'], r1['prm_per_step'], '.3f')} "
            f"| {term} "
            f"| {e['done']['minutes'] if e['done']['finished'] else 'unfinished'} |"
        )
    return "\n".join(lines) + "\n"


def dpo_table(dd: dict[str, Any]) -> str:
    lines = [
        "| β | step | gold (accuracy of T=1 samples) [95% CI] | KL(π‖π_ref) ± s.e. | √KL "
        "| steps/solution | chars |",
        "|---|---:|---|---|---:|---:|---:|",
    ]
    for e in dd.values():
        for r in e["evals"]:
            lines.append(
                f"| {r['beta']:g} | {r['step']} | {_fmt_ci(r, 'gold')} | {r['kl']:.2f} ± "
                f"{r['kl_se']:.2f} | {math.sqrt(max(r['kl'], 0)):.2f} | {r['steps']:.2f} "
                f"| {r['chars']:.0f} |"
            )
    fits = []
    for e in dd.values():
        f = e["fit_rl"]
        if "alpha" in f:
            fits.append(f"β = {e['done']['beta']:g}: α = {f['alpha']:.3f}, β_RL = {f['beta']:.3f}")
        else:
            fits.append(f"β = {e['done']['beta']:g}: no fit ({f['error']})")
    return (
        "\n".join(lines)
        + "\n\nFit gold − gold₀ = d·(α − β_RL·log d), d = √KL: "
        + "; ".join(fits)
        + "\n"
    )


def plot_grpo(g: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for v, e in g.items():
        ev, ro = e["evals"], e["rollouts"]
        x = [r["step"] for r in ev]
        acc = np.array([r["accuracy"] for r in ev])
        err = [acc - [r["accuracy_low"] for r in ev], [r["accuracy_high"] for r in ev] - acc]
        axes[0, 0].errorbar(x, acc, yerr=err, marker="o", capsize=2, label=v)
        rx = [r["step"] for r in ro]
        axes[0, 1].plot(rx, [r["steps"] for r in ro], marker=".", label=v)
        axes[1, 0].plot(rx, [r["empty"] for r in ro], marker=".", label=v)
        axes[1, 1].plot(rx, [r["prm_per_step"] for r in ro], marker=".", label=v)
    axes[0, 0].set(title="held-out accuracy (greedy, 95% CI)", xlabel="GRPO step")
    axes[0, 1].set(title="steps per solution (training rollouts)", xlabel="GRPO step")
    axes[1, 0].set(title="empty steps per solution (rollouts)", xlabel="GRPO step")
    axes[1, 1].set(title="shipped PRM score per step (rollouts)", xlabel="GRPO step")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_dpo(dd: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for e in dd.values():
        rows = e["evals"]
        d = np.sqrt(np.clip([r["kl"] for r in rows], 0, None))
        gold = np.array([r["gold"] for r in rows])
        err = [gold - [r["gold_low"] for r in rows], [r["gold_high"] for r in rows] - gold]
        line = ax.errorbar(
            d, gold, yerr=err, marker="o", capsize=2, label=f"DPO β={e['done']['beta']:g}"
        )
        f = e["fit_rl"]
        if "alpha" in f and d.max() > 0:
            xs = np.linspace(1e-3, d.max(), 50)
            ax.plot(
                xs,
                gold[0] + xs * (f["alpha"] - f["beta"] * np.log(xs)),
                "--",
                color=line[0].get_color(),
                lw=1,
            )
    ax.set(
        xlabel="√KL(π‖π_ref) (nats, estimated on samples)",
        ylabel="gold reward (exact accuracy, T=1)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def stage_report(work: Path, args: argparse.Namespace, machine: dict[str, Any]) -> None:
    from rewardlab.pipelines.iterate import collect_rounds
    from rewardlab.report.iterate import plot_rounds, rounds_table

    results = args.docs / "results"
    results.mkdir(parents=True, exist_ok=True)
    g = grpo_summary(work, width=args.eval_every // 2 or 1)
    dd = dpo_summary(work)
    it_dir = work / "iterate" / "continue"
    it = collect_rounds(it_dir) if it_dir.is_dir() else []
    settings = {k: str(v) for k, v in vars(args).items() if k not in ("work", "docs")}
    t = args.tag
    write_json(results / f"rl_grpo{t}.json", {"settings": settings, "machine": machine, "runs": g})
    if dd:
        write_json(
            results / f"rl_dpo{t}.json", {"settings": settings, "machine": machine, "runs": dd}
        )
    it_settings = json.loads((it_dir / "settings.json").read_text()) if it else {}
    it_settings.pop("policy", None)
    if it:
        write_json(
            results / f"rl_iterate{t}.json",
            {"settings": it_settings, "machine": machine, "rounds": it},
        )

    def section(title: str, body: str, image: str) -> str:
        """A results section: its table and plot, or "(not run)" and no broken image link."""
        if not body:
            return f"### {title}\n\n(not run)\n\n"
        return f"### {title}\n\n{body}\n![{title}](IMG/{image}{t}.png)\n\n"

    parts = [
        "<!-- generated by scripts/rl_experiment.py --stages report; do not edit by hand -->\n",
        section(
            "GRPO: outcome reward vs PRM rewards (raw, Clip, Delta) vs PRIME",
            grpo_table(g) if g else "",
            "rl_grpo",
        ),
        section("DPO: gold reward against KL", dpo_table(dd) if dd else "", "rl_dpo"),
        section(
            "Expert iteration (`rewardlab iterate`)", rounds_table(it) if it else "", "rl_iterate"
        ),
        f"Machine: {machine.get('cpus')} CPUs, load (1 min) {machine.get('load_avg_1m_before')} "
        f"at the start of the report stage; per-run loads are in docs/results/rl_*.json.\n",
    ]
    text = "".join(parts)
    # the same block in docs/results/ (plots one level up) and in docs/rl.md (plots beside it)
    (results / f"rl_experiment{t}.md").write_text(text.replace("](IMG/", "](../"))
    text = text.replace("](IMG/", "](")
    if g:
        plot_grpo(g, args.docs / f"rl_grpo{t}.png")
    if dd:
        plot_dpo(dd, args.docs / f"rl_dpo{t}.png")
    if it:
        plot_rounds(it, args.docs / f"rl_iterate{t}.png")
    page = args.docs / "rl.md"
    if page.is_file():
        body = page.read_text()
        a, b = f"<!-- results{t}:begin -->", f"<!-- results{t}:end -->"
        if a in body and b in body:
            head, rest = body.split(a, 1)
            _, tail = rest.split(b, 1)
            page.write_text(head + a + "\n" + text + b + tail)
    log(f"report: {results / f'rl_experiment{t}.md'}")


# ------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "rl_exp")
    ap.add_argument("--stages", default="grpo,dpo,iterate,report")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--prompts", type=int, default=2, help="prompts per GRPO step")
    ap.add_argument("--generations", type=int, default=4, help="completions per prompt")
    ap.add_argument("--max-len", type=int, default=96, help="max completion tokens")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--eval-every", type=int, default=8)
    ap.add_argument("--held-out", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dpo-betas", default="0.05,0.5")
    ap.add_argument("--dpo-steps", type=int, default=20)
    ap.add_argument("--dpo-lr", type=float, default=1e-4)
    ap.add_argument("--dpo-eval-every", type=int, default=5)
    ap.add_argument("--dpo-problems", type=int, default=400, help="testbed problems (25% held out)")
    ap.add_argument("--dpo-held-out", type=int, default=30)
    ap.add_argument("--dpo-samples", type=int, default=2, help="samples per held-out problem")
    ap.add_argument("--it-problems", type=int, default=24)
    ap.add_argument("--it-k", type=int, default=4)
    ap.add_argument("--it-rounds", type=int, default=2)
    ap.add_argument("--it-steps", type=int, default=15)
    ap.add_argument("--it-lr", type=float, default=1e-4)
    ap.add_argument(
        "--tag", default="", help="suffix of the report's files and docs/rl.md block (a 2nd run)"
    )
    ap.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = ap.parse_args(argv)
    if set(args.stages.split(",")) - {"report"}:
        import torch

        torch.set_num_threads(1)
    probe = MachineProbe()
    args.work.mkdir(parents=True, exist_ok=True)
    tag = args.stages.replace(",", "_") + (
        "_" + args.variants.replace(",", "_") if "grpo" in args.stages else ""
    )
    write_json(args.work / f"settings_{tag}.json", {k: str(v) for k, v in vars(args).items()})
    stages = args.stages.split(",")
    if "grpo" in stages:
        stage_grpo(args.work, args)
    if "dpo" in stages:
        stage_dpo(args.work, args)
    if "iterate" in stages:
        stage_iterate(args.work, args)
    if "report" in stages:
        stage_report(args.work, args, probe.record())
    log(f"machine: {probe.record()}")


if __name__ == "__main__":
    main()
