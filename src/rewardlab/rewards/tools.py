"""Tool-augmented verification: a verifier that may call tools before it scores.

A :class:`ToolVerifier` asks a :class:`Planner` what to do next, given the problem, the
candidate and the tool trace so far: call a tool (a :class:`Calculator`, a :class:`PythonTool`
that runs code in the sandbox, or any object with the :class:`Tool` shape) or decide. The whole
trace (each call, its input, output and status) is kept in ``Score.info["trace"]``, so a score
can always be audited. Two planners ship:

* :class:`ClaimPlanner`: deterministic; sends every arithmetic claim of the candidate's steps
  to a tool and accepts the candidate only if every claim is reproduced (the step check of
  code-augmented CoT, rStar-Math; cf. tool-integrated verification, T1/ToolRM-style);
* :class:`PolicyPlanner`: a generative verifier (any policy with ``extend``) that writes
  ``<tool name="python">...</tool>`` calls, reads ``<result>`` blocks and ends with
  ``Verdict: correct`` / ``Verdict: incorrect``.

A verifier that never decides within ``max_calls`` returns an ungraded score, not a 0.0.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol, runtime_checkable

from rewardlab.rewards.code_steps import parse_claim, reproduces, to_python
from rewardlab.sandbox import Limits, Program, SandboxConfig, run
from rewardlab.sandbox.untrusted import parse_python
from rewardlab.types import Candidate, Completion, Problem, Sampling, Score

# ------------------------------------------------------------------------------- tools


@dataclass(frozen=True)
class ToolResult:
    output: str
    ok: bool = True


@runtime_checkable
class Tool(Protocol):
    """A named callable from a request string to a :class:`ToolResult`."""

    @property
    def name(self) -> str: ...

    def __call__(self, request: str) -> ToolResult: ...


class CalculatorError(ValueError):
    pass


@dataclass(frozen=True)
class Calculator:
    """Exact arithmetic in-process: integers and fractions, ``+ - * / // % **``, parentheses
    and a few math functions; bounded (exponent, operand size) so it can never hang.

    >>> Calculator()("(12 + 3) * 4 / 6").output
    '10'
    >>> Calculator()("1 / 3").output
    '1/3 (0.3333333333333333)'
    """

    name: str = "calculator"
    max_exponent: int = 10_000
    max_bits: int = 100_000

    def __call__(self, request: str) -> ToolResult:
        expr = to_python(request)
        if expr is None:
            return ToolResult(f"not an arithmetic expression: {request!r}", ok=False)
        try:
            value = self._eval(ast.parse(expr, mode="eval").body)
        except (CalculatorError, ZeroDivisionError, ValueError, OverflowError) as exc:
            return ToolResult(f"{type(exc).__name__}: {exc}", ok=False)
        if isinstance(value, Fraction):
            if value.denominator == 1:
                return ToolResult(str(value.numerator))
            return ToolResult(f"{value} ({float(value)!r})")
        return ToolResult(repr(value))

    def _check(self, v: Fraction | float) -> Fraction | float:
        if (
            isinstance(v, Fraction)
            and max(abs(v.numerator).bit_length(), v.denominator.bit_length()) > self.max_bits
        ):
            raise CalculatorError("number too large")
        return v

    def _eval(self, node: ast.expr) -> Fraction | float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return Fraction(node.value) if type(node.value) is int else float(node.value)
        if isinstance(node, ast.Name):
            return {"pi": math.pi, "e": math.e}[node.id]
        if isinstance(node, ast.UnaryOp):
            v = self._eval(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            a, b = self._eval(node.left), self._eval(node.right)
            return self._check(self._binop(node.op, a, b))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            args = [self._eval(a) for a in node.args]
            return self._check(self._call(node.func.id, args))
        raise CalculatorError("unsupported expression")

    def _binop(
        self, op: ast.operator, a: Fraction | float, b: Fraction | float
    ) -> Fraction | float:
        if isinstance(op, ast.Add):
            return a + b
        if isinstance(op, ast.Sub):
            return a - b
        if isinstance(op, ast.Mult):
            return a * b
        if isinstance(op, ast.Div):
            return a / b
        if isinstance(op, ast.FloorDiv):
            return Fraction(a // b)
        if isinstance(op, ast.Mod):
            return a % b
        if isinstance(op, ast.Pow):
            if abs(float(b)) > self.max_exponent:
                raise CalculatorError("exponent too large")
            if isinstance(b, Fraction) and b.denominator == 1:
                if (
                    isinstance(a, Fraction)
                    and abs(a.numerator).bit_length() * abs(b) > self.max_bits
                ):
                    raise CalculatorError("number too large")
                power: Fraction | float = a ** int(b)
                return power
            value = float(a) ** float(b)
            if not isinstance(value, float):
                raise CalculatorError("complex result")
            return value
        raise CalculatorError("unsupported operator")

    def _call(self, name: str, args: list[Fraction | float]) -> Fraction | float:
        if name == "abs":
            return -args[0] if args[0] < 0 else args[0]
        if name in ("min", "max"):
            pick: Fraction | float = (min if name == "min" else max)(args)
            return pick
        if name == "round":
            digits = int(args[1]) if len(args) > 1 else 0
            return Fraction(round(Fraction(args[0]), digits))
        ints = [int(a) for a in args if float(a).is_integer()]
        if name in ("factorial", "comb", "perm") and (
            len(ints) != len(args) or any(abs(i) > self.max_exponent for i in ints)
        ):
            raise CalculatorError(f"{name} needs small integer arguments")
        if name in ("factorial", "comb", "perm", "gcd", "lcm"):
            return Fraction(getattr(math, name)(*ints))
        if name == "pow":
            return self._binop(ast.Pow(), args[0], args[1])
        return float(getattr(math, name)(*(float(a) for a in args)))


def _tool_config() -> SandboxConfig:
    return SandboxConfig(limits=Limits(wall_s=10.0, cpu_s=5, memory_mb=256, output_kb=64))


@dataclass(frozen=True)
class PythonTool:
    """Run a Python snippet in the sandbox; its output is stdout (and the verdict and stderr
    tail when it did not exit cleanly), cut to ``max_chars``."""

    name: str = "python"
    config: SandboxConfig = field(default_factory=_tool_config)
    max_chars: int = 2000

    def __call__(self, request: str) -> ToolResult:
        result = run(Program(request), self.config)
        out = result.stdout.decode("utf-8", "replace")
        if result.verdict != "ok":
            tail = result.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            out += f"\n[{result.verdict}: {result.detail}]\n" + "\n".join(tail)
        return ToolResult(out[: self.max_chars], ok=result.verdict == "ok")


# ------------------------------------------------------------------------ the verifier


def _default_tools() -> tuple[Tool, ...]:
    return (Calculator(), PythonTool())


@dataclass(frozen=True)
class ToolCall:
    tool: str
    input: str
    thought: str = ""


@dataclass(frozen=True)
class Decision:
    value: float | None
    steps: tuple[float, ...] = ()
    reason: str = ""
    thought: str = ""


@dataclass(frozen=True)
class ToolStep:
    call: ToolCall
    result: ToolResult


class Planner(Protocol):
    def next_action(
        self, problem: Problem, candidate: Candidate, trace: Sequence[ToolStep]
    ) -> ToolCall | Decision: ...


@dataclass(frozen=True)
class ToolVerifier:
    """Score each candidate after up to ``max_calls`` tool calls chosen by ``planner``."""

    planner: Planner
    tools: tuple[Tool, ...] = field(default_factory=lambda: _default_tools())
    max_calls: int = 32
    name: str = "tool-verifier"

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        if len(problems) != len(candidates):
            raise ValueError("problems and candidates must have the same length")
        return [self._verify(p, c) for p, c in zip(problems, candidates, strict=True)]

    def score_steps(
        self, problems: Sequence[Problem], candidates: Sequence[Candidate]
    ) -> list[Score]:
        return self.score(problems, candidates)

    def _verify(self, problem: Problem, candidate: Candidate) -> Score:
        tools: Mapping[str, Tool] = {t.name: t for t in self.tools}
        trace: list[ToolStep] = []
        while True:
            action = self.planner.next_action(problem, candidate, tuple(trace))
            if isinstance(action, Decision):
                info: dict[str, Any] = {"trace": _trace(trace), "calls": len(trace)}
                if action.thought:
                    info["final"] = action.thought[-1000:]
                if action.value is None:
                    return Score.ungraded(action.reason or "the verifier did not decide", **info)
                if action.reason:
                    info["reason"] = action.reason
                return Score(float(action.value), action.steps, info)
            if len(trace) >= self.max_calls:
                return Score.ungraded(
                    f"no decision within {self.max_calls} tool calls", trace=_trace(trace)
                )
            tool = tools.get(action.tool)
            result = (
                tool(action.input)
                if tool is not None
                else ToolResult(f"unknown tool {action.tool!r}; have {sorted(tools)}", ok=False)
            )
            trace.append(ToolStep(action, result))


def _trace(trace: Sequence[ToolStep]) -> list[dict[str, Any]]:
    return [
        {
            "tool": s.call.tool,
            "input": s.call.input,
            "output": s.result.output,
            "ok": s.result.ok,
            **({"thought": s.call.thought} if s.call.thought else {}),
        }
        for s in trace
    ]


def _as_number(text: str) -> int | float | None:
    first = text.strip().split(" ", 1)[0] if text.strip() else ""
    try:  # tool output (sandboxed code printed it): bounded parse before literal_eval
        value = ast.literal_eval(parse_python(first, mode="eval", max_bytes=4096, max_depth=20))
    except (ValueError, SyntaxError):  # UntrustedInputError is a ValueError
        try:
            return float(Fraction(first))
        except (ValueError, ZeroDivisionError):
            return None
    return value if type(value) in (int, float) else None


@dataclass(frozen=True)
class ClaimPlanner:
    """Check every ``expr = value`` claim of the candidate with ``tool``; accept the candidate
    when all are reproduced (``The answer is n`` lines must repeat the previous result)."""

    tool: str = "calculator"
    no_claim: float = 0.0

    def _request(self, expr: str) -> str:
        return expr if self.tool == "calculator" else f"print(repr({expr}))"

    def next_action(
        self, problem: Problem, candidate: Candidate, trace: Sequence[ToolStep]
    ) -> ToolCall | Decision:
        claims = [parse_claim(s) for s in candidate.steps]
        pending = [(i, c) for i, c in enumerate(claims) if c.kind == "expr"]
        if len(trace) < len(pending):
            i, claim = pending[len(trace)]
            return ToolCall(self.tool, self._request(claim.expr), thought=f"check step {i}")
        outputs = iter(trace)
        steps: list[float] = []
        prev: str | None = None
        for claim in claims:
            if claim.kind == "expr":
                result = next(outputs).result
                got = _as_number(result.output) if result.ok else None
                ok = got is not None and reproduces(got, claim.claimed)
            elif claim.kind == "answer":
                ok = prev is None or float(claim.claimed.replace(",", "")) == float(
                    prev.replace(",", "")
                )
            else:
                steps.append(self.no_claim)
                continue
            steps.append(1.0 if ok else 0.0)
            prev = claim.claimed
        value = min(steps) if steps else 0.0
        return Decision(value, tuple(steps), reason="" if steps else "no steps")


# ------------------------------------------------------------- a generative tool verifier


class TextGenerator(Protocol):
    """Anything with ``Policy.extend``'s shape."""

    def extend(
        self, prefixes: Sequence[str], params: Sampling, stop: Sequence[str]
    ) -> list[Completion]: ...


