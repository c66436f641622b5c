"""Code-checked generative PRM: hand-written verification chains, executed in the sandbox."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.rewards.codecheck import CodeCheckFormat, claimed_value, code_lines
from rewardlab.types import Candidate, Problem

TEXT = "12 * 3 = 36\n36 - 5 = 30\nThe answer is 30."
CAND = Candidate("p", TEXT, tuple(TEXT.split("\n")), "30")
PROBLEM = Problem("p", "Kai has 12 boxes of 3 pens and gives away 5. How many?", "31")


def test_chains_are_executed_and_steps_judged_by_the_result() -> None:
    fmt = CodeCheckFormat()
    chains = [
        " 12 * 3\nstep 2: 36 - 5\nstep 3: 36 - 5",  # the prompt's "step 1:" cue is restored
        "step 1: x = 12 * 3\nstep 2: x - 5\nstep 3: 31",  # an assignment; a literal
        "step 1: 12 * 3\nstep 2: undefined_name - 5",  # an error is a wrong step
        "step 1: __import__('os').getpid() * 0 + 36\nstep 2: sum(range(10**9))",  # time limit
        "I think it is all fine.",
    ]
    got = fmt.parse_batch(chains, [CAND] * len(chains))
    assert got[0].steps == (1.0, 0.0, 0.0) and got[0].verdict == 0.0
    assert got[1].steps == (1.0, 0.0, 0.0)
    assert got[2].steps == (1.0, 0.0, None)
    assert got[3].steps[0] == 1.0 and got[3].steps[1] == 0.0  # killed, judged wrong
    assert got[4].verdict is None and got[4].reason
    right = "step 1: 12*3\nstep 2: 12*3 - 6\nstep 3: 30"
    bad_text = "12 * 3 = 36\n36 - 6 = 30\nThe answer is 30."
    good = Candidate("p", bad_text, tuple(bad_text.split("\n")), "30")
    assert fmt.parse(right, good).verdict == 1.0


def test_the_prompt_numbers_the_steps() -> None:
    prompt = CodeCheckFormat().prompt(PROBLEM, CAND)
    assert "2) 36 - 5 = 30" in prompt and prompt.endswith("step 1:")


def test_claims_and_lines() -> None:
    assert claimed_value("12 * 3 = 36") == "36"
    assert claimed_value("So she pays $1,200.") is None
    assert claimed_value("The answer is 1,200.") == "1200"
    assert claimed_value("Total = 2.50") == "2.50"
    assert claimed_value("so 16 - 3 = <<16-3=13>>13 eggs are left") == "13"
    assert claimed_value("x = 4, then 4 * 2 = 8 pens.") == "8"
    assert code_lines("step 1: a\nStep 2) b\n# step 3: c\nstep 1: d") == {0: "d", 1: "b", 2: "c"}
    assert code_lines("step 1: it is fine.\nstep 2: 3 +") == {}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_code_lines_never_raise(text: str) -> None:
    lines = code_lines(text)
    assert all(isinstance(k, int) and k >= 0 and v for k, v in lines.items())
