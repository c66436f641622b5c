"""Step ablation by retraining (Ma et al. 2025): training rows per condition, the held-out
metrics on hand-made score sets with known answers, and a real end-to-end run (a tiny Llama
trained per condition) that resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rewardlab.evaluate import trust as T
from rewardlab.evaluate import trust_eval as E
from rewardlab.pipelines import step_ablation as S
from rewardlab.rewards.oracle import step_labels
from rewardlab.tasks import arith
from rewardlab.types import Candidate, Problem


def _no_division(n: int, seed: int, n_ops: tuple[int, int]) -> list[Problem]:
    found = [
        p
        for p in arith.generate(20 * n, seed=seed, n_ops=n_ops)
        if all(op != "/" for _, op, _, _ in p.meta["ops"])
    ]
    return found[:n]


def _wrong_at(p: Problem, k: int) -> str:
    """The gold solution with step k's result off by one, recomputed after it (no division:
    the answer is then wrong)."""
    state = int(p.meta["states"][0])
    lines = []
    for i, (_, op, b, _) in enumerate(p.meta["ops"]):
        r = arith.apply_op(state, op, b)
        assert r is not None
        r = r + 1 if i == k else r
        lines.append(f"{state} {op} {b} = {r}")
        state = r
    return "\n".join([*lines, f"The answer is {state}."])


def _pool(problems: list[Problem], wrong_step: int = 1) -> list[list[Candidate]]:
    """Each problem: its gold solution and one wrong at ``wrong_step``."""
    out = []
    for p in problems:
        texts = [arith.gold_solution(p), _wrong_at(p, wrong_step)]
        out.append(
            [
                Candidate(p.id, t, tuple(t.split("\n")), arith.extract_answer(t), index=i)
                for i, t in enumerate(texts)
            ]
        )
    return out


def test_training_rows_share_labels_and_differ_in_text() -> None:
    problems = _no_division(4, 1, (2, 3))
    pool = _pool(problems)
    rows = {c: S.training_rows(problems, pool, c) for c in E.STEP_CONDITIONS}
    assert [len(v) for v in rows.values()] == [8, 8, 8]
    for k in range(8):
        labels = [rows[c][k]["labels"] for c in E.STEP_CONDITIONS]
        assert labels[0] == labels[1] == labels[2]
        assert len({tuple(rows[c][k]["completions"]) for c in E.STEP_CONDITIONS}) == 3
    # gold: every step good; wrong at step 1: step 0 good, the rest bad
    assert rows["math"][0]["labels"] == [True] * len(rows["math"][0]["labels"])
    assert rows["math"][1]["labels"][:3] == [True, False, False]
    assert rows["math"][0]["completions"] == list(pool[0][0].steps)
    assert not any(E.MATH_RE.search(s) for r in rows["words"] for s in r["completions"])


def test_training_rows_need_steps() -> None:
    p = _no_division(1, 1, (2, 2))
    with pytest.raises(ValueError, match="no candidate with steps"):
        S.training_rows(p, [[Candidate(p[0].id, "", (), None)]], "math")


def _exact_scores(problems: list[Problem], pool: list[list[Candidate]]) -> dict:
    return {
        (i, c.text): tuple(float(y) for y in step_labels(problems[i], c.steps))
        for i, cands in enumerate(pool)
        for c in cands
    }


def test_condition_metrics_of_the_exact_step_truth() -> None:
    problems = _no_division(20, 2, (2, 4))
    pool = _pool(problems)
    m, d = S.condition_metrics(problems, pool, _exact_scores(problems, pool), n_boot=50)
    assert m["step_auroc"].value == 1.0
    # the first step below the tuned threshold is the true first error: every test item right
    assert m["f1"].value == 1.0 and m["acc_error"].value == 1.0
    # the last step of a wrong solution is bad (0), of the gold one good (1): BoN picks gold
    assert m["bon@2/last"].value == 1.0 and m["bon@2/min"].value == 1.0
    assert d["graded"] == 40 and d["ungraded"] == 0 and d["n_dev"] + d["n_test"] == 40
    base = S.pool_baselines(E.pool_correct(problems, pool), n_boot=50)
    assert base["pass@1"].value == 0.5 and base["pass@2"].value == 1.0


def test_condition_metrics_of_a_blind_prm_and_ungraded_items() -> None:
    problems = _no_division(20, 2, (2, 4))
    pool = _pool(problems)
    flat = {k: (0.5,) * len(v) for k, v in _exact_scores(problems, pool).items()}
    m, _ = S.condition_metrics(problems, pool, flat, n_boot=50)
    assert m["step_auroc"].value == 0.5  # every pair tied
    assert m["bon@2/last"].value == 0.5  # ties broken 50/50 between gold and wrong
    # the wrong solutions ungraded: BoN ranks them last, the metrics count them out
    gold_only = {
        (i, pool[i][0].text): v
        for (i, t), v in _exact_scores(problems, pool).items()
        if t == pool[i][0].text
    }
    m2, d2 = S.condition_metrics(problems, pool, gold_only, n_boot=50)
    assert d2["ungraded"] == 20 and d2["graded"] == 20
    assert m2["bon@2/last"].value == 1.0


def test_paired_deltas_of_the_exact_truth_against_a_blind_prm() -> None:
    problems = _no_division(20, 2, (2, 4))
    pool = _pool(problems)
    exact = _exact_scores(problems, pool)
    blind = {k: (0.5,) * len(v) for k, v in exact.items()}
    d = S.paired_deltas(problems, pool, {"blind": blind, "exact": exact}, "blind", n_boot=50)
    assert d["exact/step_auroc"].value == pytest.approx(0.5)  # 1.0 - 0.5
    assert d["exact/bon@2/last"].value == pytest.approx(0.5)  # 1.0 - 0.5 (ties)
    # every problem contributes the same difference: the paired interval has no width
    assert d["exact/bon@2/min"].low == pytest.approx(0.5) == d["exact/bon@2/min"].high
    assert "blind/step_auroc" not in d
    with pytest.raises(ValueError, match="'full' was not scored"):
        S.paired_deltas(problems, pool, {"exact": exact}, "full")


def test_auroc_delta_by_hand() -> None:
    # a orders the 2 positives over the 2 negatives (1.0); b ties all four (0.5)
    e = S.auroc_delta([0.9, 0.8, 0.1, 0.2], [0.5] * 4, [True, True, False, False], [0, 0, 1, 1])
    assert e.value == pytest.approx(0.5) and e.n == 4


def test_position_prior_by_hand() -> None:
    # 3-operation problems, gold + wrong at step 1: at step 0 both good, from step 1 one of two
    train = _no_division(5, 6, (3, 3))
    held = _no_division(2, 7, (3, 3))
    pool = _pool(held)
    out = S.position_prior(train, _pool(train), held, pool)
    assert out[(0, pool[0][0].text)] == (11 / 12, 6 / 12, 6 / 12, 6 / 12)  # (good+1)/(n+2)
    assert out[(0, pool[0][1].text)] == out[(0, pool[0][0].text)]  # it reads no text
    m, _ = S.condition_metrics(held, pool, out, n_boot=20)
    assert m["bon@2/last"].value == 0.5  # a tie between the right and the wrong solution


def test_processbench_f1_ci_by_hand() -> None:
    # errors at 2 and 0 predicted 2 and 1: acc_error 1/2; the error-free one right: acc 1;
    # F1 = 2 * 0.5 * 1 / 1.5 = 2/3; one group: every replicate is the same sample
    out = T.processbench_f1_ci([-1, 2, 0], [-1, 2, 1], np.zeros(3), n_boot=20)
    assert out["f1"][0] == pytest.approx(2 / 3)
    assert out["f1"][1] == pytest.approx(2 / 3) and out["f1"][2] == pytest.approx(2 / 3)
    assert out["acc_error"][0] == 0.5 and out["acc_correct"][0] == 1.0 and out["f1"][3] == 3
    with pytest.raises(ValueError, match="equal non-empty"):
        T.processbench_f1_ci([-1], [-1, 0], np.zeros(2))


def test_config_rejects_unknown_conditions(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="conditions must be among"):
        S.AblationConfig(backbone="x", work=str(tmp_path), conditions=("numbers",))


def test_retrains_per_condition_and_resumes(tiny_llama_dir: Path, tmp_path: Path) -> None:
    train_p = _no_division(8, 3, (2, 3))
    held_p = _no_division(6, 4, (2, 3))
    cfg = S.AblationConfig(
        backbone=str(tiny_llama_dir),
        work=str(tmp_path / "work"),
        steps=3,
        batch_size=4,
        warmup_steps=1,
        n_boot=20,
        conditions=("math", "words"),
    )
    logs: list[str] = []
    res = S.run_step_ablation(
        cfg, (train_p, _pool(train_p)), (held_p, _pool(held_p)), log=logs.append
    )
    for c in ("math", "words"):
        assert 0.0 <= res.metrics[f"{c}/step_auroc"].value <= 1.0
        assert res.metrics[f"{c}/bon@2/last"].n == 6
        stamp = json.loads((tmp_path / "work" / c / "ablation.json").read_text())
        assert stamp["rows"] == 16 and stamp["examples"] == 16 and stamp["condition"] == c
        assert res.details["conditions"][c]["heldout"]["ungraded"] == 0
    first = (tmp_path / "work" / "words" / "prm_train.jsonl").read_text()
    assert "=" not in first  # the words condition trained on no equation
    assert res.baseline["pass@1"].value == 0.5
    assert res.details["delta_base"] == "math"  # no words+math condition in this run
    assert {k for k in res.metrics if k.startswith("delta/")} == {
        "delta/words/step_auroc",
        "delta/words/bon@2/last",
        "delta/words/bon@2/min",
    }
    # a re-run trains and scores nothing, and gives the same numbers
    logs.clear()
    again = S.run_step_ablation(
        cfg, (train_p, _pool(train_p)), (held_p, _pool(held_p)), log=logs.append
    )
    assert sum("reusing" in m for m in logs) == 2 and not any("step 3/3" in m for m in logs)
    assert again.metrics == res.metrics
    # other settings retrain that condition
    cfg2 = S.AblationConfig(**{**cfg.__dict__, "steps": 4, "conditions": ("math",)})
    logs.clear()
    S.run_step_ablation(cfg2, (train_p, _pool(train_p)), (held_p, _pool(held_p)), log=logs.append)
    assert any("step 4/4" in m for m in logs)
    md = S.results_table(res)
    rows = [ln.split(" | ")[0] for ln in md.splitlines() if ln.startswith("| ")]
    prior = "| no text (step index x #operations prior)"
    assert rows == ["| condition", "| math", "| words", prior, "| condition", "| words"]
    assert "pass@1" in md and "against `math`" in md
    assert S.plot_results(res, tmp_path / "a.png").stat().st_size > 1000
