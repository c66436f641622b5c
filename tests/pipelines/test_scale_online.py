"""`rewardlab scale` with an online strategy: its points join the curves, online.jsonl has one
row per problem and budget, and a re-run reuses the stored expansions (same results)."""

from __future__ import annotations

import json
from pathlib import Path

from rewardlab.pipelines.scale_job import ScaleConfig, run_scale


def test_online_strategy_on_the_curves_and_resumed(tmp_path: Path) -> None:
    cfg = ScaleConfig.quick(
        problems=8,
        rewards=("oracle-prm:q=0.9",),
        strategies=("maj", "beam:oracle-prm:q=0.9:2"),
        online_n_max=4,
        online_problems=4,
    )
    first = run_scale(cfg, tmp_path)
    beam = [r for r in first["rows"] if r["strategy"] == "beam[oracle-prm:q=0.9:2]"]
    assert sorted({r["n"] for r in beam}) == [1, 2, 4]
    assert all(r["reward"] == "oracle-prm-q0.9" and r["flops"] > 0 for r in beam)
    records = [json.loads(x) for x in (tmp_path / "online.jsonl").read_text().splitlines()]
    assert len(records) == 4 * 3 and {r["n"] for r in records} == {1, 2, 4}
    assert len({r["problem_id"] for r in records}) == 4
    assert first["summary"]["online"]["budgets"] == [1, 2, 4]
    again = run_scale(cfg, tmp_path)
    assert [r["accuracy"] for r in again["rows"]] == [r["accuracy"] for r in first["rows"]]
    assert again["summary"]["stage_seconds"]["online search"] > 0
