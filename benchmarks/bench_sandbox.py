"""Benchmark: executions per second of a trivial program through the sandbox, per isolation
level, beside a bare ``subprocess.run`` of the same interpreter in the same run; and the
throughput of :class:`~rewardlab.sandbox.SandboxPool` and of the code reward.

    .venv/bin/python benchmarks/bench_sandbox.py [--runs 40] [--workers 2] [--out DIR]

Methods (the program is ``print(1)`` everywhere):

- ``bare subprocess.run``: ``subprocess.run([python, "-I", "-S", "-B", "-c", "print(1)"])``, no
  sandbox, the interpreter flags the sandbox uses; ``(with site)``: ``python -I -c``, for scale;
- ``sandbox <level>``: :func:`rewardlab.sandbox.run` at every level available here, one at a
  time (supervisor start, layers, cgroups, temporary directory, clean-up included);
- ``zygote isolated x1, sequential``: one pre-isolated worker
  (:class:`~rewardlab.sandbox.zygote.ZygotePool`), executions one after another;
- ``pool <level> x<workers> (one-shot runs)``: ``SandboxPool(zygote=False)``, a one-shot
  :func:`~rewardlab.sandbox.run` per program on ``workers`` threads (the previous pool);
- ``pool isolated x<workers> (zygote)``: ``SandboxPool(workers=...).map`` (pre-isolated workers),
  and the same with twice the workers (on a shared machine, more runnable workers get a larger
  share of the cores; on an idle one they cannot beat the CPU per execution);
- ``code reward``: :class:`~rewardlab.rewards.code.CodeReward` on the bundled problems' reference
  solutions (judge + solution processes, per-test RPC), per candidate (on pre-isolated
  workers at ``isolated``).

For the pool rows, the CPU time of one execution is measured too (the parent's own CPU + the
one-shot supervisors' it reaped, or the zygotes' including every process they reaped, from
``/proc/<pid>/stat``), and
``capacity_per_s`` = cores x 1000 / that: the rate two idle cores could sustain. The machine
is shared: the measured rate under load is the share of the cores this benchmark got.

Each method runs twice to warm up, then ``--runs`` times; per-run latency is the median,
throughput is runs / total wall time. Writes benchmarks/results/sandbox.json and sandbox.md.
Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _machine import MachineProbe, machine_line

from rewardlab.rewards.code import CodeReward
from rewardlab.sandbox import (
    LEVELS,
    Limits,
    Program,
    RunResult,
    SandboxConfig,
    SandboxPool,
    detect,
    run,
)
from rewardlab.sandbox.detect import default_python
from rewardlab.sandbox.zygote import ZygotePool
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


_HZ = os.sysconf("SC_CLK_TCK")


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` and every child it has reaped (utime stime cutime cstime)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / _HZ


def _own_and_reaped_cpu_s() -> float:
    """This process's CPU + that of every child it reaped (one-shot supervisors and all)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def _add_cpu(row: dict[str, float], cpu_s: float, executions: int) -> None:
    row["cpu_ms_per_exec"] = 1000 * cpu_s / executions
    row["capacity_per_s"] = len(os.sched_getaffinity(0)) * executions / cpu_s


def _time_zygote(pool: ZygotePool, runs: int, batch: bool) -> dict[str, float]:
    """Like ``_time_each``/``_time_batch`` on a ZygotePool, plus CPU per execution."""

    def check(results: list[RunResult]) -> None:
        assert all(r.ok and r.stdout == b"1\n" for r in results), results[0].summary()

    check(pool.map([TRIVIAL] * max(2, pool.workers)))  # start the workers, warm up
    zygotes = [w.proc.pid for w in pool._all]
    cpu0 = time.process_time() + sum(_tree_cpu_s(p) for p in zygotes)
    if batch:
        start = time.perf_counter()
        check(pool.map([TRIVIAL] * runs))
        total = time.perf_counter() - start
        row = {"median_ms": 1000 * total / runs, "per_s": runs / total, "runs": runs}
    else:
        row = _time_each(lambda: check([pool.run(TRIVIAL)]), runs)
        runs += 2  # _time_each's warm-up runs are inside the CPU window
    cpu = time.process_time() + sum(_tree_cpu_s(p) for p in zygotes) - cpu0
    _add_cpu(row, cpu, runs)
    return row


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
    best_cfg = SandboxConfig(limits=limits, level=best)
    oneshot = SandboxPool(best_cfg, workers=workers, zygote=False)
    cpu0 = _own_and_reaped_cpu_s()
    row = _time_batch(lambda: oneshot.map([TRIVIAL] * runs), runs)
    _add_cpu(row, _own_and_reaped_cpu_s() - cpu0, 2 * runs)  # _time_batch maps twice
    rows[f"pool {best} x{workers} (one-shot runs)"] = row
    if best == "isolated":
        with ZygotePool(best_cfg, workers=1) as zp:
            rows["zygote isolated x1, sequential"] = _time_zygote(zp, runs, batch=False)
        for n in (workers, 2 * workers):  # more workers: a larger share of a contended CPU
            with ZygotePool(best_cfg, workers=n) as zp:
                rows[f"pool isolated x{n} (zygote)"] = _time_zygote(zp, runs, batch=True)
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
        "| method | median latency (ms) | executions/s | overhead vs bare (ms) "
        "| CPU per execution (ms) | idle capacity, all cores (/s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in result["rows"].items():
        cpu = f"{row['cpu_ms_per_exec']:.1f}" if "cpu_ms_per_exec" in row else ""
        cap = f"{row['capacity_per_s']:.0f}" if "capacity_per_s" in row else ""
        lines.append(
            f"| {name} | {row['median_ms']:.1f} | {row['per_s']:.1f} "
            f"| {row['overhead_ms']:+.1f} | {cpu} | {cap} |"
        )
    lines += [
        "",
        "Pool and code-reward rows: latency = wall time / items (items run concurrently). "
        "CPU per execution: the parent's CPU + the one-shot supervisors' it reaped, or the "
        "zygotes' (with every process they reaped: per-execution child, init, program); "
        "idle capacity = cores x 1000 / that, the rate these cores could sustain if idle.",
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
