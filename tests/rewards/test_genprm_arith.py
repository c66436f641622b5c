"""The testbed's code-checked GenPRM: target lines -> sandbox -> judgments equal the exact
step truth; probes and the judging rules by hand; garbage never raises; the shipped weights
as a reward."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_genrm_arith import KINDS, cand, corrupt

from rewardlab.rewards.genprm_arith import (
    NO_NUMBER_BEFORE,
    NO_STEP_LEFT,
    ArithCodeFormat,
    code_for_steps,
    judge_values,
    probe_code,
    question_sentences,
    step_probes,
)
from rewardlab.rewards.genrm_arith import chain_truth
from rewardlab.steps import split_lines
from rewardlab.tasks import arith

FMT = ArithCodeFormat()


def test_exact_lines_executed_in_the_sandbox_give_back_the_truth() -> None:
    """For every kind of mistake the testbed knows (wrong value, operand, answer line, a step
    left out or added, prose, no answer, cut off), the lines written by rule and executed in
    the sandbox judge every step as :func:`arith.check_steps` does: the verifier's only job is
    the transcription. One sandbox run for the whole batch."""
    rng = random.Random(11)
    probs = arith.generate(40, seed=77, n_ops=(1, 8))
    ps, texts = [], []
    for i, p in enumerate(probs):
        for kind in (KINDS[i % len(KINDS)], KINDS[(i + 3) % len(KINDS)]):
            ps.append(p)
            texts.append(arith.gold_solution(p) if kind == "gold" else corrupt(rng, p, kind))
    outputs = [code_for_steps(p, split_lines(t)) for p, t in zip(ps, texts, strict=True)]
    got = FMT.parse_probes_batch(outputs, [cand(p, t) for p, t in zip(ps, texts, strict=True)])
    for p, t, j in zip(ps, texts, got, strict=True):
        truth = chain_truth(p, t)
        assert (j.verdict, j.steps) == (truth.verdict, truth.steps), (t, j)
    assert {j.verdict for j in got} == {0.0, 1.0}


def test_probes_and_lines_by_hand() -> None:
    p = arith.make_problem(random.Random(3), n_ops=2)
    (a, op1, b1, r1), (_, op2, b2, r2) = p.meta["ops"]
    start, first, second, ask = question_sentences(p.question)
    assert ask.endswith("?") and start.endswith(".")
    lines = [f"{a} {op1} {b1} = {r1}", "so we go on", f"{r2} + 1 = {r2 + 1}", "The answer is 9."]
    assert step_probes(p, lines) == [
        f"Before: {start}\nRule: {first}\nCode:\n",
        f"Before: {lines[0]}\nRule: {second}\nCode:\n",
        f"Before: so we go on\nRule: {ask}\nCode:\n",
        f"Before: {lines[2]}\nRule: none\nCode:\n",
    ]
    assert code_for_steps(p, lines) == [
        f"{a} {op1} {b1}",
        f"{r1} {op2} {b2}",
        NO_NUMBER_BEFORE,
        NO_STEP_LEFT,
    ]
    assert probe_code("12 * 3\nmore text") == "12 * 3"
    assert probe_code("twelve times three") is None and probe_code("") is None


def test_judgment_rules() -> None:
    lines = ["5 + 3 = 8", "8 * 2 = 16", "The answer is 16."]
    vals = {"5 + 3": 8, "8 * 2": 16, "16": 16, "8 * 3": 24, "bad": "ZeroDivisionError"}
    right = judge_values(lines, {0: "5 + 3", 1: "8 * 2", 2: "16"}, vals)
    assert (right.verdict, right.steps) == (1.0, (1.0, 1.0, 1.0))
    # a wrong operation: that step and every later one are wrong (ProcessBench prefix rule)
    wrong = judge_values(lines, {0: "5 + 3", 1: "8 * 3", 2: "16"}, vals)
    assert (wrong.verdict, wrong.steps) == (0.0, (1.0, 0.0, 0.0))
    # a line that raised is a wrong step
    assert judge_values(lines, {0: "bad"}, vals).steps == (0.0, 0.0, 0.0)
    # no line for a step before any error: unreadable, never a guess
    gap = judge_values(lines, {0: "5 + 3", 2: "16"}, vals)
    assert gap.verdict is None and gap.steps == (1.0, None, 1.0) and "2" in gap.reason
    # every step right but no answer line: the candidate is not finished
    assert judge_values(lines[:2], {0: "5 + 3", 1: "8 * 2"}, vals).verdict == 0.0
    # a step that states no number is wrong
    prose = judge_values(["we add", *lines[1:]], {0: "5 + 3", 1: "8 * 2", 2: "16"}, vals)
    assert prose.steps[0] == 0.0
    # the documented gap: a wrong equation that states the right value is judged right
    p = arith.make_problem(random.Random(5), n_ops=1)
    (a, op, b, r) = p.meta["ops"][0]
    text = f"{a} {op} {b + 100} = {r}\nThe answer is {r}."
    (j,) = FMT.parse_probes_batch([code_for_steps(p, split_lines(text))], [cand(p, text)])
    assert j.verdict == 1.0 and chain_truth(p, text).steps[0] == 0.0


@settings(max_examples=30, deadline=None)
@given(
    outputs=st.lists(
        st.one_of(st.text(max_size=40), st.sampled_from(["1 + 1", "2", "x", "1/0", "(", "3 * 9"])),
        max_size=7,
    ),
    n_lines=st.integers(0, 6),
)
def test_parse_never_raises_and_never_guesses(outputs: list[str], n_lines: int) -> None:
    text = "\n".join(["1 + 1 = 2"] * max(0, n_lines - 1) + ["The answer is 2."] * (n_lines > 0))
    c = cand(arith.make_problem(random.Random(0), 1), text)
    j = judge_values(split_lines(text), {}, {})
    assert j.verdict is None and j.reason
    got = FMT.parse_probes(outputs, c)
    assert got.verdict in (None, 0.0, 1.0)
    assert len(got.steps) == len(split_lines(text))
    if got.verdict is None:
        assert got.reason


@pytest.fixture(scope="module")
def genprm():  # type: ignore[no-untyped-def]
    from rewardlab.rewards.registry import load_reward

    return load_reward("genprm", device="cpu")


def test_shipped_verifier_is_a_conforming_reward_and_tells_gold_from_corrupted(genprm) -> None:  # type: ignore[no-untyped-def]
    """12 gold solutions and 12 with one mistake each (a wrong value, a wrong final answer
    line, a wrong operand). A constant verdict scores 12 of 24; requiring 21 lets a few
    transcription slips through but no chance-level verifier (P(>= 21 | p = 0.5) < 1e-4)."""
    from rewardlab.rewards.base import check_reward

    rng = random.Random(7)
    probs = arith.generate(12, seed=4242, n_ops=(1, 8))
    ps, cs, right = [], [], []
    for i, p in enumerate(probs):
        bad = corrupt(rng, p, ("value", "answer", "operand")[i % 3])
        for t in (arith.gold_solution(p), bad):
            ps.append(p)
            cs.append(cand(p, t))
            right.append(t == arith.gold_solution(p))
    check_reward(genprm, ps[:4], cs[:4])
    assert genprm.name == "genprm" and genprm.fingerprint
    scores = genprm.score(ps, cs)
    said_right = [s.value is not None and s.value >= 0.5 for s in scores]
    hits = sum(v == r for v, r in zip(said_right, right, strict=True))
    assert hits >= 21, [(c.text, s.value, s.info.get("reason")) for c, s in zip(cs, scores)]  # noqa: B905
    assert all(s.info["verify_generated_tokens"] > 0 for s in scores)
    steps = genprm.score_steps(ps[:4], cs[:4])
    assert all(len(s.steps) == len(c.steps) for s, c in zip(steps, cs[:4], strict=True))
