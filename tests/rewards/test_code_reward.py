"""The code reward: bundled problems, HumanEval/MBPP files, candidate formats, reward hacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardlab.rewards.base import check_reward
from rewardlab.rewards.code import CodeReward, build_program, defines, extract_code
from rewardlab.sandbox import Limits, SandboxConfig, SandboxUnavailable, detect
from rewardlab.tasks.code import bundled, from_record, infer_entry_point, load_jsonl
from rewardlab.types import Candidate, Problem

REWARD = CodeReward(config=SandboxConfig(limits=Limits(wall_s=20)), test_timeout_s=2.0)


def cand(problem: Problem, text: str) -> Candidate:
    return Candidate(problem.id, text, (text,), None)


HUMANEVAL = {
    "task_id": "HumanEval/X",
    "prompt": (
        "from typing import List\n\n\ndef below_zero(ops: List[int]) -> bool:\n"
        '    """True if the running balance ever drops below zero."""\n'
    ),
    "canonical_solution": (
        "    balance = 0\n    for op in ops:\n        balance += op\n"
        "        if balance < 0:\n            return True\n    return False\n"
    ),
    "test": (
        "\nMETADATA = {}\n\n\ndef check(candidate):\n"
        "    assert candidate([]) == False\n"
        "    assert candidate([1, 2, -3, 1, 2, -3]) == False\n"
        "    assert candidate([1, 2, -4, 5, 6]) == True\n"
    ),
    "entry_point": "below_zero",
}
MBPP = {
    "task_id": 11,
    "text": "Write a python function to remove first and last occurrence of a given character.",
    "code": (
        "def remove_Occ(s, ch):\n    s = s.replace(ch, '', 1)\n    i = s.rfind(ch)\n"
        "    return s if i < 0 else s[:i] + s[i + 1:]\n"
    ),
    "test_list": [
        'assert remove_Occ("hello","l") == "heo"',
        'assert remove_Occ("abcda","a") == "bcd"',
        'assert remove_Occ("PHP","P") == "H"',
    ],
    "test_setup_code": "",
}


def test_bundled_problems_are_varied_and_well_formed() -> None:
    problems = bundled()
    assert len(problems) >= 36
    assert len({p.id for p in problems}) == len(problems)
    levels = {p.meta["difficulty"] for p in problems}
    assert levels == {"easy", "medium", "hard"}
    assert all(len(bundled(d)) >= 8 for d in levels)
    assert any(p.meta["test"] for p in problems) and any(p.meta["tests"] for p in problems)


def test_every_bundled_reference_solution_passes() -> None:
    problems = bundled()
    scores = REWARD.score(problems, [cand(p, p.answer) for p in problems])
    failed = [(p.id, s.info) for p, s in zip(problems, scores, strict=True) if s.value != 1.0]
    assert not failed
    assert all(s.info["fraction"] == 1.0 for s in scores)


def test_stub_solutions_fail_everywhere() -> None:
    problems = bundled()[::3]
    stubs = [cand(p, f"def {p.meta['entry_point']}(*args):\n    return None\n") for p in problems]
    assert all(s.value == 0.0 for s in REWARD.score(problems, stubs))


def test_humaneval_file_completion_and_full_function(tmp_path: Path) -> None:
    path = tmp_path / "he.jsonl"
    path.write_text(json.dumps(HUMANEVAL) + "\n\n")
    (p,) = load_jsonl(path)
    assert p.meta["entry_point"] == "below_zero"
    completion = cand(p, HUMANEVAL["canonical_solution"])
    full = cand(
        p,
        "Here you go:\n```python\ndef below_zero(ops: List[int]) -> bool:\n"
        "    b = 0\n    for o in ops:\n        b += o\n        if b < 0:\n"
        "            return True\n    return False\n```\n",
    )
    wrong = cand(p, "    return True\n")
    s = REWARD.score([p, p, p], [completion, full, wrong])
    assert [x.value for x in s] == [1.0, 1.0, 0.0]
    assert s[2].info["passed"] == 1 and s[2].info["total"] == 3
    assert s[2].info["fraction"] == pytest.approx(1 / 3)
    assert [t["status"] for t in s[2].info["tests"]] == ["fail", "fail", "pass"]


def test_mbpp_file_infers_entry_point(tmp_path: Path) -> None:
    path = tmp_path / "mbpp.jsonl"
    path.write_text(json.dumps(MBPP) + "\n")
    (p,) = load_jsonl(path)
    assert p.meta["entry_point"] == "remove_Occ" and p.id == "11"
    s = REWARD.score(
        [p, p], [cand(p, MBPP["code"]), cand(p, "def remove_Occ(s, ch):\n    return s\n")]
    )
    assert [x.value for x in s] == [1.0, 0.0]


def test_script_tests_run_through_the_judge() -> None:
    (topo,) = [p for p in bundled() if p.meta["entry_point"] == "topo_sort"]
    cheat = "def topo_sort(n, edges):\n    return list(range(n))\n"
    s = REWARD.score([topo, topo], [cand(topo, topo.answer), cand(topo, cheat)])
    assert [x.value for x in s] == [1.0, 0.0]


@pytest.mark.parametrize(
    "hack",
    [
        "import os\nos._exit(0)\n",
        "class A:\n    def __eq__(s, o): return True\ndef add_numbers(a, b): return A()\n",
        "import builtins\nbuiltins.AssertionError = KeyError\ndef add_numbers(a, b): return 0\n",
        "print('PASSED')\nimport atexit, os\natexit.register(lambda: os._exit(0))\n"
        "def add_numbers(a, b): raise SystemExit(0)\n",
    ],
)
def test_reward_hacks_score_zero(hack: str) -> None:
    p = bundled()[0]  # add_numbers
    (s,) = REWARD.score([p], [cand(p, hack)])
    assert s.value == 0.0, s.info


def test_ungraded_and_errors() -> None:
    p = Problem("x", "q", "", task="code", meta={"prompt": "q"})
    (s,) = REWARD.score([p], [cand(p, "pass")])
    assert s.value is None and "entry_point" in s.info["reason"]
    with pytest.raises(ValueError, match="no tests"):
        from_record({"prompt": "x", "entry_point": "f"})
    with pytest.raises(ValueError, match="entry_point"):
        from_record({"prompt": "x", "tests": ["assert 1 == 1"]})
    with pytest.raises(ValueError, match="same length"):
        REWARD.score([p], [])


def test_empty_candidate_scores_zero() -> None:
    p = bundled()[0]
    (s,) = CodeReward(mode="full").score([p], [cand(p, "   ")])
    assert s.value == 0.0 and s.info["reason"] == "no code in the candidate"


def test_unavailable_level_raises_not_zero() -> None:
    caps = detect()
    if caps.best() == "isolated":
        bad = SandboxConfig(python="/no/such/python", level="basic")
        (s,) = CodeReward(config=bad).score([bundled()[0]], [cand(bundled()[0], "x = 1")])
        assert s.value is None and "sandbox failure" in s.info["reason"]
    else:
        with pytest.raises(SandboxUnavailable):
            CodeReward(config=SandboxConfig(level="isolated")).score(
                [bundled()[0]], [cand(bundled()[0], "x = 1")]
            )


def test_conformance() -> None:
    problems = bundled()[:3]
    candidates = [
        cand(problems[0], problems[0].answer),
        cand(problems[1], "oops("),
        cand(problems[2], problems[2].answer),
    ]
    check_reward(REWARD, problems, candidates)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("def f(): pass", "def f(): pass"),
        ("Sure!\n```python\ndef f():\n    return 1\n```\nDone.", "def f():\n    return 1\n"),
        ("```py\nimport os\n```\ntext\n```python\ndef f(): return 2\n```", "def f(): return 2\n"),
        ("```\nx = 1\n```\n```python\ny = 2\n```", "x = 1\n\n\ny = 2\n"),
        ("```bash\nrm -rf /\n```\ndef f(): pass", "```bash\nrm -rf /\n```\ndef f(): pass"),
    ],
)
def test_extract_code(text: str, expected: str) -> None:
    assert extract_code(text, "f") == expected


def test_defines_and_build_program() -> None:
    assert defines("def f(x):\n    return x", "f") and defines("f = lambda: 1", "f")
    assert not defines("def g(): pass", "f") and defines("def f(:\n", "f")
    p = from_record(HUMANEVAL)
    full = build_program(p, "def below_zero(ops: List[int]) -> bool:\n    return False\n")
    assert full.startswith("from typing import List")
    assert build_program(p, "    return False\n").startswith(HUMANEVAL["prompt"])
    assert infer_entry_point(["assert len(foo(1)) == 2"]) == "foo"
