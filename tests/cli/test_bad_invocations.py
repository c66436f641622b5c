"""A new user's bad invocations, through the real CLI: one line naming the problem, exit code 2
(a bad argument, found before any work) or 1 (a failure), no traceback, and nothing created
(no run directory, no pool.sqlite, no output directory).

Most cases run in-process through typer's runner (fast); a few run as real subprocesses to
prove the exit codes and the absence of a traceback end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardlab.cli.main import app

runner = CliRunner()
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture()
def files(tmp_path: Path) -> Path:
    """Bad inputs of every kind, in ``tmp_path/in``."""
    d = tmp_path / "in"
    d.mkdir()
    (d / "bytes.jsonl").write_bytes(b"\xff\xfe" + bytes(range(256)) * 40)
    (d / "bytes.json").write_bytes(b"\xff\xfe\x00garbage")
    (d / "deep.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    (d / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (d / "empty.jsonl").write_text("")
    (d / "fields.jsonl").write_text(json.dumps({"prompt": "2+2", "target": "4"}) + "\n")
    good = json.dumps({"question": "What is 2+2?", "answer": "2+2=4 #### 4"})
    (d / "badjson.jsonl").write_text(good + "\n{not json\n")
    long_q = json.dumps({"question": "1+" * 12_000 + "1", "answer": "#### 12001"})
    (d / "long.jsonl").write_text(good + "\n" + long_q + "\n")
    (d / "noconfig").mkdir()
    (d / "noconfig" / "weights.bin").write_bytes(b"")
    pb = [
        {"id": "a", "problem": "1+1?", "steps": ["1+1=2", "so 2"], "label": -1},
        {"id": "b", "problem": "2+2?", "steps": ["2+2=5", "so 5"], "label": 0},
    ]
    (d / "pb.json").write_text(json.dumps(pb))
    return d


EVAL_PB = ["eval", "process", "--data", "{in}/pb.json", "--out", "{out}"]
EVAL_OVEROPT = ["eval", "overopt", "--data", "{in}/pb.json", "--out", "{out}"]

# (args, exit code, words the one-line message must hold); {in} = the bad-input folder,
# {out} = where an output would go (must not exist afterwards).
CASES: list[tuple[list[str], int, str]] = [
    # scale: names
    (["scale", "--strategies", "bogus"], 2, "unknown strategy 'bogus'"),
    (["scale", "--strategies", "bon:nosuch"], 2, "uses reward 'nosuch'"),
    (["scale", "--strategies", "bon:logprb"], 2, "did you mean 'logprob'"),
    (["scale", "--strategies", "bon:prm:median"], 2, "unknown aggregate 'median'"),
    (["scale", "--strategies", "maj,maj"], 2, "strategies named twice"),
    # scale: online search strategies (checked before sampling, like the offline ones)
    (["scale", "--strategies", "beam"], 2, "needs a reward"),
    (["scale", "--strategies", "beam:prm:0"], 2, "must be >= 1"),
    (["scale", "--strategies", "beam:nosuch:4"], 2, "unknown reward 'nosuch'"),
    (["scale", "--strategies", "mcts:prm@rule=other"], 2, "value_rule"),
    (["scale", "--strategies", "dvts:prm:4@alpha=1"], 2, "unknown option"),
    (["scale", "--rewards", "logprb"], 2, "did you mean 'logprob'"),
    (["scale", "--rewards", "logprob,logprob"], 2, "named twice"),
    (["scale", "--rewards", "exact:q"], 2, "is not key=value"),
    (["scale", "--task", "gsm8k"], 2, "unknown task 'gsm8k'"),
    (["scale", "--task", "{in}/missing.jsonl"], 2, "does not exist"),
    (["scale", "--policy", "tinyy"], 2, "did you mean 'tiny'"),
    (["scale", "--policy", "{in}/noconfig"], 2, "has no config.json"),
    (["scale", "--policy", "hf:{in}/nope"], 2, "does not exist"),
    # scale: malformed task files (the line is named)
    (["scale", "--task", "{in}/bytes.jsonl"], 2, "bytes.jsonl:1: not UTF-8"),
    (["scale", "--task", "{in}/deep.jsonl"], 2, "deep.jsonl:1: JSON nested too deeply"),
    (["scale", "--task", "{in}/empty.jsonl"], 2, "no records"),
    (["scale", "--task", "{in}/fields.jsonl"], 2, "match no known format"),
    (["scale", "--task", "{in}/badjson.jsonl"], 2, "badjson.jsonl:2: invalid JSON"),
    (["scale", "--task", "{in}/long.jsonl"], 2, "long.jsonl:2: question is 24,001 characters"),
    # scale: ranges
    (["scale", "--difficulty", "5-2"], 2, "empty range '5-2'"),
    (["scale", "--difficulty", "abc"], 2, "expected N or LO-HI"),
    (["scale", "--difficulty", "1-20"], 2, "within 1-16"),
    (["scale", "--n-max", "0"], 2, "--n-max"),
    (["scale", "--problems", "-3"], 2, "--problems"),
    (["scale", "--temperature", "-1"], 2, "--temperature"),
    (["scale", "--top-p", "0"], 2, "top_p must be in (0, 1]"),
    (["scale", "--max-new-tokens", "0"], 2, "--max-new-tokens"),
    (["scale", "--threads", "0"], 2, "--threads"),
    (["scale", "--bogus-flag"], 2, "No such option"),
    # scale: resume and imported pools
    (["scale", "--resume", "{in}/nope"], 2, "no such run directory"),
    (["scale", "--resume", "{in}/noconfig"], 2, "not a `rewardlab scale` run"),
    (["scale", "--pool", "{in}/empty.jsonl"], 2, "is empty"),
    (["scale", "--pool", "{in}/missing.jsonl"], 2, "does not exist"),
    (["scale", "--pool", "{in}/bytes.jsonl"], 2, "bytes.jsonl:1: not UTF-8"),
    (["scale", "--pool", "{in}/deep.jsonl"], 2, "deep.jsonl:1: JSON nested too deeply"),
    # sample / label / train
    (["sample", "--out", "{out}", "--task", "gsm8k"], 2, "unknown task"),
    (["sample", "--out", "{out}", "--policy", "nope"], 2, "is neither a built-in name"),
    (["sample", "--out", "{out}", "--difficulty", "3-1"], 2, "empty range"),
    (["sample", "--out", "{out}", "--task", "{in}/long.jsonl"], 2, "over the limit"),
    (["label", "--out", "{out}", "--method", "bogus"], 2, "bogus"),
    (["label", "--out", "{out}", "--task", "gsm8k"], 2, "unknown task"),
    # the Ray flags every job command shares (cli/ray_options.py)
    (["sample", "--out", "{out}", "--backend", "rayy"], 2, "--backend must be 'local' or 'ray'"),
    (["label", "--out", "{out}", "--ray-address", "auto"], 2, "--ray-address needs --backend ray"),
    (["verify", "{in}", "--backend", "gpu"], 2, "--backend must be 'local' or 'ray'"),
    (["scale", "--backend", "ray", "--ray-actors", "0"], 2, "--ray-actors"),
    (["train", "--objective", "implict"], 2, "did you mean 'implicit-prm'"),
    (
        ["train-process", "--objective", "prm", "--data", "{in}/missing.jsonl", "--out", "{out}"],
        2,
        "does not exist",
    ),
    # eval
    (["eval", "process", "--data", "{in}/pb.json", "--out", "{out}"], 2, "exactly one of"),
    (
        ["eval", "process", "--data", "{in}/pb.json", "--out", "{out}", "--reward", "nosuch"],
        2,
        "unknown reward 'nosuch'",
    ),
    (
        ["eval", "process", "--data", "{in}/bytes.json", "--out", "{out}", "--reward", "exact"],
        2,
        "bytes.json: not UTF-8",
    ),
    (
        ["eval", "process", "--data", "{in}/deep.json", "--out", "{out}", "--reward", "exact"],
        2,
        "deep.json: JSON nested too deeply",
    ),
    (
        [
            "eval",
            "process",
            "--data",
            "{in}/pb.json",
            "--out",
            "{out}",
            "--reward",
            "{in}/noconfig",
        ],
        2,
        "name its recipe",
    ),
    (
        [*EVAL_PB, "--reward", "{in}/noconfig", "--recipe", "qwen-prm"],
        2,
        "has no config.json",
    ),
    (
        [*EVAL_PB, "--reward", "{in}", "--recipe", "bogus"],
        2,
        "no config.json",
    ),
    (
        [*EVAL_PB, "--reward", "exact", "--dtype", "float8"],
        2,
        "unknown --dtype 'float8'",
    ),
    (
        ["eval", "pairwise", "--reward", "orm", "--data", "{in}/missing.jsonl", "--out", "{out}"],
        2,
        "does not exist",
    ),
    (
        ["eval", "bon", "--reward", "orn", "--data", "{in}/pb.json", "--out", "{out}"],
        2,
        "did you mean 'orm'",
    ),
    (
        [*EVAL_OVEROPT, "--reward", "ensemble:avg:orm,prm"],
        2,
        "unknown ensemble aggregation 'avg'",
    ),
    (
        ["eval", "distance", "--reward", "orm", "--data", "{in}/pb.json", "--out", "{out}"],
        2,
        "exactly two SPECs",
    ),
    (["nosuch"], 2, "No such command"),
]


def _fill(args: list[str], files: Path, out: Path) -> list[str]:
    return [a.replace("{in}", str(files)).replace("{out}", str(out)) for a in args]


def _nothing_created(root: Path, out: Path) -> None:
    assert not (root / "runs").exists(), "a run directory was created"
    assert not out.exists(), "an output directory was created"
    assert not list(root.rglob("pool.sqlite")), "a pool.sqlite was created"
    assert not list(root.rglob("settings.json"))


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize(("args", "code", "message"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_invocation(
    args: list[str],
    code: int,
    message: str,
    files: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # the default runs/ would land here
    out = tmp_path / "out"
    result = runner.invoke(app, _fill(args, files, out))
    text = result.output
    assert result.exit_code == code, text
    assert message in text, text
    assert "Traceback" not in text
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    error_lines = [line for line in text.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1, text
    _nothing_created(tmp_path, out)


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rewardlab.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["scale", "--strategies", "bogus"], 2, "unknown strategy 'bogus'"),
        (["scale", "--task", "{in}/bytes.jsonl"], 2, "not UTF-8"),
        (["scale", "--pool", "{in}/empty.jsonl"], 2, "is empty"),
    ],
)
def test_bad_invocation_as_a_real_process(
    args: list[str], code: int, message: str, files: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = _cli(_fill(args, files, out), tmp_path)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr
    _nothing_created(tmp_path, out)


def test_debug_shows_the_traceback(files: Path, tmp_path: Path) -> None:
    proc = _cli(["--debug", "scale", "--task", str(files / "bytes.jsonl")], tmp_path)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "JsonlError" in proc.stderr
