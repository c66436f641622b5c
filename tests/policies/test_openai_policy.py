"""The ``openai`` backend against real servers on loopback.

``transformers serve`` (Hugging Face's server, third party) serves the session's tiny Llama:
sampling, ``n`` emulation (it ignores ``n``), stop strings, greedy text equal to the in-process
``hf`` backend, errors when down / wrong model, retries across a restart.
``tests/openai_server.py`` (vLLM's semantics on the same model) covers what transformers serve
does not fill: native ``n``, log-probabilities against the in-process model, ``echo`` scoring,
429 / 500 retries and malformed bodies.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai_servers import Server, free_port, transformers_cli, transformers_serve, vllm_like

from rewardlab.compute import Ledger
from rewardlab.policies.base import Policy
from rewardlab.policies.hf import HFPolicy
from rewardlab.policies.hf_scoring import continuation_logprobs
from rewardlab.policies.openai_backend import OpenAIPolicy, describe
from rewardlab.policies.openai_http import (
    MalformedResponseError,
    ModelNotFoundError,
    OpenAIBackendError,
    ServerError,
    ServerUnavailableError,
)
from rewardlab.policies.registry import load_policy, tiny_policy_dir
from rewardlab.tasks.arith import make_problem
from rewardlab.types import Sampling

QUESTIONS = tuple(make_problem(random.Random(i), 2).question for i in range(3))
T1 = Sampling(temperature=1.0, max_new_tokens=24, seed=3)
HOT = Sampling(temperature=3.0, max_new_tokens=24, seed=3)  # the tiny policy is sure of itself
GREEDY = Sampling(temperature=0.0, max_new_tokens=24, seed=0)

# server starts import torch + transformers: on a loaded 2-core machine that takes minutes
pytestmark = pytest.mark.timeout(900)

needs_serve = pytest.mark.skipif(
    transformers_cli() is None, reason="transformers serve needs the 'openai' package"
)


@pytest.fixture(scope="module")
def model_dir() -> Path:
    """The shipped tiny policy: it writes arith steps line by line, so stops are exercised."""
    return tiny_policy_dir()


@pytest.fixture(scope="module")
def local(model_dir: Path) -> HFPolicy:
    """The same model in-process: what the servers' answers are checked against."""
    return HFPolicy.from_dir(model_dir, device="cpu")


