"""``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_serve.py [--seconds 20]``

Load and fault figures for ``rewardlab serve`` on loopback, all in one run, same model (the
shipped tiny PRM, ``prm``) and same queries:

1. **Throughput**: 32 concurrent single-sample clients for ``--seconds`` against (a) a naive
   server that runs one forward pass per request on its event loop (OpenRLHF's ``serve_rm``
   pattern) and (b) ``rewardlab serve`` (token-budget micro-batching off the loop). Errors,
   requests/s, latency p50/p99.
2. **Overload**: open-loop arrivals at 4x the capacity measured in (1) for ``--overload-seconds``
   against (b): every answer's status (only 200, 429, 503 allowed; 5xx other than 503 and
   transport errors counted), and the server's resident memory before and after (bounded queue
   → bounded memory).
3. **Bad input**: 20 kinds of malformed or hostile requests; each must be a 4xx with a reason,
   and the server must still serve afterwards.

Each server is its own process (``--serve naive|batched``, 1 torch thread each). Writes
``results/serve.json`` and ``results/serve.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import MachineProbe, machine_line

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
REWARD = "prm"


# ----------------------------------------------------------------------------- servers


def naive_app() -> Any:
    """One forward pass per request, on the event loop (as OpenRLHF's serve_rm)."""
    from fastapi.responses import JSONResponse

    from rewardlab.integrations.common import make_pair, split_query
    from rewardlab.rewards.registry import load_reward

    reward = load_reward(REWARD, device="cpu")
    app = FastAPI()

    @app.post("/get_reward")
    async def get_reward(request: Request) -> JSONResponse:
        data = await request.json()
        pairs = []
        for i, q in enumerate(data["query"]):
            prompt, response, _ = split_query(
                q, (data.get("prompts") or [None] * len(data["query"]))[i]
            )
            pairs.append(make_pair(prompt, response, pid=f"q{i}"))
        scores = reward.score([p for p, _ in pairs], [c for _, c in pairs])
        return JSONResponse({"rewards": [s.value for s in scores]})

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return app


def batched_app() -> Any:
    from rewardlab.integrations.common import load_scorer
    from rewardlab.serve.app import ServeConfig, create_app
    from rewardlab.serve.batcher import BatchConfig

    scorer = load_scorer(REWARD, timeout_s=10.0, device="cpu")
    cfg = ServeConfig(
        batch=BatchConfig(
            max_batch_tokens=8192, max_batch_items=64, max_wait_s=0.005, max_queue=256
        ),
        deadline_s=5.0,
        max_body_bytes=256 * 1024,
        api_key="bench-key",
    )
    return create_app(scorer, cfg)


def model_alone(qs: list[dict[str, str]], sizes: tuple[int, ...] = (1, 8, 32)) -> dict[str, float]:
    """Seconds per sample of the reward called directly at each batch size (1 torch thread):
    the most any batching server can gain over one forward per request on this machine."""
    import torch

    from rewardlab.integrations.common import make_pair, split_query
    from rewardlab.rewards.registry import load_reward

    torch.set_num_threads(1)
    reward = load_reward(REWARD, device="cpu")
    pairs = [make_pair(*split_query(q["query"], q["prompt"])[:2], q["label"]) for q in qs]
    out = {}
    for n in sizes:
        reward.score([p for p, _ in pairs[:n]], [c for _, c in pairs[:n]])  # warm
        t0 = time.perf_counter()
        reps = max(1, 32 // n)
        for _ in range(reps):
            reward.score([p for p, _ in pairs[:n]], [c for _, c in pairs[:n]])
        out[f"batch_{n}_ms_per_sample"] = round((time.perf_counter() - t0) / (reps * n) * 1000, 2)
    return out


def run_server(kind: str, port: int) -> None:
    import torch

    torch.set_num_threads(1)
    app = naive_app() if kind == "naive" else batched_app()
    from rewardlab.serve.run import serve

    serve(app, "127.0.0.1", port, drain_timeout_s=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(kind: str) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    while time.monotonic() - t0 < 120:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


def stop(proc: subprocess.Popen[bytes]) -> int | None:
    os.kill(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        return None


def rss_mb(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(val.split()[0]) / 1024, 1)
    return out


# ----------------------------------------------------------------------------- load


def queries(n: int = 64) -> list[dict[str, str]]:
    from rewardlab.tasks.arith import generate, gold_solution

    out = []
    for i, p in enumerate(generate(n=n, seed=11, n_ops=(2, 4))):
        sol = gold_solution(p)
        if i % 2:  # half wrong in the last step
            sol = "\n".join([*sol.split("\n")[:-1], f"The answer is {int(p.answer) + 1}."])
        prompt = p.question + "\n"
        out.append({"query": prompt + sol, "prompt": prompt, "label": p.answer})
    return out


HEADERS = {"authorization": "Bearer bench-key"}


async def closed_loop(
    url: str, clients: int, seconds: float, qs: list[dict[str, str]]
) -> dict[str, Any]:
    import httpx

    lat: list[float] = []
    codes: dict[str, int] = {}
    wrong = 0
    stop_at = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30, headers=HEADERS) as client:

        async def worker(k: int) -> None:
            nonlocal wrong
            i = k
            while time.monotonic() < stop_at:
                q = qs[i % len(qs)]
                i += clients
                body = {"query": [q["query"]], "prompts": [q["prompt"]], "labels": [q["label"]]}
                t0 = time.monotonic()
                try:
                    r = await client.post(url + "/get_reward", json=body)
                    key = str(r.status_code)
                    if r.status_code == 200:
                        rew = r.json()["rewards"]
                        if len(rew) != 1 or not np.isfinite(rew[0]):
                            wrong += 1
                except httpx.HTTPError as e:
                    key = type(e).__name__
                lat.append(time.monotonic() - t0)
                codes[key] = codes.get(key, 0) + 1

        t0 = time.monotonic()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        wall = time.monotonic() - t0
    ok = codes.get("200", 0)
    arr = np.array(lat)
    return {
        "clients": clients,
        "seconds": round(wall, 2),
        "requests": int(sum(codes.values())),
        "codes": codes,
        "errors": int(sum(v for k, v in codes.items() if k != "200")) + wrong,
        "bad_200_bodies": wrong,
        "req_per_s": round(ok / wall, 1),
        "latency_p50_ms": round(float(np.quantile(arr, 0.5)) * 1000, 1),
        "latency_p99_ms": round(float(np.quantile(arr, 0.99)) * 1000, 1),
    }


async def open_loop(
    url: str, rate: float, seconds: float, per_request: int, qs: list[dict[str, str]]
) -> dict[str, Any]:
    """Requests of ``per_request`` samples sent at ``rate`` requests/s whatever the answers."""
    import httpx

    codes: dict[str, int] = {}
    tasks: list[asyncio.Task[None]] = []
    limits = httpx.Limits(max_connections=2048, max_keepalive_connections=512)
    async with httpx.AsyncClient(limits=limits, timeout=30, headers=HEADERS) as client:

        async def one(i: int) -> None:
            batch = [qs[(i * per_request + j) % len(qs)] for j in range(per_request)]
            body = {
                "query": [q["query"] for q in batch],
                "prompts": [q["prompt"] for q in batch],
                "labels": [q["label"] for q in batch],
            }
            try:
                r = await client.post(url + "/get_reward", json=body)
                key = str(r.status_code)
                if r.status_code == 200:
                    rew = r.json()["rewards"]
                    if len(rew) != per_request or not all(np.isfinite(rew)):
                        key = "bad_200_body"
            except httpx.HTTPError as e:
                key = type(e).__name__
            codes[key] = codes.get(key, 0) + 1

        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < seconds:
            due = t0 + i / rate
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            tasks.append(asyncio.create_task(one(i)))
            i += 1
        sent_wall = time.monotonic() - t0
        await asyncio.gather(*tasks)
    return {
        "offered_req_per_s": round(i / sent_wall, 1),
        "offered_samples_per_s": round(i * per_request / sent_wall, 1),
        "per_request": per_request,
        "requests": i,
        "codes": codes,
        "server_errors_other_than_503": int(
            sum(v for k, v in codes.items() if (k.isdigit() and int(k) >= 500 and k != "503"))
        ),
        "transport_errors": int(sum(v for k, v in codes.items() if not k.isdigit())),
        "beyond_capacity_only_429_503": all(k in ("200", "429", "503") for k in codes),
    }


# ------------------------------------------------------------------------- bad input

BIG = b'{"query": ["' + b"a" * (300 * 1024) + b'"]}'
BAD: list[tuple[str, bytes, dict[str, str]]] = [
    ("not JSON", b"{", {}),
    ("empty body", b"", {}),
    ("invalid UTF-8", b'{"query": ["\xff\xfe"]}', {}),
    ("NaN in JSON", b'{"query": ["a"], "labels": [NaN]}', {}),
    ("Infinity in JSON", b'{"query": ["a"], "x": Infinity}', {}),
    ("array body", b'["a"]', {}),
    ("missing query", b'{"prompts": ["a"]}', {}),
    ("query not a list", b'{"query": "a"}', {}),
    ("empty query list", b'{"query": []}', {}),
    ("query item a number", b'{"query": [1]}', {}),
    ("query item null", b'{"query": [null]}', {}),
    ("prompts length mismatch", b'{"query": ["a", "b"], "prompts": ["a"]}', {}),
    ("labels length mismatch", b'{"query": ["a"], "labels": ["1", "2"]}', {}),
    ("label a list", b'{"query": ["a"], "labels": [["1"]]}', {}),
    ("JSON label without answer", b'{"query": ["a"], "labels": ["{\\"x\\": 1}"]}', {}),
    ("huge body", BIG, {}),
    ("too many items", json.dumps({"query": ["a"] * 5000}).encode(), {}),
    ("wrong content-type", b'{"query": ["a"]}', {"content-type": "text/plain"}),
    ("wrong API key", b'{"query": ["a"]}', {"authorization": "Bearer nope"}),
    ("bad deadline header", b'{"query": ["a"]}', {"x-deadline-s": "-1"}),
]


def bad_inputs(url: str) -> list[dict[str, Any]]:
    import httpx

    rows = []
    for name, body, extra in BAD:
        h = {"content-type": "application/json", **HEADERS, **extra}
        r = httpx.post(url + "/get_reward", content=body, headers=h, timeout=30)
        try:
            reason = r.json().get("error")
        except ValueError:
            reason = None
        rows.append(
            {
                "input": name,
                "status": r.status_code,
                "reason": reason,
                "ok": 400 <= r.status_code < 500 and bool(reason),
            }
        )
    return rows


# ------------------------------------------------------------------------------ main


def _batching_note(alone: dict[str, float]) -> str:
    one, many = alone["batch_1_ms_per_sample"], alone["batch_32_ms_per_sample"]
    if many >= one:
        return (
            f"a sample costs {many / one:.2f}x as much in a batch of 32 mixed-length samples as "
            "alone (the model is compute-bound on one CPU thread and padding adds work), so no "
            "batching server can beat one forward per request here; the batching gain needs an "
            "accelerator or many threads."
        )
    return f"a batch of 32 costs {many / one:.2f}x per sample of one alone."


def markdown(res: dict[str, Any]) -> str:
    n, b = res["naive"], res["batched"]
    o = res["overload"]
    lines = [
        "# rewardlab serve: load and fault figures",
        "",
        f"Reward `{REWARD}` (the shipped tiny PRM) on CPU, 1 torch thread per server, loopback. "
        f"{res['clients']} concurrent single-sample clients for {res['seconds']} s per server "
        f"(the issue asks 60 s; shortened on a shared 2-core machine).",
        "",
        "| server | requests | errors | req/s | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in (("naive: one forward per request", n), ("rewardlab serve (micro-batched)", b)):
        lines.append(
            f"| {name} | {r['requests']} | {r['errors']} | {r['req_per_s']} | "
            f"{r['latency_p50_ms']} | {r['latency_p99_ms']} |"
        )
    lines += [
        "",
        f"Throughput ratio (batched / naive): **{res['speedup']}x**.",
        "",
        "The reward called directly, no server (ms per sample by batch size, 1 thread): "
        + ", ".join(f"{k.split('_')[1]}: {v}" for k, v in res["model_alone"].items())
        + ". This bounds what batching can gain on this machine: "
        + _batching_note(res["model_alone"]),
        "",
        f"## Overload: open-loop at 4x capacity for {res['overload_seconds']} s",
        "",
        f"Capacity {res['capacity_samples_per_s']} samples/s (the batched run above); offered "
        f"{o['offered_samples_per_s']} samples/s as {o['offered_req_per_s']} req/s of "
        f"{o['per_request']} samples. Answers: {o['codes']}. Other 5xx: "
        f"{o['server_errors_other_than_503']}; transport errors: {o['transport_errors']}. "
        f"Server memory (MiB): {res['memory_mb']}.",
        "",
        "## Bad input (each must be a 4xx with a reason)",
        "",
        "| input | status | reason |",
        "|---|---|---|",
    ]
    for row in res["bad_input"]:
        lines.append(f"| {row['input']} | {row['status']} | {str(row['reason'])[:90]} |")
    lines += [
        "",
        f"{sum(r['ok'] for r in res['bad_input'])} of {len(res['bad_input'])} answered 4xx with a "
        f"reason; serving afterwards: {res['serving_after_bad_input']}.",
        "",
        machine_line(res["machine"]),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", choices=["naive", "batched"])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--overload-seconds", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args()
    if a.serve:
        run_server(a.serve, a.port)
        return
    import httpx

    probe = MachineProbe()
    qs = queries()
    res: dict[str, Any] = {
        "clients": a.clients,
        "seconds": a.seconds,
        "overload_seconds": a.overload_seconds,
    }

    res["model_alone"] = model_alone(qs)
    print("model alone", res["model_alone"], flush=True)
    proc, url = start("naive")
    asyncio.run(closed_loop(url, 4, 2.0, qs))  # warm-up
    res["naive"] = asyncio.run(closed_loop(url, a.clients, a.seconds, qs))
    stop(proc)
    print("naive", res["naive"], flush=True)

    proc, url = start("batched")
    asyncio.run(closed_loop(url, 4, 2.0, qs))
    mem = {"start": rss_mb(proc.pid)}
    res["batched"] = asyncio.run(closed_loop(url, a.clients, a.seconds, qs))
    print("batched", res["batched"], flush=True)
    res["speedup"] = round(res["batched"]["req_per_s"] / max(res["naive"]["req_per_s"], 1e-9), 2)
    cap = res["batched"]["req_per_s"]
    res["capacity_samples_per_s"] = cap
    per = 8
    mem["after_load"] = rss_mb(proc.pid)
    res["overload"] = asyncio.run(open_loop(url, 4 * cap / per, a.overload_seconds, per, qs))
    mem["after_overload"] = rss_mb(proc.pid)
    print("overload", res["overload"], flush=True)
    res["bad_input"] = bad_inputs(url)
    ok = httpx.post(
        url + "/get_reward", json={"query": [qs[0]["query"]]}, headers=HEADERS, timeout=30
    )
    res["serving_after_bad_input"] = (
        ok.status_code == 200 and httpx.get(url + "/health").status_code == 200
    )
    res["metrics_excerpt"] = [
        line
        for line in httpx.get(url + "/metrics", headers=HEADERS).text.splitlines()
        if line.startswith(("rewardlab_batch_size_items", "rewardlab_rejected_total"))
    ]
    mem["after_bad_input"] = rss_mb(proc.pid)
    res["memory_mb"] = mem
    res["exit_code_after_sigterm"] = stop(proc)
    import torch  # noqa: F401  (so the machine record names it)

    res["machine"] = probe.record(reward=REWARD)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "serve.json").write_text(json.dumps(res, indent=2) + "\n")
    text = markdown(res)
    (a.out / "serve.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
