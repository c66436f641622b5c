"""A small OpenAI-compatible server with vLLM's semantics, around a local HF model, for tests.

Why it exists beside ``transformers serve`` (the third-party server the tests also run): that
server ignores ``n``, ``logprobs`` and ``echo``, and cannot be made to answer 429 or a broken
body. This one fills what vLLM fills (``n`` choices, per-token ``logprobs``, ``echo`` with prompt
log-probabilities and ``text_offset``, ``stop_reason``, the stop string left out of the text)
from a real model (:class:`rewardlab.policies.hf.HFPolicy`), and takes faults to serve next:

    POST /admin/faults {"faults": ["429", "500", "garbage", "shape"]}   ({"clear": true} empties)

    python tests/openai_server.py --model DIR --port P [--name NAME]
"""

from __future__ import annotations

import argparse
import threading
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from rewardlab.policies.hf import HFPolicy
from rewardlab.policies.hf_scoring import _forward_logprobs
from rewardlab.serve.run import serve
from rewardlab.types import Sampling


def pieces(tokenizer: Any, ids: list[int]) -> list[str]:
    """Each token's text, as the difference of growing decodes (they join to the full text)."""
    out, before = [], ""
    for j in range(len(ids)):
        now = tokenizer.decode(ids[: j + 1], skip_special_tokens=True)
        out.append(now[len(before) :] if now.startswith(before) else now)
        before = now
    return out


def create_app(policy: HFPolicy, name: str) -> FastAPI:
    app = FastAPI()
    faults: list[str] = []
    lock = threading.Lock()

    @app.post("/admin/faults")
    def set_faults(body: dict[str, Any]) -> dict[str, Any]:
        with lock:
            if body.get("clear"):
                faults.clear()
            faults.extend(str(f) for f in body.get("faults", []))
        return {"queued": len(faults)}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "vllm"}]}

    @app.post("/v1/completions")
    def completions(body: dict[str, Any]) -> Response:
        with lock:
            fault = faults.pop(0) if faults else None
        if fault == "429":
            return JSONResponse(
                {"error": {"message": "rate limited"}},
                status_code=429,
                headers={"Retry-After": "0.2"},
            )
        if fault == "500":
            return JSONResponse({"error": {"message": "engine hiccup"}}, status_code=500)
        if fault == "garbage":
            return PlainTextResponse("<html>proxy error</html>", status_code=200)
        if fault == "shape":
            return JSONResponse({"choices": [{"index": 0}], "usage": {"prompt_tokens": 1}})
        if body.get("model") != name:
            message = f"The model `{body.get('model')}` does not exist."
            return JSONResponse({"error": {"message": message}}, status_code=404)
        return JSONResponse(_complete(policy, name, body))

    return app


def _complete(policy: HFPolicy, name: str, body: dict[str, Any]) -> dict[str, Any]:
    prompt = str(body["prompt"])
    n = int(body.get("n") or 1)
    stop = body.get("stop") or []
    stops = [stop] if isinstance(stop, str) else list(stop)
    params = Sampling(
        temperature=float(body.get("temperature", 1.0)),
        top_p=float(body.get("top_p", 1.0)),
        max_new_tokens=int(body.get("max_tokens") or 16),
        seed=int(body.get("seed") or 0),
    )
    want_logprobs = body.get("logprobs") is not None
    echo = bool(body.get("echo"))
    tok = policy.tokenizer
    prompt_ids = policy._encode(prompt)
    head_tokens: list[str] = []
    head_values: list[float | None] = []
    if echo:
        logp = _forward_logprobs(policy, [prompt_ids], 1)[0]
        head_tokens = pieces(tok, prompt_ids)
        head_values = [None] + [float(logp[j - 1, t]) for j, t in enumerate(prompt_ids) if j > 0]
    choices, generated = [], 0
    for i, g in enumerate(policy.generate([prompt] * n, params, stops)):
        ids = list(g.token_ids)
        generated += len(ids)
        text, stop_reason = g.completion.text, None
        for s in stops:  # vLLM: the stop string is not in the text; stop_reason names it
            if s and text.endswith(s) and g.completion.finish_reason == "stop":
                text, stop_reason = text[: -len(s)], s
                break
        choice: dict[str, Any] = {
            "index": i,
            "text": (prompt if echo else "") + text,
            "finish_reason": g.completion.finish_reason,
            "stop_reason": stop_reason,
            "logprobs": None,
        }
        if want_logprobs:
            tail = pieces(tok, ids)
            tokens = head_tokens + tail
            offsets, at = [], 0
            for t in tokens:
                offsets.append(at)
                at += len(t)
            choice["logprobs"] = {
                "tokens": tokens,
                "token_logprobs": head_values + list(g.completion.logprobs or ()),
                "text_offset": offsets,
                "top_logprobs": None,
            }
        choices.append(choice)
    return {
        "id": "cmpl-test",
        "object": "text_completion",
        "model": name,
        "choices": choices,
        "usage": {
            "prompt_tokens": len(prompt_ids),
            "completion_tokens": generated,
            "total_tokens": len(prompt_ids) + generated,
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="tiny-test")
    a = ap.parse_args()
    policy = HFPolicy.from_dir(a.model, device="cpu", prefix_cache_mb=0)
    serve(create_app(policy, a.name), "127.0.0.1", a.port, drain_timeout_s=5)


if __name__ == "__main__":
    main()
