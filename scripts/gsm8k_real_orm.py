"""A learned ORM on real text: GSM8K test problems with four labelled model solutions each.

Data: ``../shared/data/gsm8k/example_model_solutions.jsonl`` (OpenAI grade-school-math release,
MIT): 1,319 GSM8K test problems, each with one solution from each of four generators (6B / 175B
GPT-3, "finetuning" / "verification" runs of Cobbe et al. 2021) labelled ``is_correct``; every
solution ends with ``A: <n>``.

Stages (each writes its output under ``--out`` and is skipped when that output exists, so a
killed run resumes where it stopped; ``--fresh`` starts over):

1. **split** by problem (sha1 of seed and question → train 60% / val 20% / test 20%, fixed
   seed): ``train.jsonl`` in the outcome format of ``rewardlab train --objective orm``
   (``prompt``, ``text``, ``label``), and ``{train,val,test}_pool.jsonl`` labelled pools in the
   format of ``rewardlab eval select`` (``prompt``, ``responses`` [4], ``correct`` [4]).
2. **features**: the frozen all-MiniLM-L6-v2 encoder over every (question, solution) (cached in
   chunks, resumable).
3. **frozen**: BCE heads on the training features (a small grid: linear / MLP × steps, seed 0),
   the one with the best validation AUROC kept and saved as an ``encoder-rm`` checkpoint.
4. **finetune** (``--finetune-layers K``, 0 skips): the top K encoder blocks (-1: all) and the
   head fine-tuned from the frozen head (LP-FT) with the same BCE for ``--finetune-epochs``,
   then the test pool scored by the saved checkpoint (the validation pool is not rescored:
   CPU time).
5. **evaluate** every model on the held-out test problems with
   :func:`rewardlab.evaluate.reward_eval_pool.evaluate_selection` (the code of
   ``rewardlab eval select``): best-of-4 and ORM-weighted majority (weights sigmoid(score))
   beside majority vote, random@1 and pass@4, paired 95% bootstrap CIs over problems, AUROC;
   and the reward-free baseline that always takes the generator with the best training
   accuracy. The frozen checkpoint is re-scored through ``load_reward`` on the first
   ``--check-problems`` test problems as a check that the saved model is the one measured.

Writes ``runs/gsm8k_real_orm/`` and ``docs/results/gsm8k_real_orm.{json,md}``. Run with
``OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/gsm8k_real_orm.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardlab.evaluate.bootstrap import bootstrap_ci
from rewardlab.evaluate.reward_eval import EvalResult
from rewardlab.evaluate.reward_eval_pool import evaluate_selection
from rewardlab.evaluate.trust import auroc
from rewardlab.rewards.encoder_rm import EncoderFeaturizer, EncoderRM, save_encoder_rm
from rewardlab.rewards.registry import load_reward
from rewardlab.train.encoder_finetune import finetune_outcome, steps_for_epochs
from rewardlab.train.encoder_orm import train_outcome_head
from rewardlab.train.encoder_pref import cached_features
from rewardlab.train.loop import LoopConfig
from rewardlab.train.pref_io import write_jsonl

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "../shared/data/gsm8k/example_model_solutions.jsonl"
GENERATORS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
SPLITS = ("train", "val", "test")
GRID = ((0, 300), (0, 1000), (256, 300), (256, 1000))  # (head hidden, steps)


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def problem_split(questions: list[str], fractions: tuple[float, ...], seed: int) -> list[int]:
    """The part (0..len-1) of each problem: sha1(seed, question) placed against the cumulative
    fractions, so a problem's four solutions always share a part."""
    edges = np.cumsum(fractions)
    parts = []
    for q in questions:
        u = int.from_bytes(hashlib.sha1(f"{seed}:{q}".encode()).digest()[:8], "big") / 2**64
        parts.append(int(np.searchsorted(edges, u, side="right")))
    return [min(p, len(fractions) - 1) for p in parts]


