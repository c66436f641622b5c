"""The scale job checks everything before any work, in the Python API too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardlab.pipelines.scale_job import (
    ScaleConfig,
    StageTimer,
    check_strategies,
    read_settings,
    run_scale,
    validate,
    write_settings,
)


def test_check_strategies_parses_and_checks_rewards() -> None:
    got = check_strategies(["maj", "bon:orm", "wmaj:prm:min"], ["orm", "prm"])
    assert [s.name for s in got] == ["maj", "bon[orm]", "wmaj[prm:min]"]
    with pytest.raises(ValueError, match=r"uses reward 'orn'.*did you mean 'orm'"):
        check_strategies(["bon:orn"], ["orm", "prm"])
    with pytest.raises(ValueError, match="named twice"):
        check_strategies(["maj", "majority"], [])  # an alias is the same strategy


def test_validate_knows_the_default_rewards_and_checkpoint_names() -> None:
    checked = validate(ScaleConfig(strategies=("bon:implicit-prm:sum", "wmaj:orm")))
    assert set(checked.reward_names) >= {"logprob", "orm", "prm", "implicit-prm"}
    with pytest.raises(ValueError, match="does not score"):
        validate(ScaleConfig(rewards=("logprob",), strategies=("bon:orm",)))


def test_run_scale_raises_before_creating_anything(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="unknown strategy 'bogus'"):
        run_scale(ScaleConfig(strategies=("bogus",)), out)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_scale(ScaleConfig(task=str(tmp_path / "none.jsonl")), out)
    assert not out.exists()


def test_settings_round_trip_and_unknown_keys(tmp_path: Path) -> None:
    cfg = ScaleConfig(problems=5, difficulty=(2, 3), rewards=("logprob",), top_p=0.9)
    write_settings(tmp_path, cfg)
    assert read_settings(tmp_path) == cfg
    (tmp_path / "settings.json").write_text(json.dumps({"config": {"problemz": 3}}))
    with pytest.raises(ValueError, match="unknown keys"):
        read_settings(tmp_path)


def test_stage_times_add_up_over_sessions_and_are_never_overwritten(tmp_path: Path) -> None:
    first = StageTimer(tmp_path)
    with first.stage("sampling"):
        pass
    first.stages["sampling"] = 100.0  # as if it had sampled for 100 s
    first.save()
    second = StageTimer(tmp_path)
    with second.stage("sampling"):
        pass
    second.completed = True
    second.save()
    sessions = json.loads((tmp_path / "timings.json").read_text())["sessions"]
    assert [s["completed"] for s in sessions] == [False, True]
    assert sessions[0]["stages"]["sampling"] == 100.0
    totals = second.totals()
    assert totals["sessions"] == 2 and totals["stage_seconds"]["sampling"] >= 100.0
