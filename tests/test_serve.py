"""``rewardlab serve`` on loopback, with a real HTTP client against a real server process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).resolve().parent
KEY = "s3cret-test-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(*args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{HERE.parent / 'src'}{os.pathsep}{HERE}"}
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "serve_helper.py"), "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        if proc.poll() is not None:
            raise RuntimeError(f"server died: {proc.stdout.read().decode() if proc.stdout else ''}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start in 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    proc, url = _start("--delay", "0.5", "--max-queue", "4", "--api-key", KEY)
    yield url
    _stop(proc)


AUTH = {"Authorization": f"Bearer {KEY}"}


def _wait_for(url: str, line: str, headers: dict[str, str] | None = None) -> None:
    """Poll /metrics until it shows ``line`` (the server state a test needs), up to 20 s."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < 20:
        if line in httpx.get(url + "/metrics", headers=headers, timeout=5).text.splitlines():
            return
        time.sleep(0.05)
    raise AssertionError(f"/metrics never showed {line!r}")


def test_openrlhf_shape_from_their_source(server: str) -> None:
    fx = json.loads((HERE / "fixtures" / "openrlhf_get_reward.json").read_text())
    r = httpx.post(server + "/get_reward", json=fx["request"], headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert sorted(body) == sorted(fx["response_keys"])
    want = [float(len(t)) for t in fx["responses_after_prompt"]]  # SleepyReward: len(response)
    assert body["rewards"] == want and body["scores"] == want
    assert body["extra_logs"] == {"ungraded": [0.0, 0.0]}


def test_score_endpoint_steps_aggregate_shaping(server: str) -> None:
    req = {
        "items": [{"prompt": "p", "response": "abcdefg\nabc"}, {"prompt": "p", "response": "boom"}],
        "aggregate": "min",
        "shaping": "clip",
        "eta": 0.5,
    }
    r = httpx.post(server + "/score", json=req, headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    a, b = r.json()["results"]
    assert a["value"] == 11.0 and a["steps"] == [0.7, 0.3] and a["aggregate"] == 0.3
    assert a["shaped_steps"] == pytest.approx([0.0, -0.2]) and a["reason"] is None
    assert b["value"] is None and b["reason"] == "error"
    assert "crashed on purpose" in b["info"]["detail"]


def test_get_reward_never_200_with_nan_or_none(server: str) -> None:
    for bad in ("nan here", "boom"):
        r = httpx.post(
            server + "/get_reward", json={"query": ["ok", bad]}, headers=AUTH, timeout=10
        )
        assert r.status_code == 422, r.text
        assert r.json()["ungraded"][0]["index"] == 1


def test_auth(server: str) -> None:
    body = {"query": ["x"]}
    assert httpx.post(server + "/get_reward", json=body, timeout=5).status_code == 401
    wrong = httpx.post(server + "/get_reward", json=body, headers={"X-API-Key": "no"}, timeout=5)
    assert wrong.status_code == 401 and wrong.json()["error"] == "wrong API key"
    ok = httpx.post(server + "/get_reward", json=body, headers={"X-API-Key": KEY}, timeout=5)
    assert ok.status_code == 200
    assert httpx.get(server + "/metrics", timeout=5).status_code == 401
    assert httpx.get(server + "/health", timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("body", "headers", "status", "needle"),
    [
        (b"{", {}, 400, "not valid JSON"),
        (b'{"query": [NaN]}', {}, 400, "NaN"),
        (b'{"query": ["\xff\xfe"]}', {}, 400, "UTF-8"),
        (b"[1, 2]", {}, 422, "JSON object"),
        (b'{"prompts": ["a"]}', {}, 422, "missing key 'query'"),
        (b'{"query": []}', {}, 422, "empty"),
        (b'{"query": "abc"}', {}, 422, "must be a list"),
        (b'{"query": [1]}', {}, 422, "query[0]"),
        (b'{"query": ["a", "b"], "prompts": ["a"]}', {}, 422, "'prompts' has 1"),
        (b'{"query": ["a"], "labels": [["x"]]}', {}, 422, "labels[0]"),
        (b'{"query": ["' + b"a" * 70_000 + b'"]}', {}, 413, "limit"),
        (b'{"query": ["a"]}', {"content-type": "text/plain"}, 415, "content-type"),
        (b'{"query": ["a"]}', {"x-deadline-s": "soon"}, 400, "X-Deadline-S"),
    ],
)
def test_bad_input_is_a_4xx_with_a_reason(
    server: str, body: bytes, headers: dict[str, str], status: int, needle: str
) -> None:
    h = {"content-type": "application/json", **AUTH, **headers}
    r = httpx.post(server + "/get_reward", content=body, headers=h, timeout=10)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]
    assert (
        httpx.post(server + "/get_reward", json={"query": ["ok"]}, headers=AUTH).status_code == 200
    )


def test_queue_full_is_429_with_retry_after_and_deadline_is_503(server: str) -> None:
    slow = {"query": ["slow"] * 4}
    out: dict[str, httpx.Response] = {}
    t = threading.Thread(
        target=lambda: out.setdefault(
            "a", httpx.post(server + "/get_reward", json=slow, headers=AUTH, timeout=30)
        )
    )
    t.start()
    _wait_for(server, "rewardlab_queue_depth 3", AUTH)  # 1 in the model, 3 queued
    r = httpx.post(
        server + "/get_reward", json={"query": ["a", "b", "c"]}, headers=AUTH, timeout=10
    )
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) >= 1 and "queue full" in r.json()["error"]
    d = httpx.post(
        server + "/get_reward", json={"query": ["x"]}, headers={**AUTH, "X-Deadline-S": "0.2"}
    )
    assert d.status_code == 503 and "deadline" in d.json()["error"] and "Retry-After" in d.headers
    t.join(30)
    assert out["a"].status_code == 200 and out["a"].json()["rewards"] == [4.0] * 4
    metrics = httpx.get(server + "/metrics", headers=AUTH).text
    assert 'rewardlab_rejected_total{reason="queue_full"} 1' in metrics
    assert 'rewardlab_requests_total{endpoint="/get_reward",code="429"} 1' in metrics


def test_sigterm_drains_requests_in_flight() -> None:
    proc, url = _start("--delay", "1.0")
    try:
        out: dict[str, httpx.Response] = {}
        t = threading.Thread(
            target=lambda: out.setdefault(
                "r", httpx.post(url + "/get_reward", json={"query": ["slow"]}, timeout=30)
            )
        )
        t.start()
        _wait_for(url, "rewardlab_batch_in_progress 1")
        os.kill(proc.pid, signal.SIGTERM)
        t.join(30)
        assert out["r"].status_code == 200 and out["r"].json()["rewards"] == [4.0]
        assert proc.wait(20) == 0
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/health", timeout=2)
    finally:
        _stop(proc)
