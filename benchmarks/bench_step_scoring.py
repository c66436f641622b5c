"""Benchmark: one-pass step scoring beside per-prefix scoring of the same candidates.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_step_scoring.py [--candidates 256]
        [--batch-size 32] [--repeats 3] [--model DIR]

A PRM that reads every step boundary of a candidate in ONE forward pass
(:func:`rewardlab.rewards.prm.score_one_pass`) against the naive way of running every prefix
(question + steps ``0..t``) as its own sequence and reading its last position
(:func:`rewardlab.rewards.prm.score_per_prefix`). Same model, same candidates, same batch size
(length-sorted, right-padded batches in both), same run. Expected speed-up: about the mean
number of steps per candidate (each prefix re-reads the prompt and all earlier steps), a little
less because prefixes are shorter than whole candidates.

Model: ``--model`` (a transformers dir), else the shipped PRM (``assets/prm_arith``), else a
2-class token-classification head on the tiny policy (``assets/tiny_policy``), else a freshly
initialised Llama of the tiny policy's shape. Candidates: gold solutions of arith problems with
1..8 operations (seed 4242), one in three with a wrong step, so steps per candidate vary (2..9).
Each method runs once to warm up, then ``--repeats`` times; the median is reported, with the
largest difference between the two methods' step scores. Writes
``benchmarks/results/step_scoring.{json,md}``. Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _machine import MachineProbe, machine_line

from rewardlab.rewards.prm import ClassifierPRM, score_one_pass, score_per_prefix
from rewardlab.tasks import arith
from rewardlab.types import Candidate, Problem

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "src" / "rewardlab" / "assets"


def load_model(path: Path | None) -> tuple[Any, Any, str]:
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    if path is None and (ASSETS / "prm_arith" / "rewardlab.json").is_file():
        from rewardlab.rewards.learned import load_learned_reward

        prm = load_learned_reward(ASSETS / "prm_arith", device="cpu")
        return prm.model, prm.tokenizer, "shipped PRM (assets/prm_arith)"
    if path is None and (ASSETS / "tiny_policy" / "config.json").is_file():
        path = ASSETS / "tiny_policy"
    if path is None:
        from rewardlab.train.tiny_policy import TinyPolicyConfig, build_model, build_tokenizer

        tmp = Path(tempfile.mkdtemp())
        cfg = TinyPolicyConfig()
        build_model(cfg, build_tokenizer(cfg, tmp)).save_pretrained(tmp)
        path, label = tmp, "random Llama, tiny-policy shape"
    else:
        label = f"{path.name} + fresh 2-class token head"
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(
        path, num_labels=2, local_files_only=True
    )
    return model.eval(), tok, label


def candidates(n: int) -> tuple[list[Problem], list[Candidate]]:
    probs = arith.generate(n, seed=4242, n_ops=(1, 8))
    cands = []
    for i, p in enumerate(probs):
        steps = arith.gold_steps(p)
        if i % 3 == 0:
            k = i % len(steps)
            steps[k] = steps[k].replace("=", "= 1", 1)
        cands.append(Candidate(p.id, "\n".join(steps), tuple(steps), None, index=i))
    return probs, cands


def timed(fn: Any, repeats: int) -> tuple[float, list[Any]]:
    out = fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidates", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()

    probe = MachineProbe()
    model, tok, label = load_model(args.model)
    prm = ClassifierPRM(model, tok, batch_size=args.batch_size)
    problems, cands = candidates(args.candidates)
    encoded = [
        prm.fmt.encode(tok, p.question, c.steps) for p, c in zip(problems, cands, strict=True)
    ]
    steps = np.array([len(c.steps) for c in cands])
    one_tokens = sum(len(e) for e in encoded)
    prefix_tokens = sum(b + 1 for e in encoded for b in e.boundaries)
    t_one, fast = timed(lambda: score_one_pass(prm, problems, cands), args.repeats)
    t_pre, slow = timed(lambda: score_per_prefix(prm, problems, cands), args.repeats)
    diff = max(
        abs(a - b)
        for f, s in zip(fast, slow, strict=True)
        for a, b in zip(f.steps, s.steps, strict=True)
    )
    result = {
        "model": label,
        "params": prm.params,
        "candidates": len(cands),
        "mean_steps": float(steps.mean()),
        "batch_size": args.batch_size,
        "one_pass": {
            "seconds": t_one,
            "forward_passes": len(cands),
            "tokens": one_tokens,
            "candidates_per_s": len(cands) / t_one,
        },
        "per_prefix": {
            "seconds": t_pre,
            "forward_passes": int(steps.sum()),
            "tokens": prefix_tokens,
            "candidates_per_s": len(cands) / t_pre,
        },
        "speedup": t_pre / t_one,
        "token_ratio": prefix_tokens / one_tokens,
        "max_abs_score_diff": diff,
        "machine": probe.record(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "step_scoring.json").write_text(json.dumps(result, indent=2))
    md = "\n".join(
        [
            "# Step scoring: one pass per candidate vs one pass per prefix",
            "",
            f"Model: {label}, {prm.params / 1e6:.2f}M parameters; 2-class token head "
            f"(`ClassifierPRM`). {len(cands)} arith candidates, "
            f"{result['mean_steps']:.2f} steps on average; batch size {args.batch_size}; "
            f"median of {args.repeats} runs after a warm-up.",
            machine_line(result["machine"]),
            "",
            "| method | seconds | forward rows | tokens | candidates/s |",
            "|---|---:|---:|---:|---:|",
            f"| one pass (`score_one_pass`) | {t_one:.2f} | {len(cands)} | {one_tokens} | "
            f"{len(cands) / t_one:.1f} |",
            f"| per prefix (`score_per_prefix`) | {t_pre:.2f} | {int(steps.sum())} | "
            f"{prefix_tokens} | {len(cands) / t_pre:.1f} |",
            "",
            f"Speed-up {result['speedup']:.2f}x (mean steps {result['mean_steps']:.2f}, "
            f"token ratio {result['token_ratio']:.2f}); largest difference between the two "
            f"methods' step scores: {diff:.2e}.",
            "",
        ]
    )
    (args.out / "step_scoring.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
