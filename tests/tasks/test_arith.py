"""The testbed's generator and exact step checker."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewardlab.tasks import arith
from rewardlab.tasks.arith import apply_op, check_steps, generate, gold_solution, gold_steps

problem_params = st.tuples(st.integers(0, 10_000), st.integers(1, 8), st.integers(1, 3))


def _problem(seed: int, n_ops: int, digits: int) -> arith.Problem:
    return arith.make_problem(random.Random(seed), n_ops, digits)


def test_generate_is_deterministic_and_balanced() -> None:
    a, b = generate(40, seed=7), generate(40, seed=7)
    assert a == b
    assert generate(40, seed=8) != a
    counts = [sum(p.meta["n_ops"] == k for p in a) for k in range(1, 9)]
    assert counts == [5] * 8
    assert len({p.id for p in a}) == 40


def test_phrasings_vary() -> None:
    first_sentences = {p.question.split(".")[0].split()[-1] for p in generate(200, seed=1)}
    assert len(first_sentences) > 3


@given(problem_params)
@settings(max_examples=200)
def test_gold_solutions_check_clean(params: tuple[int, int, int]) -> None:
    p = _problem(*params)
    report = check_steps(p, gold_solution(p))
    assert report.first_error == -1
    assert report.correct
    assert len(report.steps) == p.meta["n_ops"] + 1
    states = p.meta["states"]
    assert all(1 <= s <= arith.MAX_STATE for s in states)
    assert all(apply_op(a, op, b) == r for a, op, b, r in p.meta["ops"])


@given(problem_params, st.data())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_single_corruption_is_the_first_error(
    params: tuple[int, int, int], data: st.DataObject
) -> None:
    p = _problem(*params)
    steps = gold_steps(p)
    k = data.draw(st.integers(0, len(steps) - 1))
    delta = data.draw(st.integers(1, 50))
    if k < len(steps) - 1:
        a, op, b, r = p.meta["ops"][k]
        steps[k] = f"{a} {op} {b} = {r + delta}"  # wrong arithmetic
    else:
        steps[k] = f"The answer is {int(p.answer) + delta}."
    report = check_steps(p, "\n".join(steps))
    assert report.first_error == k
    assert report.steps[k].reason
    # only a corrupted answer line changes the final answer; a corrupted middle step does not
    assert report.correct == (k < len(steps) - 1)


@given(problem_params)
@settings(max_examples=100)
def test_recomputing_from_a_wrong_value_is_valid_but_off_track(
    params: tuple[int, int, int],
) -> None:
    seed, n_ops, digits = params
    p = _problem(seed, max(2, n_ops), digits)
    ops = p.meta["ops"]
    wrong = ops[0][3] + 1
    lines = [f"{ops[0][0]} {ops[0][1]} {ops[0][2]} = {wrong}"]
    state = wrong
    for _, op, b, _ in ops[1:]:
        if op == "/" and state % b:
            break
        nxt = apply_op(state, op, b)
        assert nxt is not None
        lines.append(f"{state} {op} {b} = {nxt}")
        state = nxt
    lines.append(f"The answer is {state}.")
    report = check_steps(p, "\n".join(lines))
    assert report.first_error == 0
    assert not report.steps[0].valid
    for t in report.steps[1:]:
        assert t.parsed and t.valid  # consistent with the wrong value
    # after the error, steps are off track unless they happen to rejoin the gold states
    gold = p.meta["states"][1:]
    for i, t in enumerate(report.steps[1:-1], start=1):
        assert t.on_track == (t.value == gold[i])


@given(st.text())
@settings(max_examples=300)
def test_arbitrary_unicode_never_raises(text: str) -> None:
    p = _problem(1, 3, 2)
    report = check_steps(p, text)
    assert len(report.steps) == len([ln for ln in text.splitlines() if ln.strip()])
    for t in report.steps:
        if not t.parsed:
            assert t.reason == "unparseable step"
    assert report.first_error in (-1, *range(len(report.steps)))


def test_hand_worked_cases() -> None:
    p = arith.Problem(
        "x", "q", "14", meta={"states": [12, 17, 14], "ops": [[12, "+", 5, 17], [17, "-", 3, 14]]}
    )
    ok = check_steps(p, "12 + 5 = 17\n17 - 3 = 14\nThe answer is 14.")
    assert (ok.first_error, ok.correct, ok.answer) == (-1, True, "14")
    copy_err = check_steps(p, "12 + 5 = 17\n18 - 3 = 15\nThe answer is 15.")
    assert copy_err.first_error == 1
    assert copy_err.steps[1].valid and not copy_err.steps[1].on_track
    assert copy_err.steps[2].valid and not copy_err.steps[2].on_track
    garbage = check_steps(p, "12 + 5 = 17\nso then\nThe answer is 14.")
    assert garbage.first_error == 1 and garbage.correct
    assert garbage.steps[1].reason == "unparseable step"
    short = check_steps(p, "12 + 5 = 17")
    assert (short.first_error, short.correct, short.answer) == (-1, False, None)
    div = check_steps(p, "12 / 5 = 2")
    assert div.steps[0].reason == "division with remainder"
    inconsistent = check_steps(p, "12 + 5 = 17\n17 - 3 = 14\nThe answer is 17.")
    assert inconsistent.first_error == 2
    assert "does not repeat" in inconsistent.steps[2].reason


@pytest.mark.parametrize("bad", [(0, 2), (17, 2), (3, 0), (3, 4)])
def test_bad_knobs_raise(bad: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        arith.make_problem(random.Random(0), *bad)


def test_task_adapter() -> None:
    task = arith.ArithTask()
    p = generate(1, seed=3, n_ops=(3, 3))[0]
    text = gold_solution(p)
    assert task.is_correct(p, task.extract_answer(text))
    assert task.annotate(p, text)["first_error"] == -1
