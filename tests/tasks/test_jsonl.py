"""GSM8K / MATH-style JSONL loading, from the excerpts in tests/assets.

Run: .venv/bin/pytest tests/tasks/test_jsonl.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardlab.tasks.jsonl import (
    GSM8K,
    MATH,
    JsonlError,
    detect_format,
    load_jsonl_task,
    read_jsonl,
)
from rewardlab.types import Problem

ASSETS = Path(__file__).resolve().parents[1] / "assets"
GSM8K_FILE = ASSETS / "gsm8k_test_excerpt.jsonl"
MATH_FILE = ASSETS / "math500_excerpt.jsonl"
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def write(tmp_path: Path, *lines: str, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_gsm8k_excerpt() -> None:
    problems = load_jsonl_task(GSM8K_FILE)
    assert len(problems) == 20
    assert [p.id for p in problems[:3]] == ["gsm8k-0", "gsm8k-1", "gsm8k-2"]
    first = problems[0]
    assert first.task == "gsm8k"
    assert first.answer == "18"
    assert first.question.startswith("Janet\u2019s ducks lay 16 eggs per day.")
    assert first.meta["solution"].endswith("#### 18")
    assert first.meta["source"] == GSM8K_FILE.name
    assert first.meta["line"] == 0
    assert "difficulty" not in first.meta
    assert all("####" not in p.answer and p.answer for p in problems)


def test_math_excerpt() -> None:
    problems = load_jsonl_task(MATH_FILE, task="math500")
    assert len(problems) == 20
    first = problems[0]
    assert (first.id, first.task) == ("math500-0", "math500")
    assert first.answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert first.meta["difficulty"] == first.meta["level"] == 2
    assert first.meta["subject"] == "Precalculus"
    assert "\\boxed{" in first.meta["solution"]
    assert {p.meta["difficulty"] for p in problems} <= {1, 2, 3, 4, 5}


def test_detects_the_known_formats() -> None:
    assert detect_format(GSM8K_FILE) == GSM8K
    assert detect_format(MATH_FILE) == MATH
    assert load_jsonl_task(MATH_FILE)[0].task == "math"


def test_ids_are_stable_line_indices(tmp_path: Path) -> None:
    lines = GSM8K_FILE.read_text(encoding="utf-8").splitlines()
    path = write(tmp_path, lines[0], "", lines[1])  # a blank line is skipped, ids keep lines
    assert [p.id for p in load_jsonl_task(path)] == ["gsm8k-0", "gsm8k-2"]


def test_generic_loader_with_named_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        json.dumps({"prompt": "1+1?", "target": "Add them.\nANSWER: 2", "hard": "Level 3", "s": 1}),
        json.dumps({"prompt": "2+2?", "target": "ANSWER: 4", "hard": 1, "s": 2}),
        name="mine.jsonl",
    )
    problems = load_jsonl_task(
        path,
        question_field="prompt",
        answer_field="target",
        answer_marker="ANSWER:",
        difficulty_field="hard",
        meta_fields=("s",),
    )
    assert [(p.id, p.task, p.answer) for p in problems] == [
        ("mine-0", "mine", "2"),
        ("mine-1", "mine", "4"),
    ]
    assert problems[0].meta["difficulty"] == 3  # "Level 3" -> 3
    assert problems[0].meta["solution"] == "Add them.\nANSWER: 2"
    assert problems[1].meta["s"] == 2


def test_numeric_answers_become_text(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps({"q": "x?", "a": 42}))
    assert load_jsonl_task(path, question_field="q", answer_field="a")[0].answer == "42"


OK = '{"question": "q", "answer": "#### 1"}'
MALFORMED = [
    ([OK, '{"question": "q", "answer": '], ":2: invalid JSON"),
    (['["question", "answer"]'], ":1: expected a JSON object, got list"),
    ([OK, '{"question": "q"}'], ":2: missing field(s) ['answer']"),
    (['{"question": "q", "answer": "no marker"}'], ":1: no final answer after '####'"),
    (['{"question": "q", "answer": "1 ####  "}'], ":1: no final answer after '####'"),
    (['{"question": "", "answer": "#### 1"}'], ":1: field 'question' is empty"),
    (['{"question": ["q"], "answer": "#### 1"}'], ":1: field 'question' must be text, got list"),
    (['{"question": "q", "answer": true}'], ":1: field 'answer' must be text, got bool"),
]


@pytest.mark.parametrize(("lines", "message"), MALFORMED)
def test_malformed_records_name_file_and_line(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    path = write(tmp_path, *lines)
    with pytest.raises(JsonlError) as err:
        load_jsonl_task(path)
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)


def test_unknown_format_is_explained(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps({"question": "q", "ground_truth": "A: 1"}))
    with pytest.raises(JsonlError, match=r":1: fields \['ground_truth', 'question'\] match no"):
        load_jsonl_task(path)
    with pytest.raises(JsonlError, match="pool_import"):
        load_jsonl_task(path)
    with pytest.raises(JsonlError, match="no records"):
        load_jsonl_task(write(tmp_path, "", name="empty.jsonl"))


def test_field_options_need_question_field() -> None:
    with pytest.raises(ValueError, match="question_field"):
        load_jsonl_task(GSM8K_FILE, answer_marker="####")


def test_read_jsonl_yields_line_indices(tmp_path: Path) -> None:
    path = write(tmp_path, '{"a": 1}', "  ", '{"a": 2}')
    assert list(read_jsonl(path)) == [(0, {"a": 1}), (2, {"a": 2})]


def test_excerpts_are_the_first_lines_of_the_full_files() -> None:
    """Optional: only where ../shared/data exists (the excerpts are verbatim prefixes)."""
    if not SHARED.exists():
        pytest.skip("../shared/data not present")
    for excerpt, full in [
        (GSM8K_FILE, SHARED / "gsm8k" / "test.jsonl"),
        (MATH_FILE, SHARED / "math500" / "test.jsonl"),
    ]:
        problems = load_jsonl_task(full)
        assert len(problems) == {"gsm8k": 1319, "math": 500}[problems[0].task]
        assert [_strip(p) for p in load_jsonl_task(excerpt)] == [_strip(p) for p in problems[:20]]


def _strip(p: Problem) -> tuple[object, ...]:
    return p.id, p.question, p.answer, p.task, {k: v for k, v in p.meta.items() if k != "source"}
