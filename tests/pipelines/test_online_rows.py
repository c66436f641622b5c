"""Online results become scaling rows: accuracy per bin and N, mean FLOPs, JSONL records."""

from __future__ import annotations

from rewardlab.compute import Cost
from rewardlab.pipelines.online import OnlineSettings, online_rows, result_records
from rewardlab.search.online import SearchResult
from rewardlab.types import Candidate, Problem


def _result(pid: str, n: int, correct: bool, flops: float) -> SearchResult:
    c = Candidate(pid, "x", ("x",), "1", meta={"correct": correct})
    return SearchResult(pid, "beam[r:2]", n, (c,), 0, cost=Cost(prompt_tokens=10, flops=flops))


def test_rows_by_hand() -> None:
    problems = [Problem(f"p{i}", "q", "1", meta={"difficulty": d}) for i, d in enumerate([1, 1, 2])]
    by_n = {
        1: [
            _result("p0", 1, True, 10.0),
            _result("p1", 1, False, 20.0),
            _result("p2", 1, False, 30.0),
        ],
        2: [
            _result("p0", 2, True, 40.0),
            _result("p1", 2, True, 40.0),
            _result("p2", 2, False, 70.0),
        ],
    }
    rows = online_rows(problems, by_n, "r", n_boot=50)
    got = {(r["difficulty"], r["n"]): r for r in rows}
    assert got[("all", 1)]["accuracy"] == 1 / 3 and got[("all", 1)]["flops"] == 20.0
    assert got[("all", 2)]["accuracy"] == 2 / 3 and got[("all", 2)]["flops"] == 50.0
    assert got[("1", 2)]["accuracy"] == 1.0 and got[("2", 2)]["accuracy"] == 0.0
    assert got[("1", 1)]["flops"] == 15.0
    assert all(r["ci_low"] <= r["accuracy"] <= r["ci_high"] for r in rows)
    assert {r["strategy"] for r in rows} == {"beam[r:2]"} and rows[0]["tokens"] == 10.0
    records = result_records(problems, by_n)
    assert len(records) == 6 and records[0]["problem_id"] == "p0" and records[0]["correct"]
    assert records[3]["n"] == 2 and records[3]["difficulty"] == 1


def test_budgets_are_powers_of_two() -> None:
    assert OnlineSettings(n_max=16).budgets() == [1, 2, 4, 8, 16]
    assert OnlineSettings(n_max=6).budgets() == [1, 2, 4]
