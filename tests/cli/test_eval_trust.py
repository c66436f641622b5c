"""``rewardlab eval position|contrast|scir|bon-bias|step-ablation|ceiling`` end to end on
small real files: outputs written, known answers with the exact oracles, clear usage errors,
and the ceiling's score cache on a re-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardlab.cli.main import app
from rewardlab.tasks import arith

runner = CliRunner()


def _pool_file(path: Path, n: int = 8, with_meta: bool = True) -> Path:
    """A testbed pool in the generic import format: gold, a wrong answer, answer + extra line."""
    rows = []
    for p in arith.generate(n, seed=11, n_ops=(2, 3)):
        gold = arith.gold_solution(p)
        wrong = gold.replace(f"is {p.answer}.", f"is {int(p.answer) + 1}.")
        rec = {
            "id": p.id,
            "question": p.question,
            "answer": p.answer,
            "task": "arith",
            "candidates": [{"text": gold}, {"text": wrong}, {"text": gold + "\nextra"}],
        }
        if with_meta:
            rec["meta"] = dict(p.meta)
        rows.append(rec)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_ceiling_writes_results_and_resumes_from_its_cache(tmp_path: Path) -> None:
    pool = _pool_file(tmp_path / "pool.jsonl")
    out = tmp_path / "out"
    args = ["eval", "ceiling", "--pool", str(pool), "--out", str(out), "--n-boot", "30"]
    specs = "oracle-orm:q=1.0,oracle-prm:q=1.0,oracle-prm:q=0.6"
    first = runner.invoke(app, [*args, "--reward", specs])
    assert first.exit_code == 0, first.output
    res = json.loads((out / "ceiling.json").read_text())
    assert res["metrics"]["oracle-orm:q=1.0/accuracy"]["value"] == 1.0
    assert res["details"]["pass@1"] == pytest.approx(2 / 3)
    assert (out / "ceiling.md").is_file()
    cached = sorted((out / "ceiling_scores").glob("*.npy"))
    assert len(cached) == 3
    stamps = [p.stat().st_mtime_ns for p in cached]
    again = runner.invoke(app, [*args, "--reward", specs])
    assert again.exit_code == 0, again.output
    assert [p.stat().st_mtime_ns for p in cached] == stamps
    assert json.loads((out / "ceiling.json").read_text())["metrics"] == res["metrics"]


def test_ceiling_needs_three_rewards(tmp_path: Path) -> None:
    pool = _pool_file(tmp_path / "pool.jsonl")
    result = runner.invoke(
        app,
        [
            "eval",
            "ceiling",
            "--pool",
            str(pool),
            "--out",
            str(tmp_path / "o"),
            "--reward",
            "oracle-prm:q=1.0,oracle-prm:q=0.6",
        ],
    )
    assert result.exit_code == 2 and ">= 3" in result.output


def test_bon_bias_with_the_exact_prm(tmp_path: Path) -> None:
    pool = _pool_file(tmp_path / "pool.jsonl")
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "eval",
            "bon-bias",
            "--reward",
            "oracle-prm:q=1.0",
            "--pool",
            str(pool),
            "--out",
            str(out),
            "--n-boot",
            "30",
        ],
    )
    assert result.exit_code == 0, result.output
    m = json.loads((out / "bon_bias.json").read_text())["metrics"]
    assert m["answer_only/ties"]["value"] == 1.0
    assert m["truncated/prefers_full"]["value"] == 1.0  # 3-op problems only have a truncation


def test_step_ablation_refuses_an_outcome_reward(tmp_path: Path) -> None:
    pool = _pool_file(tmp_path / "pool.jsonl")
    result = runner.invoke(
        app,
        [
            "eval",
            "step-ablation",
            "--reward",
            "oracle-orm:q=1.0",
            "--pool",
            str(pool),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code != 0 and "step" in result.output


def test_a_pool_without_testbed_meta_is_refused(tmp_path: Path) -> None:
    pool = _pool_file(tmp_path / "pool.jsonl", with_meta=False)
    result = runner.invoke(
        app,
        [
            "eval",
            "bon-bias",
            "--reward",
            "oracle-prm:q=1.0",
            "--pool",
            str(pool),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code != 0 and "arith meta" in result.output


def test_contrast_and_position_with_the_shipped_prm(tmp_path: Path) -> None:
    rows, pairs = [], []
    for p in arith.generate(4, seed=12, n_ops=(2, 2)):
        gold = arith.gold_solution(p)
        wrong = gold.replace(f"is {p.answer}.", f"is {int(p.answer) + 1}.")
        pairs.append({"prompt": p.question, "chosen": gold, "rejected": wrong})
        rows.append(
            {
                "prompt1": p.question,
                "response1": gold,
                "prompt2": p.question + " Then add 1.",
                "response2": wrong,
            }
        )
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
    out = tmp_path / "out"
    r1 = runner.invoke(
        app,
        [
            "eval",
            "contrast",
            "--reward",
            "prm",
            "--data",
            str(tmp_path / "c.jsonl"),
            "--out",
            str(out),
            "--n-boot",
            "20",
        ],
    )
    assert r1.exit_code == 0, r1.output
    assert "consistency" in json.loads((out / "contrast.json").read_text())["metrics"]
    r2 = runner.invoke(
        app,
        [
            "eval",
            "position",
            "--judge",
            "prm",
            "--data",
            str(tmp_path / "p.jsonl"),
            "--out",
            str(out),
            "--n-boot",
            "20",
        ],
    )
    assert r2.exit_code == 0, r2.output
    m = json.loads((out / "position.json").read_text())["metrics"]
    assert m["soft_bias"]["value"] == pytest.approx(0.0, abs=1e-12)  # a scalar RM: 0 always
    r3 = runner.invoke(
        app,
        [
            "eval",
            "position",
            "--judge",
            "lm:",
            "--data",
            str(tmp_path / "p.jsonl"),
            "--out",
            str(out),
        ],
    )
    assert r3.exit_code != 0 and "lm:tiny" in r3.output


def test_step_ablation_retrain_writes_results_and_resumes(
    tmp_path: Path, tiny_llama_dir: Path
) -> None:
    train = _pool_file(tmp_path / "train.jsonl")
    held = _pool_file(tmp_path / "held.jsonl", n=4)
    out = tmp_path / "out"
    args = [
        "eval",
        "step-ablation",
        "--retrain",
        "--train-pool",
        str(train),
        "--pool",
        str(held),
        "--backbone",
        str(tiny_llama_dir),
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--out",
        str(out),
        "--n-boot",
        "20",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    res = json.loads((out / "step_ablation_retrain.json").read_text())
    for cond in ("math", "words+math", "words"):
        assert 0.0 <= res["metrics"][f"{cond}/step_auroc"]["value"] <= 1.0
        assert res["details"]["conditions"][cond]["train"]["rows"] == 24
    assert (out / "step_ablation_retrain.png").is_file()
    assert "| words+math |" in (out / "step_ablation_retrain_table.md").read_text()
    stamps = sorted((out / "work").glob("*/ablation.json"))
    assert len(stamps) == 3
    before = [p.stat().st_mtime_ns for p in stamps]
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert [p.stat().st_mtime_ns for p in stamps] == before  # nothing retrained
    assert json.loads((out / "step_ablation_retrain.json").read_text())["metrics"] == res["metrics"]


def test_step_ablation_retrain_needs_a_train_pool(tmp_path: Path) -> None:
    pool = _pool_file(tmp_path / "pool.jsonl")
    base = ["eval", "step-ablation", "--pool", str(pool), "--out", str(tmp_path / "o")]
    result = runner.invoke(app, [*base, "--retrain"])
    assert result.exit_code == 2 and "--train-pool" in result.output
    result = runner.invoke(app, base)
    assert result.exit_code == 2 and "--reward" in result.output
