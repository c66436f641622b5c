"""Periodic progress lines (stdout not a terminal) and the API's logger."""

from __future__ import annotations

import logging

import pytest

from rewardlab.pipelines.progress import logging_progress, periodic, progress_line


def test_progress_line_extrapolates_time_left() -> None:
    assert progress_line("sampling", 25, 100, 30.0) == (
        "sampling: 25/100 (25%), 30s elapsed, ~1m30s left"
    )
    assert progress_line("x", 100, 100, 3700.0) == "x: 100/100 (100%), 1h01m elapsed"
    assert progress_line("x", 0, 0, 0.0) == "x: 0/0, 0s elapsed"


def test_periodic_writes_first_then_every_interval_then_the_end() -> None:
    now = [0.0]
    lines: list[str] = []
    factory = periodic(lines.append, every_s=10.0, clock=lambda: now[0])
    with factory("work", 100) as update:
        for done in range(1, 101):
            now[0] = done * 1.0  # one second per item
            update(done, 100)
    # first update at 1 s, then at 11, 21, ..., 91 s, and the final one at 100 s
    assert len(lines) == 11
    assert lines[0].startswith("work: 1/100 (1%)")
    assert lines[-1] == "work: 100/100 (100%), 1m40s elapsed"


def test_periodic_reports_where_an_unfinished_stage_stopped() -> None:
    lines: list[str] = []
    with periodic(lines.append, every_s=1e9)("work", 10) as update:
        update(1, 10)
        update(4, 10)
    assert [ln.split(",")[0] for ln in lines] == ["work: 1/10 (10%)", "work: 4/10 (40%)"]


def test_logging_progress_goes_to_the_rewardlab_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rewardlab")
    with logging_progress(every_s=0.0)("scoring", 2) as update:
        update(1, 2)
        update(2, 2)
    assert [r.getMessage().split(",")[0] for r in caplog.records] == [
        "scoring: 1/2 (50%)",
        "scoring: 2/2 (100%)",
    ]
