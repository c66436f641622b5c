"""Benchmark: a generative verifier, batched vs one candidate at a time, and its cost per
candidate beside the classifier PRM's.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_genverify.py [--candidates 64]
        [--repeats 3] [--verifier recompute|genprm|genrm]

Verifier (``--verifier``, default ``recompute``): ``recompute`` on the shipped tiny policy
(greedy, V = 1: one probe per equation; :mod:`rewardlab.rewards.recompute`), or a shipped
trained verifier (``genprm``: a Python line per step run in the sandbox; ``genrm``).
Batched = one ``score`` call for every candidate (the
policy batches the probes, up to its ``max_batch_size`` rows per ``generate``); the loop =
one ``score`` call per candidate, same model, same candidates, same run. The two must give
identical scores (greedy decoding), which is checked.

Cost per candidate: the verifier's own tokens (every probe it reads and writes, from
``Score.info``) times ``2 · params`` against the shipped classifier PRM's (it reads question +
steps once, ``2 · params · tokens``), and the measured seconds per candidate of each (the
PRM batched, one forward pass per candidate). Candidates: gold solutions of arith problems with
1..8 operations (seed 4242), one in three with a wrong step. Each method runs once to warm up,
then ``--repeats`` times; the median is reported. Writes
``benchmarks/results/genverify.{json,md}`` (``genverify_<verifier>.*`` for another
verifier). Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from _machine import MachineProbe, machine_line

from rewardlab.rewards.generative import GenerativeVerifier
from rewardlab.rewards.judges import YesNoFormat
from rewardlab.rewards.recompute import load_recompute
from rewardlab.tasks import arith
from rewardlab.types import Candidate, Problem, Sampling

ROOT = Path(__file__).resolve().parents[1]


def candidates(n: int) -> tuple[list[Problem], list[Candidate]]:
    probs = arith.generate(n, seed=4242, n_ops=(1, 8))
    cands = []
    for i, p in enumerate(probs):
        steps = arith.gold_steps(p)
        if i % 3 == 0:
            k = i % max(1, len(steps) - 1)
            lhs, rhs = steps[k].rsplit("=", 1)
            steps[k] = f"{lhs}= {int(rhs) + 1}"
        cands.append(Candidate(p.id, "\n".join(steps), tuple(steps), None, index=i))
    return probs, cands


WHY = {
    "recompute": (
        "With a 3.5M-parameter model the forward pass is cheap and the backend's per-row Python "
        "work at every generated token (each row's own random stream and logprob bookkeeping, "
        "stop-string checks by decoding) is most of the cost, and it grows with the rows, so "
        "batching buys little here; a one-at-a-time `recompute` call also already batches the "
        "candidate's ~5 probes."
    ),
    "genprm": (
        "`genprm` executes its lines in the sandbox: batched, every line of every candidate runs "
        "in one sandbox call; one candidate at a time pays a sandbox start per candidate, which "
        "costs far more than the model's few short probes."
    ),
    "genrm": "Each chain is a whole generation (about 115 tokens) per candidate.",
}


def timed(fn: Any, repeats: int) -> tuple[float, Any]:
    out = fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidates", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--verifier", default="recompute", choices=("recompute", "genprm", "genrm"))
    args = ap.parse_args()

    from rewardlab.rewards.registry import load_reward

    probe = MachineProbe()
    verifier = (
        load_recompute(device="cpu")
        if args.verifier == "recompute"
        else load_reward(args.verifier, device="cpu")
    )
    what = (
        "recompute (tiny policy, greedy, V=1)"
        if args.verifier == "recompute"
        else f"{args.verifier} (shipped trained verifier, greedy, V=1)"
    )
    stem = "genverify" if args.verifier == "recompute" else f"genverify_{args.verifier}"
    problems, cands = candidates(args.candidates)
    n = len(cands)
    t_batch, batched = timed(lambda: verifier.score(problems, cands), args.repeats)
    t_loop, looped = timed(
        lambda: [verifier.score([p], [c])[0] for p, c in zip(problems, cands, strict=True)],
        args.repeats,
    )
    same = [a.value for a in batched] == [b.value for b in looped]
    # a whole-chain verifier (no stop strings: one sample call, 32 new tokens per chain)
    chain = GenerativeVerifier(
        verifier.policy,
        YesNoFormat(verifier.policy.format_prompt, finish_cue=""),
        sampling=Sampling(temperature=0.0, max_new_tokens=32),
        name="yes-no-chain",
    )
    c_batch, _ = timed(lambda: chain.score(problems, cands), args.repeats)
    c_loop, _ = timed(
        lambda: [chain.score([p], [c])[0] for p, c in zip(problems, cands, strict=True)],
        args.repeats,
    )
    keys = ("verify_prompt_tokens", "verify_generated_tokens", "verify_scored_tokens")
    v_tokens = np.array([sum(int(s.info[k]) for k in keys) for s in batched])
    v_flops = 2.0 * verifier.params * v_tokens.mean()

    from rewardlab.rewards.learned import load_default_prm

    prm = load_default_prm(device="cpu")
    t_prm, _ = timed(lambda: prm.score_steps(problems, cands), args.repeats)
    prm_tokens = np.array(
        [
            len(prm.fmt.encode(prm.tokenizer, p.question, c.steps))
            for p, c in zip(problems, cands, strict=True)
        ]
    )
    prm_flops = 2.0 * prm.params * prm_tokens.mean()
    result = {
        "verifier": what,
        "verifier_params": verifier.params,
        "candidates": n,
        "mean_steps": float(np.mean([len(c.steps) for c in cands])),
        "batched": {"seconds": t_batch, "verifications_per_s": n / t_batch},
        "one_at_a_time": {"seconds": t_loop, "verifications_per_s": n / t_loop},
        "batched_speedup": t_loop / t_batch,
        "identical_scores": same,
        "chain_verifier": {
            "what": "YesNoFormat on the tiny policy, greedy, 32 new tokens, no stop strings",
            "batched_seconds": c_batch,
            "one_at_a_time_seconds": c_loop,
            "batched_verifications_per_s": n / c_batch,
            "one_at_a_time_verifications_per_s": n / c_loop,
            "batched_speedup": c_loop / c_batch,
        },
        "verifier_tokens_per_candidate": float(v_tokens.mean()),
        "verifier_flops_per_candidate": float(v_flops),
        "prm": {
            "params": int(prm.params),
            "tokens_per_candidate": float(prm_tokens.mean()),
            "flops_per_candidate": float(prm_flops),
            "seconds_per_candidate": t_prm / n,
        },
        "flops_ratio_generative_over_prm": float(v_flops / prm_flops),
        "seconds_ratio_generative_over_prm": float((t_batch / n) / (t_prm / n)),
        "machine": probe.record(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    md = "\n".join(
        [
            "# Generative verification: batched vs one at a time; cost beside the PRM",
            "",
            f"Verifier: {result['verifier']}, {verifier.params / 1e6:.2f}M parameters. {n} "
            f"arith candidates, {result['mean_steps']:.2f} steps on average (one in three "
            f"with a wrong result); median of {args.repeats} runs after a warm-up.",
            machine_line(result["machine"]),
            "",
            "| method | seconds | verifications/s |",
            "|---|---:|---:|",
            f"| `{args.verifier}` batched (one `score` call) | {t_batch:.2f} | {n / t_batch:.1f} |",
            f"| `{args.verifier}` one candidate at a time | {t_loop:.2f} | {n / t_loop:.1f} |",
            f"| 32-token chain batched | {c_batch:.2f} | {n / c_batch:.1f} |",
            f"| 32-token chain one candidate at a time | {c_loop:.2f} | {n / c_loop:.1f} |",
            "",
            f"Batched speed-up: `{args.verifier}` {result['batched_speedup']:.2f}x (identical "
            "scores: "
            f"{same}); whole chains {c_loop / c_batch:.2f}x. " + WHY[args.verifier],
            "",
            "| per candidate | tokens | FLOPs | seconds |",
            "|---|---:|---:|---:|",
            f"| generative (`{args.verifier}`) | {v_tokens.mean():.0f} | {v_flops:.3g} | "
            f"{t_batch / n:.4f} |",
            f"| classifier PRM (`prm`, one pass) | {prm_tokens.mean():.0f} | {prm_flops:.3g} | "
            f"{t_prm / n:.4f} |",
            "",
            f"The generative verifier costs {result['flops_ratio_generative_over_prm']:.1f}x the "
            f"PRM's FLOPs and {result['seconds_ratio_generative_over_prm']:.1f}x its time per "
            "candidate.",
            "",
        ]
    )
    (args.out / f"{stem}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
