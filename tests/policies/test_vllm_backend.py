"""The ``vllm`` backend's pure parts, without vLLM (it needs a GPU; it is not installed here).

vLLM's outputs are stood in for by the dataclasses below, shaped field for field like
``vllm.outputs.CompletionOutput`` / ``RequestOutput`` and ``vllm.logprobs.Logprob`` (the fields
the backend reads; docs/backends.md lists them). Where numbers matter they are real: the prompt
log-probabilities come from the tiny Llama's own forward pass, and are read back at the positions
the ``hf`` backend scores. The engine itself runs in ``scripts/device/vllm_e2e.py`` on a GPU.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from rewardlab.cli.main import app
from rewardlab.compute import Ledger
from rewardlab.pipelines.scale_job import check_policy
from rewardlab.policies import vllm_backend as vb
from rewardlab.policies.hf import HFPolicy
from rewardlab.policies.hf_scoring import continuation_ids, continuation_logprobs
from rewardlab.policies.registry import BACKENDS, load_policy
from rewardlab.types import Sampling

HAS_VLLM = importlib.util.find_spec("vllm") is not None


@dataclass
class Logprob:  # vllm.logprobs.Logprob
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:  # vllm.outputs.CompletionOutput
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:  # vllm.outputs.RequestOutput (the fields read)
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: list[dict[int, Logprob] | None] | None
    outputs: list[CompletionOutput] = field(default_factory=list)
    finished: bool = True
    num_cached_tokens: int | None = None


def _out(index: int, tokens: list[int], lps: list[float] | None, text: str = "x", **kw: Any) -> Any:
    table = None if lps is None else [{t: Logprob(v, 1)} for t, v in zip(tokens, lps, strict=True)]
    return CompletionOutput(index, text, tokens, None, table, **{"finish_reason": "stop", **kw})


# -- spec ------------------------------------------------------------------------------------


def test_spec_defaults_aliases_and_types() -> None:
    cfg = vb.parse_spec("path=/m/qwen, dtype=bfloat16,params=1.5B,max_model_len=4096")
    got = (cfg.model, cfg.dtype, cfg.params, cfg.max_model_len)
    assert got == ("/m/qwen", "bfloat16", 1_500_000_000, 4096)
    assert cfg.enable_prefix_caching is True  # on unless asked off
    assert vb.parse_spec("model=m,enable_prefix_caching=false").enable_prefix_caching is False


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("dtype=float16", "lacks model"),
        ("model=m,dtyp=float16", "did you mean 'dtype'"),
        ("model=m,model=n", "given twice"),
        ("model=m,seed=x", "seed must be an integer"),
        ("model=m,gpu_memory_utilization=1.5", "gpu_memory_utilization must be in (0, 1]"),
        ("model=m,dtype=int8", "dtype must be one of"),
        ("model=m,enable_prefix_caching=maybe", "true or false"),
        ("model=m,logprobs", "is not key=value"),
    ],
)
def test_bad_specs_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        vb.parse_spec(spec)


@given(
    dtype=st.sampled_from(["auto", "float16", "bfloat16", "float32"]),
    util=st.floats(0.05, 1.0),
    tp=st.integers(1, 8),
    lp=st.integers(0, 20),
    seed=st.integers(0, 2**31 - 1),
    cache=st.booleans(),
)
def test_spec_round_trips(
    dtype: str, util: float, tp: int, lp: int, seed: int, cache: bool
) -> None:
    spec = (
        f"model=/m/x,dtype={dtype},gpu_memory_utilization={util!r},tensor_parallel_size={tp},"
        f"logprobs={lp},seed={seed},enable_prefix_caching={str(cache).lower()}"
    )
    want = vb.VLLMConfig("/m/x", dtype=dtype, gpu_memory_utilization=util,
                         tensor_parallel_size=tp, logprobs=lp, seed=seed,
                         enable_prefix_caching=cache)  # fmt: skip
    assert vb.parse_spec(spec) == want
    kwargs = vb.engine_kwargs(want)
    assert kwargs["enable_prefix_caching"] is cache
    assert kwargs["model"] == kwargs["tokenizer"] == "/m/x"
    assert "max_model_len" not in kwargs  # the model's own unless given


# -- requests --------------------------------------------------------------------------------


def test_sampling_kwargs_map_every_field() -> None:
    params = Sampling(temperature=0.7, top_p=0.9, max_new_tokens=64, seed=5)
    got = vb.sampling_kwargs(params, 4, 123, ["\n", ""], logprobs=2)
    assert got == {
        "n": 4, "temperature": 0.7, "top_p": 0.9, "max_tokens": 64, "seed": 123,
        "stop": ["\n"], "include_stop_str_in_output": True, "logprobs": 2,
    }  # fmt: skip
    assert set(got) <= set(vb.SAMPLING_FIELDS)
    plain = vb.sampling_kwargs(Sampling(temperature=0.0), 1, 0, (), logprobs=0, prompt_logprobs=1)
    assert "stop" not in plain and "logprobs" not in plain and plain["prompt_logprobs"] == 1
    with pytest.raises(ValueError, match="n must be >= 1"):
        vb.sampling_kwargs(params, 0, 0)


@given(seed=st.integers(0, 2**40), ids=st.lists(st.integers(0, 50_000), min_size=1, max_size=30))
def test_request_seeds_are_31_bit_and_follow_seed_and_prompt(seed: int, ids: list[int]) -> None:
    s = vb.request_seed(seed, ids)
    assert 0 <= s < 2**31 and s == vb.request_seed(seed, ids)
    assert len({vb.request_seed(seed + k, ids) for k in range(4)}) >= 3
    assert len({vb.request_seed(seed, [*ids, k]) for k in range(4)}) >= 3


def test_prompt_ids_and_continuation_split_are_the_hf_backends(tiny_policy: HFPolicy) -> None:
    tok = tiny_policy.tokenizer
    prefix = tiny_policy.format_prompt("What is 3 + 4?")
    for cont in ("3 + 4 = 7\n", " 7", "=7"):
        assert vb.encode_prompt(tok, prefix) == tiny_policy._encode(prefix)
        ids, start = vb.split_continuation(tok, prefix, cont)
        head, tail = continuation_ids(tiny_policy, prefix, cont)
        assert (ids, start) == (head + tail, len(head))


def test_param_count_from_safetensors_headers(tiny_llama_dir: Path, tiny_policy: HFPolicy) -> None:
    want = sum(p.numel() for p in tiny_policy.model.parameters())
    assert vb.safetensors_params(tiny_llama_dir) == want
    with pytest.raises(FileNotFoundError, match="params=COUNT"):
        vb.safetensors_params(tiny_llama_dir.parent)


# -- outputs ---------------------------------------------------------------------------------


def test_completions_in_index_order_with_logprobs_and_costs() -> None:
    req = RequestOutput(
        "r", None, [1, 2, 3, 4],
        None,
        [_out(1, [7, 8], [-0.5, -1.5], "b\n", finish_reason="length"), _out(0, [9], [-0.25], "a")],
        num_cached_tokens=3,
    )  # fmt: skip
    got = vb.completions_of(req, 2)
    assert [c.text for c in got] == ["a", "b\n"]
    assert [c.logprobs for c in got] == [(-0.25,), (-0.5, -1.5)]
    assert [c.generated_tokens for c in got] == [1, 2]
    assert [c.finish_reason for c in got] == ["stop", "length"]
    assert all(c.prompt_tokens == 4 for c in got)
    cost = vb.call_cost([req, RequestOutput("s", None, [1, 2], None, [_out(0, [5], None)])])
    # logical prompt tokens per sample (4 x 2 + 2 x 1); computed per request minus cache hits
    assert cost == vb.CallCost(10, 1 + 2, 3, 3 + 1)


def test_a_sampled_token_missing_from_its_logprobs_is_named() -> None:
    bad = CompletionOutput(0, "a", [5, 6], None, [{5: Logprob(-1.0)}, {9: Logprob(-2.0)}], "stop")
    with pytest.raises(vb.VLLMOutputError, match="completion 0, token 1: token 6 is not among"):
        vb.sampled_logprobs(bad)
    short = CompletionOutput(0, "a", [5, 6], None, [{5: Logprob(-1.0)}], "stop")
    with pytest.raises(vb.VLLMOutputError, match="1 logprob positions for 2 tokens"):
        vb.sampled_logprobs(short)


def test_wrong_count_and_aborted_requests_are_errors() -> None:
    req = RequestOutput("r", None, [1], None, [_out(0, [2], None), _out(2, [3], None)])
    with pytest.raises(vb.VLLMOutputError, match=r"asked for 2 completions, got indices \[0, 2\]"):
        vb.completions_of(req, 2)
    aborted = RequestOutput("r", None, [1], None, [_out(0, [2], None, finish_reason="abort")])
    with pytest.raises(vb.VLLMOutputError, match="finished with 'abort'"):
        vb.completions_of(aborted, 1)


def test_the_stop_string_is_kept_in_the_text() -> None:
    kept = RequestOutput("r", None, [1], None, [_out(0, [2, 3], None, "x = 1\n", stop_reason="\n")])
    assert vb.completions_of(kept, 1, ["\n"])[0].text == "x = 1\n"
    dropped = RequestOutput("r", None, [1], None, [_out(0, [2], None, "x = 1", stop_reason="\n")])
    assert vb.completions_of(dropped, 1, ["\n"])[0].text == "x = 1\n"  # put back
    eos = RequestOutput("r", None, [1], None, [_out(0, [2], None, "x = 1", stop_reason=None)])
    assert vb.completions_of(eos, 1, ["\n"])[0].text == "x = 1"  # an end of sequence adds nothing
    token = RequestOutput("r", None, [1], None, [_out(0, [2], None, "x", stop_reason=128009)])
    assert vb.completions_of(token, 1, ["\n"])[0].text == "x"  # a stop token id is not text


def _prompt_logprobs_of(model: Any, ids: list[int]) -> list[dict[int, Logprob] | None]:
    """What vLLM's ``prompt_logprobs=1`` holds for ``ids``, computed from the model: per
    position t >= 1 the prompt token's log p(ids[t] | ids[:t]) and the top-1 token's."""
    with torch.inference_mode():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
    table: list[dict[int, Logprob] | None] = [None]
    for t in range(1, len(ids)):
        row = logp[t - 1]
        top = int(row.argmax())
        table.append({top: Logprob(float(row[top]), 1), ids[t]: Logprob(float(row[ids[t]]))})
    return table


def test_prompt_logprobs_read_at_the_hf_backends_positions(tiny_policy: HFPolicy) -> None:
    tok = tiny_policy.tokenizer
    prefixes = [tiny_policy.format_prompt(q) for q in ("What is 3 + 4?", "What is 9 - 2?")]
    conts = ["3 + 4 = 7\n", "9 - 2 = 7\nThe answer is 7"]
    want = continuation_logprobs(tiny_policy, prefixes, conts)
    for prefix, cont, expected in zip(prefixes, conts, want, strict=True):
        ids, start = vb.split_continuation(tok, prefix, cont)
        req = RequestOutput("r", None, ids, _prompt_logprobs_of(tiny_policy.model, ids),
                            [_out(0, [0], None)])  # fmt: skip
        got = vb.prompt_token_logprobs(req, start)
        assert len(got) == len(expected) == len(ids) - start
        assert got == pytest.approx(expected, abs=1e-5)
        assert all(math.isfinite(v) and v <= 0 for v in got)


def test_prompt_logprobs_missing_is_named() -> None:
    req = RequestOutput("r", None, [1, 2, 3], None, [_out(0, [0], None)])
    with pytest.raises(vb.VLLMOutputError, match="was prompt_logprobs set"):
        vb.prompt_token_logprobs(req, 1)
    with pytest.raises(ValueError, match=r"start must be in 1\.\.2"):
        vb.prompt_token_logprobs(req, 0)


# -- registry and the missing extra ----------------------------------------------------------


def test_registered_and_checked_without_an_engine(tiny_llama_dir: Path, tmp_path: Path) -> None:
    assert BACKENDS["vllm"] == "rewardlab.policies.vllm_backend:load_vllm_policy"
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        check_policy(f"vllm:model={tmp_path / 'absent'}")
    with pytest.raises(FileNotFoundError, match=r"has no config\.json"):
        check_policy(f"vllm:model={tmp_path}")
    with pytest.raises(ValueError, match="did you mean 'dtype'"):
        check_policy(f"vllm:model={tiny_llama_dir},dtyp=float16")


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed: the missing-extra error cannot happen")
def test_without_vllm_the_error_names_the_extra(tiny_llama_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"pip install 'rewardlab\[vllm\]'"):
        check_policy(f"vllm:model={tiny_llama_dir}")
    with pytest.raises(vb.VLLMMissingError, match=r"rewardlab\[vllm\]"):
        load_policy(f"vllm:model={tiny_llama_dir}", ledger=Ledger(), device="cpu")
    # the CLI: one line, exit code 2, before any file is made
    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        app, ["scale", "--policy", f"vllm:model={tiny_llama_dir}", "--runs-dir", str(runs)]
    )
    assert result.exit_code == 2, result.output
    assert "rewardlab[vllm]" in result.output and "Traceback" not in result.output
    assert not runs.exists()


# -- the class's calls into an engine --------------------------------------------------------


@dataclass(frozen=True)
class SamplingParams:  # the vllm.SamplingParams fields the backend fills, vLLM's defaults
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = 16
    seed: int | None = None
    stop: list[str] | None = None
    include_stop_str_in_output: bool = False
    logprobs: int | None = None
    prompt_logprobs: int | None = None


class RecordingEngine:
    """Stands in for ``vllm.LLM.generate`` to check what the policy sends and how it reads the
    answer (not vLLM's numbers: those are the device script's). Completion k of a prompt is
    the text ``f"s{k}"`` (+ the first stop string), one token per character; a prompt seen
    before reports all but its last token as prefix-cache hits; ``prompt_logprobs`` come from
    the tiny model's real forward pass."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.calls: list[tuple[list[list[int]], list[SamplingParams]]] = []
        self.seen: set[tuple[int, ...]] = set()

    def generate(self, prompts: list[dict[str, list[int]]], sps: Any) -> list[RequestOutput]:
        ids = [p["prompt_token_ids"] for p in prompts]
        sps = sps if isinstance(sps, list) else [sps] * len(ids)
        self.calls.append((ids, sps))
        outs = []
        for row, sp in zip(ids, sps, strict=True):
            cached = len(row) - 1 if tuple(row) in self.seen else 0
            self.seen.add(tuple(row))
            stop = sp.stop[0] if sp.stop and sp.include_stop_str_in_output else ""
            comps = []
            for k in range(sp.n):
                text = f"s{k}{stop}"
                tokens = [200 + ord(ch) for ch in text]
                lps = [-0.5] * len(tokens) if sp.logprobs else None
                comps.append(_out(k, tokens, lps, text, stop_reason=stop or None))
            table = _prompt_logprobs_of(self.model, row) if sp.prompt_logprobs else None
            outs.append(RequestOutput("r", None, row, table, comps[::-1], num_cached_tokens=cached))
        return outs


