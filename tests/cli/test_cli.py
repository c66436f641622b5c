"""The command line end to end through typer's runner, with a tiny model built in the test."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardlab.cli.main import app

runner = CliRunner()
ASSETS = Path(__file__).resolve().parents[1] / "assets"


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("sample", "scale", "demo", "train-policy"):
        assert cmd in result.output


def test_sample_writes_pool_with_step_truth_and_resumes(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pool"
    args = [
        "sample",
        "--out",
        str(out),
        "--policy",
        str(tiny_llama_dir),
        "--problems",
        "4",
        "--n",
        "3",
        "--difficulty",
        "1-2",
        "--max-new-tokens",
        "40",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    rows = [json.loads(x) for x in (out / "pool.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    for r in rows:
        assert {"text", "steps", "first_error", "correct", "generated_tokens"} <= set(r)
        assert all({"text", "parsed", "valid", "on_track"} <= set(s) for s in r["steps"])
        assert r["first_error"] in (-1, *range(len(r["steps"])))
    summary = json.loads((out / "summary.json").read_text())
    assert [row["difficulty"] for row in summary["rows"]] == ["1", "2", "all"]
    again = runner.invoke(app, args)
    assert again.exit_code == 0
    assert (out / "pool.jsonl").read_text().splitlines() == [
        json.dumps(r, ensure_ascii=False) for r in rows
    ]


def test_sample_rejects_bad_range(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sample", "--out", str(tmp_path), "--difficulty", "5-2"])
    assert result.exit_code != 0
    assert "empty range" in result.output


def _check_run(out: Path) -> list[dict[str, str]]:
    for f in ("curves.csv", "summary.json", "report.md", "scaling.png", "pool.sqlite"):
        assert (out / f).exists(), f
    with (out / "curves.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == [
        "strategy",
        "reward",
        "difficulty",
        "n",
        "tokens",
        "flops",
        "accuracy",
        "ci_low",
        "ci_high",
    ]
    for r in rows:
        assert float(r["ci_low"]) - 1e-9 <= float(r["accuracy"]) <= float(r["ci_high"]) + 1e-9
    json.loads((out / "summary.json").read_text())
    assert (out / "scaling.png").read_bytes()[:4] == b"\x89PNG"
    return rows


def _check_picks_and_pool(out: Path, problems: int, n: int) -> None:
    """picks.jsonl agrees with the exported pool: majority's pick holds the most common answer
    among the first k candidates, best-of-N's the highest score among them."""
    import pyarrow.parquet as pq

    pool = [json.loads(x) for x in (out / "pool.jsonl").read_text().splitlines()]
    assert len(pool) == problems * n
    table = pq.read_table(out / "pool.parquet").to_pylist()
    assert [r["text"] for r in table] == [r["text"] for r in pool]
    by = {(r["problem_id"], r["index"]): r for r in pool}
    picks = [json.loads(x) for x in (out / "picks.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    selectors = [s for s in summary["strategies"] if s != "pass"]
    assert len(picks) == problems * len(selectors) * len(summary["ks"])
    for p in picks:
        if p["candidate"] is None:
            continue
        chosen = by[(p["problem_id"], p["candidate"])]
        assert p["answer"] == chosen["answer"] and p["correct"] == chosen["correct"]
        assert p["candidate"] < p["n"]
        first = [by[(p["problem_id"], i)] for i in range(p["n"])]
        if p["strategy"] == "bon[logprob]":
            assert chosen["score:logprob"] == max(
                c["score:logprob"] for c in first if c["score:logprob"] is not None
            )
        if p["strategy"] == "maj":
            answers = [c["answer"] for c in first if c["answer"] is not None]
            assert answers.count(chosen["answer"]) == max(answers.count(a) for a in answers)


def test_scale_quick_end_to_end_and_resume(tiny_llama_dir: Path, tmp_path: Path) -> None:
    args = [
        "scale",
        "--quick",
        "--policy",
        str(tiny_llama_dir),
        "--runs-dir",
        str(tmp_path),
        "--name",
        "q",
        "--problems",
        "4",
        "--n-max",
        "4",
        "--difficulty",
        "1-2",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = _check_run(tmp_path / "q")
    strategies = {r["strategy"] for r in rows}
    assert {"pass", "maj", "bon[logprob]"} <= strategies
    assert {r["difficulty"] for r in rows} == {"all", "1", "2"}
    # pass@k is the ceiling of every strategy at the same n
    acc = {(r["strategy"], r["difficulty"], r["n"]): float(r["accuracy"]) for r in rows}
    for (_, d, n), a in acc.items():
        assert a <= acc[("pass", d, n)] + 1e-9
    _check_picks_and_pool(tmp_path / "q", problems=4, n=4)
    # resume: a new strategy on the stored pool needs no sampling and keeps the pool
    before = (tmp_path / "q" / "pool.sqlite").stat().st_size
    again = runner.invoke(
        app, ["scale", "--resume", str(tmp_path / "q"), "--strategies", "maj,bon:logprob"]
    )
    assert again.exit_code == 0, again.output
    assert {r["strategy"] for r in _check_run(tmp_path / "q")} == {"maj", "bon[logprob]"}
    assert (tmp_path / "q" / "pool.sqlite").stat().st_size >= before


def test_scale_with_a_process_reward_runs_every_aggregation(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    """A reward with ``score_steps`` (the shipped PRM) enters as a process reward: best-of-N
    and weighted majority with last / min / prod / mean, its weights' fingerprint recorded."""
    args = ["scale", "--quick", "--policy", str(tiny_llama_dir), "--runs-dir", str(tmp_path)]
    args += ["--name", "p", "--problems", "3", "--n-max", "2", "--difficulty", "1-2"]
    result = runner.invoke(app, [*args, "--rewards", "logprob,prm"])
    assert result.exit_code == 0, result.output
    strategies = {r["strategy"] for r in _check_run(tmp_path / "p")}
    for agg in ("last", "min", "prod", "mean"):
        assert {f"bon[prm:{agg}]", f"wmaj[prm:{agg}]"} <= strategies
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert len(summary["rewards"]["prm"]["fingerprint"]) == 16
    assert summary["rewards"]["logprob"]["fingerprint"] == ""


@pytest.mark.slow
def test_scale_on_an_imported_real_pool(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "scale",
            "--pool",
            str(ASSETS / "gsm8k_model_solutions_excerpt.jsonl"),
            "--runs-dir",
            str(tmp_path),
            "--name",
            "imp",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = _check_run(tmp_path / "imp")
    assert {r["strategy"] for r in rows} == {"pass", "maj"}  # no logprobs came with the pool
    assert {r["n"] for r in rows} == {"1", "2", "4"}
    summary = json.loads((tmp_path / "imp" / "summary.json").read_text())
    assert "logprob" in summary["skipped_rewards"]
    assert summary["imported_label_disagreements"] == 0
    assert json.loads((tmp_path / "imp" / "label_disagreements.json").read_text()) == []
    assert "Math-Verify disagrees with: 0" in (tmp_path / "imp" / "report.md").read_text()


def test_train_dispatches_by_objective(tiny_llama_dir: Path, tmp_path: Path) -> None:
    bad = runner.invoke(app, ["train", "--objective", "nope"])
    assert bad.exit_code != 0
    data = tmp_path / "pairs.jsonl"
    rows = [
        {
            "prompt": "1 + 1?",
            "chosen": "1 + 1 = 2\nThe answer is 2.",
            "rejected": "The answer is 3.",
        },
        {
            "prompt": "2 * 3?",
            "chosen": "2 * 3 = 6\nThe answer is 6.",
            "rejected": "The answer is 5.",
        },
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "rm"
    result = runner.invoke(
        app,
        [
            "train",
            "--objective",
            "bt",
            "--data",
            str(data),
            "--out",
            str(out),
            "--backbone",
            str(tiny_llama_dir),
            "--steps",
            "2",
            "--batch-size",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "rewardlab.json").read_text())["kind"] == "preference-rm"


HELP_MUST_SAY = {
    ("scale",): [
        *("smollm2", "MATH-500", "(tiny)", "(arith)", "64; --quick: 8", "--threads"),
        *("--temperature", "--top-p", "--max-new-tokens", "--device", "Example:"),
    ],
    ("sample",): ["MATH-500", "--threads", "--top-p", "Example:"],
    ("train",): ["--backbone", "--ensemble", "implicit-prm", "Example:"],
    ("train-process",): ['"completions"', "implicit-prm", "--threads"],
    ("eval", "process"): [
        *('"steps"', "--recipe", "qwen-prm", "--trust-remote-code", "--dtype"),
        *("--max-unscored", "Example:"),
    ],
    ("eval", "pairwise"): ['e.g. {"prompt"', "RewardBench v1"],
    ("eval", "bon"): ['e.g. {"prompt"', "RewardBench v2"],
    ("eval", "one-to-many"): ['e.g. {"prompt"', "RewardMATH"],
    ("eval", "overopt"): ['e.g. {"prompt"', '"gold"'],
    ("eval", "distance"): ['e.g. {"prompt"', '"responses"'],
    ("label",): ["--threads", "mc | binary"],
}


@pytest.mark.parametrize("command", list(HELP_MUST_SAY), ids=" ".join)
def test_help_shows_defaults_formats_and_examples(command: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for phrase in HELP_MUST_SAY[command]:
        assert phrase in text, (phrase, text)
