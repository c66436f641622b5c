"""Two real ``rewardlab label`` processes on one --out divide the samples between them: together
they generate the rollouts of one run, and both write the labels a lone run writes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
WORK = re.compile(r"this process labelled (\d+) of (\d+) chunks and generated (\d+) rollouts")


def _label(out: Path, policy: Path) -> subprocess.Popen[str]:
    args = ["label", "--out", str(out), "--policy", str(policy), "--method", "mc"]
    args += ["--problems", "6", "--samples-per-problem", "2", "--rollouts", "2", "--chunk", "3"]
    args += ["--max-new-tokens", "24", "--difficulty", "1-3", "--seed", "2"]
    return subprocess.Popen(
        [sys.executable, "-m", "rewardlab.cli.main", *args],
        env={**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _work(proc: subprocess.Popen[str]) -> tuple[int, int, int]:
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr
    found = WORK.search(stdout)
    assert found, stdout
    return int(found[1]), int(found[2]), int(found[3])


@pytest.mark.slow
def test_two_label_processes_divide_the_samples(tiny_llama_dir: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    a, b = _label(shared, tiny_llama_dir), _label(shared, tiny_llama_dir)
    (done_a, chunks_a, fresh_a), (done_b, chunks_b, fresh_b) = _work(a), _work(b)
    solo_done, chunks, solo_fresh = _work(_label(tmp_path / "solo", tiny_llama_dir))
    assert solo_done == chunks == chunks_a == chunks_b and chunks >= 3
    assert done_a + done_b == chunks  # each chunk labelled once
    assert fresh_a + fresh_b == solo_fresh > 0  # no rollout generated twice
    assert (shared / "labels.jsonl").read_text() == (tmp_path / "solo" / "labels.jsonl").read_text()
