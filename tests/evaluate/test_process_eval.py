"""ProcessBench-style step evaluation: the real file's format, hand-worked metrics, properties."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rewardlab.cli.eval_process import process as process_cmd
from rewardlab.cli.eval_process import scores_from_reward
from rewardlab.evaluate.process import (
    ProcessItem,
    auroc,
    calibration,
    choose_threshold,
    evaluate_process,
    f1_at_thresholds,
    load_process_data,
    load_processbench,
    load_stepwise,
    predicted_first_error,
    processbench_f1,
    split_dev_test,
    step_targets,
    threshold_candidates,
)
from rewardlab.label.quality import first_error_quality

EXCERPT = Path(__file__).resolve().parents[1] / "assets" / "processbench_gsm8k_excerpt.json"
# labels of the excerpt's 20 erroneous items, in file order (read off the file by hand)
ERROR_LABELS = [1, 1, 1, 2, 2, 2, 2, 1, 2, 0, 0, 2, 1, 1, 4, 2, 4, 0, 3, 0]


@pytest.fixture(scope="module")
def items() -> list[ProcessItem]:
    return load_processbench(EXCERPT)


def scores_for(items: list[ProcessItem], first_error: list[int]) -> list[list[float]]:
    """Step scores 1.0 before the given first error, 0.0 from it on (-1: all 1.0)."""
    return [
        [0.0 if fe != -1 and j >= fe else 1.0 for j in range(len(it.steps))]
        for it, fe in zip(items, first_error, strict=True)
    ]


def test_excerpt_is_read_as_published(items: list[ProcessItem]) -> None:
    assert len(items) == 40 and items[0].id == "gsm8k-0"
    assert [it.label for it in items if it.label != -1] == ERROR_LABELS
    assert sum(it.label == -1 for it in items) == 20
    assert items[0].meta == {"generator": "Qwen2-7B-Instruct"}
    assert all(it.final_answer_correct == (it.label == -1) for it in items)
    assert load_process_data(EXCERPT) == items


def test_simple_predictors_on_the_excerpt(items: list[ProcessItem]) -> None:
    labels = [it.label for it in items]
    never = processbench_f1(labels, [-1] * 40)
    assert (never.acc_error, never.acc_correct, never.f1) == (0.0, 1.0, 0.0)
    step0 = processbench_f1(labels, [0] * 40)
    assert (step0.acc_error, step0.acc_correct, step0.f1) == (4 / 20, 0.0, 0.0)
    oracle = processbench_f1(labels, labels)
    assert (oracle.acc_error, oracle.acc_correct, oracle.f1) == (1.0, 1.0, 1.0)
    # right on errors at steps 0 and 1 (10 of 20), says -1 otherwise: F1 = 2 * .5 * 1 / 1.5
    half = [fe if fe in (0, 1) else -1 for fe in labels]
    assert processbench_f1(labels, half).f1 == pytest.approx(2 / 3)
    assert (never.n_error, never.n_correct) == (20, 20)


def test_threshold_predictions_on_the_excerpt(items: list[ProcessItem]) -> None:
    labels = [it.label for it in items]
    oracle = scores_for(items, labels)
    assert [predicted_first_error(s, 0.5) for s in oracle] == labels
    flat = [[0.0] * len(it.steps) for it in items]
    assert {predicted_first_error(s, 0.5) for s in flat} == {0}
    report = evaluate_process(labels, oracle, dev_fraction=0.3, seed=1)
    assert (report.n_dev, report.n_test) == (12, 28)
    assert report.test.f1 == 1.0 and report.test_at_fixed.f1 == 1.0 and 0 < report.threshold <= 1
    assert report.auroc == 1.0 and report.calibration.ece == 0.0
    assert report.n_steps == sum(
        len(it.steps) if it.label == -1 else it.label + 1
        for it in (items[i] for i in split_dev_test(labels, 0.3, 1)[1])
    )


def test_hand_worked_f1() -> None:
    labels = [-1, -1, 0, 2, 1]
    preds = [-1, 1, 0, 2, -1]
    s = processbench_f1(labels, preds)
    assert (s.acc_error, s.acc_correct) == (2 / 3, 1 / 2)
    assert s.f1 == pytest.approx(4 / 7)  # 2 * (2/3) * (1/2) / (2/3 + 1/2)
    q = first_error_quality(labels, preds)
    assert (q.hits, q.n_flagged, q.n_error) == (2, 3, 3)
    assert (q.precision, q.recall, q.accuracy) == (2 / 3, 2 / 3, 3 / 5)


def test_hand_worked_threshold_choice() -> None:
    labels = [1, -1, 0]
    scores = [[0.9, 0.3, 0.2], [0.8, 0.6], [0.4, 0.7]]
    # item 0 is right for t in (0.3, 0.9], item 1 for t <= 0.6, item 2 for t > 0.4: all three
    # for t in (0.4, 0.6], where the only candidate (midpoints of distinct scores) is 0.5
    assert choose_threshold(labels, scores) == (pytest.approx(0.5), 1.0)
    grid = threshold_candidates(scores)
    assert grid[0] == 0.2 and grid[-1] > 0.9 and len(grid) == 8


def test_hand_worked_auroc_and_targets() -> None:
    y, s = step_targets([1, -1], [[0.9, 0.2, 0.8], [0.6, 0.7]])
    assert y.tolist() == [1, 0, 1, 1] and s.tolist() == [0.9, 0.2, 0.6, 0.7]
    assert auroc(y, s) == 1.0
    # positives .8 .4 .4 against negatives .4 .1: .8 wins 2, each .4 wins 1.5 -> 5 / 6
    assert auroc(np.array([1, 1, 1, 0, 0]), np.array([0.8, 0.4, 0.4, 0.4, 0.1])) == pytest.approx(
        5 / 6
    )
    assert math.isnan(auroc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_hand_worked_ece() -> None:
    y = np.array([1, 1, 0, 1, 0])
    s = np.array([0.95, 0.85, 0.85, 0.3, 1.0])
    # 10 bins: [.3] -> |1 - .3| * 1/5; [.85, .85] -> |.5 - .85| * 2/5;
    # [.95, 1.0] -> |.5 - .975| * 2/5
    cal = calibration(y, s, bins=10)
    assert cal.ece == pytest.approx(0.7 / 5 + 0.35 * 2 / 5 + 0.475 * 2 / 5)
    assert cal.counts == (0, 0, 0, 1, 0, 0, 0, 0, 2, 2)
    assert calibration(y, s, bins=1).ece == pytest.approx(abs(3 / 5 - s.mean()))
    assert math.isnan(calibration(y, s * 2, bins=10).ece)


def test_split_is_seeded_stratified_and_complete() -> None:
    labels = [-1] * 10 + [0, 1, 2] * 4
    dev, test = split_dev_test(labels, 0.25, seed=5)
    assert sorted([*dev, *test]) == list(range(22)) and not set(dev) & set(test)
    assert sum(labels[i] == -1 for i in dev) == round(0.25 * 10)
    assert sum(labels[i] != -1 for i in dev) == round(0.25 * 12)
    assert np.array_equal(split_dev_test(labels, 0.25, seed=5)[0], dev)
    assert not np.array_equal(split_dev_test(labels, 0.25, seed=6)[0], dev)


item_strategy = st.integers(1, 5).flatmap(
    lambda n: st.tuples(
        st.integers(-1, n - 1),
        st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(st.lists(item_strategy, min_size=1, max_size=12))
def test_fast_threshold_sweep_matches_brute_force(data) -> None:
    labels = [fe for fe, _ in data]
    scores = [s for _, s in data]
    grid = threshold_candidates(scores)
    acc_e, acc_c, f1 = f1_at_thresholds(labels, scores, grid)
    for t, a, b, f in zip(grid, acc_e, acc_c, f1, strict=True):
        brute = processbench_f1(labels, [predicted_first_error(s, t) for s in scores])
        for x, y in ((a, brute.acc_error), (b, brute.acc_correct), (f, brute.f1)):
            assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y)
    _, value = choose_threshold(labels, scores)
    every = [processbench_f1(labels, [predicted_first_error(s, t) for s in scores]) for t in grid]
    if not all(math.isnan(e.f1) for e in every):
        assert value == pytest.approx(max(e.f1 for e in every if not math.isnan(e.f1)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([0.1, 0.2, 0.5, 0.9])), min_size=2))
def test_auroc_is_the_pairwise_win_rate(pairs) -> None:
    y = np.array([float(a) for a, _ in pairs])
    s = np.array([b for _, b in pairs])
    pos, neg = s[y == 1], s[y == 0]
    if not pos.size or not neg.size:
        assert math.isnan(auroc(y, s))
        return
    wins = [1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg)]
    assert auroc(y, s) == pytest.approx(sum(wins) / len(wins))


def test_stepwise_jsonl_and_validation(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    rows = [
        {"prompt": "q1", "completions": ["a", "b"], "labels": [True, False], "id": "x#0"},
        {"prompt": "q2", "completions": ["a"], "labels": [0.9], "first_error": -1},
        {"prompt": "q3", "completions": ["a"], "labels": [False], "kept": False},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    got = load_stepwise(path)
    assert [(i.id, i.label, i.steps) for i in got] == [("x#0", 1, ("a", "b")), ("1", -1, ("a",))]
    with pytest.raises(ValueError, match="label 3"):
        ProcessItem("z", "q", ("a",), 3)
    with pytest.raises(ValueError, match="item 0"):
        evaluate_process([2], [[0.1, 0.2]])


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("process")(process_cmd)
    app.command("other")(lambda: None)
    return app


def test_cli_with_score_file(items: list[ProcessItem], tmp_path: Path) -> None:
    labels = [it.label for it in items]
    scores = tmp_path / "scores.jsonl"
    scores.write_text(
        "".join(
            json.dumps({"id": it.id, "scores": s}) + "\n"
            for it, s in zip(items, scores_for(items, labels), strict=True)
        )
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        _app(), ["process", "--data", str(EXCERPT), "--scores", str(scores), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    got = json.loads((out / "process_eval.json").read_text())
    assert got["test"]["f1"] == 1.0 and got["unscored"] == 0 and got["auroc"] == 1.0
    assert (out / "threshold_f1.png").stat().st_size > 0 and (out / "reliability.png").exists()
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 40
    assert "| F1 |" in (out / "process_eval.md").read_text()


def test_cli_with_the_exact_step_reward(tmp_path: Path) -> None:
    from rewardlab.label.truth import TruthLabeler
    from rewardlab.tasks import arith
    from rewardlab.types import Candidate

    problems = arith.generate(6, seed=2, n_ops=(2, 4))
    samples, probs = [], []
    for p in problems:
        gold = arith.gold_steps(p)
        wrong = [*gold[:1], "1 + 1 = 3", *gold[2:]]
        for i, steps in enumerate((gold, wrong)):
            samples.append(Candidate(p.id, "\n".join(steps), tuple(steps), None, index=i))
            probs.append(p)
    data = tmp_path / "labels.jsonl"
    records = TruthLabeler(arith.ArithTask(), truncate=False).label(probs, samples)
    data.write_text("".join(json.dumps(r.to_record()) + "\n" for r in records))
    out = tmp_path / "out"
    args = [
        "process",
        "--data",
        str(data),
        "--reward",
        "exact",
        "--out",
        str(out),
        "--dev-fraction",
        "0.5",
    ]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    got = json.loads((out / "process_eval.json").read_text())
    assert got["test"]["f1"] == 1.0 and got["test_at_fixed"]["f1"] == 1.0
    assert got["calibration"]["ece"] == 0.0
    # the exact reward cannot grade ProcessBench's GSM8K items: a clear error, not a fake score
    bad = CliRunner().invoke(
        _app(), ["process", "--data", str(EXCERPT), "--reward", "exact", "--out", str(out)]
    )
    assert bad.exit_code != 0 and "not an arith problem" in bad.output


class ExactSteps:
    """A StepReward from the exact checker: ``score_steps`` = the checker's per-step 1 / 0."""

    name = "exact-steps"

    def score_steps(self, problems, candidates):
        from rewardlab.rewards.exact import ArithExactReward

        return ArithExactReward().score(problems, candidates)


def test_a_step_reward_scores_items(tmp_path: Path) -> None:
    from rewardlab.label.truth import TruthLabeler
    from rewardlab.rewards.base import StepReward
    from rewardlab.tasks import arith
    from rewardlab.types import Candidate

    assert isinstance(ExactSteps(), StepReward)
    p = arith.generate(1, seed=4, n_ops=(3, 3))[0]
    steps = (*arith.gold_steps(p)[:2], "5 * 5 = 24", "The answer is 24.")
    sample = Candidate(p.id, "\n".join(steps), steps, "24")
    record = TruthLabeler(arith.ArithTask(), truncate=False).label([p], [sample])[0]
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(record.to_record()) + "\n")
    items = load_stepwise(path)
    scores, skipped = scores_from_reward(ExactSteps(), items, batch_size=1)
    assert scores == [[1.0, 1.0, 0.0, 0.0]] and skipped == {} and items[0].label == 2
    pb_scores, pb_skipped = scores_from_reward(ExactSteps(), load_processbench(EXCERPT)[:3], 2)
    assert pb_scores == [None] * 3 and pb_skipped == {"not an arith problem": 3}
