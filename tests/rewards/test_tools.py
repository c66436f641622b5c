"""Tool-augmented verification: tools, the deterministic and the generative planner, traces."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from rewardlab.rewards.base import check_reward
from rewardlab.rewards.code_steps import CodeStepReward
from rewardlab.rewards.tools import (
    Calculator,
    ClaimPlanner,
    PolicyPlanner,
    PythonTool,
    Tool,
    ToolCall,
    ToolStep,
    ToolVerifier,
)
from rewardlab.sandbox import Limits, SandboxConfig
from rewardlab.steps import split_lines
from rewardlab.tasks import arith
from rewardlab.types import Candidate, Completion, Problem, Sampling


def cand(problem: Problem, text: str) -> Candidate:
    return Candidate(problem.id, text, split_lines(text), None)


@pytest.mark.parametrize(
    ("expr", "output", "ok"),
    [
        ("(12 + 3) * 4 / 6", "10", True),
        ("1 / 3", "1/3 (0.3333333333333333)", True),
        ("2 ** 100", str(2**100), True),
        ("7 // 2", "3", True),
        ("12 x 3", "36", True),
        ("comb(10, 3)", "120", True),
        ("1 / 0", None, False),
        ("factorial(10**6)", None, False),
        ("2 ** 100000", None, False),
        ("99999 ** 9999 * 99999 ** 9999 * 99999 ** 9999", None, False),
        ("__import__('os')", None, False),
    ],
)
def test_calculator(expr: str, output: str | None, ok: bool) -> None:
    result = Calculator()(expr)
    assert result.ok is ok, result
    if output is not None:
        assert result.output == output


def test_python_tool_runs_in_the_sandbox() -> None:
    tool = PythonTool(config=SandboxConfig(limits=Limits(wall_s=1.0)))
    assert tool("print(sum(range(10)))").output == "45\n"
    hung = tool("while True:\n    pass")
    assert not hung.ok and "[timeout" in hung.output
    leak = tool("import os\nprint(sorted(os.environ))\nprint(open('/etc/shadow').read())")
    assert (not leak.ok and "PermissionError" in leak.output) or "FileNotFoundError" in leak.output
    assert isinstance(tool, Tool) and isinstance(Calculator(), Tool)


def test_claim_planner_agrees_with_code_steps_and_keeps_the_trace() -> None:
    problems = arith.generate(6, seed=11, n_ops=(2, 4))
    texts = [arith.gold_solution(p) for p in problems]
    texts[1] = texts[1].replace("=", "= 1", 1)
    texts[2] = texts[2].splitlines()[0].rsplit("=", 1)[0] + "= 0\nThe answer is 0."
    candidates = [cand(p, t) for p, t in zip(problems, texts, strict=True)]
    verifier = ToolVerifier(ClaimPlanner())
    scores = verifier.score(problems, candidates)
    reference = CodeStepReward().score_steps(problems, candidates)
    assert [s.steps for s in scores] == [s.steps for s in reference]
    assert scores[0].value == 1.0 and scores[2].value == 0.0
    trace = scores[0].info["trace"]
    assert scores[0].info["calls"] == len(trace) == len(problems[0].meta["ops"])
    assert trace[0]["tool"] == "calculator" and trace[0]["ok"]


def test_claim_planner_with_the_python_tool() -> None:
    p = arith.generate(1, seed=2, n_ops=(2, 2))[0]
    verifier = ToolVerifier(ClaimPlanner(tool="python"))
    (good,) = verifier.score([p], [cand(p, arith.gold_solution(p))])
    assert good.value == 1.0 and good.info["trace"][0]["tool"] == "python"


class ScriptedPolicy:
    """A stand-in generative verifier: answer i is returned after i tool results."""

    name = "scripted"
    params = 0

    def __init__(self, outputs: Sequence[str]) -> None:
        self.outputs = list(outputs)
        self.prefixes: list[str] = []

    def extend(
        self, prefixes: Sequence[str], params: Sampling, stop: Sequence[str]
    ) -> list[Completion]:
        self.prefixes.append(prefixes[0])
        turn = prefixes[0].count("</result>")
        return [Completion(self.outputs[min(turn, len(self.outputs) - 1)], 10, 10)]


def test_policy_planner_calls_tools_then_decides() -> None:
    p = arith.generate(1, seed=0)[0]
    policy = ScriptedPolicy(
        [
            'Check the first step.\n<tool name="python">print(6 * 7)</tool>',
            'And with the calculator: <tool name="calculator">6 * 7</tool>',
            "Both give 42. Verdict: correct",
        ]
    )
    (s,) = ToolVerifier(PolicyPlanner(policy)).score([p], [cand(p, "6 * 7 = 42")])
    assert s.value == 1.0
    assert [t["tool"] for t in s.info["trace"]] == ["python", "calculator"]
    assert s.info["trace"][0]["output"] == "42\n" and s.info["trace"][1]["output"] == "42"
    assert s.info["trace"][0]["thought"] == "Check the first step.\n"
    assert "<result>\n42\n\n</result>" in policy.prefixes[-1]


def test_policy_planner_without_verdict_or_budget_is_ungraded() -> None:
    p = arith.generate(1, seed=0)[0]
    (s,) = ToolVerifier(PolicyPlanner(ScriptedPolicy(["I am not sure."]))).score(
        [p], [cand(p, "x")]
    )
    assert s.value is None and "no verdict" in s.info["reason"]
    loop = ScriptedPolicy(['<tool name="calculator">1 + 1</tool>'])
    (s,) = ToolVerifier(PolicyPlanner(loop), max_calls=3).score([p], [cand(p, "x")])
    assert s.value is None and "within 3 tool calls" in s.info["reason"]
    assert len(s.info["trace"]) == 3


def test_unknown_tool_is_reported_in_the_trace() -> None:
    p = arith.generate(1, seed=0)[0]
    policy = ScriptedPolicy(['<tool name="browser">x</tool>', "Verdict: incorrect"])
    (s,) = ToolVerifier(PolicyPlanner(policy)).score([p], [cand(p, "x")])
    assert s.value == 0.0 and not s.info["trace"][0]["ok"]
    assert "unknown tool" in s.info["trace"][0]["output"]


def test_custom_planner_protocol() -> None:
    class Once:
        def next_action(
            self, problem: Problem, candidate: Candidate, trace: Sequence[ToolStep]
        ) -> ToolCall | object:
            from rewardlab.rewards.tools import Decision

            if not trace:
                return ToolCall("calculator", candidate.text)
            return Decision(1.0 if trace[0].result.output == problem.answer else 0.0)

    p = Problem("p", "q", "4")
    scores = ToolVerifier(Once()).score([p, p], [cand(p, "2 + 2"), cand(p, "2 * 3")])  # type: ignore[arg-type]
    assert [s.value for s in scores] == [1.0, 0.0]


def test_conformance() -> None:
    problems = arith.generate(3, seed=4)
    candidates = [cand(p, arith.gold_solution(p)) for p in problems]
    check_reward(ToolVerifier(ClaimPlanner()), problems, candidates)
