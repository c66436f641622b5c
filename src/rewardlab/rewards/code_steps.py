"""Code-checked steps: execute the computation each reasoning step claims, keep it only if the
execution reproduces the claim.

This is the step filter of code-augmented chain of thought (rStar-Math, Guan et al. 2025: a
step survives only if its Python executes and agrees), applied to the claims a step states in
text: ``12 * 3 = 36`` or ``sqrt(2) * 3 = 4.24``. The left side is translated to a Python
expression (``×``/``x`` -> ``*``, ``÷`` -> ``/``, leading zeros dropped), checked against an
arithmetic whitelist here, then *executed in the sandbox* (one run per batch); the parent
compares the value with the stated result:

* an integer claim must match exactly (``37 / 4 = 9`` is refuted: the remainder is lost);
* a decimal claim must match to its own precision (``2 / 3 = 0.67`` holds, ``= 0.66`` does not).

``The answer is n.`` lines are checked for consistency: ``n`` must repeat the previous stated
result (the arithmetic of that result was already checked on its own step). Steps with nothing
to execute get ``no_claim``. On the ``arith`` testbed this agrees with the exact checker's
``parsed and valid`` for every step (see ``tests/rewards/test_code_steps.py``).
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from rewardlab.sandbox import Limits, Program, SandboxConfig, run
from rewardlab.sandbox.untrusted import UntrustedInputError, loads_json, parse_python
from rewardlab.types import Candidate, Problem, Score

_NUMBER = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
# Linear-time patterns (the step text is the candidate's): no two adjacent parts may match the
# same run of characters (``\s*\.?\s*`` and ``[^=]+?\s*`` were quadratic on long blanks).
_ANSWER = re.compile(rf"^\s*the answer is\s*(?::\s*)?({_NUMBER})\s*(?:\.\s*)?$", re.IGNORECASE)
_CLAIM = re.compile(rf"^(?P<lhs>[^=<>!]*?[^=<>!\s])\s*(?:=|≈)\s*(?P<rhs>{_NUMBER})\s*(?:\.\s*)?$")
_MATH = frozenset(
    [
        "sqrt",
        "floor",
        "ceil",
        "factorial",
        "gcd",
        "lcm",
        "comb",
        "perm",
        "log",
        "log2",
        "log10",
        "exp",
        "sin",
        "cos",
        "tan",
        "pi",
        "e",
    ]
)
_FUNCS = frozenset({"abs", "round", "min", "max", "pow"}) | _MATH
_MAX_EXPONENT = 10_000
_MAX_CLAIM_BYTES = 10_000

_EVALUATOR = rf"""
import json, math, sys
names = {{k: getattr(math, k) for k in {sorted(_MATH)}}}
names.update(abs=abs, round=round, min=min, max=max, pow=pow)
for i, expr in enumerate(json.loads(sys.stdin.read())):
    try:
        value = eval(compile(expr, "<step>", "eval"), {{"__builtins__": {{}}}}, dict(names))
        if type(value) not in (int, float):
            raise TypeError(f"not a real number: {{type(value).__name__}}")
        rec = {{"i": i, "ok": True, "v": value if type(value) is int else repr(value)}}
    except Exception as exc:
        rec = {{"i": i, "ok": False, "error": type(exc).__name__}}
    print(json.dumps(rec), flush=True)
"""


def to_python(lhs: str) -> str | None:
    """The left side of a claim as a whitelisted Python expression, or None if it is not one.

    >>> to_python("12 × 03")
    '12 * 3'
    >>> to_python("__import__('os')") is None
    True
    """
    text = lhs.strip().replace("×", "*").replace("÷", "/").replace("−", "-").replace("^", "**")
    text = re.sub(r"(?<=[\d)])\s*[xX]\s*(?=[\d(-])", " * ", text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = re.sub(r"(?<![\w.])0+(?=\d)", "", text)
    text = text.replace("math.", "")
    try:  # the step is the candidate's: bounded size and depth
        tree = parse_python(text, mode="eval", max_bytes=_MAX_CLAIM_BYTES, max_depth=100)
    except (SyntaxError, UntrustedInputError):
        return None
    assert isinstance(tree, ast.Expression)
    return ast.unparse(tree) if _allowed(tree.body) else None


def _allowed(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return type(node.value) in (int, float)
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, ast.UAdd | ast.USub) and _allowed(node.operand)
    if isinstance(node, ast.BinOp):
        ops = ast.Add | ast.Sub | ast.Mult | ast.Div | ast.FloorDiv | ast.Mod | ast.Pow
        if isinstance(node.op, ast.Pow):
            exp = node.right.value if isinstance(node.right, ast.Constant) else None
            if not isinstance(exp, int | float) or abs(exp) > _MAX_EXPONENT:
                return False
        return isinstance(node.op, ops) and _allowed(node.left) and _allowed(node.right)
    if isinstance(node, ast.Call):
        return (
            isinstance(node.func, ast.Name)
            and node.func.id in _FUNCS
            and not node.keywords
            and all(_allowed(a) for a in node.args)
        )
    if isinstance(node, ast.Name):
        return node.id in ("pi", "e")
    return False


def _number(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def reproduces(value: int | float, claimed: str) -> bool:
    """Whether an executed value reproduces a stated number, to the claim's own precision."""
    target = _number(claimed)
    if isinstance(value, float) and not math.isfinite(value):
        return False
    exponent = target.as_tuple().exponent
    places = -exponent if "." in claimed and isinstance(exponent, int) else 0
    got = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    if places == 0:
        return got == target
    return abs(got - target) <= Decimal(5) * Decimal(10) ** (-(int(places) + 1)) * (
        1 + Decimal("1e-9")
    )


