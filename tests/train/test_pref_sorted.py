"""Length-sorted pair batches: hand-checked order, the shared layout, and less padding."""

from __future__ import annotations

import pytest

from rewardlab.train.pref_batches import pair_batches
from rewardlab.train.pref_io import PairRow
from rewardlab.train.pref_sorted import (
    length_sorted_pair_batches,
    padded_tokens,
    sorted_pair_order,
)


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> object:
    from transformers import AutoTokenizer

    from tinybert import build_tiny_bert

    return AutoTokenizer.from_pretrained(str(build_tiny_bert(tmp_path_factory.mktemp("b"))))


def _rows() -> list[PairRow]:
    words = ["the", "cat", "sat", "on", "the", "mat", "is", "the", "dog", "ran", "fast"]
    # pair i: chosen has i+1 words, rejected has (11 - i) words -> longer side varies
    return [
        PairRow(
            "", " ".join(words[: i + 1]), " ".join(words[: 11 - i]), margin=float(i % 2) or None
        )
        for i in range(8)
    ]


def test_order_by_longer_side_by_hand() -> None:
    assert sorted_pair_order([5, 1, 3, 9], [2, 8, 1, 1]) == [2, 0, 1, 3]
    assert sorted_pair_order([2, 2], [1, 2]) == [0, 1]  # ties keep index order


def test_batches_group_similar_lengths(tok: object) -> None:
    rows = _rows()
    batches = length_sorted_pair_batches(
        rows, tok, "{response}", batch_size=2, max_length=32, n_batches=4, seed=0
    )
    # longer sides in words (one token each, + [CLS] + [SEP]): pair i has max(i+1, 11-i)
    # = 11, 10, 9, 8, 7, 6, 7, 8 -> tokens 13, 12, 11, 10, 9, 8, 9, 10; sorted by (width, i):
    # 5, 4, 6, 3, 7, 2, 1, 0 -> groups {5,4}, {6,3}, {7,2}, {1,0} of widths 9, 10, 11, 13
    widths = sorted(int(b["attention_mask"].shape[1]) for b in batches)
    assert widths == [9, 10, 11, 13]
    for b in batches:
        assert b["input_ids"].shape[0] == 4  # 2 chosen then 2 rejected
        assert set(b["margin"].tolist()) <= {0.0, 1.0}
        assert set(b["strength"].tolist()) <= {1.0}  # margin 1 or absent: strength 1
    # the batch order is shuffled, reproducibly
    again = length_sorted_pair_batches(
        rows, tok, "{response}", batch_size=2, max_length=32, n_batches=4, seed=0
    )
    assert [b["input_ids"].tolist() for b in again] == [b["input_ids"].tolist() for b in batches]


def test_less_padding_than_random_batches(tok: object) -> None:
    rows = _rows() * 4
    kw = {"batch_size": 4, "max_length": 32, "n_batches": 8, "seed": 1}
    real_s, padded_s = padded_tokens(length_sorted_pair_batches(rows, tok, "{response}", **kw))
    real_r, padded_r = padded_tokens(pair_batches(rows, tok, "{response}", **kw))
    assert real_s == real_r  # one epoch each: the same pairs
    assert padded_s < padded_r


def test_empty_rows_error(tok: object) -> None:
    with pytest.raises(ValueError, match="no training rows"):
        length_sorted_pair_batches([], tok, "{response}", batch_size=2, max_length=8, n_batches=1)