@pytest.fixture(scope="module")
def hf_serve(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = transformers_serve(model_dir, tmp_path_factory.mktemp("tserve") / "log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def vllm_server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = vllm_like(model_dir, tmp_path_factory.mktemp("vserve") / "log")
    yield server
    server.stop()


def remote(server: Server, model: str, extra: str = "", **kwargs: object) -> OpenAIPolicy:
    spec = f"openai:base_url={server.url},model={model}{',' + extra if extra else ''}"
    policy = load_policy(spec, **kwargs)
    assert isinstance(policy, OpenAIPolicy)
    return policy


def prompts(policy: Policy) -> list[str]:
    return [policy.format_prompt(q) for q in QUESTIONS]


def with_first_steps(local: HFPolicy) -> list[str]:
    """The prompts, and each prompt followed by its greedy first step (a mid-solution prefix)."""
    firsts = local.extend(prompts(local), GREEDY, ["\n"])
    return prompts(local) + [p + c.text for p, c in zip(prompts(local), firsts, strict=True)]


# -- transformers serve ---------------------------------------------------------------------


@needs_serve
def test_samples_n_per_prompt_emulating_n(
    hf_serve: Server, model_dir: Path, local: HFPolicy
) -> None:
    ledger = Ledger()
    policy = remote(hf_serve, str(model_dir), "concurrency=4", ledger=ledger, device="cpu")
    assert isinstance(policy, Policy)
    rows = policy.sample(prompts(policy), 3, HOT)
    assert [len(r) for r in rows] == [3, 3, 3]
    info = describe(policy)
    assert info["server"] == "transformers" and info["emulate_n"] is True
    assert info["emulated_requests"] == 9  # n ignored by the server: one request per sample
    assert len({c.text for row in rows for c in row}) > 3  # it really samples
    for prompt, row in zip(prompts(policy), rows, strict=True):
        for c in row:  # the server's usage = the in-process tokenizer's count
            assert c.prompt_tokens == len(local._encode(prompt))
            assert 1 <= c.generated_tokens <= HOT.max_new_tokens
            assert c.logprobs is None  # transformers serve fills no logprobs
    cost = ledger.totals(policy.name)
    assert cost.calls == 1
    assert cost.generated_tokens == sum(c.generated_tokens for row in rows for c in row)
    assert cost.prompt_tokens == sum(c.prompt_tokens for row in rows for c in row)


@needs_serve
def test_greedy_text_equals_the_in_process_model(
    hf_serve: Server, model_dir: Path, local: HFPolicy
) -> None:
    policy = remote(hf_serve, str(model_dir))
    here = local.sample(prompts(local), 1, GREEDY)
    there = policy.sample(prompts(policy), 1, GREEDY)
    assert [r[0].text for r in there] == [r[0].text for r in here]
    assert [r[0].generated_tokens for r in there] == [r[0].generated_tokens for r in here]


@needs_serve
def test_extend_keeps_the_stop_string_like_the_hf_backend(
    hf_serve: Server, model_dir: Path, local: HFPolicy
) -> None:
    prefixes = with_first_steps(local)
    here = local.extend(prefixes, GREEDY, ["\n"])
    assert sum(c.text.endswith("\n") for c in here) >= 2  # the stop is really exercised
    for mode in ("server", "client"):
        ledger = Ledger()
        policy = remote(hf_serve, str(model_dir), f"stops={mode}", ledger=ledger)
        there = policy.extend(prefixes, GREEDY, ["\n"])
        assert [c.text for c in there] == [c.text for c in here], mode
        assert [c.finish_reason for c in there] == [c.finish_reason for c in here], mode
        if mode == "server":  # the server stopped where the hf backend stops
            assert [c.generated_tokens for c in there] == [c.generated_tokens for c in here]
        else:  # generation ran on past the stop; the ledger bills what the server computed
            billed = ledger.totals(policy.name).generated_tokens
            assert billed > sum(c.generated_tokens for c in here)


@needs_serve
def test_wrong_model_names_the_served_ones(hf_serve: Server, model_dir: Path) -> None:
    policy = remote(hf_serve, "tiny-lama")
    with pytest.raises(ModelNotFoundError, match="does not serve model 'tiny-lama'") as err:
        policy.sample(["Question: 1 + 1?\n"], 1, GREEDY)
    assert err.value.available == (str(model_dir),)
    assert str(model_dir) in str(err.value)


@needs_serve
def test_no_echo_means_a_clear_error(hf_serve: Server, model_dir: Path) -> None:
    policy = remote(hf_serve, str(model_dir))
    with pytest.raises(OpenAIBackendError, match="no prompt log-probabilities"):
        policy.continuation_logprobs(["Question: 1 + 1?\n"], ["Answer: 2"])


def test_server_down_is_a_clear_error() -> None:
    port = free_port()  # nothing listens there
    spec = f"openai:base_url=http://127.0.0.1:{port}/v1,model=m,max_retries=2,backoff_s=0.01"
    policy = load_policy(spec)
    t0 = time.monotonic()
    with pytest.raises(ServerUnavailableError, match=r"no answer .* after 3 tries; is it running"):
        policy.sample(["Question: 1 + 1?\n"], 1, GREEDY)
    assert time.monotonic() - t0 < 10


@pytest.mark.slow
@needs_serve
def test_retries_across_a_server_restart(hf_serve: Server, model_dir: Path) -> None:
    policy = remote(hf_serve, str(model_dir), "max_retries=2000,backoff_s=0.1,max_backoff_s=1")
    before = policy.sample(prompts(policy)[:1], 1, GREEDY)  # connected and checked
    hf_serve.stop()
    result: list[object] = []
    worker = threading.Thread(
        target=lambda: result.append(policy.sample(prompts(policy)[:1], 1, GREEDY))
    )
    worker.start()
    time.sleep(1.0)
    assert worker.is_alive() and not result  # the call waits, retrying, while the server is down
    hf_serve.start()  # same port
    worker.join(timeout=180)
    assert not worker.is_alive() and result == [before]
    assert policy.transport.stats.retries >= 1


# -- the vLLM-like test server ---------------------------------------------------------------


def test_native_n_and_logprobs_match_the_in_process_model(
    vllm_server: Server, local: HFPolicy
) -> None:
    policy = remote(vllm_server, "tiny-test", "concurrency=3")
    rows = policy.sample(prompts(policy), 4, T1)
    assert [len(r) for r in rows] == [4, 4, 4]
    assert describe(policy)["emulate_n"] is False and policy.stats.server == "vllm"
    assert policy.transport.stats.requests == 1 + 3  # /models, then one request per prompt
    pairs = [(p, c) for p, row in zip(prompts(policy), rows, strict=True) for c in row]
    expected = continuation_logprobs(local, [p for p, _ in pairs], [c.text for _, c in pairs])
    for (_, c), want in zip(pairs, expected, strict=True):
        assert c.logprobs is not None and len(c.logprobs) == c.generated_tokens
        # the end-of-sequence token is generated (and counted) but has no text
        eos = 1 if c.finish_reason == "stop" else 0
        assert len(c.logprobs) == len(want) + eos
        assert c.logprobs[: len(want)] == pytest.approx(want, abs=1e-4)


def test_extend_puts_the_reported_stop_back(vllm_server: Server, local: HFPolicy) -> None:
    policy = remote(vllm_server, "tiny-test")
    prefixes = with_first_steps(local)
    there = policy.extend(prefixes, GREEDY, ["\n", "="])
    here = local.extend(prefixes, GREEDY, ["\n", "="])
    assert [c.text for c in there] == [c.text for c in here]
    assert any(c.text.endswith(("\n", "=")) for c in there)
    for c in there:
        assert c.logprobs is not None and len(c.logprobs) == c.generated_tokens


def test_echo_scoring_matches_the_in_process_model(vllm_server: Server, local: HFPolicy) -> None:
    ledger = Ledger()
    policy = remote(vllm_server, "tiny-test", "params=1000", ledger=ledger)
    prefixes = prompts(policy)
    continuations = ["12 + 7 = 19\nThe answer is 19.", "3 * 4 = 12", " 74"]
    got = policy.continuation_logprobs(prefixes, continuations)
    want = continuation_logprobs(local, prefixes, continuations)
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w, abs=1e-4)
    read = sum(len(local._encode(p + c)) for p, c in zip(prefixes, continuations, strict=True))
    assert ledger.totals(policy.name).scored_tokens == read
    assert ledger.totals(policy.name).flops == 2 * 1000 * read


def test_429_and_500_are_retried(vllm_server: Server) -> None:
    policy = remote(vllm_server, "tiny-test", "backoff_s=0.05")
    clean = policy.sample(prompts(policy)[:1], 2, T1)
    httpx.post(vllm_server.url.replace("/v1", "/admin/faults"), json={"faults": ["429", "500"]})
    again = policy.sample(prompts(policy)[:1], 2, T1)
    assert again == clean  # same seed, same samples, after two failed tries
    stats = policy.transport.stats
    assert (stats.retries, stats.rate_limited) == (2, 1)


def test_errors_that_are_not_retried(vllm_server: Server) -> None:
    policy = remote(vllm_server, "tiny-test", "max_retries=0")
    policy.sample(prompts(policy)[:1], 1, GREEDY)
    httpx.post(vllm_server.url.replace("/v1", "/admin/faults"), json={"faults": ["429"]})
    with pytest.raises(ServerError, match="answered 429: rate limited"):
        policy.sample(prompts(policy)[:1], 1, GREEDY)
    httpx.post(vllm_server.url.replace("/v1", "/admin/faults"), json={"faults": ["garbage"]})
    with pytest.raises(MalformedResponseError, match="not JSON: '<html>proxy error"):
        policy.sample(prompts(policy)[:1], 1, GREEDY)
    httpx.post(vllm_server.url.replace("/v1", "/admin/faults"), json={"faults": ["shape"]})
    with pytest.raises(MalformedResponseError, match="choice 0 has no string 'text'"):
        policy.sample(prompts(policy)[:1], 1, GREEDY)
    unchecked = remote(vllm_server, "other", "check_model=false")
    with pytest.raises(ModelNotFoundError, match="404 for model 'other'"):
        unchecked.sample(prompts(policy)[:1], 1, GREEDY)


def test_rewardlab_sample_through_the_server(vllm_server: Server, tmp_path: Path) -> None:
    """The CLI takes an ``openai:`` spec like any other policy, and a re-run resumes: the
    store already has every candidate, so no request is sent."""
    import json

    from typer.testing import CliRunner

    from rewardlab.cli.main import app

    out = tmp_path / "pool"
    spec = f"openai:base_url={vllm_server.url},model=tiny-test,params=3.5M"
    args = ["sample", "--out", str(out), "--policy", spec, "--problems", "3", "--n", "2"]
    args += ["--difficulty", "1-2", "--max-new-tokens", "48"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    rows = [json.loads(x) for x in (out / "pool.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["generated_tokens"] > 0 for r in rows)
    assert sum(r["correct"] for r in rows) >= 1  # the shipped policy solves easy ones
    httpx.post(vllm_server.url.replace("/v1", "/admin/faults"), json={"faults": ["500"] * 50})
    again = CliRunner().invoke(app, args)  # would fail on the 500s if it asked the server
    assert again.exit_code == 0, again.output
    assert (out / "pool.jsonl").read_text().splitlines() == [
        json.dumps(r, ensure_ascii=False) for r in rows
    ]
    httpx.post(vllm_server.url.replace("/v1", "/admin/faults"), json={"clear": True})