@dataclass(frozen=True)
class Claim:
    """What one step states: an executable expression and its result, or a final answer."""

    kind: Literal["expr", "answer", "none"]
    expr: str = ""
    claimed: str = ""


def parse_claim(step: str) -> Claim:
    """Read the claim of one step (see the module docstring for the forms understood)."""
    if (m := _ANSWER.match(step)) is not None:
        return Claim("answer", claimed=m.group(1))
    if "==" in step or (m := _CLAIM.match(step.strip())) is None:
        return Claim("none")
    expr = to_python(m.group("lhs"))
    return Claim("expr", expr, m.group("rhs")) if expr else Claim("none")


def _default_config() -> SandboxConfig:
    return SandboxConfig(limits=Limits(wall_s=10.0, cpu_s=5, memory_mb=256))


@dataclass(frozen=True)
class CodeStepReward:
    """Step scores 1.0 (execution reproduces the step's claim) / 0.0 (it does not).

    Attributes:
        no_claim: the score of a step with nothing to execute (0.0: unverified; use 1.0 to
            treat free text as neutral).
        aggregate: how step scores become ``Score.value``.
        config: sandbox configuration of the batch's run.
        max_runs: bound on re-runs when an expression exhausts the run's limits (each re-run
            skips the expression in flight, which is then refuted).
    """

    no_claim: float = 0.0
    aggregate: Literal["min", "mean", "prod", "last"] = "min"
    config: SandboxConfig = field(default_factory=_default_config)
    max_runs: int = 4
    name: str = "code-steps"

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        return self.score_steps(problems, candidates)

    def score_steps(
        self, problems: Sequence[Problem], candidates: Sequence[Candidate]
    ) -> list[Score]:
        """One Score per candidate: ``steps`` per step, ``value`` aggregated, ``info["claims"]``."""
        if len(problems) != len(candidates):
            raise ValueError("problems and candidates must have the same length")
        claims = [[parse_claim(s) for s in c.steps] for c in candidates]
        exprs = sorted({cl.expr for row in claims for cl in row if cl.kind == "expr"})
        values, failure = self._execute(exprs)
        if failure:
            return [Score.ungraded(failure) for _ in candidates]
        return [self._score_one(row, values) for row in claims]

    def _score_one(self, row: list[Claim], values: dict[str, int | float | str]) -> Score:
        steps: list[float] = []
        info: list[dict[str, object]] = []
        prev: str | None = None
        for cl in row:
            if cl.kind == "expr":
                got = values[cl.expr]
                ok = not isinstance(got, str) and reproduces(got, cl.claimed)
                info.append({"expr": cl.expr, "claimed": cl.claimed, "executed": got, "valid": ok})
            elif cl.kind == "answer":
                ok = prev is None or _number(cl.claimed) == _number(prev)
                info.append({"answer": cl.claimed, "previous": prev, "valid": ok})
            else:
                steps.append(self.no_claim)
                info.append({"claim": None})
                continue
            steps.append(1.0 if ok else 0.0)
            prev = cl.claimed
        return Score(_aggregate(steps, self.aggregate), tuple(steps), {"claims": info})

    def _execute(self, exprs: list[str]) -> tuple[dict[str, int | float | str], str]:
        """Values of ``exprs`` (a string = why it failed), and a sandbox failure if any."""
        return execute_lines(_EVALUATOR, exprs, self.config, self.max_runs)


def _aggregate(steps: list[float], how: str) -> float:
    if not steps:
        return 0.0
    if how == "min":
        return min(steps)
    if how == "mean":
        return sum(steps) / len(steps)
    if how == "prod":
        return math.prod(steps)
    return steps[-1]


def execute_lines(
    program: str, items: list[str], config: SandboxConfig, max_runs: int
) -> tuple[dict[str, int | float | str], str]:
    """Run ``program`` in the sandbox on the JSON list ``items`` (one JSON line back per item:
    ``{"i", "ok", "v" | "error"}``); returns each item's value (int, float, or a string saying
    why it failed) and a sandbox failure (or ``""``).

    Every line the sandbox printed is read with size and depth bounds (it is the candidate's
    output). A run that dies stops at its first missing item: that item is refuted and the
    rest run again, up to ``max_runs`` runs; items never reached say so.
    """
    values: dict[str, int | float | str] = {}
    todo = list(items)
    for _ in range(max_runs):
        if not todo:
            break
        result = run(Program(program, stdin=json.dumps(todo)), config)
        if result.verdict == "sandbox-failure":
            return {}, f"sandbox failure: {result.detail}"
        done: set[int] = set()
        for line in result.stdout.decode("utf-8", "replace").splitlines():
            try:  # printed inside the sandbox: read with bounds
                rec = loads_json(line, max_bytes=1 << 16, max_depth=4)
                i = int(rec["i"])
            except (ValueError, KeyError, TypeError):
                continue
            if 0 <= i < len(todo) and i not in done:
                done.add(i)
                v = rec.get("v")
                if rec.get("ok") and type(v) is int:
                    values[todo[i]] = v
                elif rec.get("ok") and type(v) is str:
                    values[todo[i]] = float(v)
                else:
                    values[todo[i]] = str(rec.get("error", "error"))
        missing = [i for i in range(len(todo)) if i not in done]
        if missing:  # the run died on the first missing one: refute it, run the rest
            values[todo[missing[0]]] = f"run ended: {result.verdict}"
        todo = [todo[i] for i in missing[1:]]
    for item in todo:
        values[item] = "not executed (run budget exhausted)"
    return values, ""
