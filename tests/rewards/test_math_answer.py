"""MathVerifyReward, extract_answer and equivalent: real-output tables, properties, threads.

Run: .venv/bin/pytest tests/rewards/test_math_answer.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewardlab.rewards import math_answer
from rewardlab.rewards.base import Reward, check_reward
from rewardlab.rewards.math_answer import (
    MathVerifyReward,
    equivalent,
    extract_answer,
    shutdown_workers,
)
from rewardlab.types import Candidate, Problem, Score

ASSETS = Path(__file__).resolve().parents[1] / "assets"
MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
PATHOLOGICAL = "So the answer is $9^{9^{9^{9}}}$."  # sympy evaluates the tower: never ends
PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def _stop_workers() -> Iterator[None]:
    yield
    shutdown_workers()


def grade(gold: str, text: str, reward: MathVerifyReward | None = None) -> Score:
    reward = reward or MathVerifyReward()
    return reward.score([Problem("p", "q", gold)], [Candidate("p", text, (), None)])[0]


# (gold, prediction, expected): GSM8K rows are the last lines of real model solutions from
# openai/grade-school-math's example_model_solutions.jsonl (line, model) with their
# ``is_correct`` label as expected; MATH-500 rows are the boxed sentence of the reference
# solution (line).
# fmt: off
GSM8K_ROWS = [
    ("18", "She has 13 ducks eggs and she sells 2 each day so she makes 13 * 2 = $<<13*2=26>>26\nA: 26", False),  # 0 6b_finetuning  # noqa: E501
    ("18", "She sells her eggs for $2 per egg and has 9 available for sale so 2 * 9 = $<<2*9=18>>18 per day\nA: 18", True),  # 0 175b_verification  # noqa: E501
    ("3", "So it takes 2 + 1 = <<2+1=3>>3.0 bolts of blue and white fiber altogether.\nA: 3", True),  # 1 6b_verification  # noqa: E501
    ("3000", "Oliver must climb 6,000 - 3,000 = <<6000-3000=3000>>3,000 feet to reach the comb.\nA: 3,000", True),  # 419 175b_finetuning  # noqa: E501
    ("6,250", "The students each raised $125,000 / 20 students = $<<125000/20=6250.0>>6,250\nA: 6,250", True),  # 819 175b_finetuning  # noqa: E501
    ("276,000", "So the total cost is 240,000+24,000+288,000=$<<240000+24000+288000=552000>>552,000\nA: 552,000", False),  # 230 175b_finetuning  # noqa: E501
    ("50", "The age of Peter is the sum of Paul and John's age so Peter is 10+John's age\nA: 10+John's age", False),  # 931 175b_finetuning  # noqa: E501
    ("2", "Since there are 60 minutes in an hour, the latest time of day that Jordan can start making the cake is 12/60=1/5 pm\nA: 1/5", False),  # 1001 6b_finetuning  # noqa: E501
    ("53", "The entire game lasted 48+5.8 = <<48+5.8=53.8>>53.8 minutes\nA: 53.8", False),  # 667 6b_finetuning  # noqa: E501
    ("13", "Janet has 40 - 19.50 = $<<40-19.50=20.5>>20.50 left.\nA: 20.50", False),  # 1299 175b_finetuning  # noqa: E501
    ("123", "25", False),  # 852 175b_verification: the whole solution is "25"
    ("3", "Then find the height the beanstalk is after 13 days: 16384 feet * 2 = <<16384*2=32768>>32768 feet\nThen find the height the beanstalk is after 14 days: 32768 feet * 2 =", False),  # 593 6b_finetuning, cut off  # noqa: E501
    ("2", "Therefore, she will save 9.20-11.0 = <<9.20-11.0=-1.8000000000000007>>-1.8 billion dollars a year by buying a weekly bus pass for $20.\nA: -1.8 billion", False),  # 507 6b_finetuning  # noqa: E501
    ("70000", "This means he made a profit of 130,000-40,000=$<<130000-40000=90000>>90,000\nA: 90,000", False),  # 2 6b_finetuning  # noqa: E501
]
MATH500_ROWS = [
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "Therefore, the polar coordinates are $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$", True),  # 0  # noqa: E501
    ("p - q", "&= \\boxed{p - q}.\n\\end{align*}", True),  # 1
    ("\\frac{14}{3}", "$f(-2)+f(-1)+f(0)=\\frac{3(-2)-2}{-2-2}+\\frac{3(-1)-2}{-1-2}+\\frac{3(0)-2}{0-2}=\\frac{-8}{-4}+\\frac{-5}{-3}+\\frac{-2}{-2}=2+\\frac{5}{3}+1=\\boxed{\\frac{14}{3}}$", True),  # 2  # noqa: E501
    ("\\text{Evelyn}", "Therefore, $\\boxed{\\text{Evelyn}}$ is our answer.", True),  # 4
    ("90^\\circ", "Hence, the angle between the lines is $\\boxed{90^\\circ}.$", True),  # 7
    ("3\\sqrt{13}", "& = \\sqrt{117} = \\boxed{3\\sqrt{13}}.\n\\end{align*}", True),  # 8
    ("\\frac{3}{56}", "\\[p(8) = \\frac{q(8) + 8}{8^2 - 1} = \\boxed{\\frac{3}{56}}.\\]", True),  # 11  # noqa: E501
    ("6 - 5i", "&= \\boxed{6 - 5i}.\n\\end{align*}", True),  # 15
    ("\\pi", "so the smallest possible value of $c$ is $\\boxed{\\pi}.$", True),  # 17
]
# MATH-500 reference answers against other ways of writing them (equivalent or not).
FORMS_ROWS = [
    ("\\frac{14}{3}", "The answer is $\\frac{28}{6}$.", True),
    ("\\frac{14}{3}", "The answer is $4.67$.", False),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "$\\boxed{(3, \\pi/2)}$", True),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "$\\boxed{(\\pi/2, 3)}$", False),
    ("6 - 5i", "$\\boxed{-5i + 6}$", True),
    ("3\\sqrt{13}", "$\\boxed{\\sqrt{117}}$", True),
    ("p - q", "$\\boxed{-q + p}$", True),
    ("p - q", "$\\boxed{q - p}$", False),
    ("90^\\circ", "The angle is $\\boxed{90}$.", True),
    ("18", "\\boxed{18.0}", True),
]
# fmt: on


@pytest.mark.parametrize(("gold", "prediction", "expected"), GSM8K_ROWS + MATH500_ROWS + FORMS_ROWS)
def test_table(gold: str, prediction: str, expected: bool) -> None:
    score = grade(gold, prediction)
    assert score.value == (1.0 if expected else 0.0), score.info
    assert score.info["answer"] is not None


def _excerpt_pairs() -> tuple[list[Problem], list[Candidate], list[bool]]:
    """The 120 labelled candidates of the GSM8K pool excerpt and the 20 MATH-500 solutions."""
    problems, candidates, labels = [], [], []
    for i, line in enumerate((ASSETS / "gsm8k_model_solutions_excerpt.jsonl").open()):
        record = json.loads(line)
        problem = Problem(f"g{i}", record["question"], record["ground_truth"].split("A:")[-1])
        for j, model in enumerate(MODELS):
            problems.append(problem)
            candidates.append(Candidate(problem.id, record[model]["solution"], (), None, index=j))
            labels.append(record[model]["is_correct"])
    for i, line in enumerate((ASSETS / "math500_excerpt.jsonl").open()):
        record = json.loads(line)
        problems.append(Problem(f"m{i}", record["problem"], record["answer"]))
        candidates.append(Candidate(f"m{i}", record["solution"], (), None))
        labels.append(True)
    return problems, candidates, labels


def test_agrees_with_every_label_of_the_excerpts() -> None:
    problems, candidates, labels = _excerpt_pairs()
    scores = MathVerifyReward().score(problems, candidates)
    assert [s.value for s in scores] == [1.0 if label else 0.0 for label in labels]


def test_conformance() -> None:
    problems, candidates, _ = _excerpt_pairs()
    reward = MathVerifyReward()
    assert isinstance(reward, Reward)
    assert reward.name == "math-verify"
    check_reward(reward, problems[:40], candidates[:40])


def test_no_answer_is_a_legit_zero() -> None:
    for text in ("I do not know.", ""):
        assert grade("18", text) == Score(0.0, info={"reason": "no answer", "answer": None})


@pytest.mark.parametrize("gold", ["", "}{"])
def test_unparseable_gold_is_ungraded(gold: str) -> None:
    score = grade(gold, "The answer is 18.")
    assert score.value is None
    assert score.info["reason"] == "gold unparseable"


@pytest.mark.parametrize("isolation", ["signal", "process"])
def test_a_hung_check_times_out_cleanly(isolation: math_answer.Isolation) -> None:
    reward = MathVerifyReward(timeout_s=1, isolation=isolation)
    grade("5", "5", reward)  # warm (in "process": start a worker outside the timing)
    start = time.monotonic()
    score = grade("5", PATHOLOGICAL, reward)
    assert time.monotonic() - start < 15
    assert score.value is None
    assert score.info["reason"] == "timeout"
    assert grade("5", "The answer is 5.", reward).value == 1.0  # still works afterwards


def test_a_hung_check_times_out_in_a_worker_thread() -> None:
    reward = MathVerifyReward(timeout_s=1)  # "auto": process isolation off the main thread
    with ThreadPoolExecutor(1) as ex:
        score = ex.submit(grade, "5", PATHOLOGICAL, reward).result(timeout=120)
    assert score.info["reason"] == "timeout"


def test_threads_give_the_main_thread_results() -> None:
    problems, candidates, _ = _excerpt_pairs()
    reward = MathVerifyReward()
    expected = reward.score(problems, candidates)
    chunks = [(problems[i : i + 10], candidates[i : i + 10]) for i in range(0, len(problems), 10)]
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda pc: reward.score(*pc), chunks))
    assert [s for chunk in results for s in chunk] == expected
    texts = [c.text for c in candidates[:16]]
    with ThreadPoolExecutor(4) as ex:
        assert list(ex.map(extract_answer, texts)) == [extract_answer(t) for t in texts]


def test_signal_isolation_refuses_worker_threads() -> None:
    reward = MathVerifyReward(isolation="signal")
    with ThreadPoolExecutor(1) as ex, pytest.raises(RuntimeError, match="main thread"):
        ex.submit(grade, "5", "5", reward).result()


def test_grader_errors_are_ungraded_not_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(math_answer, "_run", broken)
    score = grade("5", "5", MathVerifyReward(isolation="signal"))
    assert score.value is None
    assert score.info["reason"] == "error"
    assert "boom" in score.info["detail"]


def test_a_dead_worker_is_reported_and_replaced() -> None:
    shutdown_workers()
    pool = math_answer._pool()
    worker = pool._take()
    worker.proc.kill()
    worker.proc.wait()
    pool._idle.put(worker)
    reward = MathVerifyReward(isolation="process")
    score = grade("5", "5", reward)
    assert (score.value, score.info["reason"]) == (None, "error")
    assert grade("5", "5", reward).value == 1.0


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        MathVerifyReward(timeout_s=0)
    with pytest.raises(ValueError, match="isolation"):
        MathVerifyReward(isolation="thread")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="candidates"):
        MathVerifyReward().score([Problem("p", "q", "1")], [])


def test_extract_answer() -> None:
    assert extract_answer("She makes 9 * 2 = $<<9*2=18>>18 every day.\nA: 18") == "18"
    assert extract_answer("A: 3,000") == "3000"
    assert extract_answer("so $c$ is $\\boxed{\\frac{3}{56}}.$") == "\\frac{3}{56}"
    assert extract_answer("no numbers here") is None
    assert extract_answer("") is None


def test_equivalent() -> None:
    assert equivalent("3000", "3,000")
    assert equivalent("\\frac{1}{2}", "0.5")
    assert equivalent("-5i + 6", "6 - 5i")
    assert not equivalent("2", "3")
    assert not equivalent("x", "y")


def test_equivalent_on_extracted_answers_of_the_math500_excerpt() -> None:
    """Every extracted reference answer is equivalent to the given answer (round trip)."""
    for line in (ASSETS / "math500_excerpt.jsonl").open():
        record = json.loads(line)
        answer = extract_answer(record["solution"])
        assert answer is not None
        assert equivalent(answer, record["answer"]), (answer, record["answer"])


@PROPS
@given(st.integers(min_value=-(10**9), max_value=10**9))
def test_a_number_verifies_against_itself(n: int) -> None:
    assert grade(str(n), f"So the total is {n}.").value == 1.0
    assert grade(str(n), f"So the total is {n + 1}.").value == 0.0
    answer = extract_answer(f"A: {n}")
    assert answer is not None and equivalent(answer, str(n))


SAMPLE_ANSWERS = [
    *(json.loads(line)["answer"] for line in (ASSETS / "math500_excerpt.jsonl").open()),
    "0.5", "\\frac{1}{2}", "1/2", "3,000", "3000", "-5i + 6", "\\sqrt{117}", "(3, \\pi/2)",
]  # fmt: skip


@PROPS
@given(st.sampled_from(SAMPLE_ANSWERS), st.sampled_from(SAMPLE_ANSWERS))
def test_equivalent_is_symmetric(a: str, b: str) -> None:
    assert equivalent(a, b) == equivalent(b, a)


def test_math_verify_is_imported_lazily() -> None:
    code = "import sys, rewardlab.rewards.math_answer; print('math_verify' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_signal_path_keeps_a_callers_pending_alarm() -> None:
    """Math-Verify cancels the real-time timer after each check; an outer alarm (a caller's,
    pytest-timeout's) must survive it with the time it had left, and one that fell due during a
    hung check must fire right after it."""
    import signal

    fired: list[float] = []
    outer_timer = signal.setitimer(signal.ITIMER_REAL, 0)  # pytest-timeout's, if any
    outer_handler = signal.signal(signal.SIGALRM, lambda *_: fired.append(time.monotonic()))
    try:
        reward = MathVerifyReward(timeout_s=1, isolation="signal")
        signal.setitimer(signal.ITIMER_REAL, 30.0)
        assert grade("5", "The answer is 5.", reward).value == 1.0
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 25.0 < left <= 30.0, left  # re-armed with what it had left, not cancelled
        assert not fired

        signal.setitimer(signal.ITIMER_REAL, 0.2)  # falls due while the check hangs for 1 s
        score = grade("5", PATHOLOGICAL, reward)
        done = time.monotonic()
        assert score.info["reason"] == "timeout"  # the check's own alarm still works
        time.sleep(0.1)
        assert len(fired) == 1 and fired[0] - done < 0.1, (fired, done)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, outer_handler)
        if outer_timer[0] > 0:
            signal.setitimer(signal.ITIMER_REAL, *outer_timer)
