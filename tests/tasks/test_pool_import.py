"""Bring-your-own-pool import, from the GSM8K example-solutions excerpt and a generic file.

Run: .venv/bin/pytest tests/tasks/test_pool_import.py
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from rewardlab.rewards.math_answer import MathVerifyReward, extract_answer
from rewardlab.tasks.jsonl import JsonlError, load_jsonl_task
from rewardlab.tasks.pool_import import (
    EXAMPLE_MODELS,
    Disagreement,
    import_pool,
    label_disagreements,
)
from rewardlab.types import Candidate, Problem, Score

ASSETS = Path(__file__).resolve().parents[1] / "assets"
EXAMPLE = ASSETS / "gsm8k_model_solutions_excerpt.jsonl"
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def last_number(text: str) -> str | None:
    """A stand-in extractor, so format tests do not depend on Math-Verify."""
    words = [w.strip(".$") for w in text.split()]
    numbers = [w for w in words if w.lstrip("-").isdigit()]
    return numbers[-1] if numbers else None


def write(tmp_path: Path, *records: Any) -> Path:
    path = tmp_path / "pool.jsonl"
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_example_excerpt_mapping() -> None:
    problems, pool = import_pool(EXAMPLE, extract_answer=extract_answer)
    assert len(problems) == len(pool) == 30
    assert all(len(row) == 4 for row in pool)
    p, c = problems[0], pool[0][0]
    assert (p.id, p.task, p.answer) == ("gsm8k-0", "gsm8k", "18")
    assert p.meta["solution"].endswith("A: 18")
    assert p.meta["source"] == EXAMPLE.name
    assert (c.problem_id, c.index, c.segmentation) == ("gsm8k-0", 0, "lines")
    assert c.steps == tuple(line.strip() for line in c.text.splitlines() if line.strip())
    assert c.answer == "26"
    assert (c.prompt_tokens, c.generated_tokens) == (0, 0)
    assert c.meta == {
        "source": EXAMPLE.name,
        "model": "6b_finetuning",
        "is_correct": False,
        "tokens_absent": True,
    }
    assert [c.meta["model"] for c in pool[3]] == list(EXAMPLE_MODELS)
    assert [c.index for c in pool[3]] == [0, 1, 2, 3]
    labels = [c.meta["is_correct"] for row in pool for c in row]
    assert (len(labels), sum(labels)) == (120, 38)


def test_example_ids_match_the_gsm8k_test_set() -> None:
    problems, _ = import_pool(EXAMPLE, extract_answer=last_number)
    tests = load_jsonl_task(ASSETS / "gsm8k_test_excerpt.jsonl")
    for imported, test in zip(problems, tests, strict=False):
        assert imported.id == test.id
        assert (imported.question, imported.answer) == (test.question, test.answer)


def test_excerpt_labels_agree_with_math_verify() -> None:
    problems, pool = import_pool(EXAMPLE, extract_answer=extract_answer)
    assert label_disagreements(problems, pool, MathVerifyReward().score) == []


def test_disagreements_are_reported() -> None:
    problems, pool = import_pool(EXAMPLE, extract_answer=last_number)

    def contrary(ps: Sequence[Problem], cs: Sequence[Candidate]) -> list[Score]:
        out = []
        for c in cs:
            if c.problem_id == "gsm8k-1" and c.index == 2:
                out.append(Score.ungraded("timeout"))
            elif c.problem_id == "gsm8k-0":
                out.append(Score(0.0 if c.meta["is_correct"] else 1.0, info={"answer": "x"}))
            else:
                out.append(Score(1.0 if c.meta["is_correct"] else 0.0))
        return out

    found = label_disagreements(problems, pool, contrary)
    assert [(d.problem_id, d.candidate_index) for d in found] == [
        ("gsm8k-0", 0),
        ("gsm8k-0", 1),
        ("gsm8k-0", 2),
        ("gsm8k-0", 3),
        ("gsm8k-1", 2),
    ]
    assert found[0] == Disagreement("gsm8k-0", 0, False, True, "x")
    label = pool[1][2].meta["is_correct"]
    assert found[4] == Disagreement("gsm8k-1", 2, label, None, pool[1][2].answer, "timeout")


GENERIC = {
    "id": "q-1",
    "question": "What is 6 * 7?",
    "answer": " 42 ",
    "meta": {"difficulty": 1},
    "candidates": [
        {
            "text": "6 * 7 = 42.\n\nThe answer is 42.",
            "scores": {"my-prm": 0.9, "judge": 1},
            "prompt_tokens": 12,
            "generated_tokens": 15,
            "is_correct": True,
        },
        {"text": "The answer is 41.", "meta": {"finish_reason": "length"}},
    ],
}


def test_generic_format(tmp_path: Path) -> None:
    second = {"question": "1 + 1?", "answer": "2", "task": "toy", "candidates": []}
    problems, pool = import_pool(write(tmp_path, GENERIC, second), extract_answer=last_number)
    p, (a, b) = problems[0], pool[0]
    assert (p.id, p.task, p.answer, p.meta["difficulty"]) == ("q-1", "imported", "42", 1)
    assert (problems[1].id, problems[1].task, pool[1]) == ("toy-1", "toy", [])
    assert a.steps == ("6 * 7 = 42.", "The answer is 42.")
    assert (a.segmentation, a.answer) == ("paragraphs", "42")
    assert (a.prompt_tokens, a.generated_tokens) == (12, 15)
    assert a.meta == {
        "source": "pool.jsonl",
        "scores": {"my-prm": 0.9, "judge": 1.0},
        "is_correct": True,
        "tokens_absent": False,
    }
    assert (b.answer, b.index, b.prompt_tokens) == ("41", 1, 0)
    assert b.meta == {"source": "pool.jsonl", "finish_reason": "length", "tokens_absent": True}
    assert label_disagreements(problems, pool, MathVerifyReward().score) == []  # b has no label


def test_options(tmp_path: Path) -> None:
    path = write(tmp_path, GENERIC)
    problems, pool = import_pool(path, extract_answer=last_number, segmentation="lines", task="t")
    assert pool[0][0].steps == ("6 * 7 = 42.", "The answer is 42.")
    assert pool[0][0].segmentation == "lines"
    problems, _ = import_pool(path, extract_answer=last_number, fmt="generic")
    assert problems[0].task == "imported"
    with pytest.raises(JsonlError, match="unknown field"):
        import_pool(path, extract_answer=last_number, fmt="gsm8k-example")
    with pytest.raises(ValueError, match="unknown pool format"):
        import_pool(path, extract_answer=last_number, fmt="vllm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown step segmentation"):
        import_pool(path, extract_answer=last_number, segmentation="sentences")


def _with(candidate: Any = None, **fields: Any) -> dict[str, Any]:
    record = {**GENERIC, **fields}
    if candidate is not None:
        record["candidates"] = [candidate]
    return record


BAD_RECORDS = [
    (_with(extra=1), ":1: unknown field(s) ['extra']"),
    (_with(candidate={"text": "x", "score": 1}), ":1: candidate 0: unknown field(s) ['score']"),
    (_with(candidate={"scores": {}}), ":1: candidate 0: missing field(s) ['text']"),
    (_with(candidate={"text": "x", "scores": {"a": "high"}}), "'scores' must map"),
    (_with(candidate={"text": "x", "is_correct": 1}), "'is_correct' must be true or false"),
    (_with(candidate={"text": "x", "generated_tokens": -3}), "'generated_tokens' must be an int"),
    (_with(candidates="text"), "'candidates' must be a list"),
    (_with(candidate="just text"), "a candidate must be an object"),
    ({"question": "q", "candidates": []}, ":1: missing field(s) ['answer']"),
    ({"question": "q", "answer": "1"}, ":1: fields ['answer', 'question'] match no pool format"),
]


@pytest.mark.parametrize(("record", "message"), BAD_RECORDS)
def test_malformed_records_name_file_and_line(tmp_path: Path, record: Any, message: str) -> None:
    path = write(tmp_path, record)
    with pytest.raises(JsonlError) as err:
        import_pool(path, extract_answer=last_number)
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)


def test_errors_on_later_lines(tmp_path: Path) -> None:
    path = write(tmp_path, GENERIC, GENERIC)
    with pytest.raises(JsonlError, match=r":2: duplicate id 'q-1' \(first on line 1\)"):
        import_pool(path, extract_answer=last_number)
    path = write(tmp_path, GENERIC, "{not json")
    with pytest.raises(JsonlError, match=":2: invalid JSON"):
        import_pool(path, extract_answer=last_number)
    example = json.loads(EXAMPLE.read_text(encoding="utf-8").splitlines()[0])
    del example["175b_verification"]
    with pytest.raises(JsonlError, match=r":1: missing field\(s\) \['175b_verification'\]"):
        import_pool(write(tmp_path, example), extract_answer=last_number)
    example = {**json.loads(EXAMPLE.read_text(encoding="utf-8").splitlines()[0]), "note": 1}
    with pytest.raises(JsonlError, match=r":1: unknown field\(s\) \['note'\]"):
        import_pool(write(tmp_path, example), extract_answer=last_number)


def test_label_disagreements_checks_alignment() -> None:
    problems, pool = import_pool(EXAMPLE, extract_answer=last_number)
    with pytest.raises(ValueError, match="candidate lists"):
        label_disagreements(problems, pool[:-1], MathVerifyReward().score)
    with pytest.raises(ValueError, match="listed under problem"):
        label_disagreements(problems[1:2], pool[:1], MathVerifyReward().score)


@pytest.mark.slow
def test_full_example_file_has_no_disagreements() -> None:
    """Optional: the count reported in docs/pool_import.md (only where ../shared/data exists)."""
    full = SHARED / "gsm8k" / "example_model_solutions.jsonl"
    if not full.exists():
        pytest.skip("../shared/data not present")
    problems, pool = import_pool(full, extract_answer=extract_answer)
    assert (len(problems), sum(len(row) for row in pool)) == (1319, 5276)
    assert label_disagreements(problems, pool, MathVerifyReward().score) == []
