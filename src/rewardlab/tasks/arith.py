"""The ``arith`` testbed: seeded multi-step arithmetic word problems with step-level truth.

A problem starts from a quantity and applies 1 to 8 operations (``+ - *`` and exact integer
division), each told in a natural-language sentence. The gold solution is one step per line,
``<state> <op> <operand> = <new state>``, ending with ``The answer is <n>.``. Because every
intermediate state is known, :func:`check_steps` grades every step of ANY text exactly.

>>> p = generate(n=1, seed=0, n_ops=(2, 2))[0]
>>> report = check_steps(p, gold_solution(p))
>>> report.first_error, report.correct
(-1, True)
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from rewardlab.steps import split_lines
from rewardlab.types import Problem

TASK = "arith"
MAX_STATE = 999  # intermediate values stay in [1, MAX_STATE]

NAMES = ("Ana", "Ben", "Cleo", "Dev", "Emma", "Finn", "Gus", "Hana", "Ivan", "Jade", "Kai", "Lena")
ITEMS = ("apples", "coins", "stamps", "marbles", "books", "shells", "cards", "pens", "stickers")
START = (
    "{name} has {a} {items}.",
    "{name} starts with {a} {items}.",
    "There are {a} {items} in {name}'s box.",
    "{name} collects {a} {items}.",
)
PHRASES: dict[str, tuple[str, ...]] = {
    "+": (
        "Then {name} gets {b} more.",
        "Then {name} buys {b} more {items}.",
        "Then {name} finds {b} more.",
        "Then a friend gives {name} {b} more {items}.",
    ),
    "-": (
        "Then {name} gives away {b}.",
        "Then {name} loses {b} {items}.",
        "Then {name} sells {b} of them.",
        "Then {b} {items} are taken away.",
    ),
    "*": (
        "Then the number of {items} becomes {b} times as large.",
        "Then {name} multiplies the {items} by {b}.",
        "Then {name} ends up with {b} times as many.",
    ),
    "/": (
        "Then {name} splits them into {b} equal groups and keeps one group.",
        "Then {name} shares them equally among {b} friends and keeps one share.",
        "Then {name} keeps only one of {b} equal parts.",
    ),
}
QUESTIONS = (
    "How many {items} does {name} have now?",
    "How many {items} are left in the end?",
    "What is the final number of {items}?",
)


def apply_op(a: int, op: str, b: int) -> int | None:
    """Exact result of ``a op b``, or None if undefined (division with a remainder or by 0)."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op in ("*", "x", "×"):
        return a * b
    if op in ("/", "÷"):
        if b == 0 or a % b:
            return None
        return a // b
    raise ValueError(f"unknown operator {op!r}")


