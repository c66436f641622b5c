"""rewardlab tune / solve end to end on a small real run of the shipped tiny policy, scored by
the dial verifier (no learned model to load), plus the online.jsonl reader on hand-made files.

Run: .venv/bin/python -m pytest -q tests/pipelines/test_tune.py
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rewardlab.cli.main import app
from rewardlab.pipelines.solve import Solver, solve_one
from rewardlab.pipelines.tune import (
    TuneConfig,
    build_table,
    config_name,
    load_run,
    load_selector,
    offline_strategies,
    parse_config,
    read_online,
    reads,
    run_tune,
)
from rewardlab.store import SampleStore
from rewardlab.types import Sampling

runner = CliRunner()
VERIFIER = "oracle-prm-q0.8"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real scale run: 10 arith problems x 4 samples of the shipped policy."""
    runs = tmp_path_factory.mktemp("runs")
    args = ["scale", "--runs-dir", str(runs), "--name", "t", "--problems", "10"]
    args += ["--n-max", "4", "--difficulty", "1-4", "--rewards", "logprob,oracle-prm:q=0.8"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return runs / "t"


def flat(output: str) -> str:
    """CLI output with rich's error box and line wrapping removed."""
    return " ".join(output.replace("│", " ").split())


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run_dir, dst)
    return dst


def online_row(pid: str, strategy: str = f"beam[{VERIFIER}:4]", n: int = 4, **kw: object) -> str:
    row = {
        "strategy": strategy,
        "n": n,
        "problem_id": pid,
        "correct": True,
        "answer": "42",
        "policy_tokens": 100,
        "verifier_tokens": 0,
        "flops": 1.0,
    }
    row.update(kw)
    return json.dumps(row)


def test_tune_table_agrees_with_the_scale_run(run_dir: Path) -> None:
    loaded = load_run(run_dir)
    from rewardlab.pipelines.tune import base_pool

    pool = base_pool(loaded)
    strategies = offline_strategies(loaded.summary, (), VERIFIER)
    names = [s.name for s in strategies]
    assert "maj" in names and "pass" not in names and "bon[logprob]" not in names
    table = build_table(loaded, [pool], strategies, None)
    assert table.budgets == (1, 2, 4)
    # best-of-N curves are exact: the per-problem means are the scale run's accuracies
    for name in (f"bon[{VERIFIER}:last]", f"bon[{VERIFIER}:min]"):
        acc = table.acc[table.config_index(name)].mean(axis=0)
        want = [loaded.summary["accuracy"][name][str(k)] for k in (1, 2, 4)]
        assert acc.tolist() == pytest.approx(want)
    # cost = N x the problem's mean per-candidate policy FLOPs (the dial costs nothing)
    tokens = (pool.prompt_tokens + pool.generated_tokens).mean(axis=1)
    cost = table.cost[table.config_index("maj")]
    assert cost[:, 2] == pytest.approx(4 * 2.0 * loaded.policy_params * tokens)


def test_run_tune_and_cli_write_every_file(run_dir: Path, tmp_path: Path) -> None:
    result, selector = run_tune(TuneConfig(run_dir, n_boot=50))
    assert result["verifier"] == VERIFIER
    assert result["reference"] == f"wmaj[{VERIFIER}:last]"
    assert {r["binning"] for r in result["results"]} == {"oracle", "predicted"}
    groups = {r["group"] for r in result["results"]}
    assert {"all", "hard half", "oracle bin 1", "predicted bin 5"} <= groups
    assert selector.verifier == VERIFIER and selector.budgets == (1, 2, 4)
    out = tmp_path / "out"
    cli = runner.invoke(app, ["tune", "--run", str(run_dir), "--n-boot", "50", "--out", str(out)])
    assert cli.exit_code == 0, cli.output
    for name in ("tune.json", "tune.md", "selector.json", "tune_oracle.png", "tune_predicted.png"):
        assert (out / name).stat().st_size > 0
    assert "Efficiency multiple" in (out / "tune.md").read_text()
    assert load_selector(out) == selector


