"""``rewardlab iterate`` end to end on a tiny local model: outputs, selection, resume, settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rewardlab.cli.main import app
from rewardlab.pipelines.iterate import IterateConfig, best_of_k

ARGS = [
    "--problems", "3", "--held-out", "4", "--k", "2", "--rounds", "2", "--steps", "2",
    "--batch-size", "2", "--max-new-tokens", "16", "--min-ops", "1", "--max-ops", "2",
    "--reward", "oracle-prm",
]  # fmt: skip


def test_best_of_k_hand_worked() -> None:
    v = np.array([[0.2, 0.7, 0.7], [np.nan, 0.1, np.nan], [np.nan, np.nan, np.nan]])
    assert best_of_k(v, None).tolist() == [1, 1, -1]
    assert best_of_k(v, 0.5).tolist() == [1, -1, -1]
    with pytest.raises(ValueError, match=r"\[P, K\]"):
        best_of_k(np.zeros(3), None)


def test_config_rejects_bad_values(tiny_llama_dir: Path) -> None:
    with pytest.raises(ValueError, match="k must be >= 1"):
        IterateConfig(policy=str(tiny_llama_dir), k=0)
    with pytest.raises(ValueError, match="temperature"):
        IterateConfig(policy=str(tiny_llama_dir), temperature=0.0)


@pytest.mark.slow
def test_iterate_runs_selects_and_resumes(tiny_llama_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(app, ["iterate", "--out", str(out), "--policy", str(tiny_llama_dir), *ARGS])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert 0 <= r["accuracy_low"] <= r["accuracy"] <= r["accuracy_high"] <= 1
    assert (out / "report.md").read_text().count("\n| ") >= 4 and (out / "progress.png").is_file()
    # the kept sample of each problem is its best by the reward, one per problem
    samples = [json.loads(x) for x in (out / "round1" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 3 * 2
    by_problem: dict[str, list[dict[str, object]]] = {}
    for s in samples:
        by_problem.setdefault(str(s["problem_id"]), []).append(s)
    n_kept = 0
    for group in by_problem.values():
        kept = [x for x in group if x["kept"]]
        graded = [float(x["reward"]) for x in group if x["reward"] is not None]  # type: ignore[arg-type]
        if not graded:  # nothing graded (e.g. an empty sample): nothing kept
            assert kept == []
            continue
        assert len(kept) == 1 and kept[0]["reward"] == max(graded)
        n_kept += 1
    assert rows[1]["kept"] == n_kept
    # resume: a finished run does nothing; an unfinished round 2 is redone alone
    model1 = out / "round1" / "model" / "model.safetensors"
    stamp = model1.stat().st_mtime_ns
    (out / "round2" / "round.json").unlink()
    res = runner.invoke(app, ["iterate", "--out", str(out), "--policy", str(tiny_llama_dir), *ARGS])
    assert res.exit_code == 0, res.output
    assert model1.stat().st_mtime_ns == stamp
    assert "round 1: sampling" not in res.output and "round 2: sampling" in res.output
    assert (out / "round2" / "round.json").is_file()
    # other settings in the same directory: a clear error, exit 2
    res = runner.invoke(
        app,
        [
            "iterate",
            "--out",
            str(out),
            "--policy",
            str(tiny_llama_dir),
            *ARGS[:-2],
            "--reward",
            "exact",
        ],
    )
    assert res.exit_code != 0 and "other settings (reward)" in res.output


def test_bad_invocation_is_one_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["iterate", "--out", str(tmp_path / "x"), "--policy", str(tmp_path / "nope")]
    )
    assert res.exit_code != 0 and "is not a model directory" in res.output
    res = CliRunner().invoke(
        app, ["iterate", "--out", str(tmp_path / "x"), "--min-ops", "5", "--max-ops", "2"]
    )
    assert res.exit_code == 2 and "--min-ops 5 is above --max-ops 2" in res.output
    assert not os.path.exists(tmp_path / "x" / "settings.json")
