"""Code-checked steps: claims are executed in the sandbox, and on the arith testbed the verdict
agrees with the exact step checker, including on corrupted candidates."""

from __future__ import annotations

import random

import pytest

from rewardlab.rewards.base import check_reward
from rewardlab.rewards.code_steps import CodeStepReward, parse_claim, reproduces, to_python
from rewardlab.sandbox import Limits, SandboxConfig
from rewardlab.steps import split_lines
from rewardlab.tasks import arith
from rewardlab.types import Candidate, Problem

REWARD = CodeStepReward()


def cand(problem: Problem, text: str) -> Candidate:
    return Candidate(problem.id, text, split_lines(text), arith.extract_answer(text))


def corruptions(lines: list[str], rng: random.Random) -> list[list[str]]:
    """Gold solution variants with the mistakes a small policy makes, and format noise."""
    out = []
    for k, line in enumerate(lines):
        if "=" not in line:
            continue
        lhs, rhs = line.rsplit("=", 1)
        value = int(rhs.strip().rstrip("."))
        a, op, b = lhs.split()
        variants = [
            f"{lhs}= {value + rng.choice([-3, -1, 1, 10])}",  # wrong result
            f"{a} {'+' if op != '+' else '*'} {b} = {value}",  # wrong operator
            f"{a} {op} {int(b) + 1} = {value}",  # wrong operand
            f"{a}{op}{b}={value}.",  # no spaces, trailing dot
            f"{a} {op.replace('*', 'x')} {b} = {value}",  # x for times
            f"{a} {op.replace('*', '×').replace('/', '÷')} {b} = {value}",
            f"So {line}",  # prose around the claim
            f"{line} apples",
            f"0{a} {op} {b} = {value}",  # leading zero
            f"{a} / 7 = {int(a) // 7}",  # division with a remainder (usually)
            f"{a} / 0 = 0",
            f"{a} - {int(a) + 5} = -5",  # negative result
        ]
        for v in variants:
            out.append([*lines[:k], v, *lines[k + 1 :]])
    out.append([*lines[:-1], "The answer is 12345."])  # answer does not repeat the last result
    out.append(lines[:-2] + lines[-1:])  # a step dropped
    out.append(["Let me think.", *lines])
    return out


def test_agrees_with_exact_checker_on_arith_candidates() -> None:
    rng = random.Random(7)
    problems, candidates = [], []
    for p in arith.generate(16, seed=3, n_ops=(1, 6)):
        gold = arith.gold_steps(p)
        for variant in [gold, *corruptions(gold, rng)]:
            problems.append(p)
            candidates.append(cand(p, "\n".join(variant)))
    scores = REWARD.score_steps(problems, candidates)
    disagreements = []
    for p, c, s in zip(problems, candidates, scores, strict=True):
        truth = arith.check_steps(p, c.text)
        exact = tuple(1.0 if (t.parsed and t.valid) else 0.0 for t in truth.steps)
        if exact != s.steps:
            disagreements.append((c.steps, exact, s.steps))
    assert len(candidates) > 500
    assert not disagreements, disagreements[:3]
    assert any(min(s.steps) == 0.0 for s in scores) and any(min(s.steps) == 1.0 for s in scores)


@pytest.mark.parametrize(
    ("step", "kind", "expr", "claimed"),
    [
        ("12 * 3 = 36", "expr", "12 * 3", "36"),
        ("12 x 3 = 36.", "expr", "12 * 3", "36"),
        ("(2 + 3) ^ 2 = 25", "expr", "(2 + 3) ** 2", "25"),
        ("sqrt(2) * 3 ≈ 4.24", "expr", "sqrt(2) * 3", "4.24"),
        ("1,000 + 5 = 1,005", "expr", "1000 + 5", "1,005"),
        ("The answer is 42.", "answer", "", "42"),
        ("the answer is: -7", "answer", "", "-7"),
        ("x = 5", "none", "", ""),
        ("__import__('os').system('id') = 0", "none", "", ""),
        ("12 * 3 == 36", "none", "", ""),
        ("Let me think", "none", "", ""),
        ("2 ** 100000 = 1", "none", "", ""),
    ],
)
def test_parse_claim(step: str, kind: str, expr: str, claimed: str) -> None:
    c = parse_claim(step)
    assert (c.kind, c.expr, c.claimed) == (kind, expr, claimed)


@pytest.mark.parametrize(
    ("value", "claimed", "ok"),
    [
        (36, "36", True),
        (9.0, "9", True),
        (9.25, "9", False),
        (2 / 3, "0.67", True),
        (2 / 3, "0.66", False),
        (1 / 3, "0.333", True),
        (1e20, "100000000000000000000", True),
        (float("nan"), "1", False),
        (1005, "1,005", True),
    ],
)
def test_reproduces(value: float, claimed: str, ok: bool) -> None:
    assert reproduces(value, claimed) is ok


def test_to_python_whitelist() -> None:
    assert to_python("math.floor(7 / 2)") == "floor(7 / 2)"
    for bad in ("open('x')", "(1).__class__", "[x for x in ()]", "lambda: 1", "a + 1"):
        assert to_python(bad) is None


def test_expensive_claim_is_refuted_and_others_still_graded() -> None:
    reward = CodeStepReward(config=SandboxConfig(limits=Limits(wall_s=1.5, cpu_s=1)))
    p = arith.generate(1, seed=0)[0]
    bomb = cand(p, "factorial(10**7) = 1\n2 + 2 = 4\n3 * 3 = 10")
    (s,) = reward.score_steps([p], [bomb])
    assert s.steps == (0.0, 1.0, 0.0)
    assert "run ended" in str(s.info["claims"][0]["executed"])


def test_no_claim_value_and_aggregates() -> None:
    p = arith.generate(1, seed=0)[0]
    c = cand(p, "Let me think.\n2 + 2 = 4\n2 + 2 = 5")
    assert CodeStepReward(no_claim=1.0, aggregate="mean").score([p], [c])[0].value == pytest.approx(
        2 / 3
    )
    assert CodeStepReward(aggregate="last").score([p], [c])[0].steps == (0.0, 1.0, 0.0)


def test_conformance() -> None:
    problems = arith.generate(3, seed=5)
    candidates = [cand(p, arith.gold_solution(p)) for p in problems]
    candidates[1] = cand(problems[1], "1 + 1 = 3\nThe answer is 3.")
    check_reward(REWARD, problems, candidates)