def test_sweep_adds_configs_and_resumes(run_dir: Path, tmp_path: Path) -> None:
    run = copy_run(run_dir, tmp_path)
    cfg = TuneConfig(run, temperatures=(0.7,), n_boot=20)
    result, _ = run_tune(cfg)
    assert f"wmaj[{VERIFIER}:last]{{T=0.7,top_p=1}}" in result["configs"]
    assert [p["temperature"] for p in result["pools"]] == [1.0, 0.7]
    store = SampleStore(run / "pool.sqlite")
    count = store.count()
    assert count == 2 * 10 * 4
    run_tune(cfg)  # everything is stored: nothing is sampled again
    assert SampleStore(run / "pool.sqlite").count() == count


def test_online_results_enter_the_table(run_dir: Path, tmp_path: Path) -> None:
    run = copy_run(run_dir, tmp_path)
    loaded = load_run(run)
    ids = [p.id for p in loaded.problems]
    lines = [online_row(pid, correct=(i % 2 == 0), flops=1e6) for i, pid in enumerate(ids)]
    lines += [online_row(ids[0], correct=False, flops=3e6)]  # a second seed: averaged
    lines += [online_row(ids[1], strategy="beam[prm:4]")]  # another verifier: left out
    (run / "online.jsonl").write_text("\n".join(lines) + "\n\n")
    result, _ = run_tune(TuneConfig(run, n_boot=20))
    assert f"beam[{VERIFIER}:4]" in result["configs"]
    assert "beam[prm:4]" not in result["configs"]
    offline_only, _ = run_tune(TuneConfig(run, n_boot=20, use_online=False))
    assert not any(c.startswith("beam") for c in offline_only["configs"])
    online = read_online(run / "online.jsonl", ids)
    assert online.acc[(f"beam[{VERIFIER}:4]", 4, ids[0])] == 0.5
    assert online.flops[(f"beam[{VERIFIER}:4]", 4, ids[0])] == 2e6
    assert online.budgets == [4]
    from rewardlab.pipelines.tune import base_pool

    strategies = offline_strategies(loaded.summary, (), VERIFIER)
    table = build_table(loaded, [base_pool(loaded)], strategies, online, verifier=VERIFIER)
    beam = table.config_index(f"beam[{VERIFIER}:4]")
    assert np.isnan(table.acc[beam, :, :2]).all()  # run at N=4 only
    assert table.acc[beam, 1, 2] == 0.0 and table.acc[beam, 2, 2] == 1.0


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected an object"),
        ('{"strategy": "beam"}', "missing field 'n'"),
        (None, "problem 'nope' is not in the run"),
        ("n=true", "field 'n' has True"),
        ("flops=0", "flops must be finite and > 0"),
        ("answer=3", "'answer' must be a string or null"),
        ("n=0", "n must be >= 1"),
    ],
)
def test_online_reader_names_the_bad_line(tmp_path: Path, line: str | None, message: str) -> None:
    good = online_row("p1")
    if line is None:
        bad = online_row("nope")
    elif "=" in line and not line.startswith("{"):
        key, value = line.split("=")
        bad = online_row("p1", **{key: json.loads(value)})
    else:
        bad = line
    path = tmp_path / "online.jsonl"
    path.write_text(good + "\n" + bad + "\n")
    with pytest.raises(ValueError, match=message) as err:
        read_online(path, ["p1"])
    assert f"{path}:2" in str(err.value)


def test_config_names_round_trip_and_reads() -> None:
    name = config_name("wmaj[prm:last]", Sampling(0.7, 0.9))
    assert parse_config(name) == ("wmaj[prm:last]", 0.7, 0.9)
    assert parse_config("maj") == ("maj", None, None)
    assert reads(name) == "prm" and reads("maj") == "" and reads("beam[orm:4]") == "orm"


