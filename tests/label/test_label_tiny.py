"""The labelers with a real (tiny, in-process) transformers policy, and the ``label`` job/CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from rewardlab.cli.label import label as label_cmd
from rewardlab.label.base import StepLabels
from rewardlab.label.binary import BinarySearchLabeler
from rewardlab.label.job import LabelConfig, run_label
from rewardlab.label.mc import MonteCarloLabeler
from rewardlab.label.progress import ProgressLabeler
from rewardlab.label.rollouts import RolloutEstimator
from rewardlab.policies.hf import HFPolicy
from rewardlab.search.pool import PoolSpec, sample_pool
from rewardlab.store import SampleStore
from rewardlab.tasks import arith
from rewardlab.types import Sampling

SAMPLING = Sampling(temperature=1.0, max_new_tokens=40, seed=0)


@pytest.fixture(scope="module")
def pool(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    policy = HFPolicy.from_dir(tiny_llama_dir, device="cpu")
    problems = arith.generate(2, seed=1, n_ops=(2, 3))
    store = SampleStore(tmp_path_factory.mktemp("tiny_label") / "pool.sqlite")
    rows = sample_pool(problems, arith.ArithTask(), policy, PoolSpec(2, SAMPLING), store)
    pairs = [(p, c) for p, row in zip(problems, rows, strict=True) for c in row if c.steps]
    return policy, store, [p for p, _ in pairs], [c for _, c in pairs]


def test_mc_binary_progress_with_a_real_policy(pool) -> None:
    policy, store, problems, samples = pool
    est = RolloutEstimator(policy, arith.ArithTask(), SAMPLING, store)
    mc = MonteCarloLabeler(est, k=2, soft=True).label(problems, samples)
    binary = BinarySearchLabeler(est, k=2).label(problems, samples)
    prog = ProgressLabeler(est, k=2, prover_k=2).label(problems, samples)
    assert sum(b.fresh_rollouts for b in binary) == 0  # binary visits prefixes MC already rolled
    for m, b, p, s in zip(mc, binary, prog, samples, strict=True):
        assert m.n_steps == b.n_steps == p.n_steps == len(s.steps)
        assert all(0.0 <= y <= 1.0 for y in m.labels)
        assert all(-1.0 <= y <= 1.0 for y in p.labels)
        assert all(vb is None or vb == vm for vb, vm in zip(b.values, m.values, strict=True))
        assert b.rollouts <= m.rollouts + 2
        if m.first_error == -1 or all(v == 0 for v in m.values[m.first_error :]):
            assert b.first_error == m.first_error  # monotone MC: the search finds MC's answer
    # deterministic: a fresh in-memory estimator reproduces the stored rollouts' labels
    again = MonteCarloLabeler(RolloutEstimator(policy, arith.ArithTask(), SAMPLING), k=2, soft=True)
    assert [replace(r, fresh_rollouts=0) for r in again.label(problems, samples)] == [
        replace(r, fresh_rollouts=0) for r in mc
    ]


def test_label_job_writes_and_resumes(tiny_llama_dir: Path, tmp_path: Path) -> None:
    cfg = LabelConfig(
        method="binary",
        policy=str(tiny_llama_dir),
        problems=2,
        samples_per_problem=2,
        rollouts=2,
        difficulty=(2, 3),
        max_new_tokens=40,
        device="cpu",
    )
    first = run_label(cfg, tmp_path)
    text = (tmp_path / "labels.jsonl").read_text()
    records = [StepLabels.from_record(json.loads(line)) for line in text.splitlines()]
    assert len(records) == first["samples_kept"] > 0
    assert first["quality"]["k"] == 2 and first["quality"]["samples"] == first["samples_labelled"]
    assert "Against the exact step truth" in (tmp_path / "report.md").read_text()
    second = run_label(cfg, tmp_path)
    assert second["fresh_rollouts"] == 0 and second["rollouts"] == first["rollouts"]
    assert (tmp_path / "labels.jsonl").read_text() == text


def test_label_cli(tiny_llama_dir: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command("label")(label_cmd)
    app.command("other")(lambda: None)  # two commands: typer keeps the subcommand name
    args = [
        "label",
        "--method",
        "consensus",
        "--consensus",
        "mc,binary",
        "--policy",
        str(tiny_llama_dir),
        "--problems",
        "2",
        "--samples-per-problem",
        "1",
        "--rollouts",
        "1",
        "--difficulty",
        "2",
        "--max-new-tokens",
        "32",
        "--device",
        "cpu",
        "--out",
        str(tmp_path),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["labeler"] == "consensus(mc-hard,binary)"
    assert summary["samples_kept"] <= summary["samples_labelled"]
    bad = CliRunner().invoke(app, [*args[:3], "mc,consensus", *args[4:]])
    assert bad.exit_code != 0
