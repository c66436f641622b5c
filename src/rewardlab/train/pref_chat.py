"""Conversational preference data: Anthropic HH-RLHF as it ships, and TRL's conversational format.

Three row shapes are read (and the last two written), all to one :class:`ChatPair`:

- **HH-RLHF raw** (Bai et al. 2022): ``chosen`` and ``rejected`` are whole dialogues as text,
  ``"\\n\\nHuman: …\\n\\nAssistant: …"``, that share every turn but the final assistant
  turn(s). :func:`split_pair` cuts the shared prefix off.
- **TRL conversational, implicit prompt**: ``chosen`` / ``rejected`` are message lists
  ``[{"role": "user", "content": …}, {"role": "assistant", …}]`` holding the whole dialogue;
  the shared prefix is split off the same way.
- **TRL conversational, explicit prompt**: ``prompt`` is the message list up to the last user
  turn, ``chosen`` / ``rejected`` the assistant message(s) after it.

and :func:`to_pair_row` turns a pair into today's explicit-prompt *string* form
(:class:`~rewardlab.train.pref_io.PairRow`) by rendering in HH's own markup, so that for an HH
row ``prompt + chosen`` is the original ``chosen`` text, byte for byte.

The split rule: the prompt is the longest common message prefix of the two dialogues, cut back
to end at a user turn; both remainders must be non-empty and hold only assistant messages.
Five of the 2,312 rows of ``harmless-base-test`` end in two consecutive assistant turns on one
side; they keep both (a completion is a tuple of messages, as in TRL). Anything else (the two
dialogues differ before the last user turn, a remainder with a user turn, text before the first
turn) is a :class:`~rewardlab.train.pref_io.DataError` naming the file and line.

Splits are **dialogue-disjoint** (:func:`dialogue_split`): the dialogue id is a hash of the
first user turn, so two pairs that open the same conversation always land on the same side.

>>> pair = split_pair(parse_hh("\\n\\nHuman: hi\\n\\nAssistant: hello"),
...                   parse_hh("\\n\\nHuman: hi\\n\\nAssistant: go away"))
>>> [m.content for m in pair[0]], pair[1][0].content, pair[2][0].content
(['hi'], 'hello', 'go away')
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.train.pref_io import DataError, PairRow, Record, optional_number

ROLES = ("system", "user", "assistant")
HH_NAMES = {"user": "Human", "assistant": "Assistant", "system": "System"}
_HH_ROLE = {v: k for k, v in HH_NAMES.items()}
_HH_TURN = re.compile(r"\n\n(Human|Assistant|System): ")


@dataclass(frozen=True)
class Message:
    """One turn of a dialogue (TRL / OpenAI chat roles)."""

    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; expected one of {ROLES}")


Dialogue = tuple[Message, ...]


@dataclass(frozen=True)
class ChatPair:
    """A conversational preference: ``chosen`` is preferred to ``rejected`` after ``prompt``.

    ``prompt`` ends with a user turn; ``chosen`` and ``rejected`` hold one or more assistant
    messages. ``margin`` is optional preference strength; ``extra`` keeps the other columns.
    """

    prompt: Dialogue
    chosen: Dialogue
    rejected: Dialogue
    margin: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dialogue_id(self) -> str:
        """A stable id of the conversation: 12 hex digits of sha1(first user turn, stripped)."""
        first = next((m.content for m in self.prompt if m.role == "user"), "")
        return hashlib.sha1(first.strip().encode("utf-8")).hexdigest()[:12]


# ------------------------------------------------------------------------------ HH markup


def parse_hh(text: str) -> Dialogue:
    """Messages of an HH-RLHF dialogue string (``"\\n\\nHuman: …\\n\\nAssistant: …"``).

    Raises ValueError when the text does not start with a turn marker (nothing is dropped).
    ``render_hh(parse_hh(t)) == t`` for every such text.
    """
    parts = _HH_TURN.split(text)
    if parts[0]:
        raise ValueError(f"text before the first turn marker: {parts[0][:40]!r}")
    if len(parts) < 3:
        raise ValueError("no '\\n\\nHuman: ' / '\\n\\nAssistant: ' turn in the text")
    msgs = [Message(_HH_ROLE[parts[i]], parts[i + 1]) for i in range(1, len(parts), 2)]
    return tuple(msgs)


def render_hh(messages: Iterable[Message]) -> str:
    """The inverse of :func:`parse_hh`: ``"\\n\\nHuman: …"`` per message.

    >>> render_hh((Message("user", "hi"), Message("assistant", "hello")))
    '\\n\\nHuman: hi\\n\\nAssistant: hello'
    """
    return "".join(f"\n\n{HH_NAMES[m.role]}: {m.content}" for m in messages)


def split_pair(chosen: Sequence[Message], rejected: Sequence[Message]) -> tuple[Dialogue, ...]:
    """``(prompt, chosen_tail, rejected_tail)`` of two whole dialogues (the rule in the module
    docstring); ValueError saying what is wrong otherwise."""
    k = 0
    while k < min(len(chosen), len(rejected)) and chosen[k] == rejected[k]:
        k += 1
    while k > 0 and chosen[k - 1].role != "user":
        k -= 1
    if k == 0:
        raise ValueError("the two dialogues share no prefix that ends with a user turn")
    c_tail, r_tail = tuple(chosen[k:]), tuple(rejected[k:])
    for name, tail in (("chosen", c_tail), ("rejected", r_tail)):
        if not tail:
            raise ValueError(f"{name} has no turn after the shared prompt")
        roles = {m.role for m in tail}
        if roles != {"assistant"}:
            raise ValueError(
                f"{name} differs from the other dialogue before its final assistant turn(s) "
                f"(its remainder has roles {[m.role for m in tail]})"
            )
    if c_tail == r_tail:
        raise ValueError("chosen and rejected are the same dialogue: no preference to learn")
    return tuple(chosen[:k]), c_tail, r_tail


# ------------------------------------------------------------------------------ records


def _messages(rec: Record, key: str) -> Dialogue:
    value = rec.data.get(key)
    if not isinstance(value, list | tuple) or not value:
        raise DataError(f"{rec.where}: field {key!r} must be a non-empty list of messages")
    out = []
    for j, m in enumerate(value):
        if not isinstance(m, Mapping) or not isinstance(m.get("content"), str):
            raise DataError(f"{rec.where}: {key}[{j}] must be {{'role': …, 'content': str}}")
        try:
            out.append(Message(str(m.get("role")), m["content"]))
        except ValueError as e:
            raise DataError(f"{rec.where}: {key}[{j}]: {e}") from None
    return tuple(out)


def _dialogue(rec: Record, key: str) -> Dialogue:
    value = rec.data.get(key)
    if isinstance(value, str):
        try:
            return parse_hh(value)
        except ValueError as e:
            raise DataError(f"{rec.where}: field {key!r}: {e}") from None
    if value is None:
        raise DataError(f"{rec.where}: missing field {key!r} (has {sorted(rec.data)})")
    return _messages(rec, key)


def is_chat_record(data: Mapping[str, Any]) -> bool:
    """Whether a row is conversational (message lists) or HH raw (no prompt, dialogue text)."""
    chosen = data.get("chosen")
    if isinstance(chosen, list | tuple):
        return True
    return (
        data.get("prompt") is None
        and isinstance(chosen, str)
        and chosen.startswith(("\n\nHuman: ", "\n\nSystem: "))
    )


def chat_pair_from_record(rec: Record) -> ChatPair:
    """A :class:`ChatPair` from an HH raw, TRL implicit- or explicit-prompt conversational row."""
    used = ("prompt", "chosen", "rejected", "margin")
    extra = {k: v for k, v in rec.data.items() if k not in used}
    margin = optional_number(rec, "margin")
    if rec.data.get("prompt") is not None:
        prompt = _messages(rec, "prompt")
        chosen, rejected = _messages(rec, "chosen"), _messages(rec, "rejected")
        if prompt[-1].role != "user":
            raise DataError(f"{rec.where}: the prompt must end with a user turn")
        for name, tail in (("chosen", chosen), ("rejected", rejected)):
            if any(m.role != "assistant" for m in tail):
                raise DataError(f"{rec.where}: {name} must hold assistant messages only")
        if chosen == rejected:
            raise DataError(f"{rec.where}: chosen and rejected are the same: no preference")
        return ChatPair(prompt, chosen, rejected, margin, extra)
    try:
        prompt, chosen, rejected = split_pair(_dialogue(rec, "chosen"), _dialogue(rec, "rejected"))
    except ValueError as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{rec.where}: {e}") from None
    return ChatPair(prompt, chosen, rejected, margin, extra)


def to_pair_row(pair: ChatPair) -> PairRow:
    """The explicit-prompt string form, in HH markup (``prompt + chosen`` = the HH dialogue).

    ``extra`` gains ``dialogue_id``; :func:`chat_pair_from_row` inverts this (HH markup is
    parsed back into messages).
    """
    return PairRow(
        prompt=render_hh(pair.prompt),
        chosen=render_hh(pair.chosen),
        rejected=render_hh(pair.rejected),
        margin=pair.margin,
        extra={**pair.extra, "dialogue_id": pair.dialogue_id},
    )


def chat_pair_from_row(row: PairRow) -> ChatPair:
    """The inverse of :func:`to_pair_row` (ValueError when a field is not HH markup)."""
    extra = {k: v for k, v in row.extra.items() if k != "dialogue_id"}
    return ChatPair(
        parse_hh(row.prompt), parse_hh(row.chosen), parse_hh(row.rejected), row.margin, extra
    )


def _msg_dicts(messages: Dialogue) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def to_trl(pair: ChatPair, *, explicit_prompt: bool = True) -> dict[str, Any]:
    """TRL's conversational preference row: explicit prompt (``prompt``, ``chosen``,
    ``rejected``) or implicit (``chosen`` / ``rejected`` hold the whole dialogue)."""
    row: dict[str, Any]
    if explicit_prompt:
        row = {
            "prompt": _msg_dicts(pair.prompt),
            "chosen": _msg_dicts(pair.chosen),
            "rejected": _msg_dicts(pair.rejected),
        }
    else:
        row = {
            "chosen": _msg_dicts(pair.prompt + pair.chosen),
            "rejected": _msg_dicts(pair.prompt + pair.rejected),
        }
    if pair.margin is not None:
        row["margin"] = pair.margin
    row.update(pair.extra)
    return row


def to_hh(pair: ChatPair) -> dict[str, str]:
    """The HH-RLHF raw row (whole dialogues as text)."""
    return {
        "chosen": render_hh(pair.prompt + pair.chosen),
        "rejected": render_hh(pair.prompt + pair.rejected),
    }


# ------------------------------------------------------------------------------ files


def read_chat_pairs(path: str | Path) -> list[ChatPair]:
    """Every row of a ``.jsonl`` / ``.jsonl.gz`` / ``.parquet`` file of conversational pairs.

    A malformed row raises :class:`DataError` with the file and 1-based line (row) number;
    no row is skipped.
    """
    from rewardlab.train.pref_io import read_records

    records = read_records(path)
    if not records:
        raise DataError(f"{path}: no rows")
    return [chat_pair_from_record(r) for r in records]


def write_rows(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write dict rows to ``.jsonl`` or ``.parquet`` (message lists become list<struct>)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist([dict(r) for r in rows]), p)
    elif p.suffix == ".jsonl":
        with p.open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(dict(r), ensure_ascii=False) + "\n")
    else:
        raise DataError(f"{p}: unknown output format {p.suffix!r}; use .jsonl or .parquet")
    return p


def write_chat_pairs(
    pairs: Sequence[ChatPair], path: str | Path, *, form: str = "conversational"
) -> Path:
    """Write pairs as ``conversational`` (TRL, explicit prompt), ``implicit`` (TRL, whole
    dialogues), ``hh`` (HH raw text) or ``explicit`` (today's string form, HH markup)."""
    if form == "conversational":
        rows = [to_trl(p) for p in pairs]
    elif form == "implicit":
        rows = [to_trl(p, explicit_prompt=False) for p in pairs]
    elif form == "hh":
        rows = [to_hh(p) for p in pairs]
    elif form == "explicit":
        rows = []
        for p in pairs:
            r = to_pair_row(p)
            row: dict[str, Any] = {"prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected}
            if r.margin is not None:
                row["margin"] = r.margin
            row.update(r.extra)
            rows.append(row)
    else:
        raise ValueError(f"unknown form {form!r}: conversational | implicit | hh | explicit")
    return write_rows(rows, path)


def dialogue_split(
    pairs: Sequence[ChatPair], fractions: Sequence[float], seed: int = 0
) -> list[list[int]]:
    """Row indices of len(fractions) dialogue-disjoint parts (e.g. train/dev/test).

    Each dialogue id goes to one part, by the position of sha1(seed, id) in [0, 1) against the
    cumulative fractions; the part sizes are therefore approximate. Fractions must be positive
    and sum to 1.
    """
    if not fractions or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be positive and sum to 1, got {list(fractions)}")
    edges = [sum(fractions[: i + 1]) for i in range(len(fractions))]
    parts: list[list[int]] = [[] for _ in fractions]
    for i, p in enumerate(pairs):
        h = hashlib.sha1(f"{seed}:{p.dialogue_id}".encode()).digest()
        u = int.from_bytes(h[:8], "big") / 2**64
        parts[next(j for j, e in enumerate(edges) if u < e or j == len(edges) - 1)].append(i)
    return parts
