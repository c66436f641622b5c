"""The FastAPI app: ``/get_reward`` (OpenRLHF), ``/score``, ``/health``, ``/metrics``.

Answers: 200 with a full, finite result; 400 (malformed body: bad UTF-8, bad JSON, NaN), 401
(API key), 413 (too large), 415 (not JSON), 422 (well-formed but wrong: missing keys, wrong
types, lengths that disagree, empty lists; or, on ``/get_reward`` without an
``ungraded_value``, samples the reward could not grade, each with its reason); 429 with
``Retry-After`` when the admission queue is full; 503 with ``Retry-After`` when a request's
deadline passes or the server is draining. Every error body is ``{"error": reason, ...}``.
``/get_reward`` never answers 200 with NaN, null or a list of the wrong length; ``/score``
gives ``value: null`` only together with a ``reason``.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from rewardlab.integrations.common import TimedScorer
from rewardlab.rewards.shaping import Clip, Delta, StepTransform, compose
from rewardlab.serve.batcher import BatchConfig, DeadlineExceeded, Job, MicroBatcher
from rewardlab.serve.metrics import Metrics
from rewardlab.serve.protocol import (
    BadRequest,
    Limits,
    Parsed,
    decode_json,
    json_safe,
    parse_get_reward,
    parse_score,
)
from rewardlab.types import Score


@dataclass(frozen=True)
class ServeConfig:
    """Server settings (see ``rewardlab serve --help``)."""

    batch: BatchConfig = field(default_factory=BatchConfig)
    limits: Limits = field(default_factory=Limits)
    deadline_s: float = 30.0
    max_body_bytes: int = 8 * 2**20
    api_key: str | None = None
    ungraded_value: float | None = None

    def __post_init__(self) -> None:
        if not self.deadline_s > 0:
            raise ValueError(f"deadline_s must be > 0, got {self.deadline_s}")
        if self.max_body_bytes < 1:
            raise ValueError("max_body_bytes must be >= 1")
        if self.ungraded_value is not None and not math.isfinite(self.ungraded_value):
            raise ValueError("ungraded_value must be finite")


class Busy(Exception):
    def __init__(self, status: int, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.status, self.reason, self.retry_after = status, reason, retry_after


class Ungraded(BadRequest):
    def __init__(self, items: list[dict[str, Any]], n: int) -> None:
        super().__init__(422, f"{len(items)} of {n} samples could not be graded")
        self.items = items


def create_app(scorer: TimedScorer, config: ServeConfig) -> FastAPI:
    """The app around ``scorer``; its batcher thread stops (after draining) at shutdown."""
    metrics = Metrics()
    batcher = MicroBatcher(scorer, config.batch, metrics)
    started = time.monotonic()
    inflight = [0]

    async def lifespan(app: FastAPI) -> Any:
        yield
        await asyncio.to_thread(batcher.stop, config.deadline_s + 5)
        scorer.close()

    app = FastAPI(title="rewardlab serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.draining = False
    app.state.batcher = batcher
    app.state.metrics = metrics

    @app.middleware("http")
    async def record(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        t0 = time.monotonic()
        inflight[0] += 1
        try:
            response = await call_next(request)
        finally:
            inflight[0] -= 1
        metrics.request(request.url.path, response.status_code, time.monotonic() - t0)
        return response

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> JSONResponse:
        metrics.reject("unauthorized" if exc.status == 401 else "bad_request")
        body: dict[str, Any] = {"error": exc.reason}
        if isinstance(exc, Ungraded):
            body["ungraded"] = exc.items
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(body, status_code=exc.status, headers=headers)

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> JSONResponse:
        metrics.reject(exc.reason.split(":")[0].replace(" ", "_"))
        return JSONResponse(
            {"error": exc.reason, "retry_after_s": exc.retry_after},
            status_code=exc.status,
            headers={"Retry-After": str(exc.retry_after)},
        )

    def check_auth(request: Request) -> None:
        if not config.api_key:
            return
        given = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if given is None:
            raise BadRequest(401, "missing API key (Authorization: Bearer <key> or X-API-Key)")
        if not hmac.compare_digest(given.encode(), config.api_key.encode()):
            raise BadRequest(401, "wrong API key")

    async def read_body(request: Request) -> bytes:
        ctype = request.headers.get("content-type")
        if ctype is not None and ctype.split(";")[0].strip().lower() != "application/json":
            raise BadRequest(415, f"content-type must be application/json, got {ctype!r}")
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise BadRequest(400, f"bad Content-Length {length!r}")
            if int(length) > config.max_body_bytes:
                raise BadRequest(
                    413, f"body of {length} bytes; the limit is {config.max_body_bytes}"
                )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > config.max_body_bytes:
                raise BadRequest(413, f"body over {config.max_body_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def deadline_of(request: Request) -> float:
        raw = request.headers.get("x-deadline-s")
        seconds = config.deadline_s
        if raw is not None:
            try:
                asked = float(raw)
            except ValueError:
                raise BadRequest(
                    400, f"X-Deadline-S must be a number of seconds, got {raw!r}"
                ) from None
            if not (math.isfinite(asked) and asked > 0):
                raise BadRequest(400, f"X-Deadline-S must be > 0, got {raw!r}")
            seconds = min(seconds, asked)
        return time.monotonic() + seconds

    async def run(
        request: Request, parse: Callable[[dict[str, Any], Limits], Parsed]
    ) -> tuple[Parsed, list[Score]]:
        if app.state.draining:
            raise Busy(503, "draining: the server is shutting down", 5)
        check_auth(request)
        deadline = deadline_of(request)
        parsed = parse(decode_json(await read_body(request)), config.limits)
        jobs = [
            Job(p, c, deadline) for p, c in zip(parsed.problems, parsed.candidates, strict=True)
        ]
        if not batcher.submit(jobs):
            if app.state.draining:
                raise Busy(503, "draining: the server is shutting down", 5)
            raise Busy(429, f"queue full: {batcher.depth} samples waiting", batcher.retry_after())
        waiting = [asyncio.wrap_future(j.future) for j in jobs]
        try:
            scores = await asyncio.wait_for(
                asyncio.gather(*waiting), max(0.0, deadline - time.monotonic())
            )
        except (TimeoutError, DeadlineExceeded):
            for j in jobs:
                j.future.cancel()
            raise Busy(
                503, "deadline exceeded: the request was not scored in time", batcher.retry_after()
            ) from None
        return parsed, list(scores)

    @app.post("/get_reward")
    async def get_reward(request: Request) -> JSONResponse:
        parsed, scores = await run(request, parse_get_reward)
        n = len(parsed.candidates)
        bad = [
            {"index": i, "reason": str(s.info.get("reason")), **_detail(s)}
            for i, s in enumerate(scores)
            if s.value is None
        ]
        if bad and config.ungraded_value is None:
            raise Ungraded(bad, n)
        fill = config.ungraded_value if config.ungraded_value is not None else math.nan
        rewards = [fill if s.value is None else float(s.value) for s in scores]
        if len(rewards) != n or not all(math.isfinite(r) for r in rewards):
            raise RuntimeError("internal: reward list of the wrong length or non-finite")
        return JSONResponse(
            {
                "rewards": rewards,
                "scores": list(rewards),
                "extra_logs": {"ungraded": [1.0 if s.value is None else 0.0 for s in scores]},
            }
        )

    @app.post("/score")
    async def score(request: Request) -> JSONResponse:
        parsed, scores = await run(request, parse_score)
        shaper: StepTransform | None = None
        if parsed.shaping == "clip":
            shaper = Clip(parsed.eta)
        elif parsed.shaping == "delta":
            shaper = Delta()
        elif parsed.shaping == "clip-delta":
            shaper = compose(Clip(parsed.eta), Delta())
        results = []
        for s in scores:
            r: dict[str, Any] = {
                "value": s.value,
                "steps": list(s.steps),
                "reason": s.info.get("reason") if s.value is None else None,
                "info": json_safe({k: v for k, v in s.info.items() if k != "reason"}),
            }
            if parsed.aggregate is not None:
                r["aggregate"] = _aggregate(s, parsed.aggregate)
            if shaper is not None:
                shaped = shaper(s.steps) if s.value is not None else ()
                r["shaped_steps"] = list(shaped)
                r["shaped_sum"] = float(sum(shaped)) if s.value is not None else None
            results.append(r)
        return JSONResponse({"reward": scorer.name, "results": results})

    @app.get("/health")
    async def health() -> JSONResponse:
        draining = bool(app.state.draining)
        return JSONResponse(
            {
                "status": "draining" if draining else "ok",
                "reward": scorer.name,
                "queue_depth": batcher.depth,
                "uptime_s": round(time.monotonic() - started, 3),
            },
            status_code=503 if draining else 200,
        )

    @app.get("/metrics")
    async def prometheus(request: Request) -> PlainTextResponse:
        check_auth(request)
        text = metrics.render(
            {
                "rewardlab_queue_depth": ("Samples waiting for the model.", lambda: batcher.depth),
                "rewardlab_batch_in_progress": (
                    "Samples in the running batch.",
                    lambda: batcher.busy,
                ),
                "rewardlab_inflight_requests": (
                    "HTTP requests being handled.",
                    lambda: inflight[0],
                ),
                "rewardlab_draining": ("1 while shutting down.", lambda: float(app.state.draining)),
            }
        )
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    return app


def _detail(s: Score) -> dict[str, Any]:
    d = s.info.get("detail")
    return {"detail": str(d)[:300]} if d else {}


def _aggregate(s: Score, how: str) -> float | None:
    from rewardlab.rewards.prm import aggregate

    if s.value is None or not s.steps:
        return None
    return float(aggregate(s.steps, how))
