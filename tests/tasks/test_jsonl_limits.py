"""Input-size limits of task files: a huge line or question is an error naming the line, read
with bounded memory (never the unbounded growth a 20 MB question caused)."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from rewardlab.tasks.jsonl import (
    MAX_QUESTION_CHARS,
    JsonlError,
    load_jsonl_task,
    read_jsonl,
)

GOOD = json.dumps({"question": "What is 2+2?", "answer": "2+2=4 #### 4"})


def test_a_question_over_the_limit_names_its_line(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    q = "x" * (MAX_QUESTION_CHARS + 1)
    f.write_text(GOOD + "\n\n" + json.dumps({"question": q, "answer": "#### 1"}) + "\n")
    with pytest.raises(JsonlError, match=r"t\.jsonl:3: question is 20,001 characters"):
        load_jsonl_task(f)
    assert len(load_jsonl_task(f, max_question_chars=MAX_QUESTION_CHARS + 1)) == 2


def test_a_question_at_the_limit_is_accepted(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps({"question": "x" * MAX_QUESTION_CHARS, "answer": "#### 1"}) + "\n")
    assert len(load_jsonl_task(f)[0].question) == MAX_QUESTION_CHARS


def test_a_20_mb_line_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    f = tmp_path / "big.jsonl"
    with f.open("w") as fh:
        fh.write(GOOD + "\n" + '{"question": "')
        for _ in range(100):
            fh.write("9+" * 100_000)  # 20 MB in all, never one string
        fh.write('1", "answer": "#### 1"}\n')
    tracemalloc.start()
    try:
        with pytest.raises(JsonlError, match=r"big\.jsonl:2: line longer than 1,000,000 bytes"):
            list(read_jsonl(f, max_line_bytes=1_000_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3_000_000  # about the 1 MB limit, far from the 20 MB line


def test_bad_bytes_and_deep_json_name_the_line(tmp_path: Path) -> None:
    f = tmp_path / "b.jsonl"
    f.write_bytes(GOOD.encode() + b"\n\xff\xfe{}\n")
    with pytest.raises(JsonlError, match=r"b\.jsonl:2: not UTF-8"):
        load_jsonl_task(f)
    f.write_text(GOOD + "\n" + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(JsonlError, match=r"b\.jsonl:2: JSON nested too deeply"):
        load_jsonl_task(f)
