"""The ``openai`` backend's pure parts: specs, response parsing, stop handling, token shares,
retry waits. No server needed (the backend against real servers: ``test_openai_policy.py``)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rewardlab.pipelines.scale_job import check_policy
from rewardlab.policies.openai_backend import (
    Choice,
    apply_stop,
    first_stop,
    parse_choices,
    parse_count,
    parse_spec,
    sample_seed,
    split_by_chars,
    usage_counts,
)
from rewardlab.policies.openai_http import MalformedResponseError, RetryPolicy, retry_after_seconds
from rewardlab.policies.registry import load_policy

URL = "http://127.0.0.1:8000/v1"


def test_spec_parses_every_kind_of_value() -> None:
    cfg = parse_spec(
        f"url={URL}, model=Qwen/Qwen2.5-0.5B,params=494M,concurrency=3,timeout_s=2.5,"
        "check_model=false,n=emulate,stops=client,server=vllm"
    )
    assert (cfg.base_url, cfg.model, cfg.params) == (URL, "Qwen/Qwen2.5-0.5B", 494_000_000)
    assert (cfg.concurrency, cfg.timeout_s, cfg.check_model) == (3, 2.5, False)
    assert (cfg.n, cfg.stops, cfg.server) == ("emulate", "client", "vllm")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (f"base_url={URL}", "lacks model"),
        ("model=m", "lacks base_url"),
        (f"base_url={URL},model=m,concurency=2", "did you mean 'concurrency'"),
        (f"base_url={URL},model=m,model=n", "given twice"),
        (f"base_url={URL},model=m,stops=maybe", "stops must be one of"),
        (f"base_url={URL},model=m,concurrency=0", "concurrency must be >= 1"),
        (f"base_url={URL},model=m,concurrency=two", "concurrency must be an integer"),
        (f"base_url={URL},model=m,params=lots", "params must be a count"),
        (f"base_url={URL},model=m,nonsense", "is not key=value"),
        ("base_url=127.0.0.1:8000,model=m", "must start with http"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_policy(f"openai:{spec}")


def test_scale_checks_the_spec_without_a_server() -> None:
    check_policy(f"openai:base_url={URL},model=m")  # nothing listens there: not its business
    with pytest.raises(ValueError, match="lacks model"):
        check_policy(f"openai:base_url={URL}")


def test_parse_count() -> None:
    assert [parse_count(t) for t in ("7", "1k", "135M", "1.5B", "0.5t")] == [
        7, 1000, 135_000_000, 1_500_000_000, 500_000_000_000,
    ]  # fmt: skip


def test_choices_parse_both_endpoints_in_index_order() -> None:
    body = {
        "choices": [
            {"index": 1, "text": "b", "finish_reason": "length"},
            {
                "index": 0,
                "text": "a\n",
                "finish_reason": "stop",
                "stop_reason": "\n",
                "logprobs": {"tokens": ["a", "\n"], "token_logprobs": [-0.5, -1.0]},
            },
        ]
    }
    a, b = parse_choices(body, chat=False)
    assert (a.text, a.tokens, a.token_logprobs, a.stop_reason) == (
        "a\n",
        ("a", "\n"),
        (-0.5, -1.0),
        "\n",
    )
    assert (b.text, b.finish_reason, b.tokens) == ("b", "length", None)
    chat = {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi"},
                "finish_reason": "stop",
                "logprobs": {"content": [{"token": "hi", "logprob": -0.25}]},
            }
        ]
    }
    (c,) = parse_choices(chat, chat=True)
    assert (c.text, c.tokens, c.token_logprobs) == ("hi", ("hi",), (-0.25,))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "'choices' list"),
        ({"choices": "x"}, "'choices' list"),
        ({"choices": [{"index": 0}]}, "no string 'text'"),
        ({"choices": [{"text": "a", "logprobs": {"tokens": ["a"]}}]}, "differ in shape"),
        (
            {"choices": [{"text": "a", "logprobs": {"tokens": ["a"], "token_logprobs": ["x"]}}]},
            "not a number",
        ),
    ],
)
def test_malformed_bodies_are_named(body: object, message: str) -> None:
    with pytest.raises(MalformedResponseError, match=message):
        parse_choices(body, chat=False)


def test_usage() -> None:
    assert usage_counts({"usage": {"prompt_tokens": 3, "completion_tokens": 4}}) == (3, 4)
    assert usage_counts({}) is None
    with pytest.raises(MalformedResponseError, match="non-negative integers"):
        usage_counts({"usage": {"prompt_tokens": -1}})


def test_apply_stop_hand_worked() -> None:
    # the stop left in the text (transformers serve): cut after it, tokens after it dropped
    raw = Choice(
        "12 + 7\n= 19\n", "stop", ("12", " +", " 7", "\n", "=", " 19"), (-1, -2, -3, -4, -5, -6)
    )
    cut = apply_stop(raw, ["\n"])
    assert (cut.text, cut.tokens, cut.token_logprobs) == (
        "12 + 7\n",
        ("12", " +", " 7", "\n"),
        (-1, -2, -3, -4),
    )
    # the stop reported, not in the text (vLLM): put back
    vllm = apply_stop(Choice("12 + 7", "stop", stop_reason="\n"), ["\n"])
    assert (vllm.text, vllm.finish_reason) == ("12 + 7\n", "stop")
    # end of sequence: no stop, nothing appended; "length" survives
    assert apply_stop(Choice("done", "stop"), ["\n"]).text == "done"
    assert apply_stop(Choice("abc", "length"), ["\n"]).finish_reason == "length"
    assert apply_stop(Choice("abc", "eos"), ["\n"]).finish_reason == "stop"


texts = st.text(alphabet="ab\n=", max_size=30)
stop_lists = st.lists(st.sampled_from(["\n", "=", "a=", "\n\n", "b"]), min_size=1, max_size=3)


@given(texts, stop_lists)
def test_first_stop_cuts_at_the_earliest_stop(text: str, stops: list[str]) -> None:
    cut = first_stop(text, stops)
    starts = [text.find(s) for s in stops if s in text]
    if cut is None:
        assert not starts
        return
    head = text[:cut]
    assert any(head.endswith(s) and cut - len(s) == min(starts) for s in stops)


@given(st.lists(st.text(alphabet="ab\n", min_size=1, max_size=3), max_size=12), stop_lists)
def test_apply_stop_keeps_tokens_that_cover_the_text(tokens: list[str], stops: list[str]) -> None:
    text = "".join(tokens)
    choice = Choice(text, "stop", tuple(tokens), tuple(-float(i) for i in range(len(tokens))))
    done = apply_stop(choice, stops)
    assert done.tokens is not None and done.token_logprobs is not None
    kept = "".join(done.tokens)
    assert kept.startswith(done.text) and len(done.tokens) == len(done.token_logprobs)
    if done.tokens:  # no token more than needed: without the last one the text is not covered
        assert len("".join(done.tokens[:-1])) < len(done.text)
    assert text.startswith(done.text)


@given(st.integers(0, 10_000), st.lists(st.text(max_size=20), min_size=1, max_size=8))
def test_split_by_chars_sums_to_the_total(total: int, parts: list[str]) -> None:
    shares = split_by_chars(total, parts)
    assert sum(shares) == total and all(s >= 0 for s in shares)


def test_split_by_chars_hand_worked() -> None:
    assert split_by_chars(10, ["aaaa", "a"]) == [8, 2]
    assert split_by_chars(3, ["ab", "ab", "ab"]) == [1, 1, 1]
    assert split_by_chars(0, ["x"]) == [0]


def test_seeds_differ_per_sample_and_repeat() -> None:
    seeds = {sample_seed(0, "p", k) for k in range(100)}
    assert len(seeds) == 100 and all(0 <= s < 2**31 for s in seeds)
    assert sample_seed(0, "p", 3) == sample_seed(0, "p", 3) != sample_seed(1, "p", 3)


def test_retry_waits() -> None:
    policy = RetryPolicy(max_retries=5, backoff_s=0.5, max_backoff_s=3.0)
    rng = random.Random(0)
    waits = [policy.wait(a, None, rng) for a in range(6)]
    for attempt, wait in enumerate(waits):
        full = min(0.5 * 2**attempt, 3.0)
        assert full / 2 <= wait <= full
    assert policy.wait(0, 2.0, rng) == 2.0 and policy.wait(0, 60.0, rng) == 3.0
    assert [retry_after_seconds(v) for v in ("2", " 0.5 ", "-1", "Wed, 21 Oct 2015", None)] == [
        2.0, 0.5, None, None, None,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)
