"""Benchmark: step-by-step beam search through ``Policy.extend`` vs best-of-N through ``sample``,
with and without prefix reuse.

    .venv/bin/python benchmarks/bench_search.py [--problems 16] [--ns 16 64] [--m 4]

Same policy (the shipped tiny policy) and problems (arith testbed, ``--problems`` problems of
4-6 operations) for every method, in one run:

- ``best-of-N``: one ``sample(prompts, N)`` call, ``--max-new-tokens`` per solution;
- ``BeamSearch``: the library's beam search (:class:`rewardlab.search.online.BeamSearch`,
  keep N/M, expand each M times) on every problem, the problems' searches run side by side on
  ``--workers`` threads sharing one ``BatchingBackend`` (their ``extend`` calls merged into one
  batch), as ``rewardlab scale`` runs it; steps scored by the dial verifier
  ``oracle-prm:q=0.9`` (the testbed's step truth plus noise: no model FLOPs, so the policy is
  what is timed); no store.
- ``plain beam loop``: the same semantics written here as a plain loop over ``extend``: every
  round, all problems' running beams are extended by one line in ONE ``extend(prefixes,
  stop=["\\n"])`` call, beams that ended are set aside as finished, the top N/M running beams
  per problem by mean token logprob are kept and each is expanded M times; a problem stops with
  N finished beams or after ``--max-steps`` rounds.
- each method with the prefix cache on (``prefix_cache_mb``, default 256) and off (0).
  Identical prompts in one call are computed once either way.

Reported per method: wall and CPU seconds (median of ``--repeats``), generated tokens, prompt
tokens (logical) and prompt tokens actually computed, ``extend``/``sample`` calls, finished
candidates, and accuracy of the top-scored finished candidate (a sanity check, not a result).
The ratio beam / best-of-N wall time is the issue's target (<= 1.5x). Writes
benchmarks/results/search.json and search.md. Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _machine import MachineProbe, machine_line

from rewardlab.policies.hf import HFPolicy
from rewardlab.policies.registry import load_policy
from rewardlab.tasks import arith
from rewardlab.types import Completion, Problem, Sampling

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def score(logprobs: list[float]) -> float:
    return sum(logprobs) / max(1, len(logprobs))


def best_of_n(
    policy: HFPolicy, problems: list[Problem], n: int, params: Sampling
) -> list[list[tuple[str, float]]]:
    prompts = [policy.format_prompt(p.question) for p in problems]
    rows = policy.sample(prompts, n, params)
    return [[(c.text, score(list(c.logprobs or ()))) for c in row] for row in rows]


def beam(
    policy: HFPolicy,
    problems: list[Problem],
    n: int,
    m: int,
    step: Sampling,
    max_steps: int,
) -> tuple[list[list[tuple[str, float]]], int]:
    """Beam search per problem, all problems batched into one extend call per round."""
    keep = max(1, n // m)
    prompts = [policy.format_prompt(p.question) for p in problems]
    # running beams per problem: (text so far, logprobs so far)
    running: list[list[tuple[str, list[float]]]] = [[("", [])] * n for _ in problems]
    finished: list[list[tuple[str, float]]] = [[] for _ in problems]
    calls = 0
    for depth in range(max_steps):
        rows = [(i, b) for i, beams in enumerate(running) for b in beams]
        if not rows:
            break
        prefixes = [prompts[i] + text for i, (text, _) in rows]
        params = Sampling(step.temperature, step.top_p, step.max_new_tokens, step.seed + depth)
        done: list[Completion] = policy.extend(prefixes, params, ["\n"])
        calls += 1
        grown: list[list[tuple[str, list[float]]]] = [[] for _ in problems]
        for (i, (text, lps)), c in zip(rows, done, strict=True):
            beam_lps = lps + list(c.logprobs or ())
            if c.text.endswith("\n") and depth < max_steps - 1:
                grown[i].append((text + c.text, beam_lps))
            else:  # eos, the token limit or the last round: a finished candidate
                finished[i].append((text + c.text, score(beam_lps)))
        for i in range(len(problems)):
            if len(finished[i]) >= n:
                running[i] = []
                continue
            best = sorted(grown[i], key=lambda b: -score(b[1]))[:keep]
            running[i] = [b for b in best for _ in range(m)][: n - len(finished[i])]
    return finished, calls


def library_beam(
    policy: HFPolicy,
    problems: list[Problem],
    n: int,
    m: int,
    step: Sampling,
    max_steps: int,
    workers: int,
) -> tuple[list[list[tuple[str, float]]], int]:
    """:class:`BeamSearch` on every problem, searches side by side on one batching backend."""
    from rewardlab.rewards.registry import load_reward
    from rewardlab.search.online import BeamSearch, EngineConfig, StepExpander
    from rewardlab.search.online.batching import BatchingBackend, run_side_by_side

    task = arith.ArithTask()
    reward = load_reward("oracle-prm:q=0.9")
    strategy = BeamSearch(reward="oracle-prm", width=m, select="bon")
    config = EngineConfig(sampling=step, max_steps=max_steps)
    threads = max(1, min(workers, len(problems)))
    backend = BatchingBackend(policy, reward, threads)

    def work(problem: Problem) -> Any:
        engine = StepExpander(policy, task, reward, config, None, backend=backend)
        return strategy.search(problem, engine, n)

    results = run_side_by_side(problems, work, backend, threads)
    candidates = [
        [(c.text, 1.0 if r.chosen == j else 0.0) for j, c in enumerate(r.candidates)]
        for r in results
    ]
    return candidates, backend.calls


def accuracy(problems: list[Problem], candidates: list[list[tuple[str, float]]]) -> float:
    task = arith.ArithTask()
    right = 0
    for p, cands in zip(problems, candidates, strict=True):
        if cands:
            text = max(cands, key=lambda c: c[1])[0]
            right += task.is_correct(p, task.extract_answer(text))
    return right / len(problems)


def measure(
    name: str,
    policy: HFPolicy,
    fn: Callable[[], tuple[list[list[tuple[str, float]]], int]],
    problems: list[Problem],
    repeats: int,
) -> dict[str, Any]:
    walls, cpus = [], []
    result: tuple[list[list[tuple[str, float]]], int] = ([], 0)
    for _ in range(repeats):
        policy.prefix_cache.clear()  # every repeat starts cold
        before_prompt = policy.reuse.prompt_tokens
        before_computed = policy.reuse.computed_prompt_tokens
        assert policy.ledger is not None
        tokens_before = policy.ledger.totals(policy.name).generated_tokens
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
        prompt = policy.reuse.prompt_tokens - before_prompt
        computed = policy.reuse.computed_prompt_tokens - before_computed
        generated = policy.ledger.totals(policy.name).generated_tokens - tokens_before
    candidates, calls = result
    print(f"{name}: {statistics.median(walls):.1f} s", flush=True)
    return {
        "seconds": statistics.median(walls),
        "cpu_seconds": statistics.median(cpus),
        "generated_tokens": generated,
        "prompt_tokens": prompt,
        "computed_prompt_tokens": computed,
        "calls": calls,
        "finished": sum(len(c) for c in candidates),
        "accuracy_top_score": accuracy(problems, candidates),
        "cache_bytes_after": policy.prefix_cache.nbytes,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from rewardlab.compute import Ledger

    probe = MachineProbe()
    base: Any = load_policy("tiny", device="cpu")
    problems = arith.generate(args.problems, seed=args.seed, n_ops=(4, 6))
    solution = Sampling(temperature=1.0, max_new_tokens=args.max_new_tokens, seed=args.seed)
    step = Sampling(temperature=1.0, max_new_tokens=args.step_tokens, seed=args.seed)
    results: dict[str, dict[str, Any]] = {}
    for n in args.ns:
        for mb in (args.prefix_cache_mb, 0):
            reuse = "prefix reuse" if mb else "no prefix reuse"
            policy = HFPolicy(
                base.model, base.tokenizer, name="tiny", ledger=Ledger(), prefix_cache_mb=mb
            )

            def bon(policy: HFPolicy = policy, n: int = n) -> tuple[Any, int]:
                return best_of_n(policy, problems, n, solution), 1

            def lib(policy: HFPolicy = policy, n: int = n) -> tuple[Any, int]:
                return library_beam(policy, problems, n, args.m, step, args.max_steps, args.workers)

            def bs(policy: HFPolicy = policy, n: int = n) -> tuple[Any, int]:
                return beam(policy, problems, n, args.m, step, args.max_steps)

            methods = {
                f"best-of-N, N={n}, {reuse}": bon,
                f"BeamSearch (M={args.m}), N={n}, {reuse}": lib,
                f"plain beam loop (M={args.m}), N={n}, {reuse}": bs,
            }
            for name, fn in methods.items():
                if "plain" in name and not args.plain_loop:
                    continue
                results[name] = measure(name, policy, fn, problems, args.repeats) | {"n": n}
    for n in args.ns:
        for reuse in ("prefix reuse", "no prefix reuse"):
            base_run = results[f"best-of-N, N={n}, {reuse}"]
            for kind in ("BeamSearch", "plain beam loop"):
                b = results.get(f"{kind} (M={args.m}), N={n}, {reuse}")
                if b is not None:
                    b["vs_best_of_n"] = b["seconds"] / base_run["seconds"]
                    b["vs_best_of_n_cpu"] = b["cpu_seconds"] / base_run["cpu_seconds"]
    return {
        "model": "shipped tiny policy",
        "params": base.params,
        "settings": {
            "problems": args.problems,
            "n_ops": [4, 6],
            "ns": args.ns,
            "m": args.m,
            "max_steps": args.max_steps,
            "workers": args.workers,
            "verifier": "oracle-prm:q=0.9",
            "solution_max_new_tokens": args.max_new_tokens,
            "step_max_new_tokens": args.step_tokens,
            "prefix_cache_mb": args.prefix_cache_mb,
            "temperature": 1.0,
            "repeats": args.repeats,
        },
        "machine": probe.record(),
        "results": results,
    }


def markdown(report: dict[str, Any]) -> str:
    s, m = report["settings"], report["machine"]
    lines = [
        "# Beam search through `extend` vs best-of-N through `sample` (hf policy)",
        "",
        f"Model: {report['model']}, {report['params'] / 1e6:.2f}M parameters. "
        f"{s['problems']} arith problems of 4-6 operations; T=1; best-of-N: one `sample` call, "
        f"<= {s['solution_max_new_tokens']} tokens per solution; beam: keep N/M, expand each "
        f"M={s['m']} times, <= {s['step_max_new_tokens']} tokens per step, <= "
        f"{s['max_steps']} steps. `BeamSearch` = the library's, {s['workers']} searches side by "
        f"side on one batching backend, steps scored by `{s['verifier']}` (no model FLOPs); "
        "plain beam loop = one `extend(stop=['\\n'])` call per round for all problems, score = "
        f"mean token logprob. Top-score acc: accuracy of the "
        f"candidate picked (best-of-N: highest mean logprob; BeamSearch: its `bon` pick); a "
        "sanity check, not a result. Calls: model calls (BeamSearch: merged extend and score "
        f"calls). Prefix reuse: a {s['prefix_cache_mb']} MiB prefix cache, "
        "or none "
        f"(identical prompts in one call are computed once either way). Median of "
        f"{s['repeats']} run(s), each from a cold cache.",
        machine_line(m),
        "",
        "| method | wall s | CPU s | vs best-of-N (wall / CPU) | generated tokens "
        "| prompt tokens (logical) | prompt tokens computed | calls | finished | top-score acc |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["results"].items():
        ratio = (
            f"{r['vs_best_of_n']:.2f}x / {r['vs_best_of_n_cpu']:.2f}x"
            if "vs_best_of_n" in r
            else "1"
        )
        lines.append(
            f"| {name} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {ratio} "
            f"| {r['generated_tokens']} | {r['prompt_tokens']} | {r['computed_prompt_tokens']} "
            f"| {r['calls']} | {r['finished']} | {r['accuracy_top_score']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--ns", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--m", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--step-tokens", type=int, default=40)
    parser.add_argument("--prefix-cache-mb", type=float, default=256.0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument(
        "--plain-loop", action="store_true", help="also time the plain beam loop written here"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="search")
    args = parser.parse_args()
    report = run(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{args.out}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
