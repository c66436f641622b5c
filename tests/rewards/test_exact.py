"""ArithExactReward: the testbed's exact checker behind the Reward contract.

Run: .venv/bin/pytest tests/rewards/test_exact.py
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.rewards.base import Reward, check_reward
from rewardlab.rewards.exact import ArithExactReward
from rewardlab.tasks.arith import check_steps, generate, gold_solution, gold_steps
from rewardlab.types import Candidate, Problem, Score

PROBLEMS = generate(n=16, seed=3, n_ops=(1, 6))


def cand(problem: Problem, text: str) -> Candidate:
    return Candidate(problem.id, text, tuple(text.splitlines()), None)


def score(problem: Problem, text: str) -> Score:
    return ArithExactReward().score([problem], [cand(problem, text)])[0]


def test_gold_solution_is_all_correct() -> None:
    p = PROBLEMS[5]
    s = score(p, gold_solution(p))
    assert s.value == 1.0
    assert s.steps == (1.0,) * len(gold_steps(p))
    assert s.info["first_error"] == -1
    assert s.info["answer"] == p.answer
    assert all(t["parsed"] and t["valid"] and t["on_track"] for t in s.info["step_truth"])


def test_a_wrong_step_is_located() -> None:
    p = PROBLEMS[4]  # n_ops = 5
    steps = gold_steps(p)
    a, op, b, r = p.meta["ops"][1]
    steps[1] = f"{a} {op} {b} = {r + 1}"  # arithmetic slip in step 1
    s = score(p, "\n".join(steps))
    assert s.info["first_error"] == 1
    assert s.steps[:2] == (1.0, 0.0)
    assert s.info["step_truth"][1]["valid"] is False
    assert s.value == 1.0  # the final answer line still repeats the gold answer


def test_wrong_final_answer_scores_zero() -> None:
    p = PROBLEMS[2]
    text = "\n".join([*gold_steps(p)[:-1], f"The answer is {int(p.answer) + 1}."])
    s = score(p, text)
    assert s.value == 0.0
    assert s.steps[-1] == 0.0
    assert s.info["first_error"] == len(s.steps) - 1


def test_no_answer_scores_zero_with_truth() -> None:
    p = PROBLEMS[0]
    s = score(p, "I am not sure.")
    assert s.value == 0.0
    assert s.steps == (0.0,)
    assert s.info["answer"] is None
    assert s.info["step_truth"][0]["reason"] == "unparseable step"


def test_not_an_arith_problem_is_ungraded() -> None:
    p = Problem("gsm8k-0", "Janet's ducks...", "18", task="gsm8k")
    s = score(p, "A: 18")
    assert s.value is None
    assert s.info["reason"] == "not an arith problem"


def test_conformance() -> None:
    reward = ArithExactReward()
    assert isinstance(reward, Reward)
    assert reward.name == "exact"
    problems = [*PROBLEMS, *PROBLEMS[:4], Problem("x", "q", "7")]
    texts = [gold_solution(p) for p in PROBLEMS]
    texts += ["1 + 1 = 3", "", "The answer is 0.", "garbage\n\n\nmore garbage", "The answer is 7."]
    check_reward(reward, problems, [cand(p, t) for p, t in zip(problems, texts, strict=True)])


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(PROBLEMS), st.text(max_size=200))
def test_agrees_with_check_steps_on_any_text(problem: Problem, text: str) -> None:
    s = score(problem, text)
    report = check_steps(problem, text)
    assert s.value == (1.0 if report.correct else 0.0)
    assert s.steps == tuple(1.0 if t.correct else 0.0 for t in report.steps)
    assert s.info["first_error"] == report.first_error


def test_reward_spec_arguments() -> None:
    import pytest

    from rewardlab.rewards.registry import load_reward, parse_spec

    assert parse_spec("exact:q=0.8,seed=3,mode=x") == ("exact", {"q": 0.8, "seed": 3, "mode": "x"})
    assert parse_spec("a/dir:with:colons") == ("a/dir:with:colons", {})
    with pytest.raises(ValueError, match="not key=value"):
        parse_spec("exact:q")
    with pytest.raises(ValueError, match="unexpected keyword"):
        load_reward("exact:bogus=1")