def read_rows(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    for n, r in enumerate(rows, 1):
        missing = [g for g in GENERATORS if g not in r] + [k for k in ("question",) if k not in r]
        if missing:
            raise ValueError(f"{path}:{n}: missing {missing}")
    return rows


def stage_split(rows: list[dict[str, Any]], out: Path, seed: int) -> dict[str, list[int]]:
    parts = problem_split([r["question"] for r in rows], (0.6, 0.2, 0.2), seed)
    idx = {s: [i for i, p in enumerate(parts) if p == j] for j, s in enumerate(SPLITS)}
    qs = {s: {rows[i]["question"] for i in idx[s]} for s in SPLITS}
    assert not (qs["train"] & qs["val"] or qs["train"] & qs["test"] or qs["val"] & qs["test"])
    if not (out / "test_pool.jsonl").is_file():
        write_jsonl(
            [
                {
                    "prompt": rows[i]["question"],
                    "text": rows[i][g]["solution"],
                    "label": bool(rows[i][g]["is_correct"]),
                    "generator": g,
                }
                for i in idx["train"]
                for g in GENERATORS
            ],
            out / "train.jsonl",
        )
        for s in SPLITS:
            write_jsonl([pool_row(rows[i]) for i in idx[s]], out / f"{s}_pool.jsonl")
    (out / "split.json").write_text(json.dumps({"seed": seed, **idx}))
    return idx


def pool_row(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "prompt": r["question"],
        "responses": [r[g]["solution"] for g in GENERATORS],
        "correct": [bool(r[g]["is_correct"]) for g in GENERATORS],
        "generators": list(GENERATORS),
    }


def progress(done: int, total: int) -> None:
    print(f"\r  features {done}/{total}", end="" if done < total else "\n", file=sys.stderr)


def flat(rows: list[dict[str, Any]], idx: list[int]) -> tuple[list[str], list[str], np.ndarray]:
    """(prompts, solutions, labels) of the problems ``idx``, 4 per problem, generator order."""
    p = [rows[i]["question"] for i in idx for _ in GENERATORS]
    t = [rows[i][g]["solution"] for i in idx for g in GENERATORS]
    y = np.array([float(rows[i][g]["is_correct"]) for i in idx for g in GENERATORS])
    return p, t, y


def ci(x: np.ndarray, seed: int = 0) -> dict[str, float]:
    mean, lo, hi = bootstrap_ci(np.asarray(x, float)[:, None], n_boot=2000, rng=seed)
    return {"value": float(mean[0]), "low": float(lo[0]), "high": float(hi[0]), "n": len(x)}


def result_dict(res: EvalResult) -> dict[str, Any]:
    d = {k: vars(v) for k, v in {**res.metrics, **res.baseline}.items()}
    return {
        k: {"value": v["value"], "low": v["low"], "high": v["high"], "n": v["n"]}
        for k, v in d.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--out", default=str(ROOT / "runs/gsm8k_real_orm"))
    ap.add_argument("--results", default=str(ROOT / "docs/results/gsm8k_real_orm"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--response-tokens", type=int, default=192)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--finetune-layers", type=int, default=2)
    ap.add_argument("--finetune-epochs", type=float, default=1.0)
    ap.add_argument("--finetune-lr", type=float, default=3e-5)
    ap.add_argument("--finetune-batch", type=int, default=16)
    ap.add_argument("--check-problems", type=int, default=20)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--fresh", action="store_true", help="delete --out first")
    ap.add_argument("--limit", type=int, default=0, help="first N problems only (smoke runs)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    load_before = os.getloadavg()[0]
    seconds: dict[str, float] = {}

    rows = read_rows(Path(args.data))
    if args.limit:
        rows = rows[: args.limit]
    idx = stage_split(rows, out, args.seed)
    say(f"{len(rows)} problems: " + ", ".join(f"{s} {len(idx[s])}" for s in SPLITS))

    # ---------------------------------------------------------------- features (frozen)
    t = time.monotonic()
    feat = EncoderFeaturizer(
        "minilm", max_length=args.max_length, response_tokens=args.response_tokens
    )
    data = {s: flat(rows, idx[s]) for s in SPLITS}
    lengths = np.array(
        [len(feat.pair_ids(p, r)[0]) for p, r in zip(*data["train"][:2], strict=True)]
    )
    raw = [
        len(feat.tokenizer(p + " " + r)["input_ids"])
        for p, r in zip(*data["train"][:2], strict=True)
    ]
    cut = float(np.mean(np.array(raw) > args.max_length))
    X = {
        s: cached_features(feat, data[s][0], data[s][1], out / "features", progress=progress)
        for s in SPLITS
    }
    seconds["features"] = round(time.monotonic() - t, 1)

    # ---------------------------------------------------------------- frozen heads
    t = time.monotonic()
    ytr = data["train"][2]
    grid = []
    heads = {}
    for hidden, steps in GRID:
        loop = LoopConfig(
            steps=steps,
            lr=args.lr,
            weight_decay=0.01,
            warmup_steps=20,
            seed=args.seed,
            log_every=10_000,
            cpu=True,
        )
        head = train_outcome_head(X["train"], ytr, loop, batch_size=args.batch, hidden=hidden)
        heads[(hidden, steps)] = head
        va = auroc(head.score(X["val"]), data["val"][2].astype(bool))
        tr = auroc(head.score(X["train"]), ytr.astype(bool))
        grid.append({"hidden": hidden, "steps": steps, "val_auroc": va, "train_auroc": tr})
        say(f"  head hidden={hidden} steps={steps}: train AUROC {tr:.3f}, val AUROC {va:.3f}")
    best = max(grid, key=lambda g: g["val_auroc"])
    head = heads[(best["hidden"], best["steps"])]
    frozen_dir = save_encoder_rm(
        head,
        feat,
        out / "frozen",
        name="gsm8k-minilm-orm-frozen",
        objective="orm",
        hidden_chosen_on="val AUROC",
        seed=args.seed,
        data=str(args.data),
        split="problem-disjoint 60/20/20, sha1 seed 0",
    )
    seconds["frozen_heads"] = round(time.monotonic() - t, 1)

    # per-generator accuracy on train: the reward-free "trust the best generator" baseline
    per_gen = {
        g: float(np.mean([rows[i][g]["is_correct"] for i in idx["train"]])) for g in GENERATORS
    }
    best_gen = max(per_gen, key=lambda g: per_gen[g])
    test_best_gen = np.array([float(rows[i][best_gen]["is_correct"]) for i in idx["test"]])

    models: dict[str, dict[str, Any]] = {}
    scores_test = {"frozen": head.score(X["test"]).reshape(-1, len(GENERATORS))}
    scores_val = {"frozen": head.score(X["val"]).reshape(-1, len(GENERATORS))}

    # the saved checkpoint through load_reward (the CLI's path) on the first test problems
    k = min(args.check_problems, len(idx["test"]))
    check_pool = out / "test_check_pool.jsonl"
    check_pool.write_text("".join(json.dumps(pool_row(rows[i])) + "\n" for i in idx["test"][:k]))
    check = evaluate_selection(load_reward(str(frozen_dir)), check_pool, n_boot=100)
    cli_scores = np.array(check.details["scores"])
    assert np.allclose(cli_scores, scores_test["frozen"][:k], atol=1e-4), "checkpoint mismatch"

    # ---------------------------------------------------------------- fine-tuning
    ft_info: dict[str, Any] | None = None
    if args.finetune_layers != 0:
        ft_dir = out / f"finetune-top{args.finetune_layers}"
        done = ft_dir / "scores.npz"
        if not done.is_file():
            t = time.monotonic()
            ft_feat = EncoderFeaturizer(
                "minilm", max_length=args.max_length, response_tokens=args.response_tokens
            )
            ft_head = heads[(best["hidden"], best["steps"])]
            n_train = len(data["train"][0])
            steps = steps_for_epochs(n_train, args.finetune_batch, args.finetune_epochs)
            loop = LoopConfig(
                steps=steps,
                lr=args.finetune_lr,
                weight_decay=0.01,
                warmup_steps=max(1, steps // 10),
                seed=args.seed,
                log_every=10,
                cpu=True,
            )
            say(
                f"fine-tuning top {args.finetune_layers} blocks: {steps} steps of "
                f"{args.finetune_batch} solutions"
            )
            log_path = ft_dir / "train_log.jsonl"
            ft_dir.mkdir(parents=True, exist_ok=True)
            log_path.unlink(missing_ok=True)

            def log(rec: dict[str, Any]) -> None:
                with log_path.open("a") as fh:
                    fh.write(json.dumps(rec) + "\n")
                say(f"  step {rec['step']}: loss {rec['loss']:.4f}, acc {rec['accuracy']:.3f}")

            report = finetune_outcome(
                ft_feat,
                ft_head,
                data["train"][0],
                data["train"][1],
                ytr,
                loop,
                batch_size=args.finetune_batch,
                layers=args.finetune_layers,
                log=log,
            )
            train_s = time.monotonic() - t
            save_encoder_rm(
                ft_head,
                ft_feat,
                ft_dir,
                save_encoder=True,
                name=f"gsm8k-minilm-orm-top{args.finetune_layers}",
                objective="orm",
                finetune_layers=args.finetune_layers,
                finetune_steps=steps,
                finetune_lr=args.finetune_lr,
                epochs=report.epochs,
            )
            t = time.monotonic()
            rm = EncoderRM.from_dir(ft_dir)  # scored as saved (the CLI path)
            st = rm.score_pairs(data["test"][0], data["test"][1])
            info = {
                "layers": args.finetune_layers,
                "steps": steps,
                "batch": args.finetune_batch,
                "lr": args.finetune_lr,
                "epochs": report.epochs,
                "trainable_encoder_params": report.trainable_params,
                "train_seconds": round(train_s, 1),
                "rows_per_second": round(steps * args.finetune_batch / train_s, 2),
                "score_seconds": round(time.monotonic() - t, 1),
                "final_log": report.history[-1] if report.history else None,
            }
            np.savez(done, test=st, info=json.dumps(info))
        z = np.load(done)
        ft_info = json.loads(str(z["info"]))
        scores_test["finetune"] = z["test"].reshape(-1, len(GENERATORS))

    # ---------------------------------------------------------------- evaluation
    t = time.monotonic()
    for name, s in scores_test.items():
        res = evaluate_selection(
            name, out / "test_pool.jsonl", scores=s, n_boot=args.n_boot, seed=0
        )
        val_auroc = None
        if name in scores_val:  # the fine-tuned model scores the test pool only (CPU time)
            val = evaluate_selection(
                name, out / "val_pool.jsonl", scores=scores_val[name], n_boot=200, seed=0
            )
            val_auroc = val.metrics["auroc"].value
        from rewardlab.evaluate.reward_report import write_result

        write_result(res, out / f"eval_{name}", "select")
        models[name] = {
            "test": result_dict(res),
            "val_auroc": val_auroc,
            "no_answer_fraction": res.details["no_answer_fraction"],
            # which generator's solution best-of-4 takes: does the ORM just trust one source?
            "best_of_4_picks": {
                g: float(np.mean(np.argmax(s, axis=1) == j)) for j, g in enumerate(GENERATORS)
            },
        }
        say(
            f"  {name}: "
            + ", ".join(f"{k} {v['value']:.3f}" for k, v in models[name]["test"].items())
        )
    seconds["evaluation"] = round(time.monotonic() - t, 1)

    record = {
        "data": "GSM8K test, 4 labelled solutions per problem (example_model_solutions.jsonl)",
        "split": {s: len(idx[s]) for s in SPLITS}
        | {"by": "problem (sha1 of seed, question)", "seed": args.seed},
        "encoder": {
            "name": "all-MiniLM-L6-v2",
            "params": feat.params,
            "max_length": args.max_length,
            "response_tokens": args.response_tokens,
            "train_rows_cut_fraction": cut,
            "mean_tokens": float(lengths.mean()),
        },
        "label_rate": {s: float(data[s][2].mean()) for s in SPLITS},
        "generator_train_accuracy": per_gen,
        "best_generator": {"name": best_gen, "test": ci(test_best_gen)},
        "head_grid": grid,
        "head_chosen": best,
        "finetune": ft_info,
        "models": models,
        "cli_check": {
            "checkpoint": str(frozen_dir.relative_to(ROOT))
            if frozen_dir.is_relative_to(ROOT)
            else str(frozen_dir),
            "problems": k,
            "max_abs_diff": float(np.abs(cli_scores - scores_test["frozen"][:k]).max()),
        },
        "seconds": seconds | {"total": round(time.monotonic() - t0, 1)},
        "load_avg_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    res_path = Path(args.results)
    res_path.parent.mkdir(parents=True, exist_ok=True)
    res_path.with_suffix(".json").write_text(json.dumps(record, indent=2))
    res_path.with_suffix(".md").write_text(markdown(record))
    (out / "summary.json").write_text(json.dumps(record, indent=2))
    print(res_path.with_suffix(".md").read_text())


def fmt(e: dict[str, float]) -> str:
    return f"{e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"


def markdown(rec: dict[str, Any]) -> str:
    sp, enc = rec["split"], rec["encoder"]
    names = list(rec["models"])
    label = {"frozen": "frozen MiniLM + head"}
    if rec["finetune"]:
        f = rec["finetune"]
        layers = "all layers" if f["layers"] == -1 else f"top {f['layers']} blocks"
        label["finetune"] = f"MiniLM fine-tuned ({layers})"
    lines = [
        "# A learned ORM on real text: GSM8K, 4 labelled model solutions per problem",
        "",
        f"Problems split by problem: {sp['train']} train / {sp['val']} val / {sp['test']} test "
        f"(seed {sp['seed']}); the ORM trains on the {4 * sp['train']} training solutions "
        f"(correct: {rec['label_rate']['train']:.3f}) with binary cross-entropy on "
        "(question, solution), encoder all-MiniLM-L6-v2 "
        f"({enc['params'] / 1e6:.1f}M parameters), ≤ {enc['max_length']} tokens "
        f"(solution ≤ {enc['response_tokens']}; {100 * enc['train_rows_cut_fraction']:.1f}% of "
        "training rows cut). Held-out test problems; 95% bootstrap CIs resample problems "
        "(paired across columns). Weighted majority weighs each answer's votes by "
        "sigmoid(ORM score).",
        "",
        "| selection on held-out problems | " + " | ".join(label.get(n, n) for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    rows = [
        ("best-of-4 by ORM", "best_of_n"),
        ("ORM-weighted majority", "weighted_majority"),
        ("best-of-4 − majority", "diff/best_of_n-majority"),
        ("weighted majority − majority", "diff/weighted_majority-majority"),
        ("AUROC (solution correct)", "auroc"),
    ]
    for text, key in rows:
        lines.append(
            f"| {text} | " + " | ".join(fmt(rec["models"][n]["test"][key]) for n in names) + " |"
        )
    t0 = rec["models"][names[0]]["test"]
    bg = rec["best_generator"]
    lines += [
        "",
        "| reward-free baseline (same test problems) | accuracy |",
        "|---|---|",
        f"| majority vote of 4 | {fmt(t0['majority'])} |",
        f"| random@1 (mean correctness) | {fmt(t0['random_at_1'])} |",
        f"| always the best training generator ({bg['name']}) | {fmt(bg['test'])} |",
        f"| pass@4 (oracle ceiling) | {fmt(t0['pass_at_n'])} |",
        "",
        "Head grid (chosen on validation AUROC): "
        + "; ".join(
            f"hidden {g['hidden']}, {g['steps']} steps: val {g['val_auroc']:.3f}"
            for g in rec["head_grid"]
        )
        + ".",
    ]
    if rec["finetune"]:
        f = rec["finetune"]
        lines += [
            "",
            f"Fine-tuning: {label['finetune']}, {f['trainable_encoder_params'] / 1e6:.2f}M "
            f"encoder parameters trained, from the frozen head (LP-FT), {f['steps']} steps of "
            f"{f['batch']} solutions ({f['epochs']:.2f} epochs), lr {f['lr']}; "
            f"{f['train_seconds']} s ({f['rows_per_second']} solutions/s).",
        ]
    for n in names:
        picks = ", ".join(f"{g} {v:.2f}" for g, v in rec["models"][n]["best_of_4_picks"].items())
        lines += ["", f"Best-of-4 by {label.get(n, n)} takes the solution of: {picks}."]
    gen = ", ".join(f"{g} {a:.3f}" for g, a in rec["generator_train_accuracy"].items())
    s = rec["seconds"]
    lines += [
        "",
        f"Training accuracy of each generator: {gen}.",
        "",
        f"The saved frozen checkpoint `{rec['cli_check']['checkpoint']}`, loaded with "
        f"`load_reward` and scored on the first {rec['cli_check']['problems']} test problems "
        f"through `evaluate_selection` (the code of `rewardlab eval select`), gives the scores "
        f"measured here (max |Δ| {rec['cli_check']['max_abs_diff']:.1e}).",
        "",
        f"Time: features {s['features']} s, frozen heads {s['frozen_heads']} s, evaluation "
        f"{s['evaluation']} s, total {s['total']} s (a resumed run skips what is done) on "
        f"{rec['cpus']} shared CPUs, {rec['torch_threads']} torch thread; 1-min load "
        f"{rec['load_avg_1m']['before']} before, {rec['load_avg_1m']['after']} after.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
