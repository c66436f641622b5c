"""The trusted parent reads candidate-controlled text with bounds (issue 16): deep expressions,
quadratic regex inputs and deeply nested worker replies cost that candidate its score, never
the batch (and never seconds of parent CPU)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.rewards.code import CodeReward, defines, extract_code, fenced_blocks
from rewardlab.rewards.code_steps import parse_claim, to_python
from rewardlab.rewards.tools import TOOL_CALL, Calculator, _as_number, find_tool_call
from rewardlab.sandbox import Limits, SandboxConfig, detect
from rewardlab.sandbox.judge import _records
from rewardlab.sandbox.untrusted import (
    UntrustedInputError,
    json_depth,
    loads_json,
    parse_python,
)
from rewardlab.tasks.code import from_record
from rewardlab.types import Candidate

T = TypeVar("T")

DEEP = {
    "plus_5000": "x = " + "1+" * 5_000 + "1\n",
    "plus_100000": "x = " + "1+" * 100_000 + "1\n",
    "minus_5000": "x = " + "-" * 5_000 + "1\n",
    "minus_100000": "x = " + "-" * 100_000 + "1\n",
}
QUADRATIC = "\n" * 20_000 + "def f(:\n"  # a syntax error after 20k blank lines


def at_depth(frames: int, fn: Callable[[], T]) -> T:
    """Call ``fn`` with ``frames`` extra Python frames on the stack (a deep caller)."""
    if frames == 0:
        return fn()
    return at_depth(frames - 1, fn)


def timed(fn: Callable[[], T], limit_s: float) -> T:
    start = time.process_time()
    out = fn()
    spent = time.process_time() - start
    assert spent < limit_s, f"{spent:.2f}s of parent CPU (limit {limit_s}s)"
    return out


# ------------------------------------------------------------------ bounded parsing units


@pytest.mark.parametrize("name", sorted(DEEP))
def test_defines_survives_deep_expressions(name: str) -> None:
    code = DEEP[name] + "def f(x):\n    return x\n"
    assert at_depth(100, lambda: timed(lambda: defines(code, "f"), 2.0)) is True
    assert at_depth(100, lambda: defines(DEEP[name], "f")) is False
    with pytest.raises(UntrustedInputError):
        parse_python(DEEP[name])


def test_defines_fallback_is_linear() -> None:
    assert timed(lambda: defines(QUADRATIC, "f"), 0.5) is True
    assert timed(lambda: defines(QUADRATIC.replace("f(", "g("), "f"), 0.5) is False


def test_parse_python_bounds() -> None:
    with pytest.raises(UntrustedInputError, match="over"):
        parse_python("x = 1\n" * 10, max_bytes=20)
    with pytest.raises(UntrustedInputError, match="deeper"):
        parse_python("x = " + "(" * 50 + "1" + ")" * 50 + " + 1" * 60, max_depth=40)
    with pytest.raises(SyntaxError):
        parse_python("x = \0")
    assert parse_python("def f():\n    return [1, (2, {3: 4})]\n")


@pytest.mark.parametrize(
    ("text", "depth"),
    [(b"1", 0), (b"[]", 1), (b'[1, {"a": [2]}]', 3), (b'["[[[[", "\\"]]"]', 1), (b"]]][", 0)],
)
def test_json_depth(text: bytes, depth: int) -> None:
    assert json_depth(text) == depth


def test_loads_json_refuses_deep_and_large_before_parsing() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(UntrustedInputError, match="deep"):
        at_depth(200, lambda: loads_json(deep))
    with pytest.raises(UntrustedInputError, match="bytes"):
        loads_json(b"[1]" + b" " * 100, max_bytes=50)
    with pytest.raises(UntrustedInputError, match="unreadable"):
        loads_json("{")
    assert loads_json('{"a": [1, 2]}') == {"a": [1, 2]}
    for text in (b'["' + b"a" * (1 << 20) + b'"]', b'"' + b"a\\" * (1 << 19)):  # long, unclosed
        timed(lambda text=text: json_depth(text), 0.5)


@given(st.recursive(st.none() | st.integers() | st.text(), lambda c: st.lists(c, max_size=3)))
def test_json_depth_is_exact_on_valid_json(value: object) -> None:
    import json

    def depth(v: object) -> int:
        return 1 + max((depth(x) for x in v), default=0) if isinstance(v, list) else 0

    assert json_depth(json.dumps(value).encode()) == depth(value)


def test_records_ignore_deep_lines_at_any_caller_depth() -> None:
    deep = b'{"i": 0, "status": "value", "value": ' + b"[" * 990 + b"]" * 990 + b"}\n"
    good = b'{"i": 1, "status": "value", "value": 3}\n'
    records = at_depth(100, lambda: _records(deep + good, 2))
    assert records == {1: {"i": 1, "status": "value", "value": 3}}


# ------------------------------------------------------- linear scans, same answers as before

_OLD_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_PIECES = st.lists(st.sampled_from(["```", "`", "\n", "a", " ", "py", "python", "\t", "x\n"]))


@settings(max_examples=300)
@given(_PIECES)
def test_fenced_blocks_match_the_old_regex(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert fenced_blocks(text) == _OLD_FENCE.findall(text)


@settings(max_examples=300)
@given(st.lists(st.sampled_from(['<tool name="a">', "</tool>", "x", "<tool", "\n", '"'])))
def test_find_tool_call_matches_the_old_regex(pieces: list[str]) -> None:
    text = "".join(pieces)
    old = TOOL_CALL.search(text)
    expected = None if old is None else (old["name"], old["body"], old.start())
    assert find_tool_call(text) == expected


_OLD_NUMBER = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_OLD_CLAIM = re.compile(rf"^(?P<lhs>[^=<>!]+?)\s*(?:=|≈)\s*(?P<rhs>{_OLD_NUMBER})\s*\.?\s*$")


@settings(max_examples=300)
@given(st.lists(st.sampled_from(["3", " ", "*", "=", "≈", ".", "4", ",", "x", "5 "])))
def test_claims_read_as_before(pieces: list[str]) -> None:
    step = "".join(pieces)
    old = _OLD_CLAIM.match(step.strip())
    claim = parse_claim(step)
    if claim.kind == "expr":
        assert old is not None and claim.claimed == old["rhs"]
        assert claim.expr == to_python(old["lhs"])


@pytest.mark.parametrize(
    "text",
    [
        "``` " * 40_000,
        "1" + " " * 40_000 + "= x",
        "the answer is" + " " * 40_000 + "x",
        "the answer is 3" + " " * 40_000 + "x",
    ],
)
def test_candidate_text_scans_are_linear(text: str) -> None:
    # timed() fails the test past 0.5 s of parent CPU; none of these texts holds a claim or call
    _, claim = timed(lambda: (extract_code(text, "f"), parse_claim(text)), 0.5)
    assert claim.kind == "none"
    assert timed(lambda: find_tool_call('<tool name="a">' * 40_000), 0.5) is None


def test_tools_survive_deep_input() -> None:
    assert at_depth(100, lambda: _as_number("-" * 5_000 + "1")) is None
    assert at_depth(100, lambda: _as_number("[" * 150 + "]" * 150)) is None
    result = at_depth(100, lambda: Calculator()("1+" * 5_000 + "1"))
    assert not result.ok
    assert to_python("-" * 100_000 + "1") is None
    assert Calculator()("-(-(3)) + 2 * 4").output == "11"


# ------------------------------------------------------------------ a whole batch, end to end

PROBLEM = from_record(
    {
        "task_id": "twice",
        "prompt": "def twice(x):\n",
        "entry_point": "twice",
        "test_list": ["assert twice(2) == 4", "assert twice(-1) == -2"],
    },
    0,
)
DEEP_REPLY = (
    "import os\n"
    "def twice(x):\n"  # answer the judge with a reply nested 950 deep, straight on the rpc pipe
    "    os.write(4, b'{\"ok\": true, \"value\": ' + b'[' * 950 + b']' * 950 + b'}\\n')\n"
    "    os._exit(0)\n"
)


@pytest.mark.skipif(
    detect().unavailable("isolated") != "", reason="needs the isolated level for the judge"
)
def test_one_bad_candidate_never_takes_the_batch_down() -> None:
    good = "def twice(x):\n    return 2 * x\n"
    texts = [
        good,
        DEEP["plus_5000"] + good,
        DEEP["minus_100000"] + good,
        QUADRATIC + good,
        DEEP_REPLY,
        good,
    ]
    reward = CodeReward(
        config=SandboxConfig(limits=Limits(wall_s=10, memory_mb=256)), workers=1, mode="auto"
    )
    candidates = [Candidate(PROBLEM.id, t, (t,), None) for t in texts]
    scores = timed(  # parent CPU only: the runs themselves are the sandbox's
        lambda: at_depth(150, lambda: reward.score([PROBLEM] * len(texts), candidates)), 2.0
    )
    values = [s.value for s in scores]
    assert values[0] == values[-1] == 1.0
    # the deep ones run in the sandbox, where CPython itself refuses them; the quadratic one is
    # a syntax error; the deep reply is junk to the parent: a test without a record fails
    assert values[1:5] == [0.0, 0.0, 0.0, 0.0], [s.info.get("tests") for s in scores]
