"""Benchmark: batched sampling with the ``hf`` policy beside per-prompt ``model.generate`` loops.

    .venv/bin/python benchmarks/bench_sampling.py [--prompts 16] [--n 4] [--max-new-tokens 64]

One model for every method, in the same run: the shipped tiny policy
(``src/rewardlab/assets/tiny_policy``) when it exists, else a freshly initialised Llama of the
same architecture (hidden 256, 4 layers, the tiny policy's tokenizer) with random weights.
Settings are the same for all methods: P arithmetic questions x n samples each, temperature 1,
``max_new_tokens`` tokens at most, eos ends a sample. Methods:

- ``hf policy, loop decoder``: :meth:`HFPolicy.sample` with the default decoder (our decode
  loop: one preallocated key/value buffer, identical prompts computed once, finished rows
  leave the batch, stop checks on token ids; prefix cache off so repeats do not hit it);
- ``hf policy, generate decoder (before)``: the same call with ``decoder="generate"``, the
  engine before this change (``model.generate`` + a per-row logits processor + a stopping
  criterion); both decoders give the same samples (checked here, ``same_outputs``);
- ``loop per prompt``: one ``model.generate(do_sample=True, num_return_sequences=n)`` per prompt;
- ``one plain generate call``: all rows left-padded in a single ``generate(do_sample=True)``
  (no per-row seeds, no logprobs): the reference for the policy's own overhead;
- ``loop per sample``: one ``model.generate(do_sample=True)`` per prompt and sample (batch 1).

Throughput counts generated tokens up to and including eos (no padding). Each method runs once
to warm up and then ``--repeats`` times; the median wall time and the median CPU time of this
process are reported (on a shared machine the CPU time says more about the code, the wall time
about what a user waits). The machine's matmul peak is measured once (best of
``--peak-repeats`` float32 ``n x n`` matmuls at torch's thread count) and each method's
achieved FLOP/s, ``2 * params * (prompt + generated tokens) / wall seconds`` (every row's
prompt counted, as a method without reuse computes it), is put against it. Writes
benchmarks/results/sampling.json and sampling.md. Not a test.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _machine import MachineProbe, machine_line

from rewardlab.policies.hf import HFPolicy
from rewardlab.policies.prompts import plain_prompt
from rewardlab.types import Sampling

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "src" / "rewardlab" / "assets" / "tiny_policy"
RESULTS = ROOT / "benchmarks" / "results"


def model_dir(scratch: Path) -> tuple[Path, str]:
    """The shipped tiny policy, else a fresh random Llama of its architecture saved to scratch."""
    if (SHIPPED / "config.json").is_file():
        return SHIPPED, "shipped tiny policy"
    from rewardlab.train.tiny_policy import TinyPolicyConfig, build_model, build_tokenizer

    cfg = TinyPolicyConfig()
    tokenizer = build_tokenizer(cfg, scratch)
    build_model(cfg, tokenizer).save_pretrained(scratch)
    return scratch, "fresh random Llama (hidden 256, 4 layers; tiny-policy architecture)"


def questions(count: int, seed: int = 0) -> list[str]:
    from rewardlab.tasks import arith

    rng = random.Random(seed)
    return [arith.make_problem(rng, rng.randint(1, 4), 2).question for _ in range(count)]


def generated_tokens(sequences: torch.Tensor, width: int, eos: int) -> int:
    """Tokens after the prompt up to and including the first eos of each row."""
    total = 0
    for row in sequences[:, width:].tolist():
        total += row.index(eos) + 1 if eos in row else len(row)
    return total


def loop_per_prompt(policy: HFPolicy, prompts: list[str], n: int, params: Sampling) -> int:
    model, tok = policy.model, policy.tokenizer
    total = 0
    torch.manual_seed(params.seed)
    for prompt in prompts:
        enc = tok([prompt], return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(
                **enc,
                do_sample=True,
                temperature=params.temperature,
                top_p=None,
                top_k=None,
                max_new_tokens=params.max_new_tokens,
                num_return_sequences=n,
                pad_token_id=tok.pad_token_id,
            )
        total += generated_tokens(out, enc["input_ids"].shape[1], tok.eos_token_id)
    return total


def loop_per_sample(policy: HFPolicy, prompts: list[str], n: int, params: Sampling) -> int:
    return sum(loop_per_prompt(policy, [p], 1, params) for p in prompts for _ in range(n))


def one_generate_call(policy: HFPolicy, prompts: list[str], n: int, params: Sampling) -> int:
    """All rows in one plain left-padded ``generate`` call: the policy's overhead reference."""
    model, tok = policy.model, policy.tokenizer
    rows = [p for p in prompts for _ in range(n)]
    ids = [tok(p)["input_ids"] for p in rows]
    width = max(len(i) for i in ids)
    input_ids = torch.tensor([[tok.pad_token_id] * (width - len(i)) + i for i in ids])
    mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
    torch.manual_seed(params.seed)
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            do_sample=True,
            temperature=params.temperature,
            top_p=None,
            top_k=None,
            max_new_tokens=params.max_new_tokens,
            pad_token_id=tok.pad_token_id,
        )
    return generated_tokens(out, width, tok.eos_token_id)


def batched(policy: HFPolicy, prompts: list[str], n: int, params: Sampling) -> int:
    rows = policy.sample(prompts, n, params)
    return sum(c.generated_tokens for row in rows for c in row)