def test_solve_answers_with_the_selector(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "solved.jsonl"
    fitted = run_tune(TuneConfig(run_dir, n_boot=20))[1]
    (tmp_path / "selector.json").write_text(json.dumps(fitted.to_json()))
    args = ["solve", "--selector", str(tmp_path), "--task", "arith", "--problems", "3"]
    cli = runner.invoke(app, [*args, "--budget", "2", "--out", str(out)])
    assert cli.exit_code == 0, cli.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3
    for r in rows:
        assert r["n"] <= 4 and r["level"] == 2 and 1 <= r["predicted_bin"] <= 5
        assert isinstance(r["correct"], bool)
    # a FLOPs budget below every level is refused, naming the cheapest
    low = runner.invoke(app, [*args, "--flops", "1"])
    assert low.exit_code != 0 and "below the cheapest level" in flat(low.output)
    # the dial needs the testbed's truth: a free question cannot be binned by it
    free_args = ["solve", "What is 2 + 2?", "--selector", str(tmp_path), "--budget", "1"]
    free = runner.invoke(app, free_args)
    assert free.exit_code != 0 and "not an arith problem" in flat(free.output)


def test_an_online_choice_runs_its_search(run_dir: Path, tmp_path: Path) -> None:
    """A hand-made online.jsonl where beam search is always right and nearly free: the selector
    chooses it everywhere, and solve runs a real beam search (tiny policy, the dial)."""
    run = copy_run(run_dir, tmp_path)
    ids = [p.id for p in load_run(run).problems]
    rows = [online_row(pid, n=n, flops=1.0) for pid in ids for n in (1, 2, 4)]
    (run / "online.jsonl").write_text("\n".join(rows) + "\n")
    _, selector = run_tune(TuneConfig(run, n_boot=20))
    assert {c.config for c in selector.choices} == {f"beam[{VERIFIER}:4]"}  # right and free
    solver = Solver.load(selector)
    problem = load_run(run).problems[0]
    out = solve_one(solver, problem, n=4)
    # all tie at accuracy 1: the cheapest option (N = 1) wins at level 4
    assert out["config"] == f"beam[{VERIFIER}:4]" and (out["level"], out["n"]) == (4, 1)
    assert out["flops"] > 0 and out["tokens"] > 0
    assert out["answer"] is None or isinstance(out["correct"], bool)


def test_online_results_on_a_subset_of_problems(run_dir: Path, tmp_path: Path) -> None:
    """Online strategies run on the first K problems only: tune compares on those K."""
    run = copy_run(run_dir, tmp_path)
    ids = [p.id for p in load_run(run).problems][:6]
    (run / "online.jsonl").write_text("\n".join(online_row(pid, flops=1e9) for pid in ids))
    result, _ = run_tune(TuneConfig(run, n_boot=20))
    assert result["problems_used"] == 6
    assert {r["problems"] for r in result["results"] if r["group"] == "all"} == {6}


def test_bad_runs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"summary\.json"):
        run_tune(TuneConfig(tmp_path))
    bad = runner.invoke(app, ["tune", "--run", str(tmp_path)])
    assert bad.exit_code != 0 and "rewardlab scale" in flat(bad.output)


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(["maj", "bon[prm:last]", "wmaj[oracle-prm-q0.8:prod]", "beam[prm:4]"]),
    st.floats(0.0, 5.0, allow_nan=False).map(lambda x: round(x, 3)),
    st.floats(0.01, 1.0, allow_nan=False).map(lambda x: round(x, 3)),
)
def test_config_name_round_trips(strategy: str, t: float, p: float) -> None:
    name = config_name(strategy, Sampling(t, max(p, 0.001)))
    got = parse_config(name)
    assert got[0] == strategy
    assert got[1] == pytest.approx(t, rel=1e-5) and got[2] == pytest.approx(max(p, 0.001), rel=1e-5)


def test_online_names_in_the_summary_are_not_offline_configs() -> None:
    summary = {"strategies": ["maj", "bon[prm:last]", "beam[oracle-prm:q=0.8:4]", "pass"]}
    assert [s.name for s in offline_strategies(summary, ())] == ["maj", "bon[prm:last]"]
