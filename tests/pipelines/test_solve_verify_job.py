"""`rewardlab verify` and `rewardlab scale --solve-verify` on a real (tiny) run: files,
resume through the store, λ from the written tokens, the frontier's shape."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rewardlab.cli.main import app
from rewardlab.compute import Ledger
from rewardlab.pipelines.solve_verify import run_solve_verify, run_verify
from rewardlab.report.solve_verify import write_solve_verify
from rewardlab.rewards.recompute import load_recompute

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    args = ["scale", "--quick", "--runs-dir", str(runs), "--name", "r", "--problems", "6"]
    args += ["--n-max", "4", "--difficulty", "2-4", "--rewards", "logprob"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return runs / "r"


def test_verify_writes_jsonl_and_resumes_through_the_store(run_dir: Path) -> None:
    ledger = Ledger()
    verifier = load_recompute(ledger=ledger)
    first = run_verify(run_dir, "recompute", reward=verifier)
    lines = (first["out"] / "verify.jsonl").read_text().splitlines()
    assert len(lines) == 6 * 4
    rec = json.loads(lines[0])
    assert {"value", "steps", "correct", "verify_generated_tokens"} <= set(rec)
    calls = ledger.totals(verifier.name).calls
    assert calls >= 1
    again = run_verify(run_dir, "recompute", reward=verifier)  # every score is in the store
    assert ledger.totals(verifier.name).calls == calls
    assert again["summary"] == first["summary"]
    s = first["summary"]
    assert 0.0 <= s["accuracy_at_n"]["bon@n"] <= s["accuracy_at_n"]["pass@n"]
    assert "steps" in s and 0.0 <= s["steps"]["f1"] <= 1.0  # arith pools carry step truth


def test_verify_cli_writes_the_report(run_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["verify", str(run_dir), "--verifier", "recompute", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "verify.md").read_text().startswith("# Verifier `recompute`")
    assert json.loads((tmp_path / "verify.json").read_text())["verifier"] == "recompute"
    bad = runner.invoke(app, ["verify", str(tmp_path), "--verifier", "recompute"])
    assert bad.exit_code != 0 and "summary.json" in bad.output


def test_solve_verify_study(run_dir: Path) -> None:
    study = run_solve_verify(run_dir, "recompute:V=2", n_resamples=4, n_boot=20)
    recs = [
        json.loads(x)
        for x in (run_dir / "verify-recompute-V2" / "verify.jsonl").read_text().splitlines()
    ]
    chain = np.mean([(r["verify_prompt_tokens"] + r["verify_generated_tokens"]) / 2 for r in recs])
    from rewardlab.pipelines.solve_verify import load_run

    _, loaded, _ = load_run(run_dir)
    sol = np.mean([c.prompt_tokens + c.generated_tokens for row in loaded.pool for c in row])
    assert study["lambda_tokens"] == pytest.approx(chain / sol)
    sc = {r["S"]: r for r in study["rows"] if r["method"] == "sc"}
    assert set(sc) == {1, 2, 4} and all(r["C"] == r["S"] for r in sc.values())
    genrm = [r for r in study["rows"] if r["method"] == "genrm"]
    assert {(r["S"], r["V"]) for r in genrm} == {(s, v) for s in (1, 2, 4) for v in (1, 2)}
    for r in genrm:
        assert r["C"] == pytest.approx(r["S"] * (1 + study["lambda"] * r["V"]))
    best = [q["genrm"] for q in study["frontier"]]
    assert best == sorted(best)  # a frontier never falls as the budget grows
    paths = write_solve_verify(study, run_dir, "test")
    assert all(p.exists() for p in paths.values())
    assert "Solve vs verify" in paths["report"].read_text()
