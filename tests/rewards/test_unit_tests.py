"""RLSQM static quality of generated unit tests, on hand-written test files with known metrics."""

from __future__ import annotations

import pytest

from rewardlab.rewards.base import check_reward
from rewardlab.rewards.unit_tests import UnitTestQualityReward, quality_metrics, trivially_true
from rewardlab.types import Candidate, Problem

GOOD = '''
import pytest
from mod import add

def test_add():
    assert add(1, 2) == 3

def test_add_negative():
    """negatives"""
    assert add(-1, -1) == -2

def test_raises():
    with pytest.raises(TypeError):
        add(None, 1)
'''

# 4 tests: one without assertion, one duplicate body of test_a (docstring aside), and
# 5 assertions of which 3 are trivially true (assert True, x == x, assertEqual(y, y))
SMELLY = '''
import unittest

def test_a():
    assert f(2) == 4
    assert True

def test_b():
    """same body as test_a"""
    assert f(2) == 4
    assert True

def test_c():
    f(3)

class T(unittest.TestCase):
    def test_d(self):
        x = f(1)
        self.assertEqual(x, x)
'''


def _cand(text: str) -> Candidate:
    return Candidate("p", text, (text,), None)


def test_good_file_scores_one() -> None:
    m = quality_metrics(GOOD)
    assert (m["tests"], m["asserts"], m["trivial"], m["duplicates"]) == (3, 3, 0, 0)
    assert UnitTestQualityReward().value(m) == 1.0


def test_smelly_file_by_hand() -> None:
    m = quality_metrics(SMELLY)
    assert (m["tests"], m["asserts"], m["trivial"], m["duplicates"]) == (4, 5, 3, 1)
    assert m["assertions"] == 3 / 4
    assert m["unique"] == 3 / 4
    assert m["nontrivial"] == pytest.approx(1 - 3 / 5)
    # equal weights over parsable, has_tests, assertions, unique, nontrivial
    expected = (1 + 1 + 0.75 + 0.75 + 0.4) / 5
    assert UnitTestQualityReward().value(m) == pytest.approx(expected)
    only_smells = UnitTestQualityReward(weights={"nontrivial": 1.0, "unique": 1.0})
    assert only_smells.value(m) == pytest.approx((0.4 + 0.75) / 2)


def test_unparsable_and_testless() -> None:
    bad = quality_metrics("def test_x(:\n    assert 1")
    assert bad["parsable"] == 0.0 and "SyntaxError" in bad["error"]
    assert UnitTestQualityReward().value(bad) == 0.0
    none = quality_metrics("def helper():\n    return 1\n")
    assert none["parsable"] == 1.0 and none["has_tests"] == 0.0
    assert UnitTestQualityReward().value(none) == pytest.approx(1 / 5)


def test_fenced_code_is_read() -> None:
    text = "Here are tests:\n```python\ndef test_x():\n    assert g() == 1\n```\nDone."
    assert quality_metrics(text)["tests"] == 1


@pytest.mark.parametrize(
    ("src", "trivial"),
    [
        ("assert True", True),
        ("assert 1", True),
        ("assert 0", False),
        ("assert 1 < 2", True),
        ("assert 2 < 1", False),
        ("assert -1 == -1", True),
        ("assert 'a' < 1", False),  # the comparison fails to evaluate: not provably true
        ("assert x == x", True),
        ("assert x is x", True),
        ("assert x != x", False),
        ("assert f(x) == f(x)", True),
        ("assert f(x) == 3", False),
        ("self.assertTrue(True)", True),
        ("self.assertTrue(ok)", False),
        ("self.assertEqual(y, y)", True),
        ("self.assertEqual(y, 2)", False),
        ("self.assertIsNotNone(5)", True),
    ],
)
def test_trivially_true_rules(src: str, trivial: bool) -> None:
    import ast

    node = ast.parse(src).body[0]
    target = node if isinstance(node, ast.Assert) else node.value  # type: ignore[attr-defined]
    assert trivially_true(target) is trivial


def test_never_executes_the_code(tmp_path: object) -> None:
    # a test file whose import would have a visible side effect: parsing must not trigger it
    marker = "/tmp/rewardlab_rlsqm_must_not_exist"
    code = f"open({marker!r}, 'w').write('ran')\ndef test_x():\n    assert 1 == 1\n"
    quality_metrics(code)
    import os

    assert not os.path.exists(marker)


def test_reward_contract_and_registry() -> None:
    from rewardlab.rewards.registry import load_reward

    r = load_reward("unit-test-quality")
    probs = [Problem("p", "write tests", "")] * 3
    cands = [_cand(GOOD), _cand(SMELLY), _cand("def (")]
    check_reward(r, probs, cands)
    assert [round(s.value, 4) for s in r.score(probs, cands)] == [1.0, 0.78, 0.0]
    with pytest.raises(ValueError, match="unknown metric weights"):
        UnitTestQualityReward(weights={"coverage": 1.0})
