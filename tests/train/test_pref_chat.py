"""Conversational preference data: HH-RLHF excerpts through TRL's formats and back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rewardlab.train import pref_chat as pc
from rewardlab.train.pref_io import DataError, read_pairs, read_records

ASSETS = Path(__file__).parent.parent / "assets"
EXCERPT = ASSETS / "hh_rlhf_harmless_excerpt.jsonl"
DOUBLE = ASSETS / "hh_rlhf_harmless_line1255.jsonl"
FULL = Path(__file__).resolve().parents[2] / "../shared/data/hh-rlhf/harmless-base-test.jsonl.gz"


def _raw(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_hh_excerpt_splits_prefix_from_final_turns() -> None:
    pairs = pc.read_chat_pairs(EXCERPT)
    assert len(pairs) == 10
    first = pairs[0]
    # line 1: two user turns and one assistant turn shared, then the differing replies
    assert [m.role for m in first.prompt] == ["user", "assistant", "user", "assistant", "user"]
    assert first.prompt[0].content == "what are some pranks with a pen i can do?"
    assert first.prompt[-1].content == "okay some of these do not have anything to do with pens"
    assert first.chosen[0].content.startswith("No, sorry!  All of these involve a pen")
    assert first.rejected[0].content.startswith("There are lots of funny things")
    for p in pairs:
        assert p.prompt[-1].role == "user"
        assert [m.role for m in p.chosen] == ["assistant"]
        assert p.chosen != p.rejected


@pytest.mark.parametrize("form", ["conversational", "implicit", "hh", "explicit"])
@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_round_trip_every_form(tmp_path: Path, form: str, suffix: str) -> None:
    pairs = pc.read_chat_pairs(EXCERPT) + pc.read_chat_pairs(DOUBLE)
    out = pc.write_chat_pairs(pairs, tmp_path / f"pairs{suffix}", form=form)
    if form == "explicit":
        back = [pc.chat_pair_from_row(r) for r in read_pairs(out)]
    else:
        back = pc.read_chat_pairs(out)
    assert back == pairs


def test_hh_form_reproduces_the_source_bytes(tmp_path: Path) -> None:
    pairs = pc.read_chat_pairs(EXCERPT)
    out = pc.write_chat_pairs(pairs, tmp_path / "hh.jsonl", form="hh")
    assert _raw(out) == _raw(EXCERPT)


def test_trl_conversational_row_shape() -> None:
    pair = pc.read_chat_pairs(EXCERPT)[1]
    row = pc.to_trl(pair)
    assert set(row) == {"prompt", "chosen", "rejected"}
    assert row["prompt"][0] == {"role": "user", "content": "How much alcohol can I drink per day?"}
    assert row["chosen"] == [{"role": "assistant", "content": pair.chosen[0].content}]
    implicit = pc.to_trl(pair, explicit_prompt=False)
    assert implicit["chosen"][: len(row["prompt"])] == row["prompt"]
    assert implicit["chosen"][-1] == row["chosen"][0]


def test_read_pairs_gives_string_form_whose_concat_is_the_dialogue() -> None:
    rows = read_pairs(EXCERPT)
    for row, raw in zip(rows, _raw(EXCERPT), strict=True):
        assert row.prompt + row.chosen == raw["chosen"]
        assert row.prompt + row.rejected == raw["rejected"]
        assert row.prompt.endswith(row.prompt.split("\n\nHuman: ")[-1])
        assert len(row.extra["dialogue_id"]) == 12


def test_two_final_assistant_turns_are_kept() -> None:
    (pair,) = pc.read_chat_pairs(DOUBLE)
    assert len(pair.chosen) + len(pair.rejected) == 3
    assert {m.role for m in pair.chosen + pair.rejected} == {"assistant"}


def test_gz_files_read(tmp_path: Path) -> None:
    import gzip

    gz = tmp_path / "x.jsonl.gz"
    gz.write_bytes(gzip.compress(EXCERPT.read_bytes()))
    assert pc.read_chat_pairs(gz) == pc.read_chat_pairs(EXCERPT)
    assert len(read_records(gz)) == 10


def test_bad_rows_name_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    ok = EXCERPT.read_text(encoding="utf-8").splitlines()[0]
    diverge = {
        "chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d",
        "rejected": "\n\nHuman: a\n\nAssistant: X\n\nHuman: c\n\nAssistant: e",
    }
    f.write_text(ok + "\n" + json.dumps(diverge) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: .*differs .* before its final"):
        pc.read_chat_pairs(f)
    f.write_text(json.dumps({"chosen": [{"role": "robot", "content": "x"}], "rejected": []}))
    with pytest.raises(DataError, match=r"bad.jsonl:1: chosen\[0\]: unknown role 'robot'"):
        read_pairs(f)
    f.write_text(
        json.dumps(
            {
                "prompt": [{"role": "user", "content": "q"}],
                "chosen": [{"role": "user", "content": "a"}],
                "rejected": [{"role": "assistant", "content": "b"}],
            }
        )
    )
    with pytest.raises(DataError, match="chosen must hold assistant messages only"):
        pc.read_chat_pairs(f)
    same = {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: b"}
    f.write_text(json.dumps(same))
    with pytest.raises(DataError, match="the same dialogue"):
        pc.read_chat_pairs(f)


def test_dialogue_split_is_disjoint_and_groups_shared_openings() -> None:
    base = pc.read_chat_pairs(EXCERPT)
    # the same conversation opening twice: must land in one part
    twin = pc.ChatPair(base[0].prompt[:1], base[0].chosen, base[0].rejected)
    pairs = [*base, twin]
    parts = pc.dialogue_split(pairs, [0.5, 0.5], seed=3)
    assert sorted(i for p in parts for i in p) == list(range(len(pairs)))
    ids = [{pairs[i].dialogue_id for i in part} for part in parts]
    assert not ids[0] & ids[1]
    assert any({0, 10} <= set(p) for p in parts)
    assert parts == pc.dialogue_split(pairs, [0.5, 0.5], seed=3)
    with pytest.raises(ValueError, match="sum to 1"):
        pc.dialogue_split(pairs, [0.5, 0.4])


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20).filter(
    lambda s: "\n\n" not in s
)


@given(st.lists(st.tuples(st.sampled_from(["user", "assistant"]), _text), min_size=1))
def test_hh_markup_round_trips(turns: list[tuple[str, str]]) -> None:
    msgs = tuple(pc.Message(r, c) for r, c in turns)
    assert pc.parse_hh(pc.render_hh(msgs)) == msgs


@pytest.mark.skipif(not FULL.is_file(), reason="shared HH-RLHF file not present")
def test_full_harmless_test_file_reads_and_round_trips() -> None:
    import gzip

    pairs = pc.read_chat_pairs(FULL)
    assert len(pairs) == 2312
    with gzip.open(FULL, "rt", encoding="utf-8") as fh:
        raw = [json.loads(line) for line in fh]
    assert [pc.to_hh(p) for p in pairs] == raw