def matmul_peak(size: int, repeats: int) -> dict[str, float]:
    """Best float32 ``size x size`` matmul rate (FLOP/s) at torch's current thread count."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return {"size": size, "seconds": best, "flops_per_s": 2.0 * size**3 / best}


def timed(fn: Callable[[], int], repeats: int) -> dict[str, float]:
    fn()  # warm-up
    times, cpu, tokens = [], [], 0
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        tokens = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    median = statistics.median(times)
    return {
        "seconds": median,
        "cpu_seconds": statistics.median(cpu),
        "tokens": tokens,
        "tokens_per_s": tokens / median,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    probe = MachineProbe()
    with tempfile.TemporaryDirectory() as scratch:
        path, source = model_dir(Path(scratch))
        policy = HFPolicy.from_dir(path, device="cpu", max_batch_size=args.max_batch_size)
    prompts = [plain_prompt(q) for q in questions(args.prompts)]
    params = Sampling(temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    peak = matmul_peak(args.peak_size, args.peak_repeats)

    def variant(decoder: str, batch: int) -> HFPolicy:
        return HFPolicy(
            policy.model,
            policy.tokenizer,
            name=policy.name,
            max_batch_size=batch,
            decoder=decoder,
            prefix_cache_mb=0,
        )

    big = args.max_batch_size
    loop, loop8 = variant("loop", big), variant("loop", 8)
    before, before8 = variant("generate", big), variant("generate", 8)
    new_rows = [c for row in loop.sample(prompts, args.n, params) for c in row]
    old_rows = [c for row in before.sample(prompts, args.n, params) for c in row]
    same = [(c.text, c.generated_tokens, c.finish_reason) for c in new_rows] == [
        (c.text, c.generated_tokens, c.finish_reason) for c in old_rows
    ]
    logprob_gap = max(
        abs(a - b)
        for x, y in zip(new_rows, old_rows, strict=True)
        for a, b in zip(x.logprobs or (), y.logprobs or (), strict=True)
    )
    prompt_tokens = args.n * sum(len(policy.tokenizer(p)["input_ids"]) for p in prompts)
    methods: dict[str, Callable[[], int]] = {
        f"hf policy, loop decoder (max_batch_size={big})": lambda: batched(
            loop, prompts, args.n, params
        ),
        "hf policy, loop decoder (max_batch_size=8)": lambda: batched(
            loop8, prompts, args.n, params
        ),
        f"hf policy, generate decoder, before (max_batch_size={big})": lambda: batched(
            before, prompts, args.n, params
        ),
        "hf policy, generate decoder, before (max_batch_size=8)": lambda: batched(
            before8, prompts, args.n, params
        ),
        "one plain generate call, all rows (reference)": lambda: one_generate_call(
            policy, prompts, args.n, params
        ),
        "loop per prompt (num_return_sequences=n)": lambda: loop_per_prompt(
            policy, prompts, args.n, params
        ),
        "loop per sample (batch 1)": lambda: loop_per_sample(policy, prompts, args.n, params),
    }
    results = {name: timed(fn, args.repeats) for name, fn in methods.items()}
    baseline = results["loop per sample (batch 1)"]["tokens_per_s"]
    before_rate = results[f"hf policy, generate decoder, before (max_batch_size={big})"][
        "tokens_per_s"
    ]
    for r in results.values():
        r["speedup_vs_batch1_loop"] = r["tokens_per_s"] / baseline
        r["speedup_vs_before"] = r["tokens_per_s"] / before_rate
        r["flops_per_s"] = 2.0 * policy.params * (prompt_tokens + r["tokens"]) / r["seconds"]
        r["share_of_peak"] = r["flops_per_s"] / peak["flops_per_s"]
    return {
        "same_outputs": same,
        "max_logprob_difference": logprob_gap,
        "matmul_peak": peak,
        "prompt_tokens": prompt_tokens,
        "model": source,
        "params": policy.params,
        "settings": {
            "prompts": args.prompts,
            "n": args.n,
            "rows": args.prompts * args.n,
            "max_new_tokens": args.max_new_tokens,
            "temperature": 1.0,
            "repeats": args.repeats,
        },
        "machine": probe.record(),
        "results": results,
    }


def markdown(report: dict[str, Any]) -> str:
    s, m, p = report["settings"], report["machine"], report["matmul_peak"]
    lines = [
        "# Sampling throughput: `hf` policy (loop decoder, and the generate decoder before it) "
        "vs per-prompt `generate` loops",
        "",
        f"Model: {report['model']}, {report['params'] / 1e6:.2f}M parameters. "
        f"{s['prompts']} prompts x n={s['n']} ({s['rows']} rows), T={s['temperature']}, "
        f"max_new_tokens={s['max_new_tokens']}; median of {s['repeats']} runs after a warm-up.",
        machine_line(m),
        "",
        f"Matmul peak (float32 {p['size']}x{p['size']}, best of runs): "
        f"{p['flops_per_s'] / 1e9:.1f} GFLOP/s. Achieved FLOP/s = 2 x params x (prompt + "
        f"generated tokens) / wall seconds, every row's prompt counted "
        f"({report['prompt_tokens']} prompt tokens). Loop and generate decoders give the "
        f"same samples (texts, token counts, finish reasons): {report['same_outputs']}; their "
        f"logprobs differ by at most {report['max_logprob_difference']:.1e} (float noise "
        "between batch shapes).",
        "",
        "| method | wall s | CPU s | generated tokens | tokens/s | GFLOP/s | of peak "
        "| vs before | vs batch-1 loop |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["results"].items():
        lines.append(
            f"| {name} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | {r['tokens']} "
            f"| {r['tokens_per_s']:.0f} | {r['flops_per_s'] / 1e9:.2f} "
            f"| {100 * r['share_of_peak']:.1f}% | {r['speedup_vs_before']:.2f}x "
            f"| {r['speedup_vs_batch1_loop']:.1f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peak-size", type=int, default=1024)
    parser.add_argument("--peak-repeats", type=int, default=10)
    args = parser.parse_args()
    report = run(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sampling.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "sampling.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