TOOL_CALL = re.compile(r'<tool name="(?P<name>[\w-]+)">(?P<body>.*?)</tool>', re.DOTALL)
_TOOL_OPEN = re.compile(r'<tool name="(?P<name>[\w-]+)">')


def find_tool_call(text: str) -> tuple[str, str, int] | None:
    """``(name, body, start)`` of the first complete ``<tool name="...">...</tool>`` in the
    verifier's text, as ``TOOL_CALL.search`` finds it, in linear time (the lazy regex rescans
    to the end for every unclosed opener: quadratic on model-written text)."""
    opener = _TOOL_OPEN.search(text)
    if opener is None:
        return None
    end = text.find("</tool>", opener.end())
    if end < 0:
        return None  # no later opener can be closed either
    return opener["name"], text[opener.end() : end], opener.start()


VERDICT = re.compile(r"verdict\s*:\s*(?P<v>correct|incorrect|yes|no)\b", re.IGNORECASE)

DEFAULT_TEMPLATE = (
    "You verify solutions. You may call tools: {tools}. To call one, write\n"
    '<tool name="NAME">INPUT</tool> and wait for the <result>. End with\n'
    "'Verdict: correct' or 'Verdict: incorrect'.\n\n"
    "Problem:\n{question}\n\nSolution:\n{solution}\n\nVerification:\n"
)


