"""``rewardlab serve``: a reward over HTTP for RL trainers (OpenRLHF's /get_reward, /score)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import typer

HELP = (
    "Serve a reward (a registry spec such as prm, orm, exact, math-verify, oracle-prm:q=0.8, "
    "or a checkpoint dir) over HTTP: POST /get_reward (OpenRLHF's protocol: query, prompts, "
    "labels -> rewards, scores, extra_logs), POST /score (per-step scores, aggregation, "
    "shaping, reasons), GET /health, GET /metrics (Prometheus). Micro-batches by token budget; "
    "429 + Retry-After when the queue is full; SIGTERM drains. Binds 127.0.0.1 unless --host. "
    "Details: docs/serve.md."
)


def serve(
    reward: str = typer.Argument(
        ..., help="Reward spec: name[:key=value,...] or a checkpoint dir."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to bind (0.0.0.0 exposes it)."),
    port: int = typer.Option(5000, help="Port."),
    max_batch_tokens: int = typer.Option(8192, help="Padded tokens per model batch."),
    max_batch_items: int = typer.Option(64, help="Samples per model batch."),
    max_wait_ms: float = typer.Option(5.0, help="Longest wait for a batch to fill."),
    max_queue: int = typer.Option(1024, help="Samples admitted and waiting; beyond: 429."),
    deadline_s: float = typer.Option(30.0, help="Per-request deadline (X-Deadline-S lowers it)."),
    timeout_s: float = typer.Option(10.0, help="Per-sample grading timeout (any thread)."),
    max_body_mb: float = typer.Option(8.0, help="Largest request body."),
    api_key_env: str = typer.Option(
        "REWARDLAB_API_KEY", help="Environment variable holding the API key (unset: no auth)."
    ),
    ungraded_value: float | None = typer.Option(
        None,
        help="/get_reward: reward for an ungradeable sample (flagged in extra_logs.ungraded); "
        "unset: answer 422 naming the samples and reasons.",
    ),
    device: str = typer.Option("cpu", help="Device of a learned reward."),
) -> None:
    from rewardlab.cli.errors import usage_errors
    from rewardlab.integrations.common import load_scorer
    from rewardlab.rewards.registry import check_reward, is_learned
    from rewardlab.serve.app import ServeConfig, create_app
    from rewardlab.serve.batcher import BatchConfig
    from rewardlab.serve.run import serve as run_server

    with usage_errors():
        check_reward(reward)
        if not 0 < port < 65536:
            raise ValueError(f"--port must be in 1..65535, got {port}")
        config = ServeConfig(
            batch=BatchConfig(max_batch_tokens, max_batch_items, max_wait_ms / 1000, max_queue),
            deadline_s=deadline_s,
            max_body_bytes=int(max_body_mb * 2**20),
            api_key=os.environ.get(api_key_env) or None,
            ungraded_value=ungraded_value,
        )
    kwargs: dict[str, Any] = {"device": device} if is_learned(reward) else {}
    scorer = load_scorer(reward, timeout_s=timeout_s, **kwargs)
    app = create_app(scorer, config)
    typer.echo(
        json.dumps(
            {
                "serving": scorer.name,
                "url": f"http://{host}:{port}",
                "get_reward": f"http://{host}:{port}/get_reward",
                "auth": bool(config.api_key),
            }
        ),
        err=True,
    )
    sys.stderr.flush()
    run_server(app, host, port, drain_timeout_s=deadline_s + 5)
    typer.echo("drained and stopped", err=True)
