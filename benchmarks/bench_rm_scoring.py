"""Benchmark: reward-model scoring with length-sorted dynamic batching vs a ``pipeline`` loop.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_rm_scoring.py [--texts 512] [--repeats 5]

One reward model for every method, in the same run: a sequence-classification head
(``num_labels=1``) on the shipped tiny policy (``src/rewardlab/assets/tiny_policy``) when it
exists, else on a freshly initialised Llama of the same architecture (hidden 256, 4 layers, the
tiny policy's tokenizer). The texts are testbed questions with solutions of 1–8 steps, a third
of them with filler sentences, so lengths vary several-fold (as real preference data does).
Methods:

- ``PreferenceRM.score_texts``: texts sorted by token length, batches packed up to
  ``--max-tokens`` padded tokens (default 2048: small batches stay in cache on a CPU) and
  ``--max-batch`` rows, under ``torch.inference_mode()``; on this Llama trunk the last layer
  runs at the pooled token only and no attention mask is built
  (:mod:`rewardlab.rewards.pooled_forward`);
- ``same, full forward`` (``pooled=False``): every layer at every token, the mask passed
  (``score_texts`` before the pooled forward);
- ``same, input order``: the full forward with the same packing budget, without sorting
  (what the sort buys);
- ``pipeline("text-classification")``: the plain transformers loop RewardBench uses
  (``function_to_apply="none"``, ``batch_size=--pipeline-batch``, texts in input order).

All methods must return the same scores (the max absolute difference is reported). Throughput
counts real (non-pad) tokens. The methods take turns: one warm-up round, then ``--repeats``
rounds; the median per method is reported, in wall seconds and in process CPU seconds (one
torch thread: CPU time is what the work took when it ran, less affected by other jobs on a
shared machine; the speed-ups are given for both). A ``torch.profiler`` pass per method then
splits its CPU time into matmuls, the attention kernel, element-wise ops (norms, rotary,
activations), other torch ops, and time outside torch ops (tokenizer, Python, collation).
Writes benchmarks/results/rm_scoring.json and rm_scoring.md. Not a test.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _machine import MachineProbe, machine_line

from rewardlab.rewards.preference_rm import (
    PreferenceRM,
    build_reward_model,
    encode_texts,
    pad_right,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "src" / "rewardlab" / "assets" / "tiny_policy"
RESULTS = ROOT / "benchmarks" / "results"


def backbone_dir(scratch: Path) -> tuple[Path, str]:
    if (SHIPPED / "config.json").is_file():
        return SHIPPED, "shipped tiny policy + seqcls head"
    from rewardlab.train.tiny_policy import TinyPolicyConfig, build_model, build_tokenizer

    cfg = TinyPolicyConfig()
    build_model(cfg, build_tokenizer(cfg, scratch)).save_pretrained(scratch)
    return scratch, "fresh random Llama (hidden 256, 4 layers) + seqcls head"


def texts(count: int, seed: int = 0) -> list[str]:
    from rewardlab.label.preferences import add_filler
    from rewardlab.tasks import arith

    rng = random.Random(seed)
    out = []
    for i in range(count):
        p = arith.make_problem(rng, rng.randint(1, 8), 2)
        sol = arith.gold_solution(p)
        if i % 3 == 0:
            sol = add_filler(sol, rng, rng.randint(1, 4))
        out.append(f"Question: {p.question}\nAnswer:\n{sol}")
    return out


def unsorted(rm: PreferenceRM, batch_texts: Sequence[str]) -> np.ndarray:
    """The same token budget, batches cut in input order (no sort), full forward."""
    ids = encode_texts(rm.tokenizer, batch_texts, rm.max_length)
    out = np.zeros(len(ids))
    with torch.inference_mode():
        start = 0
        while start < len(ids):
            end, width = start, 0
            while end < len(ids) and end - start < rm.max_batch:
                w = max(width, len(ids[end]))
                if end > start and (end - start + 1) * w > rm.max_tokens:
                    break
                width, end = w, end + 1
            x, mask = pad_right(ids[start:end], rm.tokenizer.pad_token_id)
            out[start:end] = rm.model(x, mask).numpy()
            start = end
    return out


def with_pipeline(pipe: Any, batch_texts: Sequence[str], batch_size: int) -> np.ndarray:
    res = pipe(list(batch_texts), batch_size=batch_size, function_to_apply="none")
    return np.array([r["score"] for r in res])


def timed_round_robin(
    methods: dict[str, Callable[[], np.ndarray]], repeats: int
) -> dict[str, tuple[list[float], list[float], np.ndarray]]:
    """Wall and CPU seconds of every round, and the scores, per method; the methods take turns
    in every round, so a change in the machine's load hits all of them alike (one warm-up
    round first)."""
    wall: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    scores: dict[str, np.ndarray] = {}
    for round_ in range(repeats + 1):
        for name, fn in methods.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            scores[name] = fn()
            if round_:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    return {name: (wall[name], cpu[name], scores[name]) for name in methods}


ELEMENTWISE = "mul add sub div neg silu pow mean rsqrt cat where exp tanh sigmoid"
CATEGORIES = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"),
    "attention": ("scaled_dot_product", "flash_attention", "aten::_softmax"),
    "elementwise": tuple(f"aten::{op}" for op in ELEMENTWISE.split(" ")),
}


def profile_breakdown(fn: Callable[[], np.ndarray]) -> dict[str, float]:
    """Seconds of one call split by kind of work (``torch.profiler`` self times, which are wall
    times per op; the rest of the call's wall time is outside torch ops: tokenizer, Python,
    collation). On a loaded machine every part stretches; the shares stay comparable."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        fn()
        total = time.perf_counter() - start
    out = dict.fromkeys([*CATEGORIES, "other torch ops"], 0.0)
    for event in prof.key_averages():
        secs = event.self_cpu_time_total / 1e6
        kind = next(
            (k for k, names in CATEGORIES.items() if any(n in event.key for n in names)),
            "other torch ops",
        )
        out[kind] += secs
    out["outside torch ops"] = max(0.0, total - sum(out.values()))
    out["total"] = total
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from transformers import pipeline

    torch.set_num_threads(args.threads)
    probe = MachineProbe()
    with tempfile.TemporaryDirectory() as scratch:
        path, source = backbone_dir(Path(scratch))
        model, tok = build_reward_model(path, "seqcls", seed=0)
    model.eval()
    rm = PreferenceRM(model, tok, max_tokens=args.max_tokens, max_batch=args.max_batch)
    data = texts(args.texts)
    n_tokens = sum(len(x) for x in encode_texts(tok, data, rm.max_length))
    pipe = pipeline("text-classification", model=model.backbone, tokenizer=tok, device="cpu")
    full = PreferenceRM(
        model, tok, max_tokens=args.max_tokens, max_batch=args.max_batch, pooled=False
    )
    methods: dict[str, Callable[[], np.ndarray]] = {
        f"PreferenceRM.score_texts (length-sorted, <= {args.max_tokens} tokens/batch)": (
            lambda: rm.score_texts(data)
        ),
        "same, full forward (pooled=False: all layers at all tokens, mask)": (
            lambda: full.score_texts(data)
        ),
        "full forward, input order (no sort)": lambda: unsorted(rm, data),
        f'pipeline("text-classification"), batch_size={args.pipeline_batch}': (
            lambda: with_pipeline(pipe, data, args.pipeline_batch)
        ),
    }
    results: dict[str, dict[str, Any]] = {}
    reference = None
    for name, (wall, cpu, scores) in timed_round_robin(methods, args.repeats).items():
        reference = scores if reference is None else reference
        seconds = statistics.median(wall)
        r: dict[str, Any] = {"seconds": seconds, "texts_per_s": len(data) / seconds}
        r["tokens_per_s"] = n_tokens / r["seconds"]
        r["cpu_seconds"] = statistics.median(cpu)
        r["seconds_all"] = [round(x, 2) for x in wall]
        r["cpu_seconds_all"] = [round(x, 2) for x in cpu]
        r["max_abs_diff_vs_first"] = float(np.abs(scores - reference).max())
        results[name] = r
    pipe_row = results[next(k for k in results if k.startswith("pipeline"))]
    for r in results.values():
        r["speedup_vs_pipeline"] = pipe_row["seconds"] / r["seconds"]
        r["cpu_speedup_vs_pipeline"] = pipe_row["cpu_seconds"] / r["cpu_seconds"]
    profiles = {name: profile_breakdown(fn) for name, fn in methods.items()}  # after timing
    lengths = [len(x) for x in encode_texts(tok, data, rm.max_length)]
    return {
        "model": source,
        "params": rm.params,
        "settings": {
            "texts": len(data),
            "tokens": n_tokens,
            "min_len": min(lengths),
            "median_len": int(np.median(lengths)),
            "max_len": max(lengths),
            "max_tokens": args.max_tokens,
            "max_batch": args.max_batch,
            "pipeline_batch": args.pipeline_batch,
            "repeats": args.repeats,
        },
        "machine": probe.record(),
        "results": results,
        "profile_s": profiles,
    }


