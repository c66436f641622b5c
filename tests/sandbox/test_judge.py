"""The judge: the verdict is the parent's, and the classic reward hacks score 0."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.sandbox import (
    CallTest,
    Limits,
    SandboxConfig,
    ScriptTest,
    judge,
    parse_asserts,
    parse_check,
)
from rewardlab.sandbox._codec import CodecError, decode, encode
from rewardlab.sandbox.judge import _records

ASSERTS = [
    "assert add(1, 2) == 3",
    "assert add(-1, 1) == 0",
    "assert add(2, 2) != 5 and add(0, 0) == 0",
    "assert abs(add(0.1, 0.2) - 0.3) < 1e-9",
]
CHECK = """
def check(candidate):
    for x in range(5):
        assert candidate(x, x) == 2 * x
    try:
        candidate('a', 1)
    except TypeError:
        pass
    else:
        raise AssertionError('no TypeError')
"""
GOOD = "def add(a, b):\n    return a + b\n"
CFG = SandboxConfig(limits=Limits(wall_s=15))

HACKS = {
    "exit_before_asserts": "import os\nos._exit(0)\n",
    "exit_inside_call": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "always_equal": (
        "class A:\n"
        "    def __eq__(self, o): return True\n"
        "    def __ne__(self, o): return False\n"
        "    def __bool__(self): return True\n"
        "    def __lt__(self, o): return True\n"
        "    def __sub__(self, o): return self\n"
        "    def __abs__(self): return self\n"
        "def add(a, b): return A()\n"
    ),
    "int_subclass": (
        "class I(int):\n"
        "    def __eq__(self, o): return True\n"
        "    __hash__ = int.__hash__\n"
        "def add(a, b): return I(0)\n"
    ),
    "patch_assert_and_helpers": (
        "import builtins, math\n"
        "builtins.AssertionError = type('Nope', (Exception,), {})\n"
        "math.isclose = lambda *a, **k: True\n"
        "builtins.abs = lambda x: 0\n"
        "def check(candidate): pass\n"
        "def add(a, b): return None\n"
    ),
    "print_fake_passed": (
        "import sys\n"
        'print(\'{"i": 0, "status": "value", "value": 3}\')\n'
        'print(\'{"i": 0, "status": "pass"}\')\n'
        "print('PASSED', file=sys.stderr)\n"
        "print('ALL TESTS PASSED')\n"
        "def add(a, b): return None\n"
    ),
    "edit_test_files": (
        "import glob, os\n"
        "for f in glob.glob('*.py'):\n"
        "    try:\n"
        "        open(f, 'w').write('print(\"PASSED\")\\n')\n"
        "    except OSError:\n"
        "        pass\n"
        "open('test_solution.py', 'w').write('assert True\\n')\n"
        "def add(a, b): return None\n"
    ),
    "atexit": (
        "import atexit, os\n"
        "atexit.register(lambda: os._exit(0))\n"
        "def add(a, b): raise ValueError('nope')\n"
    ),
    "exit_zero_everywhere": (
        "import sys, os\n"
        "sys.excepthook = lambda *a: os._exit(0)\n"
        "def add(a, b): raise SystemExit(0)\n"
    ),
    "stop_the_judge": (
        "import os, signal\n"
        "for sig in (signal.SIGSTOP, signal.SIGKILL):\n"
        "    try:\n"
        "        os.kill(os.getppid(), sig)\n"
        "    except OSError:\n"
        "        pass\n"
        "def add(a, b): return None\n"
    ),
    "read_judge_memory": (
        "import os\n"
        "ppid = os.getppid()\n"
        "for p in (f'/proc/{ppid}/mem', f'/proc/{ppid}/fd/1', f'/proc/{ppid}/environ'):\n"
        "    try:\n"
        "        open(p, 'rb').read(10)\n"
        "    except OSError:\n"
        "        pass\n"
        "def add(a, b): return None\n"
    ),
    "write_result_stream": (
        "import os, json\n"
        "for fd in range(3, 20):\n"
        "    try:\n"
        '        os.write(fd, b\'{"i": 0, "status": "value", "value": 3}\\n\')\n'
        "    except OSError:\n"
        "        pass\n"
        "def add(a, b): return None\n"
    ),
    "hang": "def add(a, b):\n    while True:\n        pass\n",
    "syntax_error": "def add(a, b)\n    return a + b\n",
}


def test_good_solution_passes_call_and_script_tests() -> None:
    tests = parse_asserts(ASSERTS, "add")
    assert all(isinstance(t, CallTest) for t in tests)
    r = judge(GOOD, tests, entry_point="add", config=CFG)
    assert r.all_passed and r.fraction == 1.0 and r.graded
    script, setup = parse_check(CHECK, "add")
    assert script == [ScriptTest("check(candidate)")]
    r = judge(GOOD, script, entry_point="add", setup=setup, config=CFG)
    assert r.all_passed, r.outcomes


def test_partial_credit_and_details() -> None:
    r = judge(
        "def add(a, b):\n    return a - b\n",
        parse_asserts(ASSERTS, "add"),
        entry_point="add",
        config=CFG,
    )
    assert [o.status for o in r.outcomes] == ["fail", "fail", "pass", "fail"]
    assert "got -1, expected 3" in r.outcomes[0].detail
    assert r.fraction == 0.25 and not r.all_passed


@pytest.mark.parametrize("hack", sorted(HACKS))
def test_reward_hacks_score_zero(hack: str) -> None:
    tests = [*parse_asserts(ASSERTS, "add"), *parse_check(CHECK, "add")[0]]
    _, setup = parse_check(CHECK, "add")
    r = judge(HACKS[hack], tests, entry_point="add", setup=setup, config=CFG, test_timeout_s=1.0)
    passed = [o for o in r.outcomes if o.passed]
    # the third assert is satisfiable by a solution returning 0 for (0, 0) and != 5 for (2, 2)
    assert not r.all_passed, [(o.status, o.detail) for o in r.outcomes]
    assert all(o.index == 2 for o in passed), [(o.status, o.detail) for o in r.outcomes]
    assert r.graded


def test_expected_values_never_enter_the_sandbox() -> None:
    spy = (
        "import glob, sys\n"
        "seen = sys.stdin.read() if not sys.stdin.closed else ''\n"
        "blob = ''.join(open(f, errors='replace').read() for f in glob.glob('*'))\n"
        "def add(a, b):\n"
        "    return 'SECRET' + '-EXPECTED' in blob\n"
    )
    tests = [CallTest("add(1, 2)", "SECRET-EXPECTED-VALUE")]
    r = judge(spy, tests, entry_point="add", config=CFG)
    assert r.outcomes[0].status == "fail" and "got False" in r.outcomes[0].detail


def test_per_test_timeout_keeps_later_tests() -> None:
    sol = "def add(a, b):\n    while a == 1:\n        pass\n    return a + b\n"
    r = judge(sol, parse_asserts(ASSERTS, "add"), entry_point="add", config=CFG, test_timeout_s=0.5)
    assert [o.status for o in r.outcomes] == ["timeout", "pass", "pass", "pass"]


def test_missing_records_fail() -> None:
    sol = "import time\ndef add(a, b):\n    time.sleep(0.02)\n    return a + b\n"
    cfg = SandboxConfig(limits=Limits(wall_s=1.0))
    many = [CallTest(f"add({i}, 0)", i) for i in range(200)]
    r = judge(sol, many, entry_point="add", config=cfg)
    assert r.run.verdict == "timeout"
    assert r.outcomes[0].passed and r.outcomes[-1].status == "missing"
    assert not r.all_passed and r.graded


def test_unsupported_argument_is_ungraded() -> None:
    r = judge(GOOD, [ScriptTest("assert add(lambda: 1, 2) == 3")], entry_point="add", config=CFG)
    assert r.outcomes[0].status == "unsupported" and not r.graded
    assert "cannot cross" in r.ungraded_reason()


def test_exceptions_cross_as_builtin_types() -> None:
    sol = "def add(a, b):\n    raise KeyError('k')\n"
    test = ScriptTest(
        "try:\n    add(1, 2)\nexcept KeyError:\n    pass\nelse:\n    raise AssertionError\n"
    )
    assert judge(sol, [test], entry_point="add", config=CFG).all_passed


def test_records_parser_ignores_junk_and_duplicates() -> None:
    out = b'junk\n{"i": 0, "status": "pass"}\n{"i": 0, "status": "fail"}\n[1]\n{"i": 9}\n'
    assert _records(out, 2) == {0: {"i": 0, "status": "pass"}}


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("assert f(1) == 2", "eq"),
        ("assert 2 == f(1)", "eq"),
        ("assert f(1) is None", "is"),
        ("assert f([1, 2]) == (1, {'a': 2})", "eq"),
        ("assert not f(3)", "falsy"),
        ("assert f(3)", "truthy"),
        ("assert abs(f(1) - 0.5) < 1e-6", "close"),
        ("assert f(x) == 1", None),  # free name: a script test
        ("assert f(1).real == 1", None),  # attribute access
        ("assert f(1) == g(2)", None),  # non-literal expectation
        ("x = f(1)", None),
    ],
)
def test_split_asserts(line: str, kind: str | None) -> None:
    (test,) = parse_asserts([line], "f")
    if kind is None:
        assert isinstance(test, ScriptTest)
    else:
        assert isinstance(test, CallTest) and test.compare == kind


def test_check_with_only_asserts_becomes_call_tests() -> None:
    tests, setup = parse_check(
        "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(2) == 3\n", "inc"
    )
    assert [t.expr for t in tests if isinstance(t, CallTest)] == ["candidate(1)", "candidate(2)"]
    assert setup == ""


def test_close_compare_rejects_non_numbers() -> None:
    t = CallTest("f()", 0.5, "close", 1e-6)
    assert t.check(0.5000001) and not t.check("0.5") and not t.check(math.nan)


# ------------------------------------------------------------------------------ codec

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.complex_numbers(allow_nan=False),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.integers() | st.text(max_size=3), inner, max_size=3)
        | st.frozensets(st.integers(), max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(values)
def test_codec_roundtrip(value: object) -> None:
    back = decode(encode(value))
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize("value", [object(), type("I", (int,), {})(3), [lambda: 1], {1: range(3)}])
def test_codec_rejects_non_builtin(value: object) -> None:
    with pytest.raises(CodecError):
        encode(value)


@pytest.mark.parametrize(
    "data",
    [
        {"$": "tuple"},
        {"$": "evil", "v": []},
        {"a": 1},
        {"$": "set", "v": [[1]]},
        {"$": "float", "v": 1},
        {"$": "int", "v": "xyz"},
        {"$": "int", "v": "f" * 20_000},
        {"$": "int", "v": 12},
    ],
)
def test_codec_rejects_malformed(data: object) -> None:
    with pytest.raises(CodecError):
        decode(data)


def test_codec_special_floats() -> None:
    assert math.isnan(decode(encode(math.nan)))
    assert decode(encode([math.inf, -math.inf])) == [math.inf, -math.inf]


def test_big_integers_cross_the_boundary() -> None:
    """Beyond CPython's 4,300-digit decimal limit (json could neither print nor read them)."""
    big = math.factorial(2000)  # 5,736 digits
    assert decode(json.loads(json.dumps(encode(-big)))) == -big
    sol = "import math\ndef f(n):\n    return math.factorial(n)\n"
    r = judge(sol, [CallTest("f(2000)", big), CallTest("f(2001)", big)], entry_point="f")
    assert [o.status for o in r.outcomes] == ["pass", "fail"], r.outcomes
    assert "too large to print" in r.outcomes[1].detail
