"""``evaluate_selection`` (``rewardlab eval select``): every number against a hand-worked pool."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.evaluate.reward_eval_pool import (
    answer_classes,
    evaluate_selection,
    read_selection_pool,
    vote_weights,
)
from rewardlab.train.pref_io import DataError


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


POOL = [
    {
        "prompt": "A",
        "responses": ["a1", "a2", "a3"],
        "correct": [True, False, False],
        "answers": ["1", "2", "2"],
    },
    {
        "prompt": "B",
        "responses": ["b1", "b2", "b3"],
        "correct": [True, False, True],
        "answers": ["5", None, "5"],
    },
]
SCORES = np.array([[2.0, 0.0, -1.0], [-3.0, 5.0, 0.0]])


def test_selection_metrics_by_hand(tmp_path: Path) -> None:
    """A: best-of-3 picks a1 (right); majority '2' (wrong); weighted: '1' has σ(2) = 0.881 >
    '2' with σ(0) + σ(-1) = 0.769 (right). B: best-of-3 picks b2, which has no answer (wrong);
    majority and weighted: '5' (right; no-answer b2 does not vote). AUROC over the six: positives
    {2, -3, 0} above negatives {0, -1, 5}: 2 beats two, -3 none, 0 beats -1 and ties 0: 3.5/9."""
    path = _write(tmp_path / "pool.jsonl", POOL)
    assert 1 / (1 + math.exp(-2)) > 0.5 + 1 / (1 + math.exp(1))
    res = evaluate_selection("hand", path, scores=SCORES, n_boot=200)
    m, b = res.metrics, res.baseline
    assert m["best_of_n"].value == pytest.approx(0.5)
    assert m["weighted_majority"].value == pytest.approx(1.0)
    assert b["majority"].value == pytest.approx(0.5)
    assert b["random_at_1"].value == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert b["pass_at_n"].value == pytest.approx(1.0)
    assert m["diff/best_of_n-majority"].value == pytest.approx(0.0)
    assert m["diff/weighted_majority-majority"].value == pytest.approx(0.5)
    assert m["auroc"].value == pytest.approx(3.5 / 9)
    assert m["auroc"].n == 6 and m["best_of_n"].n == 2
    for e in [*m.values(), *b.values()]:
        assert e.low - 1e-9 <= e.value <= e.high + 1e-9
    assert res.details["answers"] == "file" and res.details["no_answer_fraction"] == 1 / 6


def test_answers_are_extracted_when_absent(tmp_path: Path) -> None:
    rows = [
        {
            "prompt": "q",
            "responses": ["so 3\nA: 3", "A: 3.0", "A: 4"],
            "correct": [True, True, False],
        }
    ]
    res = evaluate_selection(
        "x", _write(tmp_path / "p.jsonl", rows), scores=np.array([[0.0, 0.0, 9.0]]), n_boot=50
    )
    assert res.details["answers"].startswith("extracted")
    assert res.baseline["majority"].value == 1.0  # '3' and '3.0' are one answer, two votes
    assert res.metrics["best_of_n"].value == 0.0


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({"prompt": "C", "responses": ["x", "y"], "correct": [True, False]}, "same N = 3"),
        ({"prompt": "C", "responses": ["x", "y", "z"], "correct": [1, 0, 0]}, "3 booleans"),
        (
            {
                "prompt": "C",
                "responses": ["x", "y", "z"],
                "correct": [True, False, False],
                "answers": ["1", 2, None],
            },
            "strings or nulls",
        ),
        (
            {"prompt": "C", "responses": ["x", "y", "z"], "correct": [True, False, False]},
            "some rows only",
        ),
    ],
)
def test_bad_pools_are_named(tmp_path: Path, row: dict, match: str) -> None:
    path = _write(tmp_path / "bad.jsonl", [POOL[0], row])
    with pytest.raises(DataError, match=match):
        read_selection_pool(path)


def test_scores_shape_and_weights_are_checked(tmp_path: Path) -> None:
    path = _write(tmp_path / "pool.jsonl", POOL)
    with pytest.raises(ValueError, match=r"scores must be \[2, 3\]"):
        evaluate_selection("x", path, scores=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="scores >= 0"):
        vote_weights(np.array([[-1.0]]), "raw")
    with pytest.raises(ValueError, match="unknown vote weights"):
        vote_weights(np.zeros((1, 1)), "softmax")
    assert vote_weights(np.array([[3.0, -1.0, 0.5]]), "rank").tolist() == [[3.0, 1.0, 2.0]]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(["1", "2", "01", None]), min_size=1, max_size=5),
        min_size=1,
        max_size=4,
    )
)
def test_answer_classes_properties(answers: list[list[str | None]]) -> None:
    """Equal answers share an id, different ones do not, no answer is -1; ids count from 0 in
    order of first appearance."""
    n = max(len(r) for r in answers)
    ids = answer_classes(answers)
    for i, row in enumerate(answers):
        seen: list[int] = []
        for j, a in enumerate(row):
            if a is None:
                assert ids[i, j] == -1
                continue
            for k, b in enumerate(row):
                if b is not None:
                    assert (ids[i, j] == ids[i, k]) == (a == b)
            if ids[i, j] not in seen:
                assert ids[i, j] == len(seen)
                seen.append(int(ids[i, j]))
        assert (ids[i, len(row) : n] == -1).all()
    same = answer_classes(answers, lambda a, b: a.lstrip("0") == b.lstrip("0"))
    for i, row in enumerate(answers):
        if "1" in row and "01" in row:
            assert same[i, row.index("1")] == same[i, row.index("01")]