@pytest.fixture()
def engine_policy(tiny_llama_dir: Path, tiny_policy: HFPolicy) -> Any:
    engine = RecordingEngine(tiny_policy.model)
    ledger = Ledger()
    config = vb.VLLMConfig(str(tiny_llama_dir), params=1000)
    policy = vb.VLLMPolicy(config, ledger=ledger, llm=engine, sampling_params=SamplingParams)
    return policy, engine, ledger


def test_sample_sends_token_ids_and_one_seed_per_prompt(
    engine_policy: Any, tiny_policy: HFPolicy
) -> None:
    policy, engine, ledger = engine_policy
    prompts = [policy.format_prompt(q) for q in ("What is 3 + 4?", "What is 9 - 2?")]
    assert prompts == [tiny_policy.format_prompt(q) for q in ("What is 3 + 4?", "What is 9 - 2?")]
    params = Sampling(temperature=0.7, max_new_tokens=32, seed=11)
    rows = policy.sample(prompts, 3, params)
    ids, sps = engine.calls[0]
    assert ids == [tiny_policy._encode(p) for p in prompts]
    assert [sp.seed for sp in sps] == [vb.request_seed(11, row) for row in ids]
    assert {(sp.n, sp.temperature, sp.max_tokens, sp.logprobs) for sp in sps} == {(3, 0.7, 32, 1)}
    assert [[c.text for c in row] for row in rows] == [["s0", "s1", "s2"]] * 2
    assert ledger.totals().prompt_tokens == 3 * sum(len(r) for r in ids)
    assert ledger.totals().generated_tokens == 2 * 3 * 2
    assert ledger.totals().flops == 2 * 1000 * (sum(len(r) for r in ids) + 12)


