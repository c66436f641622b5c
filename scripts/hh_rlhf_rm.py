"""Reward models on real human preferences: HH-RLHF harmless-base (test file), MiniLM features.

1. Read ``harmless-base-test.jsonl.gz`` as it ships (2,312 pairs): the shared dialogue prefix
   is split from the final assistant turn(s) (:mod:`rewardlab.train.pref_chat`).
2. Split **by dialogue** (hash of the first user turn) into train 80% / test 20%; write both in
   the explicit-prompt string form (``train.jsonl``, ``test.jsonl``: readable by ``rewardlab eval
   pairwise``) and the test split in TRL's conversational form as Parquet.
3. Featurise every (prompt, response) once with the frozen all-MiniLM-L6-v2 encoder (cached on
   disk, resumable): mean of the last hidden states over all tokens ‖ over the response tokens.
4. Train heads on the features with the existing objectives: ``bt``, ``bt-margin`` (HH-RLHF has
   no preference strengths: a constant margin m = 1 for every pair), ``noise-robust`` (3 BT
   members, flip_z = 1), each for ``--seeds`` seeds; and the ensemble: the mean of the K
   z-normalised BT heads (statistics fitted on the training responses).
5. Held-out accuracy (ties count wrong) with 95% percentile-bootstrap CIs over test pairs,
   beside the longer-response baseline; the BT seed-0 checkpoint is saved and re-scored through
   ``evaluate_pairwise`` (the CLI's path) as a check that the saved model is the one measured.
6. ``--finetune-layers`` -1 (default: the whole encoder) or K (top K blocks; 0 skips): fine-tune
   encoder and a copy of the BT seed-0 head (LP-FT) with BT on ``--finetune-pairs`` training
   pairs (a seeded subsample; 0 = all) for ``--finetune-epochs``, save the checkpoint with its
   encoder, score the held-out pairs through it, and report the paired difference to the
   frozen head. Resumable: skipped when ``bt-finetune-*/scores.json`` exists.

Writes ``docs/results/hh_rlhf_rm.{json,md}`` and ``runs/hh_rlhf_rm/``. Run with
``OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/hh_rlhf_rm.py``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardlab.evaluate.bootstrap import bootstrap_ci
from rewardlab.evaluate.reward_eval import evaluate_pairwise
from rewardlab.evaluate.rm_metrics import pairwise_correct
from rewardlab.rewards.encoder_rm import EncoderFeaturizer, EncoderRM, save_encoder_rm
from rewardlab.rewards.ensemble import aggregate_matrix, zscore_stats
from rewardlab.train.encoder_finetune import finetune_pairs, steps_for_epochs
from rewardlab.train.encoder_pref import cached_features, train_head
from rewardlab.train.loop import LoopConfig
from rewardlab.train.pref_chat import dialogue_split, read_chat_pairs, to_pair_row, write_chat_pairs
from rewardlab.train.pref_io import write_jsonl
from rewardlab.train.preference import PreferenceConfig

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "../shared/data/hh-rlhf/harmless-base-test.jsonl.gz"


def ci(correct: np.ndarray, seed: int = 0) -> dict[str, float]:
    mean, lo, hi = bootstrap_ci(np.asarray(correct, dtype=float)[:, None], n_boot=2000, rng=seed)
    return {"value": float(mean[0]), "low": float(lo[0]), "high": float(hi[0]), "n": len(correct)}


def fmt(e: dict[str, float]) -> str:
    return f"{e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"


def progress(done: int, total: int) -> None:
    print(f"\r  features {done}/{total}", end="" if done < total else "\n", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--out", default=str(ROOT / "runs/hh_rlhf_rm"))
    ap.add_argument("--results", default=str(ROOT / "docs/results/hh_rlhf_rm"))
    ap.add_argument("--encoder", default="minilm")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--response-tokens", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--ensemble", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--margin", type=float, default=1.0)
    ap.add_argument("--check-pairs", type=int, default=40)
    ap.add_argument(
        "--finetune-layers",
        type=int,
        default=-1,
        help="fine-tune the encoder after the frozen heads: -1 = all of it, K = top K blocks, "
        "0 = skip",
    )
    ap.add_argument("--finetune-pairs", type=int, default=0, help="subsample (0 = all train)")
    ap.add_argument("--finetune-epochs", type=float, default=1.0)
    ap.add_argument("--finetune-lr", type=float, default=2e-5)
    ap.add_argument("--finetune-batch", type=int, default=8, help="pairs per step")
    ap.add_argument("--limit", type=int, default=0, help="first N pairs only (smoke runs)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    load_before = os.getloadavg()[0]

    pairs = read_chat_pairs(args.data)
    if args.limit:
        pairs = pairs[: args.limit]
    rows = [to_pair_row(p) for p in pairs]
    train_idx, test_idx = dialogue_split(pairs, [0.8, 0.2], seed=0)
    train_ids = {pairs[i].dialogue_id for i in train_idx}
    assert not train_ids & {pairs[i].dialogue_id for i in test_idx}
    for name, idx in (("train", train_idx), ("test", test_idx)):
        write_jsonl(
            [
                {"prompt": rows[i].prompt, "chosen": rows[i].chosen, "rejected": rows[i].rejected}
                | dict(rows[i].extra)
                for i in idx
            ],
            out / f"{name}.jsonl",
        )
    write_chat_pairs([pairs[i] for i in test_idx], out / "test_conversational.parquet")
    print(f"{len(pairs)} pairs: train {len(train_idx)}, test {len(test_idx)}", file=sys.stderr)

    feat = EncoderFeaturizer(
        args.encoder, max_length=args.max_length, response_tokens=args.response_tokens
    )
    t_feat = time.monotonic()
    prompts = [r.prompt for r in rows] * 2
    responses = [r.chosen for r in rows] + [r.rejected for r in rows]
    allf = cached_features(feat, prompts, responses, out / "features", progress=progress)
    fc_all, fr_all = allf[: len(rows)], allf[len(rows) :]
    feat_seconds = time.monotonic() - t_feat
    fc, fr = fc_all[train_idx], fr_all[train_idx]
    tc, tr = fc_all[test_idx], fr_all[test_idx]

    loop = LoopConfig(steps=args.steps, lr=args.lr, weight_decay=0.01, warmup_steps=20, cpu=True)
    results: dict[str, Any] = {}
    heads: dict[tuple[str, int], Any] = {}
    t_train = time.monotonic()
    for objective in ("bt", "bt-margin", "noise-robust"):
        per_seed = []
        for s in range(max(args.seeds, args.ensemble if objective == "bt" else 0)):
            cfg = PreferenceConfig(objective=objective, loop=loop, batch_size=args.batch)
            margin = np.full(len(fc), args.margin) if objective == "bt-margin" else None
            head, info = train_head(fc, fr, margin, cfg, hidden=args.hidden, seed=s)
            heads[(objective, s)] = head
            if s >= args.seeds:
                continue
            correct = pairwise_correct(head.score(tc), head.score(tr))
            train_acc = float(pairwise_correct(head.score(fc), head.score(fr)).mean())
            rec = {"seed": s, "test": ci(correct), "train_accuracy": train_acc}
            if "flipped" in info:
                rec["flipped"] = info["flipped"]
            per_seed.append(rec)
            print(f"  {objective} seed {s}: {fmt(rec['test'])}", file=sys.stderr)
        accs = np.array([r["test"]["value"] for r in per_seed])
        results[objective] = {
            "seed0": per_seed[0],
            "seeds": per_seed,
            "seed_mean": float(accs.mean()),
            "seed_std": float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
        }
    members = [heads[("bt", s)] for s in range(args.ensemble)]
    train_scores = np.stack([np.concatenate([h.score(fc), h.score(fr)]) for h in members])
    stats = zscore_stats(train_scores)
    ens_c = aggregate_matrix(np.stack([h.score(tc) for h in members]), "mean", stats=stats)
    ens_r = aggregate_matrix(np.stack([h.score(tr) for h in members]), "mean", stats=stats)
    results[f"ensemble-bt-{args.ensemble}"] = {
        "seed0": {"test": ci(pairwise_correct(ens_c, ens_r))}
    }
    train_seconds = time.monotonic() - t_train

    test_rows = [rows[i] for i in test_idx]
    longer = pairwise_correct(
        np.array([len(r.chosen) for r in test_rows], dtype=float),
        np.array([len(r.rejected) for r in test_rows], dtype=float),
    )
    results["longer-response"] = {"seed0": {"test": ci(longer)}}

    # the saved checkpoint, re-scored through the CLI's evaluation path
    ckpt = save_encoder_rm(
        heads[("bt", 0)],
        feat,
        out / "bt",
        name="hh-minilm-bt",
        objective="bt",
        seed=0,
        data=str(args.data),
        split="dialogue-disjoint 80/20, seed 0",
    )
    # (the first --check-pairs held-out pairs: featurising them again costs encoder time)
    k = min(args.check_pairs, len(test_idx))
    head_rows = [json.loads(x) for x in (out / "test.jsonl").read_text().splitlines()[:k]]
    write_jsonl(head_rows, out / "test_check.jsonl")
    check = evaluate_pairwise(EncoderRM.from_dir(ckpt), out / "test_check.jsonl", n_boot=200)
    cli_acc = check.metrics["accuracy"].value
    b0 = heads[("bt", 0)]
    in_script = float(pairwise_correct(b0.score(tc[:k]), b0.score(tr[:k])).mean())
    assert abs(cli_acc - in_script) < 1e-9, (cli_acc, in_script)

    finetune = None
    if args.finetune_layers != 0:
        finetune = finetune_stage(args, out, feat, heads[("bt", 0)], rows, train_idx, test_idx)
        frozen_correct = pairwise_correct(b0.score(tc), b0.score(tr))
        ft_correct = np.array(finetune.pop("correct"), dtype=float)
        results["bt-finetuned"] = {"seed0": {"test": ci(ft_correct)}}
        finetune["minus_frozen_bt"] = ci(ft_correct - frozen_correct)

    record = {
        "data": "Anthropic HH-RLHF harmless-base test (2,312 pairs, MIT)",
        "split": {
            "train": len(train_idx),
            "test": len(test_idx),
            "by": "dialogue (first user turn)",
        },
        "encoder": {
            "name": args.encoder,
            "params": feat.params,
            "frozen": True,
            "max_length": args.max_length,
            "response_tokens": args.response_tokens,
        },
        "head": {
            "hidden": args.hidden,
            "dropout": 0.1,
            "steps": args.steps,
            "lr": args.lr,
            "batch_pairs": args.batch,
            "bt_margin_constant": args.margin,
        },
        "results": results,
        "finetune": finetune,
        "cli_check": {
            "checkpoint": str(ckpt.relative_to(ROOT)) if ckpt.is_relative_to(ROOT) else str(ckpt),
            "pairs": k,
            "accuracy": cli_acc,
            "in_script": in_script,
        },
        "seconds": {
            "features": round(feat_seconds, 1),
            "training": round(train_seconds, 1),
            "total": round(time.monotonic() - t0, 1),
        },
        "load_avg_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "cpus": os.cpu_count(),
        "torch_threads": __import__("torch").get_num_threads(),
    }
    res = Path(args.results)
    res.parent.mkdir(parents=True, exist_ok=True)
    res.with_suffix(".json").write_text(json.dumps(record, indent=2))
    res.with_suffix(".md").write_text(markdown(record, args))
    print(res.with_suffix(".md").read_text())


def finetune_stage(
    args: argparse.Namespace,
    out: Path,
    feat: EncoderFeaturizer,
    frozen_head: Any,
    rows: list[Any],
    train_idx: list[int],
    test_idx: list[int],
) -> dict[str, Any]:
    """Fine-tune the encoder (all of it, or its top blocks) and a copy of the frozen BT seed-0
    head (LP-FT) with BT on the training pairs (``--finetune-pairs`` of them, a seeded
    subsample), save the checkpoint with its encoder, and score the held-out pairs through the
    saved checkpoint. Skipped when its ``scores.json`` exists (a resumed run)."""
    tag = "all" if args.finetune_layers == -1 else f"top{args.finetune_layers}"
    ft_dir = out / f"bt-finetune-{tag}"
    done = ft_dir / "scores.json"
    if done.is_file():
        return dict(json.loads(done.read_text()))
    rng = np.random.default_rng(0)
    use = list(train_idx)
    if 0 < args.finetune_pairs < len(use):
        use = sorted(rng.choice(use, size=args.finetune_pairs, replace=False).tolist())
    steps = steps_for_epochs(len(use), args.finetune_batch, args.finetune_epochs)
    loop = LoopConfig(
        steps=steps,
        lr=args.finetune_lr,
        weight_decay=0.01,
        warmup_steps=max(1, steps // 10),
        log_every=10,
        cpu=True,
    )
    pref = PreferenceConfig(objective="bt", loop=loop, batch_size=args.finetune_batch)
    ft_feat = EncoderFeaturizer(
        args.encoder, max_length=args.max_length, response_tokens=args.response_tokens
    )
    head = copy.deepcopy(frozen_head)
    ft_dir.mkdir(parents=True, exist_ok=True)
    log_path = ft_dir / "train_log.jsonl"
    log_path.unlink(missing_ok=True)

    def log(rec: dict[str, Any]) -> None:
        with log_path.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(f"  step {rec['step']}/{steps}: loss {rec['loss']:.4f}", file=sys.stderr)

    print(f"fine-tuning ({tag}): {steps} steps of {args.finetune_batch} pairs", file=sys.stderr)
    t = time.monotonic()
    report = finetune_pairs(
        ft_feat,
        head,
        [rows[i].prompt for i in use],
        [rows[i].chosen for i in use],
        [rows[i].rejected for i in use],
        pref,
        layers=args.finetune_layers,
        log=log,
    )
    train_s = time.monotonic() - t
    save_encoder_rm(
        head,
        ft_feat,
        ft_dir,
        save_encoder=True,
        name=f"hh-minilm-bt-finetune-{tag}",
        objective="bt",
        finetune_layers=args.finetune_layers,
        finetune_pairs=len(use),
        finetune_steps=steps,
        finetune_lr=args.finetune_lr,
        split="dialogue-disjoint 80/20, seed 0",
    )
    t = time.monotonic()
    rm = EncoderRM.from_dir(ft_dir)  # scored as saved
    test = [rows[i] for i in test_idx]
    sc = rm.score_pairs([r.prompt for r in test], [r.chosen for r in test])
    sr = rm.score_pairs([r.prompt for r in test], [r.rejected for r in test])
    info = {
        "layers": args.finetune_layers,
        "pairs": len(use),
        "steps": steps,
        "batch_pairs": args.finetune_batch,
        "epochs": round(report.epochs, 3),
        "lr": args.finetune_lr,
        "trainable_encoder_params": report.trainable_params,
        "init": "BT seed-0 head on frozen features (LP-FT)",
        "train_seconds": round(train_s, 1),
        "pairs_per_second": round(steps * args.finetune_batch / train_s, 3),
        "score_seconds": round(time.monotonic() - t, 1),
        "load_avg_1m_after_training": round(os.getloadavg()[0], 2),
        "final_log": report.history[-1] if report.history else None,
        "checkpoint": str(ft_dir.relative_to(ROOT)) if ft_dir.is_relative_to(ROOT) else str(ft_dir),
        "correct": pairwise_correct(sc, sr).astype(float).tolist(),
    }
    done.write_text(json.dumps(info))
    return info


def markdown(rec: dict[str, Any], args: argparse.Namespace) -> str:
    r = rec["results"]
    lines = [
        "# Reward models on HH-RLHF harmless-base (MiniLM: frozen features, and fine-tuned)",
        "",
        f"{rec['split']['train']} training / {rec['split']['test']} held-out pairs, split by "
        "dialogue. Encoder all-MiniLM-L6-v2 (frozen, "
        f"{rec['encoder']['params'] / 1e6:.1f}M parameters), max {args.max_length} tokens "
        f"(response ≤ {args.response_tokens}); MLP head ({args.hidden} hidden), {args.steps} "
        f"steps of {args.batch} pairs at lr {args.lr}. Accuracy counts ties as wrong; 95% "
        "bootstrap CIs resample held-out pairs (seed 0); the seed columns give the spread over "
        f"{args.seeds} training seeds.",
        "",
        "| reward model | held-out accuracy (seed 0) | mean ± sd over seeds | train accuracy |",
        "|---|---|---|---:|",
    ]
    for name, v in r.items():
        s0 = v["seed0"]
        seeds = f"{v['seed_mean']:.3f} ± {v['seed_std']:.3f}" if "seed_mean" in v else "–"
        train = f"{s0['train_accuracy']:.3f}" if "train_accuracy" in s0 else "–"
        label = {
            "bt-margin": f"bt-margin (m = {args.margin})",
            "longer-response": "*pick the longer response*",
        }.get(name, name)
        if name == "noise-robust":
            label += f" (flipped {s0.get('flipped')} of {rec['split']['train']})"
        if name == "bt-finetuned":
            f = rec["finetune"]
            what = "whole encoder" if f["layers"] == -1 else f"top {f['layers']} blocks"
            label = f"**bt, encoder fine-tuned** ({what}, {f['pairs']} pairs, 1 seed)"
        lines.append(f"| {label} | {fmt(s0['test'])} | {seeds} | {train} |")
    lines += [
        "",
        f"The BT seed-0 head saved to `{rec['cli_check']['checkpoint']}`, loaded back and run "
        f"through `evaluate_pairwise` (the path of `rewardlab eval pairwise`) on the first "
        f"{rec['cli_check']['pairs']} held-out pairs, scores {rec['cli_check']['accuracy']:.3f}, "
        "the same as the in-memory head on those pairs (checked).",
        "",
    ]
    if rec.get("finetune"):
        f = rec["finetune"]
        d = f["minus_frozen_bt"]
        lines += [
            f"Fine-tuning: {f['trainable_encoder_params'] / 1e6:.1f}M encoder parameters "
            f"trained with BT, starting from the frozen BT seed-0 head (LP-FT), on {f['pairs']} "
            f"training pairs cut exactly as above, {f['steps']} steps of {f['batch_pairs']} "
            f"pairs ({f['epochs']} epochs), lr {f['lr']} (warm-up, cosine), torch threads 1: "
            f"{f['train_seconds']} s ({f['pairs_per_second']} pairs/s; 1-min load "
            f"{f['load_avg_1m_after_training']} at the end). Held-out accuracy minus the frozen "
            f"BT seed-0 head's on the same pairs (paired bootstrap): {fmt(d)}. Scored through "
            f"the saved checkpoint `{f['checkpoint']}`.",
            "",
        ]
    lines += [
        f"Time: features {rec['seconds']['features']} s, training {rec['seconds']['training']} s,"
        f" total {rec['seconds']['total']} s on {rec['cpus']} shared CPUs, "
        f"{rec['torch_threads']} torch thread(s); 1-min load {rec['load_avg_1m']['before']} "
        f"before, {rec['load_avg_1m']['after']} after.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
