"""Prompted judges: verdict and score parsing (exact cases + hypothesis fuzzing: never raises,
unparseable -> None with a reason), and the two formats as verifiers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.rewards.judges import GRMFormat, YesNoFormat, parse_score, parse_yes_no
from rewardlab.types import Candidate, Problem


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Verdict: Yes", 1.0),
        ("step 1 ok\nstep 2 wrong\nVerdict: No", 0.0),
        ("Is the answer correct (Yes/No)? Yes", 1.0),
        ("Is the answer correct (Yes/No)? no.", 0.0),
        ("**Verdict:** No", 0.0),
        ("The final answer is \\boxed{Yes}", 1.0),
        ("Yes, 3 + 4 = 7 is right, no wait... Verdict: No", 0.0),
        ("yes", 1.0),
        ("Answer: Yes. Later: Verdict: No", 0.0),  # the last marked verdict wins
    ],
)
def test_yes_no_exact_cases(text: str, want: float) -> None:
    assert parse_yes_no(text) == (want, "")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no Yes/No verdict"),
        ("Is the answer correct (Yes/No)?", "no Yes/No verdict"),
        ("yes and no", "ambiguous"),
        ("Yesterday nobody came", "no Yes/No verdict"),  # words, not verdicts
    ],
)
def test_yes_no_unreadable(text: str, reason: str) -> None:
    value, why = parse_yes_no(text)
    assert value is None and reason in why


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Score: 7", 7.0),
        ("Critique: fine.\nScore: 9/10", 9.0),
        ("I would rate it 6/10", 6.0),
        ("Final score is 3 out of 10", 3.0),
        ("\\boxed{8}", 8.0),
        ("Score: 4\n...revised. Score: 2", 2.0),
        ("Rating: **10**", 10.0),
        ("Score: 7.5", 7.5),
    ],
)
def test_score_exact_cases(text: str, want: float) -> None:
    assert parse_score(text) == (want, "")


@pytest.mark.parametrize(
    ("text", "reason"),
    [("Score: 11", "outside"), ("Score: 0", "outside"), ("no number here", "no score"), ("", "no")],
)
def test_score_unreadable(text: str, reason: str) -> None:
    value, why = parse_score(text)
    assert value is None and reason in why


TEXT = st.text(
    alphabet=st.sampled_from(list("YesNoyesno:Verdict Score/10\\boxed{}()*.-0123456789\n ")),
    max_size=80,
) | st.text(max_size=80)


@settings(max_examples=400, deadline=None)
@given(TEXT)
def test_parsers_never_raise_and_explain_none(text: str) -> None:
    v, why = parse_yes_no(text)
    assert (v in (0.0, 1.0) and why == "") or (v is None and why)
    s, why = parse_score(text)
    assert (s is not None and 1.0 <= s <= 10.0 and why == "") or (s is None and why)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["Yes", "No", "yes", "NO"]), st.text(max_size=40))
def test_a_marked_verdict_at_the_end_is_always_read(word: str, noise: str) -> None:
    value, _ = parse_yes_no(f"{noise}\nVerdict: {word}")
    assert value == (1.0 if word.lower() == "yes" else 0.0)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 10),
    st.text(alphabet=st.characters(blacklist_characters="0123456789"), max_size=40),
)
def test_a_score_line_at_the_end_is_always_read(n: int, noise: str) -> None:
    assert parse_score(f"{noise}\nScore: {n}") == (float(n), "")


def test_formats_prompt_and_map_verdicts() -> None:
    p = Problem("p", "What is 2 + 2?", "4")
    c = Candidate("p", "2 + 2 = 4\nThe answer is 4.", ("2 + 2 = 4", "The answer is 4."), "4")
    yes_no, grm = YesNoFormat(), GRMFormat()
    assert "2 + 2 = 4" in yes_no.prompt(p, c) and "Verdict" in yes_no.prompt(p, c)
    assert yes_no.parse("Verdict: Yes", c).verdict == 1.0
    assert yes_no.parse("hmm", c).verdict is None
    assert grm.parse("Principles...\nScore: 10", c).verdict == 1.0
    assert grm.parse("Score: 1", c).verdict == 0.0
    assert grm.parse("Score: 4", c).verdict == pytest.approx(3 / 9)
    assert "outside" in grm.parse("Score: 12", c).reason
