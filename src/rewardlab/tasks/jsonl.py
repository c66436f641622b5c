"""Problems from JSONL files: GSM8K style, MATH(-500) style, or any fields you name.

Known formats (one JSON object per line):

- ``gsm8k``: ``{"question", "answer"}``; the final answer follows the last ``####`` in
  ``answer`` (the whole field is the reference solution).
- ``math``: ``{"problem", "solution", "answer", "subject", "level"}`` (MATH-500, PRM800K).

Every problem gets a stable id ``<task>-<line index>`` (0-based line of the file, so the first
GSM8K test problem is ``gsm8k-0``) and ``meta`` with ``source`` (the file name), ``line``, the
full reference ``solution`` and, for MATH, ``difficulty`` (= ``level``) and ``subject``. Blank
lines are skipped; anything else that is not a well-formed record raises :class:`JsonlError`
naming the file and the 1-based line: nothing is dropped silently.

Input sizes are bounded, so one bad line can never take unbounded memory or time: a line is
read at most :data:`MAX_LINE_BYTES` (16 MiB) at a time and a longer one is an error, and a
question longer than :data:`MAX_QUESTION_CHARS` (20,000 characters; GSM8K's longest is under
1,000, MATH-500's under 5,000) is an error at load time, naming the line (raise it with
``max_question_chars``). Text that is not UTF-8 and JSON nested too deeply to parse are errors
naming the line too.

>>> problems = load_jsonl_task("tests/assets/gsm8k_test_excerpt.jsonl")
>>> problems[0].id, problems[0].answer, problems[0].task
('gsm8k-0', '18', 'gsm8k')
>>> load_jsonl_task("tests/assets/math500_excerpt.jsonl", task="math500")[1].meta["difficulty"]
5
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.types import Problem

PathLike = str | Path

#: Longest line read as one record (bytes); a longer line is a :class:`JsonlError`.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: Longest question accepted (characters); a longer one is a :class:`JsonlError`.
MAX_QUESTION_CHARS = 20_000


class JsonlError(ValueError):
    """A malformed JSONL file; the message starts with ``<file>:<line>:``."""


@dataclass(frozen=True)
class JsonlFormat:
    """Where a problem's parts are in a record.

    ``answer_marker``: when set, the answer is the text after the last occurrence of this marker
    in ``answer_field`` (GSM8K's ``####``) and the whole field is kept as ``meta["solution"]``
    (unless ``solution_field`` names another field).
    ``solution_field`` / ``difficulty_field``: optional fields copied to ``meta["solution"]`` /
    ``meta["difficulty"]``. ``meta_fields``: further fields copied to ``meta`` under their names.
    All named fields are required in every record.
    """

    task: str
    question_field: str
    answer_field: str
    answer_marker: str | None = None
    solution_field: str | None = None
    difficulty_field: str | None = None
    meta_fields: tuple[str, ...] = ()

    def required(self) -> tuple[str, ...]:
        """Every field a record of this format must have."""
        named = (self.question_field, self.answer_field, self.solution_field, self.difficulty_field)
        fields = [f for f in named if f is not None] + list(self.meta_fields)
        return tuple(dict.fromkeys(fields))


GSM8K = JsonlFormat("gsm8k", "question", "answer", answer_marker="####")
MATH = JsonlFormat(
    "math",
    "problem",
    "answer",
    solution_field="solution",
    difficulty_field="level",
    meta_fields=("subject", "level"),
)
KNOWN_FORMATS: tuple[JsonlFormat, ...] = (GSM8K, MATH)


def read_jsonl(
    path: PathLike, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(0-based line index, record)`` for every non-blank line of ``path``.

    At most ``max_line_bytes + 1`` bytes of a line are ever held in memory.

    Raises:
        JsonlError: a line is longer than ``max_line_bytes``, not UTF-8, not valid JSON,
            nested too deeply, or not a JSON object (names file and line).
    """
    path = Path(path)
    with path.open("rb") as f:
        index = 0
        while raw := f.readline(max_line_bytes + 1):
            at = where(path, index)
            if len(raw) > max_line_bytes:
                raise JsonlError(
                    f"{at}: line longer than {max_line_bytes:,} bytes, the limit for one record"
                )
            if raw.strip():
                yield index, _record(raw, at)
            index += 1


def _record(raw: bytes, at: str) -> dict[str, Any]:
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise JsonlError(f"{at}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    except json.JSONDecodeError as e:
        raise JsonlError(f"{at}: invalid JSON ({e.msg})") from None
    except RecursionError:
        raise JsonlError(f"{at}: JSON nested too deeply to read") from None
    if not isinstance(record, dict):
        raise JsonlError(f"{at}: expected a JSON object, got {type(record).__name__}")
    return record


def where(path: PathLike, index: int) -> str:
    """``<file>:<1-based line>``, the prefix of every error message."""
    return f"{Path(path)}:{index + 1}"


def require(record: Mapping[str, Any], fields: tuple[str, ...], at: str) -> None:
    """Raise :class:`JsonlError` naming every field of ``fields`` missing from ``record``."""
    missing = [f for f in fields if f not in record]
    if missing:
        raise JsonlError(f"{at}: missing field(s) {missing}; the record has {sorted(record)}")


def text_field(record: Mapping[str, Any], field: str, at: str, allow_empty: bool = False) -> str:
    """A field as text: strings as they are, numbers (not bools) as ``str``; else JsonlError."""
    value = record[field]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise JsonlError(f"{at}: field {field!r} must be text, got {type(value).__name__}")
    text = value if isinstance(value, str) else str(value)
    if not allow_empty and not text.strip():
        raise JsonlError(f"{at}: field {field!r} is empty")
    return text


def final_answer(text: str, marker: str, at: str) -> str:
    """The text after the last ``marker`` in ``text``, stripped (``"... #### 18"`` -> ``"18"``)."""
    _, found, tail = text.rpartition(marker)
    if not found or not tail.strip():
        raise JsonlError(f"{at}: no final answer after {marker!r} in {text[-80:]!r}")
    return tail.strip()


def _difficulty(value: Any) -> Any:
    """MATH levels as ints: ``3`` stays ``3``, ``"Level 3"`` becomes ``3``; others unchanged."""
    if isinstance(value, str) and (m := re.fullmatch(r"\s*Level\s+(\d+)\s*", value)):
        return int(m.group(1))
    return value


def _problem(
    record: dict[str, Any],
    fmt: JsonlFormat,
    task: str,
    path: Path,
    index: int,
    max_question_chars: int = MAX_QUESTION_CHARS,
) -> Problem:
    at = where(path, index)
    require(record, fmt.required(), at)
    answer = text_field(record, fmt.answer_field, at)
    meta: dict[str, Any] = {"source": path.name, "line": index}
    if fmt.answer_marker is not None:
        meta["solution"] = answer
        answer = final_answer(answer, fmt.answer_marker, at)
    if fmt.solution_field is not None:
        meta["solution"] = text_field(record, fmt.solution_field, at, allow_empty=True)
    if fmt.difficulty_field is not None:
        meta["difficulty"] = _difficulty(record[fmt.difficulty_field])
    for field in fmt.meta_fields:
        meta[field] = record[field]
    question = text_field(record, fmt.question_field, at)
    if len(question) > max_question_chars:
        raise JsonlError(
            f"{at}: question is {len(question):,} characters, over the limit of "
            f"{max_question_chars:,} (raise it with max_question_chars)"
        )
    return Problem(
        id=f"{task}-{index}",
        question=question,
        answer=answer.strip(),
        task=task,
        meta=meta,
    )


def load_with_format(
    path: PathLike,
    fmt: JsonlFormat,
    task: str | None = None,
    max_question_chars: int = MAX_QUESTION_CHARS,
) -> list[Problem]:
    """Load every record of ``path`` with ``fmt``; ``task`` overrides ``fmt.task``."""
    path = Path(path)
    return [
        _problem(r, fmt, task or fmt.task, path, i, max_question_chars) for i, r in read_jsonl(path)
    ]


def load_jsonl_task(
    path: PathLike,
    *,
    task: str | None = None,
    question_field: str | None = None,
    answer_field: str = "answer",
    answer_marker: str | None = None,
    solution_field: str | None = None,
    difficulty_field: str | None = None,
    meta_fields: tuple[str, ...] = (),
    max_question_chars: int = MAX_QUESTION_CHARS,
) -> list[Problem]:
    """Load the problems of a JSONL file (questions up to ``max_question_chars``).

    Without ``question_field`` the format is detected from the first record (GSM8K or MATH,
    see the module docstring; :func:`detect_format`). With it, the named fields are used (see
    :class:`JsonlFormat`). ``task`` names the task: default the format's (``"gsm8k"``,
    ``"math"``) or, for named fields, the file's stem.

    Raises:
        JsonlError: malformed JSON, a non-object line, a missing or non-text field, no
            answer after ``answer_marker``, a line or question over the size limits (the
            message names the file and line); for detection, a first record of no known
            format.
        ValueError: field options given without ``question_field``.
    """
    if question_field is None:
        named = (answer_field != "answer", answer_marker, solution_field, difficulty_field)
        if any(named) or meta_fields:
            raise ValueError("name question_field too: without it the format is detected")
        return load_with_format(path, detect_format(path), task, max_question_chars)
    fmt = JsonlFormat(
        task=task or Path(path).stem,
        question_field=question_field,
        answer_field=answer_field,
        answer_marker=answer_marker,
        solution_field=solution_field,
        difficulty_field=difficulty_field,
        meta_fields=meta_fields,
    )
    return load_with_format(path, fmt, max_question_chars=max_question_chars)


def detect_format(path: PathLike) -> JsonlFormat:
    """The known format whose required fields the first record has.

    Raises:
        JsonlError: an empty file, or a first record matching no known format.
    """
    for index, record in read_jsonl(path):
        for fmt in KNOWN_FORMATS:
            if all(f in record for f in fmt.required()):
                return fmt
        hint = ""
        if "candidates" in record or "ground_truth" in record:
            hint = " (a candidate pool? use rewardlab.tasks.pool_import.import_pool)"
        raise JsonlError(
            f"{where(path, index)}: fields {sorted(record)} match no known format "
            f"({', '.join(f'{f.task}: {list(f.required())}' for f in KNOWN_FORMATS)}){hint}; "
            "name the fields with load_jsonl_task"
        )
    raise JsonlError(f"{Path(path)}: no records")
