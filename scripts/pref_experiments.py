"""Preference-RM experiments on the testbed's controlled-truth pairs (minutes on a CPU).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/pref_experiments.py [--out runs/pref_experiments]
        [--problems 300 --steps 300 --members 3 --backbone DIR]

1. Builds clean and 20%-noisy controlled-truth sets (:mod:`rewardlab.label.pref_sets`; the
   held-out problems are split in half by problem into a calibration dev set and a test set).
2. Trains every objective of ``PREFERENCE_OBJECTIVES`` on both, from the same small backbone
   (default: a fresh Llama, hidden 64, 2 layers, the tiny policy's tokenizer), and measures
   held-out pairwise accuracy (overall, correctness pairs, brevity pairs) with 95% CIs beside
   the longer-response baseline.
3. Trains ``--members`` BT models (seeds 0..K-1) on the noisy data and compares best-of-N by a
   single member with the ensemble (mean, mean−std, min; members z-normalised with statistics
   fitted on training responses), scored by the gold rating.
4. Calibration before/after (temperature, isotonic; fitted on the dev half) for BT, clean data.

Writes ``results.json``, ``results.md`` and the plots to ``--out``. Not a test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from rewardlab.evaluate.reward_eval import EvalResult, evaluate_pairwise
from rewardlab.evaluate.reward_eval_pool import evaluate_overopt
from rewardlab.evaluate.reward_report import markdown, write_result
from rewardlab.label.pref_sets import PrefSetSpec, build_sets, write_sets
from rewardlab.rewards.ensemble import EnsembleReward
from rewardlab.rewards.preference_rm import PreferenceRM
from rewardlab.train.loop import LoopConfig
from rewardlab.train.pref_io import read_pairs, read_ratings, write_jsonl
from rewardlab.train.pref_trainer import train_preference_model
from rewardlab.train.preference import PREFERENCE_OBJECTIVES, PreferenceConfig
from rewardlab.types import Candidate, Problem


def small_backbone(out: Path) -> Path:
    """A fresh small Llama (hidden 64, 2 layers) with the tiny policy's tokenizer recipe."""
    from rewardlab.train.tiny_policy import TinyPolicyConfig, build_model, build_tokenizer

    if not (out / "config.json").is_file():
        cfg = TinyPolicyConfig(
            hidden_size=64, layers=2, heads=4, intermediate_size=128, tokenizer_corpus=2000
        )
        build_model(cfg, build_tokenizer(cfg, out)).save_pretrained(out)
    return out