def _choose_op(rng: random.Random, state: int, max_operand: int) -> tuple[str, int]:
    options: list[tuple[str, int]] = []
    if state + 1 <= MAX_STATE:
        options.append(("+", rng.randint(1, min(max_operand, MAX_STATE - state))))
    if state > 1:
        options.append(("-", rng.randint(1, min(max_operand, state - 1))))
    factors = [b for b in range(2, 10) if state * b <= MAX_STATE]
    if factors:
        options.append(("*", rng.choice(factors)))
    divisors = [b for b in range(2, 10) if state % b == 0 and state // b >= 1]
    if divisors:
        options.append(("/", rng.choice(divisors)))
    return rng.choice(options)


def make_problem(
    rng: random.Random, n_ops: int, operand_digits: int = 2, pid: str | None = None
) -> Problem:
    """Build one problem with ``n_ops`` operations and operands of up to ``operand_digits``."""
    if not 1 <= n_ops <= 16:
        raise ValueError(f"n_ops must be in 1..16, got {n_ops}")
    if not 1 <= operand_digits <= 3:
        raise ValueError(f"operand_digits must be in 1..3, got {operand_digits}")
    max_operand = 10**operand_digits - 1
    name, items = rng.choice(NAMES), rng.choice(ITEMS)
    state = rng.randint(2, max_operand)
    sentences = [rng.choice(START).format(name=name, a=state, items=items)]
    ops: list[tuple[int, str, int, int]] = []
    for _ in range(n_ops):
        op, b = _choose_op(rng, state, max_operand)
        result = apply_op(state, op, b)
        assert result is not None
        ops.append((state, op, b, result))
        sentences.append(rng.choice(PHRASES[op]).format(name=name, b=b, items=items))
        state = result
    sentences.append(rng.choice(QUESTIONS).format(name=name, items=items))
    question = " ".join(sentences)
    meta: dict[str, Any] = {
        "n_ops": n_ops,
        "operand_digits": operand_digits,
        "difficulty": n_ops,
        "ops": [list(o) for o in ops],
        "states": [ops[0][0]] + [o[3] for o in ops],
    }
    return Problem(
        id=pid or f"arith-{n_ops}-{rng.getrandbits(48):012x}",
        question=question,
        answer=str(state),
        task=TASK,
        meta=meta,
    )


def generate(
    n: int,
    seed: int = 0,
    n_ops: tuple[int, int] = (1, 8),
    operand_digits: int = 2,
) -> list[Problem]:
    """Generate ``n`` problems, deterministically from ``seed``.

    Difficulties cycle through ``n_ops[0]..n_ops[1]`` so every bin is equally filled. Problem
    ids are ``arith-s<seed>-<i>``: the same seed always gives the same problems.
    """
    lo, hi = n_ops
    if not 1 <= lo <= hi <= 16:
        raise ValueError(f"n_ops range must satisfy 1 <= lo <= hi <= 16, got {n_ops}")
    rng = random.Random(seed)
    span = hi - lo + 1
    return [
        make_problem(rng, lo + i % span, operand_digits, pid=f"arith-s{seed}-d{operand_digits}-{i}")
        for i in range(n)
    ]


def gold_steps(problem: Problem) -> list[str]:
    """The gold solution as a list of step lines."""
    lines = [f"{a} {op} {b} = {r}" for a, op, b, r in problem.meta["ops"]]
    return [*lines, f"The answer is {problem.answer}."]


def gold_solution(problem: Problem) -> str:
    """The gold solution text (one step per line)."""
    return "\n".join(gold_steps(problem))


# ---------------------------------------------------------------------------------- checking

_NUM = r"(-?\d{1,12})"
STEP_RE = re.compile(rf"^\s*{_NUM}\s*([+\-*/x×÷])\s*{_NUM}\s*=\s*{_NUM}\s*\.?\s*$")
ANSWER_RE = re.compile(rf"^\s*the answer is\s*:?\s*{_NUM}\s*\.?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class StepTruth:
    """The exact verdict on one step.

    ``parsed``: the step has the form ``a op b = c`` or ``The answer is n.``;
    ``valid``: its arithmetic is right (for the answer line: it repeats the previous result);
    ``on_track``: its value equals the gold state at that position;
    ``reason``: why it is an error ("" when correct).
    """

    text: str
    parsed: bool
    valid: bool
    on_track: bool
    value: int | None = None
    reason: str = ""

    @property
    def correct(self) -> bool:
        return self.parsed and self.valid and self.on_track

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "parsed": self.parsed,
            "valid": self.valid,
            "on_track": self.on_track,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class CheckReport:
    """Per-step truth for a candidate, its first error (-1 if none) and final answer."""

    steps: tuple[StepTruth, ...]
    first_error: int
    answer: str | None
    correct: bool


def extract_answer(text: str) -> str | None:
    """The number in the last ``The answer is n.`` line, or None."""
    for line in reversed(split_lines(text)):
        m = ANSWER_RE.match(line)
        if m:
            return str(int(m.group(1)))
    return None


def _check_equation(line: str, m: re.Match[str], gold_value: int | None) -> StepTruth:
    a, op, b, c = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
    result = apply_op(a, op, b)
    valid = result is not None and result == c
    on_track = gold_value is not None and c == gold_value
    reason = ""
    if not valid:
        reason = "division with remainder" if result is None else f"{a} {op} {b} is {result}"
    elif gold_value is None:
        reason = "extra step beyond the gold solution"
    elif not on_track:
        reason = f"value {c} differs from the gold state {gold_value}"
    return StepTruth(line, True, valid, on_track, c, reason)


def _check_answer(line: str, m: re.Match[str], prev: int | None, gold_answer: int) -> StepTruth:
    n = int(m.group(1))
    valid = prev is None or n == prev
    on_track = n == gold_answer
    reason = ""
    if not valid:
        reason = f"answer {n} does not repeat the last result {prev}"
    elif not on_track:
        reason = f"answer {n} differs from the gold answer {gold_answer}"
    return StepTruth(line, True, valid, on_track, n, reason)


def check_steps(problem: Problem, text: str) -> CheckReport:
    """Grade every line of ``text`` against ``problem``'s gold states. Never raises on text.

    Step ``i`` (0-based) of the form ``a op b = c`` is valid when the arithmetic is exact and on
    track when ``c`` equals the gold state after ``i + 1`` operations; a ``The answer is n.``
    line is valid when it repeats the previous result and on track when ``n`` is the gold
    answer. ``first_error`` is the index of the first step that is not parsed, valid and on
    track, or -1 (as ProcessBench). A text that stops early without an error has
    ``first_error == -1`` but ``correct == False``.
    """
    gold = [int(s) for s in problem.meta["states"][1:]]
    gold_answer = int(problem.answer)
    truths: list[StepTruth] = []
    prev: int | None = None
    for i, line in enumerate(split_lines(text)):
        if (m := STEP_RE.match(line)) is not None:
            truth = _check_equation(line, m, gold[i] if i < len(gold) else None)
        elif (m := ANSWER_RE.match(line)) is not None:
            truth = _check_answer(line, m, prev, gold_answer)
        else:
            truth = StepTruth(line, False, False, False, None, "unparseable step")
        truths.append(truth)
        if truth.value is not None:
            prev = truth.value
    first_error = next((i for i, t in enumerate(truths) if not t.correct), -1)
    answer = extract_answer(text)
    return CheckReport(tuple(truths), first_error, answer, answer == problem.answer)


class ArithTask:
    """The testbed as a :class:`~rewardlab.tasks.base.Task`: exact answers, exact step truth."""

    name = TASK
    segmentation = "lines"

    def extract_answer(self, text: str) -> str | None:
        return extract_answer(text)

    def same_answer(self, a: str, b: str) -> bool:
        return a == b

    def is_correct(self, problem: Problem, answer: str | None) -> bool:
        return answer is not None and answer == problem.answer

    def annotate(self, problem: Problem, text: str) -> dict[str, Any]:
        """Step truth: ``steps`` (``{text, parsed, valid, on_track, reason}``), ``first_error``."""
        report = check_steps(problem, text)
        return {
            "steps": [t.as_dict() for t in report.steps],
            "first_error": report.first_error,
        }
