"""Ctrl-C and SIGTERM during a real `rewardlab scale` process: the message says where the
work stood and the exact command that resumes it; resuming finishes the run, and every
session's wall times are kept (timings.json), never overwritten."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _default_signals() -> None:
    """In the child before exec: SIGINT as a terminal would deliver it. A shell starts
    background jobs with SIGINT ignored, and Python keeps an ignored SIGINT ignored, so a
    suite run in the background (nohup ... &) would otherwise never see Ctrl-C arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "rewardlab.cli.main", *args],
        cwd=cwd,
        env=env,
        preexec_fn=_default_signals,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _interrupt_while_sampling(proc: subprocess.Popen[str], sig: int) -> tuple[int, str]:
    """Send ``sig`` as soon as the first sampling progress line appears; (exit code, stderr)."""
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("sampling") or time.monotonic() > deadline:
            proc.send_signal(sig)
            break
    rest = proc.communicate(timeout=120)[1]
    return proc.returncode, "".join(seen) + rest


def test_ctrl_c_and_sigterm_say_how_to_resume_and_resuming_completes(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs" / "i"
    args = [
        "scale",
        "--quick",
        "--policy",
        str(tiny_llama_dir),
        "--runs-dir",
        str(tmp_path / "runs"),
    ]
    # large enough that the fast decode loop is still sampling when the signal lands
    args += ["--name", "i", "--problems", "240", "--n-max", "8", "--difficulty", "1-2"]
    args += ["--rewards", "logprob", "--max-new-tokens", "24"]

    code, err = _interrupt_while_sampling(_start(args, tmp_path), signal.SIGINT)
    assert code == 130, err
    assert "Traceback" not in err
    assert "interrupted (Ctrl-C) while sampling 240 problems x 8" in err, err
    resume_line = next(ln for ln in err.splitlines() if ln.startswith("resume with: "))
    assert resume_line == f"resume with: rewardlab scale --resume {shlex.quote(str(out))}"
    assert (out / "settings.json").is_file() and not (out / "summary.json").exists()

    # the printed command, interrupted again (SIGTERM this time)
    resume_args = shlex.split(resume_line.removeprefix("resume with: rewardlab "))
    code, err = _interrupt_while_sampling(_start(resume_args, tmp_path), signal.SIGTERM)
    assert code == 143, err
    assert "interrupted (SIGTERM)" in err and "Traceback" not in err

    # the original command again: it says it resumes, and finishes
    done = subprocess.run(
        [sys.executable, "-m", "rewardlab.cli.main", *args],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "exists: resuming it" in done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problems"] == 240 and summary["n_max"] == 8
    sessions = json.loads((out / "timings.json").read_text())["sessions"]
    assert [s["completed"] for s in sessions] == [False, False, True]
    assert all(s["stages"]["sampling"] > 0 for s in sessions[:2])
    assert summary["sessions"] == 3
    total = sum(s["wall_seconds"] for s in sessions)
    assert abs(summary["wall_seconds"] - total) < 0.05
    assert summary["wall_seconds"] > sessions[-1]["wall_seconds"]


def test_an_interrupted_sample_says_the_same_command_resumes(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    args = ["sample", "--out", str(tmp_path / "s"), "--policy", str(tiny_llama_dir)]
    args += ["--problems", "240", "--n", "8", "--difficulty", "1-2", "--max-new-tokens", "24"]
    code, err = _interrupt_while_sampling(_start(args, tmp_path), signal.SIGINT)
    assert code == 130, err
    assert "Traceback" not in err
    assert f"resume with: rewardlab {shlex.join(args)}" in err
