"""Benchmark: workers sharing one store (leases); sampling and scoring on Ray beside the local run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_workers.py [--problems 24] [--n 4]

1. ``rewardlab sample`` (the shipped tiny policy) once alone, then as two processes started
   together on one fresh store: wall time of each, and how many chunks each process sampled
   (the leases should divide them; the two together sample as many as the lone run).
2. The same sampling job (same problems, n, seed and token limit as 1.) in this process
   (``sample_pool``, one torch thread) and on a local Ray cluster through an actor pool of
   policy replicas (``RayPolicyPool``) with 1 and 2 actors, each into a fresh store: wall time
   (cluster start-up apart; actor start-up and model loading included), and whether the pool
   is the local one (texts, steps, answers, token counts, correctness identical; largest
   log-probability difference).
3. The shipped ORM scoring one pool (``--problems`` x 8 hand-made candidates) in this process
   (``score_pool``) and on a local Ray cluster (``ray.init(num_cpus=2)``) with 1 and 2 actors
   (``score_pool_ray``), each into a fresh store: wall time (cluster start-up apart), and
   whether the scores are identical. Skipped with the reason when Ray is missing or does not
   start.

Writes benchmarks/results/workers.json and workers.md. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _machine import MachineProbe, machine_line

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SAMPLED = re.compile(r"this process sampled (\d+) of (\d+) chunks")


def _sample(out: Path, problems: int, n: int) -> subprocess.Popen[str]:
    args = ["sample", "--out", str(out), "--problems", str(problems), "--n", str(n)]
    args += ["--max-new-tokens", "64", "--difficulty", "1-4", "--seed", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "rewardlab.cli.main", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], started: float) -> dict[str, Any]:
    stdout, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"rewardlab sample exited {proc.returncode}")
    found = SAMPLED.search(stdout)
    assert found, stdout
    return {
        "seconds": round(time.monotonic() - started, 1),
        "chunks_sampled": int(found[1]),
        "chunks": int(found[2]),
    }


def bench_sampling(problems: int, n: int, scratch: Path) -> dict[str, Any]:
    started = time.monotonic()
    alone = _finish(_sample(scratch / "alone", problems, n), started)
    started = time.monotonic()
    pair = [_sample(scratch / "shared", problems, n) for _ in range(2)]
    both = [_finish(p, started) for p in pair]
    same = (scratch / "alone" / "pool.jsonl").read_text() == (
        scratch / "shared" / "pool.jsonl"
    ).read_text()
    return {"alone": alone, "two_workers": both, "identical_pools": same}


def _sampling_job(problems: int, n: int) -> tuple[Any, list[Any], Any]:
    """The job of ``_sample`` (``rewardlab sample`` with the same flags), in process."""
    from rewardlab.search.pool import PoolSpec
    from rewardlab.tasks.registry import load_task
    from rewardlab.types import Sampling

    task, probs = load_task("arith", problems, seed=1, n_ops=(1, 4))
    return task, probs, PoolSpec(n, Sampling(1.0, 1.0, 64, 1))


def _compare_pools(a: list[list[Any]], b: list[list[Any]]) -> dict[str, Any]:
    from dataclasses import replace

    flat_a = [c for row in a for c in row]
    flat_b = [c for row in b for c in row]
    same = [replace(c, logprobs=None) for c in flat_a] == [
        replace(c, logprobs=None) for c in flat_b
    ]
    diff = max(
        (
            abs(x - y)
            for ca, cb in zip(flat_a, flat_b, strict=True)
            for x, y in zip(ca.logprobs or (), cb.logprobs or (), strict=True)
        ),
        default=0.0,
    )
    return {"identical_but_logprobs": same, "max_logprob_diff": diff}


def bench_ray_sampling(problems: int, n: int, scratch: Path) -> dict[str, Any]:
    import torch

    from rewardlab.pipelines.ray_backend import RayConfig, RayPolicyPool, ray_session
    from rewardlab.policies.registry import load_policy
    from rewardlab.search.pool import sample_pool
    from rewardlab.store import SampleStore

    task, probs, spec = _sampling_job(problems, n)
    torch.set_num_threads(1)  # as each actor (and the `rewardlab sample` runs above)
    started = time.monotonic()
    local = sample_pool(probs, task, load_policy("tiny"), spec, SampleStore(scratch / "sl.sqlite"))
    result: dict[str, Any] = {"local_seconds": round(time.monotonic() - started, 2)}
    try:
        started = time.monotonic()
        with ray_session(RayConfig(num_cpus=2)):
            result["ray_start_seconds"] = round(time.monotonic() - started, 1)
            driver = load_policy("tiny")
            for actors in (1, 2):
                store = SampleStore(scratch / f"sray{actors}.sqlite")
                started = time.monotonic()
                with RayPolicyPool("tiny", RayConfig(actors=actors), driver.name) as pool:
                    got = sample_pool(probs, task, driver, spec, store, runner=pool)
                    calls, start = pool.calls_run, pool.start_seconds
                result[f"ray_{actors}_actors_seconds"] = round(time.monotonic() - started, 2)
                result[f"ray_{actors}_actors_calls"] = calls
                result[f"ray_{actors}_actors_start_seconds"] = round(start, 2)
                result[f"ray_{actors}_actors"] = _compare_pools(got, local)
    except Exception as e:  # a cluster that does not start is a result here, not a crash
        result["ray"] = f"failed: {type(e).__name__}: {e}"
    return result


def _pool(problems: int) -> tuple[list[Any], list[list[Any]], list[str]]:
    from rewardlab.tasks import arith
    from rewardlab.types import Candidate

    out = []
    probs = arith.generate(problems, seed=7, n_ops=(1, 6))
    for p in probs:
        ops = [f"{a} {op} {b} = {c}" for a, op, b, c in p.meta["ops"]]
        rows = []
        for k in range(8):
            last = int(p.answer) + (k % 3)  # one right, two wrong final steps, repeated
            steps = (*ops[: len(ops) - (k % 2)], f"The answer is {last}")
            rows.append(Candidate(p.id, "\n".join(steps), steps, str(last), index=k))
        out.append(rows)
    return probs, out, [f"req-{p.id}" for p in probs]


def bench_ray(problems: int, scratch: Path) -> dict[str, Any]:
    from rewardlab.pipelines.ray_backend import (
        RayScoring,
        ray_available,
        ray_session,
        score_pool_ray,
    )
    from rewardlab.rewards.registry import load_reward
    from rewardlab.search.pool import score_pool
    from rewardlab.store import SampleStore

    probs, pool, keys = _pool(problems)
    reward = load_reward("orm")
    started = time.monotonic()
    local = score_pool(reward, probs, pool, keys, SampleStore(scratch / "local.sqlite"))
    result: dict[str, Any] = {
        "candidates": sum(len(r) for r in pool),
        "local_seconds": round(time.monotonic() - started, 2),
    }
    if not ray_available():
        return {**result, "ray": "skipped: ray is not installed"}
    try:
        started = time.monotonic()
        with ray_session(RayScoring(num_cpus=2)):
            result["ray_start_seconds"] = round(time.monotonic() - started, 1)
            for actors in (1, 2):
                started = time.monotonic()
                got = score_pool_ray(
                    reward,
                    "orm",
                    probs,
                    pool,
                    keys,
                    SampleStore(scratch / f"ray{actors}.sqlite"),
                    RayScoring(actors=actors),
                )
                result[f"ray_{actors}_actors_seconds"] = round(time.monotonic() - started, 2)
                result[f"ray_{actors}_actors_identical"] = got == local
    except Exception as e:  # a cluster that does not start is a result here, not a crash
        result["ray"] = f"failed: {type(e).__name__}: {e}"
    return result


def markdown(res: dict[str, Any]) -> str:
    s = res["sampling"]
    lines = [
        "# Workers on one store; sampling and scoring on Ray",
        "",
        machine_line(res["machine"]),
        "",
        f"`rewardlab sample` of {res['problems']} problems x {res['n']} (tiny policy):",
        "",
        "| run | wall s | chunks sampled by the process |",
        "|---|---|---|",
        f"| alone | {s['alone']['seconds']} | {s['alone']['chunks_sampled']} of "
        f"{s['alone']['chunks']} |",
    ]
    for i, w in enumerate(s["two_workers"]):
        lines.append(
            f"| worker {i + 1} of 2 (together) | {w['seconds']} | {w['chunks_sampled']} of "
            f"{w['chunks']} |"
        )
    lines += ["", f"Pools identical: {s['identical_pools']}.", ""]
    r = res["ray_sampling"]
    lines += [
        "The same sampling job in process and on a local Ray cluster (`num_cpus=2`), policy "
        "replicas on an actor pool:",
        "",
        "| backend | wall s | of which actor start + model load | policy calls | pool "
        "identical (but log-probs) | largest log-prob difference |",
        "|---|---|---|---|---|---|",
        f"| local (this process, 1 torch thread) | {r['local_seconds']} | – | – | – | – |",
    ]
    for a in (1, 2):
        if f"ray_{a}_actors_seconds" in r:
            same = r[f"ray_{a}_actors"]
            lines.append(
                f"| Ray, {a} actor(s) | {r[f'ray_{a}_actors_seconds']} | "
                f"{r[f'ray_{a}_actors_start_seconds']} | "
                f"{r[f'ray_{a}_actors_calls']} | {same['identical_but_logprobs']} | "
                f"{same['max_logprob_diff']:.2e} |"
            )
    if "ray_start_seconds" in r:
        lines += ["", f"Local Ray cluster start-up: {r['ray_start_seconds']} s (not counted)."]
    if "ray" in r:
        lines += ["", f"Ray: {r['ray']}"]
    lines.append("")
    r = res["ray"]
    lines += [f"ORM scoring of {r['candidates']} candidates:", ""]
    lines += ["| backend | wall s | identical to local |", "|---|---|---|"]
    lines.append(f"| local (this process) | {r['local_seconds']} | – |")
    for a in (1, 2):
        if f"ray_{a}_actors_seconds" in r:
            lines.append(
                f"| Ray, {a} actor(s) | {r[f'ray_{a}_actors_seconds']} | "
                f"{r[f'ray_{a}_actors_identical']} |"
            )
    if "ray_start_seconds" in r:
        lines += [
            "",
            f"Local Ray cluster start-up: {r['ray_start_seconds']} s (not counted above).",
        ]
    if "ray" in r:
        lines += ["", f"Ray: {r['ray']}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", type=int, default=24)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--score-problems", type=int, default=64)
    args = ap.parse_args()
    probe = MachineProbe()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        sampling = bench_sampling(args.problems, args.n, scratch)
        ray_sampling = bench_ray_sampling(args.problems, args.n, scratch)
        ray = bench_ray(args.score_problems, scratch)
    res = {
        "problems": args.problems,
        "n": args.n,
        "sampling": sampling,
        "ray_sampling": ray_sampling,
        "ray": ray,
        "machine": probe.record(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "workers.json").write_text(json.dumps(res, indent=2) + "\n")
    text = markdown(res)
    (RESULTS / "workers.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