@dataclass(frozen=True)
class PolicyPlanner:
    """A generative verifier that interleaves its text with tool calls (stops at ``</tool>``)."""

    policy: TextGenerator
    tools: tuple[str, ...] = ("python", "calculator")
    template: str = DEFAULT_TEMPLATE
    sampling: Sampling = field(
        default_factory=lambda: Sampling(temperature=0.0, max_new_tokens=512)
    )

    def prefix(self, problem: Problem, candidate: Candidate, trace: Sequence[ToolStep]) -> str:
        head = self.template.format(
            tools=", ".join(self.tools), question=problem.question, solution=candidate.text
        )
        turns = [
            f'{s.call.thought}<tool name="{s.call.tool}">{s.call.input}</tool>\n'
            f"<result>\n{s.result.output}\n</result>\n"
            for s in trace
        ]
        return head + "".join(turns)

    def next_action(
        self, problem: Problem, candidate: Candidate, trace: Sequence[ToolStep]
    ) -> ToolCall | Decision:
        text = self.policy.extend(
            [self.prefix(problem, candidate, trace)], self.sampling, ["</tool>"]
        )[0].text
        call = find_tool_call(text)
        if call is not None:
            name, body, start = call
            return ToolCall(name, body.strip("\n"), thought=text[:start])
        verdict = VERDICT.search(text)
        if verdict is None:
            return Decision(None, reason="no verdict in the verifier's output", thought=text)
        good = verdict["v"].lower() in ("correct", "yes")
        return Decision(1.0 if good else 0.0, thought=text)
