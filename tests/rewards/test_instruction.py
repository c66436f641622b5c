"""RLVR instruction constraints: each rule on hand-made responses with a known verdict."""

from __future__ import annotations

import pytest

from rewardlab.rewards.base import check_reward
from rewardlab.rewards.instruction import (
    InstructionConstraintReward,
    check_constraint,
    count_paragraphs,
    count_sentences,
    count_words,
)
from rewardlab.types import Candidate, Problem


def _c(text: str) -> Candidate:
    return Candidate("p", text, (text,), None)


def test_counts_by_hand() -> None:
    assert count_words("Don't stop: 3 more days!") == 5  # Don't, stop, 3, more, days
    assert count_sentences("One. Two! Three? four") == 4
    assert count_sentences("Pi is 3.14 today") == 1  # a dot inside a number ends nothing
    assert count_sentences("") == 0
    assert count_paragraphs("a\n\n\nb\n  \nc") == 3
    assert count_paragraphs("a\n***\nb") == 2
    assert count_paragraphs("   ") == 0


@pytest.mark.parametrize(
    ("constraint", "text", "ok"),
    [
        ({"type": "length", "unit": "words", "relation": "at least", "n": 3}, "a b", False),
        ({"type": "length", "unit": "words", "relation": "at least", "n": 3}, "a b c", True),
        ({"type": "length", "unit": "words", "relation": "exactly", "n": 2}, "a b c", False),
        ({"type": "length", "unit": "sentences", "relation": "at most", "n": 1}, "Hi. Bye.", False),
        ({"type": "length", "unit": "paragraphs", "relation": "exactly", "n": 2}, "x\n\ny", True),
        ({"type": "length", "unit": "chars", "relation": "at most", "n": 5}, "hello", True),
        ({"type": "keyword", "include": ["Paris"]}, "I love paris.", True),
        ({"type": "keyword", "include": ["Paris"]}, "I love Parisian food.", False),
        ({"type": "keyword", "exclude": ["bad"]}, "Not BAD at all", False),
        ({"type": "keyword", "include": ["a"], "exclude": ["b"]}, "a c", True),
        ({"type": "frequency", "keyword": "cat", "relation": "at least", "n": 2}, "cat, Cat", True),
        ({"type": "frequency", "keyword": "cat", "relation": "at most", "n": 1}, "cat cat", False),
        ({"type": "case", "case": "lower"}, "all lower, 123!", True),
        ({"type": "case", "case": "lower"}, "Not lower", False),
        ({"type": "case", "case": "upper"}, "LOUD 42", True),
        ({"type": "format", "format": "json"}, '{"a": [1, 2]}', True),
        ({"type": "format", "format": "json"}, '```json\n{"a": 1}\n```', True),
        ({"type": "format", "format": "json"}, "{'a': 1}", False),
        ({"type": "format", "format": "bullets", "n": 2}, "* one\n- two\nthree", True),
        ({"type": "format", "format": "bullets", "n": 2}, "* one\n* two\n* three", False),
        ({"type": "format", "format": "title"}, "<<My Poem>>\nroses", True),
        ({"type": "format", "format": "title"}, "My Poem\nroses", False),
        ({"type": "format", "format": "no_commas"}, "a, b", False),
        ({"type": "format", "format": "quoted"}, ' "quoted" ', True),
        (
            {"type": "format", "format": "end_with", "phrase": "Any questions?"},
            "x Any questions? ",
            True,
        ),
    ],
)
def test_each_rule(constraint: dict[str, object], text: str, ok: bool) -> None:
    assert check_constraint(constraint, text) is ok


def test_reward_all_or_nothing_and_partial() -> None:
    cons = [
        {"type": "case", "case": "lower"},
        {"type": "length", "unit": "words", "relation": "at most", "n": 3},
        {"type": "keyword", "include": ["yes"]},
    ]
    prob = Problem("p", "q", "", meta={"constraints": cons})
    texts = ["yes it is", "Yes it is", "yes it is not so"]  # 3/3, 2/3 (case), 2/3 (length)
    rlvr = InstructionConstraintReward(alpha=10.0)
    got = rlvr.score([prob] * 3, [_c(t) for t in texts])
    assert [s.value for s in got] == [10.0, 0.0, 0.0]
    assert got[1].info["passed"] == [False, True, True]
    partial = InstructionConstraintReward(partial=True).score([prob] * 3, [_c(t) for t in texts])
    assert [s.value for s in partial] == pytest.approx([1.0, 2 / 3, 2 / 3])
    check_reward(rlvr, [prob] * 3, [_c(t) for t in texts])


def test_missing_and_bad_constraints() -> None:
    r = InstructionConstraintReward()
    (s,) = r.score([Problem("p", "q", "")], [_c("x")])
    assert s.value is None and "no constraints" in s.info["reason"]
    bad = Problem("p", "q", "", meta={"constraints": [{"type": "length", "unit": "pages"}]})
    with pytest.raises(ValueError, match=r"needs 'relation'|unknown length unit"):
        r.score([bad], [_c("x")])
    with pytest.raises(ValueError, match="unknown constraint type 'rhyme'"):
        check_constraint({"type": "rhyme"}, "x")
    with pytest.raises(ValueError, match="non-negative integer"):
        check_constraint({"type": "length", "unit": "words", "relation": "exactly", "n": "3"}, "")


def test_registry_name() -> None:
    from rewardlab.rewards.registry import load_reward

    r = load_reward("instruction-constraints:alpha=10")
    assert isinstance(r, InstructionConstraintReward) and r.alpha == 10.0
