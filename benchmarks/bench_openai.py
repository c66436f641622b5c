"""``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_openai.py [--prompts 8 --n 4]``

The price of the HTTP hop: sampling throughput of the ``openai`` policy backend against the
same model in-process, same prompts, same sampling settings, in one run.

Model: the shipped tiny policy. Rows:

1. ``hf`` in-process, batched (every prompt x n in one call): the baseline.
2. ``hf`` in-process, one prompt (n rows) per call and one sample per call: what a server that
   takes one request at a time can do at best, without HTTP.
3. ``openai`` -> ``tests/openai_server.py`` (vLLM's semantics around the same ``hf`` policy:
   native ``n``, one request per prompt), concurrency 1 and 4: the HTTP hop on top of (2).
4. ``openai`` -> ``transformers serve`` (Hugging Face's server; it ignores ``n``, so one request
   per sample), concurrency 1 and 4.

Each server is its own process with one torch thread. Per row: wall seconds (median of
``--repeats`` after a warm-up), the client's CPU seconds, generated tokens, tokens/s, requests,
and the wall time per request beyond the matching in-process row (the hop's cost). Writes
``results/openai.json`` and ``results/openai.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests" / "policies"))
from _machine import MachineProbe, machine_line  # noqa: E402


def questions(count: int) -> list[str]:
    """Arith testbed questions (2-4 operations): the tiny policy answers in a few lines."""
    from rewardlab.tasks.arith import make_problem

    return [make_problem(random.Random(i), 2 + i % 3).question for i in range(count)]


def tree_cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system, reaped children too) of a process and its descendants, from
    /proc: the server's share of the work, which the client's clock cannot see. 0 without pid."""
    if pid is None:
        return 0.0
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            stats[int(entry)] = raw[raw.rindex(")") + 2 :].split()
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, fields in stats.items():
            if int(fields[1]) == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(sum(int(x) for x in stats[p][11:15]) / ticks for p in tree if p in stats)