def test_extend_keeps_stops_and_the_prefix_cache_lowers_flops(engine_policy: Any) -> None:
    policy, engine, ledger = engine_policy
    prefixes = [policy.format_prompt("What is 3 + 4?")]
    greedy = Sampling(temperature=0.0, max_new_tokens=8)
    first = policy.extend(prefixes, greedy, ["\n", ""])
    assert first[0].text == "s0\n" and first[0].finish_reason == "stop"
    sp = engine.calls[0][1][0]
    assert (sp.stop, sp.include_stop_str_in_output) == (["\n"], True)
    flops_first = ledger.totals().flops
    policy.extend(prefixes, greedy, ["\n"])  # the same prefix again: served from the cache
    length = len(engine.calls[0][0][0])
    assert policy.cached_prompt_tokens == length - 1
    assert ledger.totals().flops - flops_first == 2 * 1000 * (1 + 3)  # 1 prompt token computed


def test_continuation_logprobs_through_the_policy(
    engine_policy: Any, tiny_policy: HFPolicy
) -> None:
    policy, engine, ledger = engine_policy
    prefixes = [tiny_policy.format_prompt("What is 3 + 4?")]
    got = policy.continuation_logprobs(prefixes, ["3 + 4 = 7\n"])
    want = continuation_logprobs(tiny_policy, prefixes, ["3 + 4 = 7\n"])
    assert got[0] == pytest.approx(want[0], abs=1e-5)
    sp = engine.calls[0][1][0]
    assert (sp.prompt_logprobs, sp.max_tokens, sp.temperature) == (1, 1, 0.0)
    assert ledger.totals().scored_tokens == len(engine.calls[0][0][0])
    with pytest.raises(ValueError, match="1 prefixes but 2 continuations"):
        policy.continuation_logprobs(prefixes, ["a", "b"])
