"""Preference and rating data on disk: JSONL or Parquet, validated row by row.

Two training formats (TRL's, see DESIGN.md "Formats we speak"):

- **pairwise**: ``prompt``, ``chosen``, ``rejected`` (strings), optional ``margin`` (a number:
  the preference strength, e.g. HelpSteer2's |strength| in {1, 2, 3});
- **rating**: ``prompt``, ``response`` (strings), ``rating`` (a number).

Every malformed row raises :class:`DataError` naming the file and the line (JSONL: the 1-based
line number; Parquet: the 1-based row number), never a silent skip. Other columns are kept in
``extra`` (``subset``, ``problem_id`` ...), so evaluation files with more fields read through the
same code (:func:`read_records` is the shared reader).

>>> rows = read_pairs("prefs.jsonl")  # doctest: +SKIP
>>> rows[0].chosen, rows[0].margin  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """A malformed row: the message starts with ``<file>:<line>:``."""


@dataclass(frozen=True)
class Record:
    """One raw row and where it came from (for error messages)."""

    data: Mapping[str, Any]
    source: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(frozen=True)
class PairRow:
    """A pairwise preference: ``chosen`` is preferred to ``rejected`` for ``prompt``."""

    prompt: str
    chosen: str
    rejected: str
    margin: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RatingRow:
    """A scalar rating of one response (HelpSteer2-style Likert score, correctness ...)."""

    prompt: str
    response: str
    rating: float
    extra: Mapping[str, Any] = field(default_factory=dict)


def _jsonl_records(path: Path) -> Iterator[Record]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{i}: not valid JSON ({e.msg})") from None
            if not isinstance(data, dict):
                raise DataError(f"{path}:{i}: expected a JSON object, got {type(data).__name__}")
            yield Record(data, str(path), i)


def _parquet_records(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    for i, row in enumerate(table.to_pylist(), start=1):
        yield Record(row, str(path), i)


def read_records(path: str | Path) -> list[Record]:
    """All rows of a ``.jsonl``/``.json``/``.jsonl.gz`` (one object per line) or ``.parquet``
    file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no data file at {p}")
    if p.suffix == ".parquet":
        return list(_parquet_records(p))
    if p.suffix in (".jsonl", ".json") or p.name.endswith(".jsonl.gz"):
        return list(_jsonl_records(p))
    raise DataError(f"{p}: unknown data format {p.suffix!r}; use .jsonl(.gz) or .parquet")


def require_str(rec: Record, key: str) -> str:
    """``rec[key]`` as a string, or a DataError naming the file, line and field."""
    if key not in rec.data or rec.data[key] is None:
        raise DataError(f"{rec.where}: missing field {key!r} (has {sorted(rec.data)})")
    value = rec.data[key]
    if not isinstance(value, str):
        raise DataError(f"{rec.where}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def require_str_list(rec: Record, key: str, min_len: int = 1) -> list[str]:
    """``rec[key]`` as a non-empty list of strings (a bare string counts as a 1-element list)."""
    if key not in rec.data or rec.data[key] is None:
        raise DataError(f"{rec.where}: missing field {key!r} (has {sorted(rec.data)})")
    value = rec.data[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{rec.where}: field {key!r} must be a list of strings")
    if len(value) < min_len:
        raise DataError(f"{rec.where}: field {key!r} needs >= {min_len} entries, has {len(value)}")
    return list(value)


def optional_number(rec: Record, key: str) -> float | None:
    """``rec[key]`` as a finite float, None when absent; a DataError when not a number."""
    value = rec.data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataError(f"{rec.where}: field {key!r} must be a finite number, got {value!r}")
    return float(value)


def _extra(rec: Record, used: Sequence[str]) -> dict[str, Any]:
    return {k: v for k, v in rec.data.items() if k not in used}


def parse_pair(rec: Record) -> PairRow:
    """A :class:`PairRow` from one record (TRL pairwise format).

    Conversational rows (TRL message lists, implicit or explicit prompt) and HH-RLHF raw rows
    (whole dialogues, no ``prompt``) go through :mod:`rewardlab.train.pref_chat`: the shared
    dialogue prefix becomes the prompt, rendered in HH markup.
    """
    from rewardlab.train import pref_chat

    if pref_chat.is_chat_record(rec.data):
        return pref_chat.to_pair_row(pref_chat.chat_pair_from_record(rec))
    used = ("prompt", "chosen", "rejected", "margin")
    return PairRow(
        prompt=require_str(rec, "prompt"),
        chosen=require_str(rec, "chosen"),
        rejected=require_str(rec, "rejected"),
        margin=optional_number(rec, "margin"),
        extra=_extra(rec, used),
    )


def parse_rating(rec: Record) -> RatingRow:
    """A :class:`RatingRow` from one record (rating format)."""
    rating = optional_number(rec, "rating")
    if rating is None:
        raise DataError(f"{rec.where}: missing field 'rating' (has {sorted(rec.data)})")
    return RatingRow(
        prompt=require_str(rec, "prompt"),
        response=require_str(rec, "response"),
        rating=rating,
        extra=_extra(rec, ("prompt", "response", "rating")),
    )


def pair_form(data: Mapping[str, Any]) -> str:
    """``"conversational"`` (TRL message lists or HH-RLHF raw dialogues) or ``"explicit"``
    (string ``prompt`` / ``chosen`` / ``rejected``): the row shape :func:`parse_pair` reads."""
    from rewardlab.train import pref_chat

    return "conversational" if pref_chat.is_chat_record(data) else "explicit"


def parse_pairs(records: Sequence[Record]) -> tuple[list[PairRow], str]:
    """Every record as a :class:`PairRow`, and the file's form (:func:`pair_form`).

    The form is detected per row; a file must use one. A file that mixes forms raises a
    :class:`DataError` naming the first row of each, and a malformed row one naming its line.
    """
    forms = [pair_form(r.data) for r in records]
    if len(set(forms)) > 1:
        odd = next(i for i, f in enumerate(forms) if f != forms[0])
        names = {"conversational": "conversational (message lists or HH-RLHF dialogues)"}
        names["explicit"] = "explicit-prompt (string prompt, chosen, rejected)"
        raise DataError(
            f"{records[odd].where}: this row is {names[forms[odd]]} but row "
            f"{records[0].line} is {names[forms[0]]}; a file holds one form"
        )
    return [parse_pair(r) for r in records], forms[0] if forms else "explicit"


def read_pairs(path: str | Path) -> list[PairRow]:
    """Pairwise rows of a file, in either form (one per file); raises :class:`DataError` at the
    first malformed row."""
    rows, _ = parse_pairs(read_records(path))
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def read_ratings(path: str | Path) -> list[RatingRow]:
    """Rating rows of a file; raises :class:`DataError` at the first malformed row."""
    rows = [parse_rating(r) for r in read_records(path)]
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def data_format(path: str | Path) -> str:
    """``"pairwise"`` or ``"rating"``, from the first row's fields."""
    records = read_records(path)
    if not records:
        raise DataError(f"{path}: no rows")
    first = records[0]
    if {"chosen", "rejected"} <= set(first.data):
        return "pairwise"
    if {"response", "rating"} <= set(first.data):
        return "rating"
    raise DataError(
        f"{first.where}: neither pairwise (prompt, chosen, rejected) nor rating "
        f"(prompt, response, rating) format; fields are {sorted(first.data)}"
    )


def write_jsonl(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write dict rows as JSON lines (parent directories created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return p
