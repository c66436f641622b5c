"""Benchmark: executions per second of a trivial program through the sandbox, per isolation
level, beside a bare ``subprocess.run`` of the same interpreter in the same run; and the
throughput of :class:`~rewardlab.sandbox.SandboxPool` and of the code reward.

    .venv/bin/python benchmarks/bench_sandbox.py [--runs 40] [--workers 2] [--out DIR]

Methods (the program is ``print(1)`` everywhere):

- ``bare subprocess.run``: ``subprocess.run([python, "-I", "-S", "-B", "-c", "print(1)"])``, no
  sandbox, the interpreter flags the sandbox uses; ``(with site)``: ``python -I -c``, for scale;
- ``sandbox <level>``: :func:`rewardlab.sandbox.run` at every level available here, one at a
  time (supervisor start, layers, cgroups, temporary directory, clean-up included);
- ``pool <level> x<workers>``: ``SandboxPool(workers=...).map`` of ``--runs`` programs;
- ``code reward``: :class:`~rewardlab.rewards.code.CodeReward` on the bundled problems' reference
  solutions (judge + solution processes, per-test RPC), per candidate.

Each method runs twice to warm up, then ``--runs`` times; per-run latency is the median,
throughput is runs / total wall time. Writes benchmarks/results/sandbox.json and sandbox.md.
Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _machine import MachineProbe, machine_line

from rewardlab.rewards.code import CodeReward
from rewardlab.sandbox import LEVELS, Limits, Program, SandboxConfig, SandboxPool, detect, run
from rewardlab.sandbox.detect import default_python
from rewardlab.tasks.code import bundled
from rewardlab.types import Candidate

TRIVIAL = "print(1)"


def _time_each(fn: Callable[[], object], runs: int) -> dict[str, float]:
    for _ in range(2):
        fn()
    lat = []
    start = time.perf_counter()
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    return {"median_ms": 1000 * statistics.median(lat), "per_s": runs / total, "runs": runs}


def _time_batch(fn: Callable[[], object], runs: int) -> dict[str, float]:
    fn()
    start = time.perf_counter()
    fn()
    total = time.perf_counter() - start
    return {"median_ms": 1000 * total / runs, "per_s": runs / total, "runs": runs}


def bench(runs: int, workers: int) -> dict[str, Any]:
    probe = MachineProbe()
    caps = detect()
    python = default_python()
    limits = Limits(wall_s=10)
    rows: dict[str, dict[str, float]] = {}
    for label, flags in (("", ["-I", "-S", "-B"]), (" (with site)", ["-I"])):
        rows[f"bare subprocess.run{label}"] = _time_each(
            lambda flags=flags: subprocess.run(
                [python, *flags, "-c", TRIVIAL], capture_output=True, check=True
            ),
            runs,
        )
    for level in LEVELS:
        if caps.unavailable(level):
            continue
        cfg = SandboxConfig(limits=limits, level=level)

        def one(cfg: SandboxConfig = cfg) -> None:
            result = run(Program(TRIVIAL), cfg)
            assert result.ok and result.stdout == b"1\n", result.summary()

        rows[f"sandbox {level}"] = _time_each(one, runs)
    best = caps.best()
    pool = SandboxPool(SandboxConfig(limits=limits, level=best), workers=workers)
    rows[f"pool {best} x{workers}"] = _time_batch(lambda: pool.map([TRIVIAL] * runs), runs)
    problems = bundled()
    cands = [Candidate(p.id, p.answer, (p.answer,), None) for p in problems]
    reward = CodeReward(workers=workers)
    rows[f"code reward ({len(problems)} problems) x{workers}"] = _time_batch(
        lambda: reward.score(problems, cands), len(problems)
    )
    bare = rows["bare subprocess.run"]["median_ms"]
    for row in rows.values():
        row["overhead_ms"] = row["median_ms"] - bare
    return {
        "machine": probe.record(
            python_executable=python,
            best_level=best,
            landlock_abi=caps.landlock_abi,
            cgroups=sorted(caps.cgroups.bases),
        ),
        "runs": runs,
        "workers": workers,
        "rows": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "# Sandbox overhead",
        "",
        machine_line(m),
        f"Kernel {m['kernel']}, best level `{m['best_level']}`, Landlock ABI "
        f"{m['landlock_abi']}, cgroups {', '.join(m['cgroups']) or 'none'}. "
        f"Program: `{TRIVIAL}`; {result['runs']} runs per row.",
        "",
        "| method | median latency (ms) | executions/s | overhead vs bare (ms) |",
        "|---|---:|---:|---:|",
    ]
    for name, row in result["rows"].items():
        lines.append(
            f"| {name} | {row['median_ms']:.1f} | {row['per_s']:.1f} | {row['overhead_ms']:+.1f} |"
        )
    lines += [
        "",
        "Pool and code-reward rows: latency = wall time / items (items run concurrently).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    result = bench(args.runs, args.workers)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sandbox.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (args.out / "sandbox.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
