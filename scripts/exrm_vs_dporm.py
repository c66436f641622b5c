"""EXRM vs DPORM: does the DPO implicit reward generalise like an explicit reward model?

    OMP_NUM_THREADS=1 .venv/bin/python scripts/exrm_vs_dporm.py [--out runs/exrm_vs_dporm]
        [--problems 120 --steps 150 --lr 1e-3 --beta 0.1 --backbone DIR | --fresh-small]
        [--no-treg]

Lin et al. 2024 ("On the limited generalization capability of the implicit reward model
induced by DPO") compare an explicit BT reward model (EXRM) with the DPO implicit reward
r = β·log π/π_ref (DPORM) trained on the same preferences: similar in distribution, DPORM
worse out of distribution. This script repeats the comparison on the testbed, where the truth
of every pair is known:

1. In-distribution data: controlled-truth pairs of arith problems with 1–2 operations
   (:mod:`rewardlab.label.pref_sets`); training pairs from 75% of the problems, the test pairs
   from the held-out 25% (problem-disjoint).
2. Out-of-distribution test: pairs of *other* problems with 3–4 operations (longer solutions,
   more steps; another generator seed), never trained on.
3. From the same backbone (default: the shipped tiny policy, a causal LM that has seen
   arithmetic), trains EXRM (``bt``, a ``seqcls`` head on the backbone), DPORM (``dpo``: the
   policy itself, reference = the backbone) and, unless ``--no-treg``, T-REG (``t-reg``), each
   for the same steps, learning rate and batches.
4. Scores both test files with :func:`~rewardlab.evaluate.reward_eval.evaluate_pairwise`
   (accuracy with a 95% bootstrap CI over pairs, per subset, beside pick-the-longer).

Writes ``results.json`` and ``results.md`` to ``--out``. One seed: the CIs do not include seed
variance. Not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from rewardlab.evaluate.reward_eval import evaluate_pairwise
from rewardlab.label.pref_sets import PrefSetSpec, build_sets
from rewardlab.policies.registry import tiny_policy_dir
from rewardlab.rewards.registry import load_reward
from rewardlab.train.loop import LoopConfig
from rewardlab.train.pref_io import read_pairs, write_jsonl
from rewardlab.train.pref_trainer import save_trained, train_preference_model
from rewardlab.train.preference import PreferenceConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _machine import MachineProbe, machine_line


def _fmt(e: dict[str, Any]) -> str:
    return f"{e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"


def fresh_small_llama(out: Path) -> Path:
    """A fresh small Llama (hidden 64, 2 layers, 0.11M parameters) and its tokenizer."""
    from rewardlab.train.tiny_policy import TinyPolicyConfig, build_model, build_tokenizer

    if not (out / "config.json").is_file():
        cfg = TinyPolicyConfig(
            hidden_size=64, layers=2, heads=4, intermediate_size=128, tokenizer_corpus=2000
        )
        out.mkdir(parents=True, exist_ok=True)
        build_model(cfg, build_tokenizer(cfg, out)).save_pretrained(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/exrm_vs_dporm"))
    ap.add_argument("--problems", type=int, default=120)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument(
        "--backbone", type=Path, default=None, help="causal LM dir (default: the tiny policy)"
    )
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument(
        "--fresh-small",
        action="store_true",
        help="build and use a fresh small Llama (hidden 64, 2 layers) in OUT/small_llama",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-treg", action="store_true")
    args = ap.parse_args()
    probe = MachineProbe()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    backbone = args.backbone or tiny_policy_dir()
    if args.fresh_small:
        backbone = fresh_small_llama(out / "small_llama")

    spec = PrefSetSpec(problems=args.problems, n_ops=(1, 2), seed=args.seed, pairs_per_problem=6)
    ind = build_sets(spec)
    ood = build_sets(replace(spec, problems=args.problems // 2, n_ops=(3, 4), seed=args.seed + 7))
    files = {
        "train": write_jsonl(ind["train_pairs"], out / "train_pairs.jsonl"),
        "in-distribution": write_jsonl(ind["test_pairs"], out / "test_id.jsonl"),
        "out-of-distribution": write_jsonl(
            ood["train_pairs"] + ood["test_pairs"], out / "test_ood.jsonl"
        ),
    }
    pairs = read_pairs(files["train"])
    base = PreferenceConfig(
        loop=LoopConfig(
            steps=args.steps, lr=args.lr, seed=args.seed, warmup_steps=10, log_every=25
        ),
        batch_size=args.batch_size,
        max_length=args.max_length,
        dpo_beta=args.beta,
    )
    models = {"EXRM (bt)": "bt", "DPORM (dpo)": "dpo"}
    if not args.no_treg:
        models["DPORM (t-reg)"] = "t-reg"
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "models": {}}
    for label, objective in models.items():
        cfg = replace(base, objective=objective)
        t0 = time.monotonic()
        trained = train_preference_model(
            backbone, cfg, pairs, log=lambda r: print(json.dumps(r), flush=True)
        )
        minutes = (time.monotonic() - t0) / 60
        path = save_trained(trained, out / objective, cfg, name=objective)
        reward = load_reward(str(path), device="cpu")
        evals = {}
        for split in ("in-distribution", "out-of-distribution"):
            res = evaluate_pairwise(reward, files[split], seed=args.seed)
            evals[split] = {
                "accuracy": asdict(res.metrics["accuracy"]),
                "subsets": {
                    k: asdict(v) for k, v in res.metrics.items() if k.startswith("subset/")
                },
                "baseline": asdict(res.baseline["accuracy"]),
            }
        results["models"][label] = {"objective": objective, "minutes": minutes, **evals}
        print(label, {k: v["accuracy"] for k, v in evals.items()}, flush=True)
    results["machine"] = probe.record(train_pairs=len(pairs))
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    lines = [
        "| model | in-distribution (1–2 ops) | out-of-distribution (3–4 ops) | ID − OOD "
        "| minutes |",
        "|---|---|---|---:|---:|",
    ]
    for label, r in results["models"].items():
        i, o = r["in-distribution"]["accuracy"], r["out-of-distribution"]["accuracy"]
        lines.append(
            f"| {label} | {_fmt(i)} | {_fmt(o)} | {i['value'] - o['value']:+.3f} | "
            f"{r['minutes']:.1f} |"
        )
    any_r = next(iter(results["models"].values()))
    lines.append(
        f"| *pick the longer response* | {_fmt(any_r['in-distribution']['baseline'])} | "
        f"{_fmt(any_r['out-of-distribution']['baseline'])} | | |"
    )
    lines += ["", machine_line(results["machine"]), ""]
    (out / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