def make_data(out: Path, problems: int, noise: float) -> dict[str, Path]:
    """Sets for one noise level; the held-out pairs are split by problem into dev and test."""
    spec = PrefSetSpec(
        problems=problems, n_ops=(1, 3), noise=noise, seed=0, n_corrupt=14, n_verbose=3
    )  # pools of up to 18 responses: best-of-N up to N = 16
    sets = build_sets(spec)
    ids = sorted({r["problem_id"] for r in sets["test_pairs"]})
    dev_ids = set(ids[: len(ids) // 2])
    sets["dev_pairs"] = [r for r in sets["test_pairs"] if r["problem_id"] in dev_ids]
    sets["test_pairs"] = [r for r in sets["test_pairs"] if r["problem_id"] not in dev_ids]
    sets["test_pool"] = [r for r in sets["test_pool"] if r["problem_id"] not in dev_ids]
    return write_sets(sets, out)


def cfg_for(objective: str, steps: int) -> PreferenceConfig:
    return PreferenceConfig(
        objective=objective,
        batch_size=16,
        max_length=160,
        noise_members=3,
        noise_steps=steps // 2,
        loop=LoopConfig(steps=steps, lr=3e-3, warmup_steps=20, log_every=50, cpu=True),
    )


def summary(res: EvalResult) -> dict[str, Any]:
    keys = ("accuracy", "subset/arith-correctness", "subset/arith-brevity")
    return {k: [res.metrics[k].value, res.metrics[k].low, res.metrics[k].high] for k in keys} | {
        "longer/accuracy": [
            res.baseline["accuracy"].value,
            res.baseline["accuracy"].low,
            res.baseline["accuracy"].high,
        ]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/pref_experiments"))
    parser.add_argument("--problems", type=int, default=300)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--backbone", type=Path, default=None)
    parser.add_argument("--n-boot", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    backbone = args.backbone or small_backbone(out / "backbone")
    data = {
        noise: make_data(out / f"data-noise{noise}", args.problems, noise) for noise in (0.0, 0.2)
    }
    results: dict[str, Any] = {
        "settings": vars(args) | {"out": str(out), "backbone": str(backbone)},
        "runs": {},
    }
    models: dict[tuple[str, float], PreferenceRM] = {}
    for noise, files in data.items():
        pairs, ratings = read_pairs(files["train_pairs"]), read_ratings(files["train_ratings"])
        for objective in PREFERENCE_OBJECTIVES:
            t0 = time.monotonic()
            trained = train_preference_model(
                backbone, cfg_for(objective, args.steps), pairs, ratings, seed=0
            )
            rm = PreferenceRM(
                trained.model, trained.tokenizer, name=f"{objective}@{noise}", max_length=160
            )
            models[(objective, noise)] = rm
            res = evaluate_pairwise(rm, files["test_pairs"], n_boot=args.n_boot)
            run = summary(res) | {"minutes": round((time.monotonic() - t0) / 60, 2)}
            if objective == "noise-robust":
                mask = trained.info["noise"]["flip_mask"]
                truth = [r.extra.get("flipped", False) for r in pairs]
                run["flipped"] = sum(mask)
                run["flip_precision"] = sum(
                    m and t for m, t in zip(mask, truth, strict=True)
                ) / max(1, sum(mask))
                run["flip_recall"] = sum(m and t for m, t in zip(mask, truth, strict=True)) / max(
                    1, sum(truth)
                )
            results["runs"][f"{objective}@{noise}"] = run
            print(json.dumps({f"{objective}@{noise}": run}), flush=True)
    # ensembles vs single under best-of-N (noisy data, BT members with seeds 0..K-1)
    noisy = data[0.2]
    members = [models[("bt", 0.2)]]
    for seed in range(1, args.members):
        trained = train_preference_model(
            backbone, cfg_for("bt", args.steps), read_pairs(noisy["train_pairs"]), seed=seed
        )
        members.append(
            PreferenceRM(trained.model, trained.tokenizer, name=f"bt-seed{seed}", max_length=160)
        )
    proxies: dict[str, Any] = {"single bt (seed 0)": members[0]}
    ref = read_pairs(noisy["train_pairs"])[:300]  # z-normalisation stats: training responses
    ref_p = [Problem(f"r{i}", r.prompt, "") for i, r in enumerate(ref) for _ in range(2)]
    ref_c = [
        Candidate(p.id, t, (), None)
        for p, t in zip(ref_p, [t for r in ref for t in (r.chosen, r.rejected)], strict=True)
    ]
    for agg in ("mean", "mean-std", "min"):
        ens = EnsembleReward(tuple(members), aggregate=agg, lam=1.0, name=f"ens-{agg}")
        proxies[f"ensemble {agg} (K={len(members)})"] = ens.fit_normalization(ref_p, ref_c)
    over = evaluate_overopt(proxies, noisy["test_pool"], n_boot=args.n_boot)
    write_result(over, out, "overopt")
    results["overopt"] = {
        k: [e.value, e.low, e.high] for k, e in [*over.metrics.items(), *over.baseline.items()]
    }
    ens_pair = evaluate_pairwise(
        proxies[f"ensemble mean (K={len(members)})"], noisy["test_pairs"], n_boot=args.n_boot
    )
    results["runs"]["ensemble-mean@0.2"] = summary(ens_pair)
    # calibration before / after, BT on clean data
    cal = evaluate_pairwise(
        models[("bt", 0.0)], data[0.0]["test_pairs"], dev=data[0.0]["dev_pairs"], n_boot=args.n_boot
    )
    write_result(cal, out, "calibration_bt")
    results["calibration"] = {
        k: [e.value, e.low, e.high] for k, e in cal.metrics.items() if k.startswith("ece/")
    } | {"temperature": cal.details["calibration"]["temperature"]}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    write_jsonl([{"name": k, **v} for k, v in results["runs"].items()], out / "runs.jsonl")
    (out / "results.md").write_text(markdown(over) + "\n" + markdown(cal))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