def timed(fn: Any, repeats: int, server_pid: int | None) -> tuple[float, float, float, Any]:
    """Medians over ``repeats`` calls after one warm-up: wall seconds, client CPU seconds,
    server CPU seconds."""
    fn()
    walls, cpus, server, out = [], [], [], None
    for _ in range(repeats):
        s0, c0, t0 = tree_cpu_s(server_pid), time.process_time(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        server.append(tree_cpu_s(server_pid) - s0)
    return statistics.median(walls), statistics.median(cpus), statistics.median(server), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    import torch
    from openai_servers import transformers_cli, transformers_serve, vllm_like

    from rewardlab.policies.hf import HFPolicy
    from rewardlab.policies.openai_backend import OpenAIPolicy, parse_spec
    from rewardlab.policies.registry import tiny_policy_dir
    from rewardlab.types import Sampling

    torch.set_num_threads(1)
    probe = MachineProbe()
    model_dir = tiny_policy_dir()
    local = HFPolicy.from_dir(model_dir, device="cpu", name="tiny")
    prompts = [local.format_prompt(q) for q in questions(a.prompts)]
    params = Sampling(temperature=1.0, max_new_tokens=a.max_new_tokens, seed=0)
    rows: list[dict[str, Any]] = []

    def add(
        method: str, fn: Any, requests: int, base: str | None = None, pid: int | None = None
    ) -> None:
        wall, cpu, server_cpu, out = timed(fn, a.repeats, pid)
        tokens = sum(c.generated_tokens for row in out for c in row)
        total_cpu = cpu + server_cpu
        row = {
            "method": method, "wall_s": round(wall, 3), "client_cpu_s": round(cpu, 3),
            "server_cpu_s": round(server_cpu, 3), "cpu_s": round(total_cpu, 3),
            "generated_tokens": tokens, "tokens_per_s": round(tokens / wall, 1),
            "tokens_per_cpu_s": round(tokens / total_cpu, 1) if total_cpu else None,
            "requests": requests, "baseline": base,
        }  # fmt: skip
        if base is not None:
            ref = next(r for r in rows if r["method"] == base)
            row["hop_ms_per_request"] = round((wall - ref["wall_s"]) / requests * 1000, 1)
            row["hop_cpu_ms_per_request"] = round((total_cpu - ref["cpu_s"]) / requests * 1000, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)

    total = a.prompts * a.n
    add("hf in-process, all rows in one call", lambda: local.sample(prompts, a.n, params), 0)
    add(
        "hf in-process, one prompt (n rows) per call",
        lambda: [local.sample([p], a.n, params)[0] for p in prompts],
        0,
    )
    add(
        "hf in-process, one sample per call",
        lambda: [
            [local.sample([p], 1, replace_seed(params, k))[0][0] for k in range(a.n)]
            for p in prompts
        ],
        0,
    )

    tmp = Path(tempfile.mkdtemp(prefix="bench_openai_"))  # server logs
    servers = []
    try:
        vserver = vllm_like(model_dir, tmp / "vllm_like.log", name="tiny")
        servers.append(vserver)
        for conc in (1, 4):
            remote = OpenAIPolicy(
                parse_spec(f"base_url={vserver.url},model=tiny,concurrency={conc}")
            )
            add(
                f"openai -> vLLM-like test server (native n), concurrency {conc}",
                lambda remote=remote: remote.sample(prompts, a.n, params),
                a.prompts,
                "hf in-process, one prompt (n rows) per call",
                vserver.proc.pid if vserver.proc else None,
            )
        vserver.stop()
        if transformers_cli() is not None:
            tserver = transformers_serve(model_dir, tmp / "transformers.log")
            servers.append(tserver)
            for conc in (1, 4):
                spec = f"base_url={tserver.url},model={model_dir},concurrency={conc}"
                remote = OpenAIPolicy(parse_spec(spec))
                add(
                    f"openai -> transformers serve (n emulated), concurrency {conc}",
                    lambda remote=remote: remote.sample(prompts, a.n, params),
                    total,
                    "hf in-process, one sample per call",
                    tserver.proc.pid if tserver.proc else None,
                )
    finally:
        for s in servers:
            s.stop()

    machine = probe.record(model="tiny", params=local.params)
    result = {
        "machine": machine,
        "settings": {"prompts": a.prompts, "n": a.n, "max_new_tokens": a.max_new_tokens,
                     "temperature": 1.0, "repeats": a.repeats},
        "rows": rows,
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "openai.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "openai.md").write_text(markdown(result))
    print(markdown(result))


def replace_seed(params: Any, k: int) -> Any:
    from dataclasses import replace

    return replace(params, seed=params.seed + k)


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        "# Sampling through the `openai` backend vs the same model in-process",
        "",
        f"Model: shipped tiny policy ({result['machine']['params'] / 1e6:.2f}M parameters). "
        f"{s['prompts']} prompts x n={s['n']}, T=1.0, max_new_tokens={s['max_new_tokens']}; "
        f"median of {s['repeats']} runs after a warm-up. Servers run in their own processes "
        "with one torch thread each.",
        machine_line(result["machine"]),
        "",
        "`CPU s` = the client's CPU seconds + the server process tree's (from /proc): on a "
        "machine shared with other work, CPU time is the steadier measure of the hop, wall time "
        "the one a user waits. `hop ... /request`: per HTTP request, the wall or CPU time beyond "
        "the in-process row that does the same work per call (named in `vs`).",
        "",
        "| method | wall s | CPU s (client + server) | generated tokens | tokens/s | "
        "tokens/CPU s | requests | hop wall ms/request | hop CPU ms/request | vs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        hop, hop_cpu = r.get("hop_ms_per_request"), r.get("hop_cpu_ms_per_request")
        per_cpu = r.get("tokens_per_cpu_s")
        lines.append(
            f"| {r['method']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} "
            f"({r['client_cpu_s']:.2f} + {r['server_cpu_s']:.2f}) | {r['generated_tokens']} | "
            f"{r['tokens_per_s']:.0f} | {'-' if per_cpu is None else f'{per_cpu:.0f}'} | "
            f"{r['requests'] or '-'} | {'-' if hop is None else f'{hop:.1f}'} | "
            f"{'-' if hop_cpu is None else f'{hop_cpu:.1f}'} | {r['baseline'] or '-'} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
