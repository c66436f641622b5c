"""The evaluation harness on tiny hand-made files: RewardBench v1 section weighting and ties,
v2 tie credit and the Ties subset, RewardMATH accuracy and MRR, the length baseline, best-of-N
gold curves, STARC distance; and the controlled-truth preference data of the testbed."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.evaluate import rm_metrics as M
from rewardlab.evaluate.overopt import bon_gold, kl_bon, starc_distance
from rewardlab.evaluate.reward_eval import evaluate_bon, evaluate_one_to_many, evaluate_pairwise
from rewardlab.evaluate.reward_eval_pool import evaluate_distance, evaluate_overopt
from rewardlab.label import preferences as L
from rewardlab.label.pref_sets import PrefSetSpec, build_sets
from rewardlab.tasks import arith
from rewardlab.train.pref_io import DataError
from rewardlab.types import Candidate, Problem, Score


@dataclass(frozen=True)
class Table:
    """Reward = a table lookup on the response text (unknown text -> ungraded)."""

    table: dict[str, float]
    name: str = "table"

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        return [
            Score(self.table[c.text]) if c.text in self.table else Score.ungraded("unknown")
            for c in candidates
        ]


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_rewardbench_v1_sections_are_example_count_weighted(tmp_path: Path) -> None:
    # texts: "w<k>" scores k. alpacaeval-easy: 2 pairs, 1 right (0.5); mt-bench-easy: 1 pair
    # right (1.0); math-prm: 1 tie (wrong, 0.0); hep-cpp: 1 right (1.0).
    rows = [
        {"prompt": "q", "chosen": "w2", "rejected": "w1", "subset": "alpacaeval-easy"},
        {"prompt": "q", "chosen": "w1", "rejected": "w3", "subset": "alpacaeval-easy"},
        {"prompt": "q", "chosen": "w3", "rejected": "w1", "subset": "mt-bench-easy"},
        {"prompt": "q", "chosen": "w2", "rejected": "w2b", "subset": "math-prm"},
        {"prompt": "q", "chosen": "w3", "rejected": "w2", "subset": "hep-cpp"},
    ]
    reward = Table({"w1": 1.0, "w2": 2.0, "w2b": 2.0, "w3": 3.0})
    res = evaluate_pairwise(reward, _write(tmp_path / "v1.jsonl", rows), n_boot=50)
    chat = (100 * 0.5 + 28 * 1.0) / 128
    reasoning = (984 * 0.0 + 164 * 1.0) / (984 + 164)
    assert res.metrics["section/Chat"].value == pytest.approx(chat)
    assert res.metrics["section/Reasoning"].value == pytest.approx(reasoning)
    assert res.metrics["overall"].value == pytest.approx((chat + reasoning) / 2)
    assert res.metrics["accuracy"].value == pytest.approx(3 / 5)
    assert res.metrics["subset/math-prm"].value == 0.0 and res.details["ties"] == 1
    for e in res.metrics.values():
        assert e.low <= e.value + 1e-9 and e.value <= e.high + 1e-9
    # longer baseline: "w2b" is longer than "w2" (wrong); other pairs have equal length (ties)
    assert res.baseline["accuracy"].value == 0.0


def test_unknown_subsets_fall_back_to_plain_accuracy(tmp_path: Path) -> None:
    rows = [
        {"prompt": "q", "chosen": "a", "rejected": "bb", "subset": "mine"},
        {"prompt": "q", "chosen": "bb", "rejected": "a"},
    ]
    res = evaluate_pairwise(
        Table({"a": 1.0, "bb": 0.0}), _write(tmp_path / "x.jsonl", rows), n_boot=50
    )
    assert res.metrics["overall"].value == 0.5 and set(res.details["subsets"]) == {"mine", "all"}
    assert res.baseline["accuracy"].value == 0.5  # picks "bb" both times


def test_rewardbench_v2_tie_rule(tmp_path: Path) -> None:
    rows = [
        {"prompt": "q", "chosen": ["c3"], "rejected": ["r1", "r2", "r0"], "subset": "math"},
        {"prompt": "q", "chosen": ["c2"], "rejected": ["r2", "r1", "r0"], "subset": "math"},
        {"prompt": "q", "chosen": ["c2"], "rejected": ["r2", "r2b", "r1"], "subset": "focus"},
        {"prompt": "q", "chosen": ["c1"], "rejected": ["r2", "r0", "r0b"], "subset": "focus"},
    ]
    reward = Table({"c3": 3, "c2": 2, "c1": 1, "r2": 2, "r2b": 2, "r1": 1, "r0": 0, "r0b": 0})
    res = evaluate_bon(reward, _write(tmp_path / "v2.jsonl", rows), n_boot=50)
    # math: 1 and 1/2 (2-way tie); focus: 1/3 (3-way tie) and 0
    assert res.metrics["subset/math"].value == pytest.approx(0.75)
    assert res.metrics["subset/focus"].value == pytest.approx(1 / 6)
    assert res.metrics["overall"].value == pytest.approx((0.75 + 1 / 6) / 2)
    bad = [{"prompt": "q", "chosen": ["a", "b"], "rejected": ["c"], "subset": "math"}]
    with pytest.raises(DataError, match="exactly 1 chosen"):
        evaluate_bon(reward, _write(tmp_path / "bad.jsonl", bad))


def test_ties_subset_score_by_hand() -> None:
    # prompt 1: ref (1 correct: 5 vs 1, gap 4) and tied (3 correct 5, 4, 4.5 vs 1, 2: gap 2,
    # spread 1). Accurate both; gap 2 > spread 1; min(4, 2) = 2 > 1; tanh(2/1 - 1) = tanh(1).
    ids = ["ref:1", "tied:1"]
    scores = [np.array([5.0, 1.0]), np.array([5.0, 4.0, 4.5, 1.0, 2.0])]
    expected = 0.3 + 0.3 + 0.2 + 0.2 + 0.01 * np.tanh(1.0)
    assert M.ties_score(ids, scores, [1, 3]) == pytest.approx(expected)
    # a tied prompt whose wrong answer beats a correct one: inaccurate, gap < 0
    scores_bad = [np.array([5.0, 1.0]), np.array([5.0, 1.0, 3.0])]
    assert M.ties_score(ids, scores_bad, [1, 2]) == pytest.approx(0.3 + 0.01 * np.tanh(-2 / 4 - 1))


def test_rewardmath_accuracy_and_mrr_one_vs_nine(tmp_path: Path) -> None:
    wrong = [f"w{k}" for k in range(9)]
    table = {w: float(k) for k, w in enumerate(wrong)}  # wrong answers score 0..8
    table |= {"top": 9.0, "mid": 4.5, "tie": 8.0, "low": -1.0}
    rows = [
        {"prompt": f"q{i}", "chosen": c, "rejected": wrong}
        for i, c in enumerate(["top", "mid", "tie", "low"])
    ]
    res = evaluate_one_to_many(Table(table), _write(tmp_path / "rm.jsonl", rows), n_boot=50)
    # ranks: top 1; mid 5 (5..8 above); tie 2 (w8 >= 8 ranks above); low 10
    assert res.metrics["accuracy"].value == pytest.approx(1 / 4)
    assert res.metrics["mrr"].value == pytest.approx((1 + 1 / 5 + 1 / 2 + 1 / 10) / 4)
    assert res.details["random_mrr"] == pytest.approx(np.mean(1 / np.arange(1, 11)))
    # baseline: "top"/"mid"/"tie"/"low" are longer than every "w<k>": ranked first each time
    assert res.baseline["accuracy"].value == 1.0


def _brute_bon(proxy: np.ndarray, gold: np.ndarray, k: int) -> float:
    total, count = 0.0, 0
    for sub in itertools.combinations(range(proxy.size), k):
        s = proxy[list(sub)]
        top = [i for i in sub if proxy[i] == s.max()]
        total += float(np.mean(gold[top]))  # uniform tie-break among the drawn maxima
        count += 1
    return total / count


@given(st.lists(st.tuples(st.integers(0, 3), st.floats(0, 1)), min_size=1, max_size=7))
@settings(max_examples=60, deadline=None)
def test_bon_gold_is_exact(pool: list[tuple[int, float]]) -> None:
    proxy = np.array([float(p) for p, _ in pool])
    gold = np.array([g for _, g in pool])
    ks = list(range(1, len(pool) + 1))
    got = bon_gold(proxy[None], gold[None], ks)[0]
    assert got == pytest.approx([_brute_bon(proxy, gold, k) for k in ks], abs=1e-9)


def test_kl_bon_values() -> None:
    assert kl_bon(np.array([1, 4])).tolist() == pytest.approx([0.0, np.log(4) - 0.75])


def test_starc_distance() -> None:
    g = np.repeat([0, 1, 2], 3)
    r = np.array([1.0, 2.0, 4.0, 0.0, 1.0, 0.5, 3.0, 3.0, 1.0])
    shift = np.array([10.0, -2.0, 7.0])[g]  # per-prompt potential shaping
    assert starc_distance(r, 3 * r + 1, g) == 0.0
    assert starc_distance(r, 0.5 * r + shift, g) == 0.0
    assert starc_distance(r, -r, g) == 1.0
    other = r.copy()
    other[[0, 2]] = other[[2, 0]]  # another ranking in prompt 0
    assert 0.0 < starc_distance(r, other, g) < 1.0


@given(
    st.lists(st.floats(-5, 5), min_size=6, max_size=6),
    st.lists(st.floats(-5, 5), min_size=6, max_size=6),
    st.floats(0.1, 10),
    st.floats(-5, 5),
)
@settings(max_examples=80, deadline=None)
def test_starc_properties(a: list[float], b: list[float], scale: float, shift: float) -> None:
    g = np.array([0, 0, 0, 1, 1, 1])
    x, y = np.array(a), np.array(b)
    d = starc_distance(x, y, g)
    assert 0.0 <= d <= 1.0 + 1e-9
    assert d == pytest.approx(starc_distance(y, x, g), abs=1e-9)
    assert starc_distance(x, scale * x + shift, g) == pytest.approx(0.0, abs=1e-6)


@given(st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3)), min_size=1, max_size=30))
@settings(max_examples=80, deadline=None)
def test_pairwise_accuracy_accounts_for_ties(pairs: list[tuple[int, int]]) -> None:
    c = np.array([p[0] for p in pairs], dtype=float)
    r = np.array([p[1] for p in pairs], dtype=float)
    ties = np.mean(c == r)
    assert M.pairwise_correct(c, r).mean() + M.pairwise_correct(r, c).mean() + ties == (
        pytest.approx(1.0)
    )


def test_overopt_and_distance_on_a_pool(tmp_path: Path) -> None:
    rows = [
        {"prompt": "q1", "responses": ["a", "bb", "ccc"], "gold": [1.0, 0.0, 0.5]},
        {"prompt": "q2", "responses": ["d", "ee", "f"], "gold": [0.0, 1.0, 0.0]},
    ]
    path = _write(tmp_path / "pool.jsonl", rows)
    good = Table({"a": 3, "bb": 1, "ccc": 2, "d": 0, "ee": 5, "f": 1}, "good")
    bad = Table({"a": 0, "bb": 3, "ccc": 1, "d": 5, "ee": 0, "f": 1}, "bad")
    res = evaluate_overopt({"good": good, "bad": bad}, path, n_boot=50)
    # q1: {a,bb}->a 1, {a,ccc}->a 1, {bb,ccc}->ccc .5; q2: {d,ee}->ee 1, {d,f}->f 0, {ee,f}->ee 1
    assert res.details["ns"] == [1, 2] and res.metrics["good/N=2"].value == pytest.approx(
        (5 / 6 + 2 / 3) / 2
    )
    assert res.metrics["good/N=1"].value == pytest.approx(res.metrics["bad/N=1"].value)
    assert res.baseline["oracle/N=2"].value >= res.metrics["good/N=2"].value
    dist = evaluate_distance(good, good, path, n_boot=20)
    assert dist.metrics["starc"].value == 0.0
    assert dist.metrics["spearman"].value == pytest.approx(1.0)


# ------------------------------------------------------------------ controlled-truth data


def test_corruption_has_its_first_error_at_the_known_step() -> None:
    rng = random.Random(0)
    for p in arith.generate(12, seed=3, n_ops=(2, 5)):
        for pos in range(len(p.meta["ops"])):
            text = L.corrupt_gold(p, pos, rng)
            assert text is not None
            report = arith.check_steps(p, text)
            assert report.first_error == pos and not report.correct


def test_gold_rule_correctness_then_brevity() -> None:
    right_short = L.Response("1 + 1 = 2\nThe answer is 2.", True, -1, "gold")
    right_long = L.Response("Let me solve.\n1 + 1 = 2\nThe answer is 2.", True, 0, "gold+f")
    wrong_short = L.Response("The answer is 3.", False, 0, "corrupt")
    assert L.gold_preference(right_long, wrong_short) == 1  # correctness beats brevity
    assert L.gold_preference(right_long, right_short) == -1  # equals: the shorter wins
    assert L.gold_preference(right_short, right_short) == 0
    r = L.ratings([right_short, right_long, wrong_short])
    # lengths 26, 40, 16: brevity 1 - 10/24, 0, 1 on top of 3·correct
    assert r == pytest.approx([3 + 14 / 24, 3.0, 1.0])


def test_pref_sets_noise_bias_and_held_out_split() -> None:
    clean = build_sets(PrefSetSpec(problems=40, seed=1))
    noisy = build_sets(PrefSetSpec(problems=40, seed=1, noise=0.3, length_bias=1.0))
    train_ids = {r["problem_id"] for r in clean["train_pairs"]}
    test_ids = {r["problem_id"] for r in clean["test_pairs"]}
    assert train_ids and test_ids and not train_ids & test_ids
    flipped = np.mean([r["flipped"] for r in noisy["train_pairs"]])
    assert 0.15 < flipped < 0.45
    assert not any(r["flipped"] for r in noisy["test_pairs"])  # held-out stays clean
    biased = [r for r in noisy["train_pairs"] if r.get("length_biased") and not r["flipped"]]
    assert biased and all(len(r["chosen"]) > len(r["rejected"]) for r in biased)
    by_id = {p.id: p for p in arith.generate(40, seed=1, n_ops=(1, 4))}
    for row in clean["test_pairs"]:  # every held-out label agrees with the gold rule
        p = by_id[row["problem_id"]]
        a = L.grade(p, row["chosen"], "a")
        b = L.grade(p, row["rejected"], "b")
        assert L.gold_preference(a, b) == 1
    for row in clean["test_1v9"]:
        p = by_id[row["problem_id"]]
        assert arith.check_steps(p, row["chosen"]).correct
        assert not any(arith.check_steps(p, t).correct for t in row["rejected"])
        assert len(row["rejected"]) == 9
