"""The server's request parsing as pure functions: property tests (any bytes, any JSON) and
the ``rewardlab serve`` command's argument errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rewardlab.integrations.common import SPECIAL_SUFFIXES, split_query
from rewardlab.serve.protocol import BadRequest, Limits, decode_json, json_safe, parse_get_reward

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
    max_leaves=12,
)


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_a_4xx(body: bytes) -> None:
    try:
        assert isinstance(decode_json(body), dict)
    except BadRequest as e:
        assert 400 <= e.status < 500 and e.reason


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["query", "prompts", "labels", "x"]), json_values))
def test_any_json_object_parses_or_a_4xx(obj: dict[str, object]) -> None:
    try:
        parsed = parse_get_reward(obj, Limits(max_items=8, max_chars=100))
    except BadRequest as e:
        assert 400 <= e.status < 500 and e.reason
    else:
        assert len(parsed.candidates) == len(obj["query"])  # type: ignore[arg-type]


@given(st.text(max_size=30), st.text(max_size=30))
def test_split_query_recovers_the_response(prompt: str, response: str) -> None:
    stripped = response.rstrip()
    if any(stripped.endswith(s) for s in SPECIAL_SUFFIXES):
        return
    got_prompt, got_response, note = split_query(prompt + response, prompt)
    assert got_response == (response if prompt else prompt + response)
    assert (note is None) == bool(prompt)
    assert got_prompt == prompt


def test_split_query_strips_special_tokens() -> None:
    assert split_query("P: x</s><|im_end|>  ", "P: ")[1] == "x"


@given(json_values | st.just(float("nan")) | st.just(float("inf")))
def test_json_safe_output_is_strict_json(x: object) -> None:
    safe = json_safe(x)
    text = json.dumps(safe, allow_nan=False)  # raises on NaN / inf / unknown objects
    assert json.loads(text) == safe


def test_cli_serve_refuses_bad_arguments() -> None:
    from rewardlab.cli.main import app

    r = CliRunner().invoke(app, ["serve", "math-verfy"])
    assert r.exit_code == 2 and "did you mean 'math-verify'" in r.output
    r = CliRunner().invoke(app, ["serve", "exact", "--port", "70000"])
    assert r.exit_code == 2 and "--port" in r.output
    r = CliRunner().invoke(app, ["serve", "exact", "--max-queue", "0"])
    assert r.exit_code == 2 and "max_queue" in r.output


@pytest.mark.parametrize("label", ['{"answer": 5, "meta": []}', '{"answer": 1}'])
def test_json_labels(label: str) -> None:
    obj = {"query": ["q a"], "prompts": ["q "], "labels": [label]}
    if "[]" in label:
        with pytest.raises(BadRequest, match="meta"):
            parse_get_reward(obj, Limits())
    else:
        p = parse_get_reward(obj, Limits())
        assert p.problems[0].answer == "1" and p.candidates[0].text == "a"
