"""The jobs on a PostgreSQL store (``pg_url``: a real server on loopback): ``scale`` gives the
SQLite run's results and records its store, so a resume, ``verify`` and ``tune`` find it;
two ``label`` runs (as on two hosts) share rollouts; ``rewardlab store copy`` moves a pool
between the backends and a run continues from the copy without recomputing."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from pgserver import PgServer
from rewardlab.cli.main import app
from rewardlab.label.job import LabelConfig, run_label
from rewardlab.pipelines.tune import base_pool, load_run
from rewardlab.store import SampleStore, open_store
from rewardlab.store_pg import PostgresStore

runner = CliRunner()


def _scale(runs: Path, name: str, store: str | None = None) -> Path:
    args = ["scale", "--quick", "--runs-dir", str(runs), "--name", name, "--problems", "4"]
    args += ["--n-max", "4", "--difficulty", "2-3", "--rewards", "exact"]
    args += ["--strategies", "maj,bon:exact:min", "--max-new-tokens", "48"]
    res = runner.invoke(app, args + (["--store", store] if store else []))
    assert res.exit_code == 0, res.output
    return runs / name


def test_scale_verify_and_copy_on_postgres_match_sqlite(
    tmp_path: Path, pg_url: str, pg_server: PgServer
) -> None:
    lite = _scale(tmp_path, "lite")
    pg = _scale(tmp_path, "pg", pg_url)
    curves = (lite / "curves.csv").read_text()
    assert (pg / "curves.csv").read_text() == curves  # the same curves, whatever the backend
    assert not (pg / "pool.sqlite").exists()
    assert json.loads((pg / "store.json").read_text()) == {"store": pg_url}
    db = open_store(pg_url)
    stored = db.count()
    assert stored == 16 and db.count_scores() == 16
    _scale(tmp_path, "pg")  # a resume finds the recorded store
    assert (pg / "curves.csv").read_text() == curves and db.count() == stored
    res = runner.invoke(app, ["verify", str(pg), "--verifier", "exact"])
    assert res.exit_code == 0, res.output
    assert db.count() == stored and db.count_scores() == 16  # read back, nothing recomputed
    lines = (pg / "verify-exact" / "verify.jsonl").read_text()
    res = runner.invoke(app, ["verify", str(lite), "--verifier", "exact"])
    assert (lite / "verify-exact" / "verify.jsonl").read_text() == lines
    # tune reads the run through the store it recorded: the same pool and scores as SQLite
    tuned, tuned_lite = base_pool(load_run(pg)), base_pool(load_run(lite))
    assert isinstance(load_run(pg).store, PostgresStore)
    assert (tuned.arrays.correct == tuned_lite.arrays.correct).all()
    assert (tuned.generated_tokens == tuned_lite.generated_tokens).all()
    assert tuned.arrays.step_scores.keys() == tuned_lite.arrays.step_scores.keys() != set()

    # rewardlab store copy: the SQLite run's pool into a fresh database, then a run on it
    fresh = pg_server.create_db()
    lite_db = str(tmp_path / "lite" / "pool.sqlite")
    res = runner.invoke(app, ["store", "copy", lite_db, fresh])
    assert res.exit_code == 0, res.output
    counts = json.loads(res.output.strip().splitlines()[-1])
    assert counts["new_candidates"] == counts["candidates"] == 16
    assert counts["new_scores"] == counts["scores"] == 16
    res = runner.invoke(app, ["store", "copy", lite_db, fresh])  # again: nothing new
    assert json.loads(res.output.strip().splitlines()[-1])["new_candidates"] == 0
    info = runner.invoke(app, ["store", "info", fresh])
    assert json.loads(info.output.strip().splitlines()[-1])["candidates"] == 16
    copied = open_store(fresh)
    assert list(copied.iter_all()) == list(SampleStore(lite_db).iter_all())
    moved = _scale(tmp_path, "moved", fresh)
    assert (moved / "curves.csv").read_text() == curves and copied.count() == 16
    bad = runner.invoke(app, ["store", "copy", str(tmp_path / "none.sqlite"), fresh])
    assert bad.exit_code == 2 and "no such store file" in bad.output


def test_two_label_runs_share_rollouts_through_postgres(
    tiny_llama_dir: Path, tmp_path: Path, pg_url: str
) -> None:
    cfg = LabelConfig(
        method="binary",
        policy=str(tiny_llama_dir),
        problems=2,
        samples_per_problem=2,
        rollouts=2,
        difficulty=(2, 3),
        max_new_tokens=40,
        device="cpu",
    )
    first = run_label(cfg, tmp_path / "host-a", store_at=pg_url)
    second = run_label(cfg, tmp_path / "host-b", store_at=pg_url)  # another host, same store
    assert first["rollouts"] > 0 and second["fresh_rollouts"] == 0
    assert (tmp_path / "host-a" / "labels.jsonl").read_text() == (
        tmp_path / "host-b" / "labels.jsonl"
    ).read_text()
    assert open_store(pg_url).leases() == []
