"""Static-quality rewards for generated Python unit tests (RLSQM: Steenhoek et al. 2023,
"Reinforcement Learning from Automatic Feedback for High-Quality Unit Test Generation").

RLSQM trains on rewards computed from static analysis of the generated tests (syntax validity,
assertion presence, test smells such as duplicate and trivially-true assertions), one metric at
a time and then a weighted sum (weights unverified in papers.md). Here the metrics are computed
by **parsing only** (``ast.parse``): the code is never imported, compiled to bytecode or run, so
this reward is safe on untrusted model output outside the sandbox.

Tests are the functions named ``test*`` at module level and the ``test*`` methods of classes.
An *assertion* is an ``assert`` statement, a call whose name starts with ``assert`` (``self.
assertEqual``, ``np.testing.assert_allclose``, ``assert_that``), or ``pytest.raises`` /
``self.assertRaises`` / ``pytest.approx`` comparison inside an ``assert``.

Metrics of a parsable candidate with T ≥ 1 tests:

- ``parsable`` = 1;  ``has_tests`` = 1 (0 and every other metric 0 when T = 0);
- ``assertions`` = (tests with at least one assertion) / T;
- ``unique`` = (distinct test bodies) / T: two tests with the same body after ``ast.dump``
  (names and docstrings ignored) are duplicates, as are two tests with the same name (the second
  definition silently replaces the first);
- ``nontrivial`` = 1 − (trivially-true assertions) / (all assertions), 1 when there are none. An
  assertion is trivially true when it cannot fail: ``assert <constant truthy>``,
  ``assert x == x`` / ``x is x`` (same expression both sides), ``assert 1 < 2`` (constants on both
  sides), ``self.assertTrue(<constant truthy>)``, ``self.assertEqual(a, a)``, and
  ``self.assertIsNotNone(<constant not None>)``.

reward = Σ w_m · metric_m / Σ w_m over (parsable, has_tests, assertions, unique, nontrivial),
equal weights by default; an unparsable candidate scores 0 (it is a valid grade: the output is
broken). Markdown code fences around the code are removed first.

>>> quality_metrics("def test_a():\\n    assert f(1) == 2\\n")["assertions"]
1.0
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rewardlab.types import Candidate, Problem, Score

METRICS = ("parsable", "has_tests", "assertions", "unique", "nontrivial")


def strip_fences(text: str) -> str:
    """The code inside the first ```python fence, or the text as is when there is none."""
    m = re.search(r"```(?:python|py)?[ \t]*\n(.*?)```", text, flags=re.DOTALL)
    return m.group(1) if m else text


def _tests(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    funcs = (ast.FunctionDef, ast.AsyncFunctionDef)
    out = [n for n in tree.body if isinstance(n, funcs) and n.name.startswith("test")]
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        out += [n for n in cls.body if isinstance(n, funcs) and n.name.startswith("test")]
    return out


def _call_name(call: ast.Call) -> str:
    f = call.func
    if isinstance(f, ast.Attribute):
        return f.attr
    if isinstance(f, ast.Name):
        return f.id
    return ""


def _truthy_constant(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and bool(node.value)


def _same(a: ast.expr, b: ast.expr) -> bool:
    return ast.dump(a) == ast.dump(b)


def _constant(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant)
    )


_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def trivially_true(node: ast.AST) -> bool:
    """Whether an assertion (``assert`` statement or ``assert*`` call) cannot fail."""
    if isinstance(node, ast.Assert):
        t = node.test
        if _truthy_constant(t):
            return True
        if isinstance(t, ast.Compare) and len(t.ops) == 1:
            left, right = t.left, t.comparators[0]
            reflexive = (ast.Eq, ast.Is, ast.LtE, ast.GtE)
            if isinstance(t.ops[0], reflexive) and _same(left, right):
                return True
            op = _COMPARE.get(type(t.ops[0]))
            if op is not None and _constant(left) and _constant(right):
                try:  # literal_eval reads literals; nothing is executed
                    return bool(op(ast.literal_eval(left), ast.literal_eval(right)))
                except (TypeError, ValueError):
                    return False
        return False
    if isinstance(node, ast.Call):
        name, args = _call_name(node), node.args
        if name in ("assertTrue", "assert_") and args and _truthy_constant(args[0]):
            return True
        if name in ("assertEqual", "assertEquals", "assertIs") and len(args) >= 2:
            return _same(args[0], args[1])
        if name == "assertIsNotNone" and args:
            return isinstance(args[0], ast.Constant) and args[0].value is not None
    return False


def _assertions(fn: ast.AST) -> list[ast.AST]:
    out: list[ast.AST] = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Assert) or (
            isinstance(node, ast.Call)
            and (_call_name(node).startswith("assert") or _call_name(node) == "raises")
        ):
            out.append(node)
    return out


def _body_key(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # a docstring does not make two tests different
    return "\n".join(ast.dump(s) for s in body)


def quality_metrics(code: str) -> dict[str, Any]:
    """The metrics of the module docstring for one candidate, plus counts (``tests``,
    ``asserts``, ``trivial``, ``duplicates``) and, when unparsable, ``error``."""
    try:
        tree = ast.parse(strip_fences(code))
    except (SyntaxError, ValueError) as e:  # ValueError: null bytes in the source
        return {**dict.fromkeys(METRICS, 0.0), "error": f"{type(e).__name__}: {e}"}
    tests = _tests(tree)
    if not tests:
        return {**dict.fromkeys(METRICS, 0.0), "parsable": 1.0, "tests": 0}
    per_test = [_assertions(t) for t in tests]
    asserts = [a for found in per_test for a in found]
    trivial = sum(trivially_true(a) for a in asserts)
    names = [t.name for t in tests]
    bodies = [_body_key(t) for t in tests]
    duplicates = len(tests) - min(len(set(names)), len(set(bodies)))
    return {
        "parsable": 1.0,
        "has_tests": 1.0,
        "assertions": sum(1 for f in per_test if f) / len(tests),
        "unique": 1.0 - duplicates / len(tests),
        "nontrivial": 1.0 - trivial / len(asserts) if asserts else 1.0,
        "tests": len(tests),
        "asserts": len(asserts),
        "trivial": trivial,
        "duplicates": duplicates,
    }


class UnitTestQualityReward:
    """RLSQM-style static quality of generated unit tests (see the module docstring)."""

    def __init__(
        self, *, weights: Mapping[str, float] | None = None, name: str = "unit-test-quality"
    ) -> None:
        w = dict.fromkeys(METRICS, 1.0) if weights is None else dict(weights)
        unknown = set(w) - set(METRICS)
        if unknown:
            raise ValueError(f"unknown metric weights {sorted(unknown)}; metrics are {METRICS}")
        if any(v < 0 for v in w.values()) or sum(w.values()) <= 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        self.weights = w
        self.name = name

    def value(self, metrics: Mapping[str, Any]) -> float:
        """The weighted mean of the metrics (0 when the code does not parse)."""
        if not metrics["parsable"]:
            return 0.0
        total = sum(self.weights.values())
        return sum(w * float(metrics[m]) for m, w in self.weights.items()) / total

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        if len(problems) != len(candidates):
            raise ValueError(f"{len(problems)} problems for {len(candidates)} candidates")
        out = []
        for c in candidates:
            m = quality_metrics(c.text)
            out.append(Score(self.value(m), info=m))
        return out