def markdown(report: dict[str, Any]) -> str:
    s, m = report["settings"], report["machine"]
    lines = [
        "# Reward-model scoring: length-sorted dynamic batching vs `pipeline`",
        "",
        f"Model: {report['model']}, {report['params'] / 1e6:.2f}M parameters. {s['texts']} texts, "
        f"{s['tokens']} tokens (length {s['min_len']}–{s['max_len']}, median {s['median_len']}); "
        f"median of {s['repeats']} rounds after a warm-up round "
        "(methods take turns within each round).",
        machine_line(m),
        "",
        "| method | wall s (all rounds) | texts/s | tokens/s | speed-up vs pipeline "
        "| CPU s | speed-up (CPU s) | max abs score diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["results"].items():
        rounds = ", ".join(f"{x:.1f}" for x in r["seconds_all"])
        lines.append(
            f"| {name} | {r['seconds']:.2f} ({rounds}) | {r['texts_per_s']:.0f} "
            f"| {r['tokens_per_s']:.0f} | {r['speedup_vs_pipeline']:.2f}x "
            f"| {r['cpu_seconds']:.2f} | {r['cpu_speedup_vs_pipeline']:.2f}x "
            f"| {r['max_abs_diff_vs_first']:.1e} |"
        )
    kinds = ["matmul", "attention", "elementwise", "other torch ops", "outside torch ops"]
    lines += [
        "",
        "Where the time goes: seconds (share) of one profiled call per method (`torch.profiler` "
        "self times, wall clock; element-wise = norms, rotary, activations, residual adds; "
        "outside torch ops = tokenizer, Python, collation; the profiler adds its own overhead).",
        "",
        "| method | " + " | ".join(kinds) + " | total |",
        "|---|" + "---:|" * (len(kinds) + 1),
    ]
    for name, p in report.get("profile_s", {}).items():
        cells = " | ".join(f"{p[k]:.2f} ({p[k] / p['total']:.0%})" for k in kinds)
        lines.append(f"| {name} | {cells} | {p['total']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--max-tokens", type=int, default=2048)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--pipeline-batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    report = run(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rm_scoring.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "rm_scoring.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
