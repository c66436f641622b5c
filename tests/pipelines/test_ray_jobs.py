"""Sampling, labelling and verifying on a local Ray cluster give the local run's results; a
killed Ray sampling job resumes without redoing a stored chunk.

Skipped where Ray is not installed. Every test shares the session's local cluster
(tests/pipelines/conftest.py); the local reference runs on one torch thread, as the actors do.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray.data")

from raytools import assert_same_pool, one_torch_thread
from rewardlab.label.job import LabelConfig, run_label
from rewardlab.pipelines.ray_backend import RayConfig, RayPolicyPool
from rewardlab.pipelines.scale_job import ScaleConfig, dump_json, run_scale
from rewardlab.pipelines.solve_verify import run_verify
from rewardlab.policies.registry import load_policy
from rewardlab.search.pool import PolicyCall, PoolSpec, pool_chunks, sample_pool
from rewardlab.store import SampleStore
from rewardlab.tasks import arith
from rewardlab.types import Sampling

pytestmark = pytest.mark.slow
SRC = Path(__file__).resolve().parents[2] / "src"
SAMPLING = Sampling(temperature=1.0, max_new_tokens=24, seed=5)
SPEC = PoolSpec(n=3, sampling=SAMPLING, chunk_problems=2)


def test_ray_sampling_equals_the_local_run(
    cluster: str, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    problems = arith.generate(8, seed=2, n_ops=(1, 3))
    task = arith.ArithTask()
    with one_torch_thread():
        local = sample_pool(
            problems,
            task,
            load_policy(str(tiny_llama_dir)),
            SPEC,
            SampleStore(tmp_path / "l.sqlite"),
        )
    driver = load_policy(str(tiny_llama_dir))
    store = SampleStore(tmp_path / "r.sqlite")
    seen: list[int] = []
    with RayPolicyPool(str(tiny_llama_dir), RayConfig(actors=2), driver.name) as actors:
        remote = sample_pool(
            problems, task, driver, SPEC, store, lambda d, t: seen.append(d), actors
        )
        assert actors.calls_run == len(pool_chunks(8, 2)) == 4
        again = sample_pool(problems, task, driver, SPEC, store, runner=actors)
        assert actors.calls_run == 4  # all stored: nothing sampled again
    assert_same_pool(remote, local)
    assert again == remote and seen[-1] == 8 and store.leases() == []


def test_an_actor_with_another_policy_is_an_error(cluster: str, tiny_llama_dir: Path) -> None:
    call = PolicyCall(("What is 2 + 3?",), 1, SAMPLING)
    with (
        RayPolicyPool(str(tiny_llama_dir), RayConfig(actors=1), "another-model") as actors,
        pytest.raises(RuntimeError, match="cluster's policy differs"),
    ):
        list(actors.run([call]))


def test_more_actors_than_the_cluster_holds_is_a_clear_error(
    cluster: str, tiny_llama_dir: Path
) -> None:
    call = PolicyCall(("What is 2 + 3?",), 1, SAMPLING)
    with (
        RayPolicyPool(str(tiny_llama_dir), RayConfig(actors=3)) as actors,
        pytest.raises(RuntimeError, match="3 Ray actors of 1 CPU each need 3 CPUs; the cluster"),
    ):
        list(actors.run([call]))


def test_ray_labels_equal_the_local_labels(
    cluster: str, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    cfg = LabelConfig(
        method="mc",
        policy=str(tiny_llama_dir),
        problems=4,
        samples_per_problem=2,
        rollouts=3,
        difficulty=(1, 3),
        max_new_tokens=24,
        chunk=4,
    )
    with one_torch_thread():
        local = run_label(cfg, tmp_path / "local")
    with RayPolicyPool(cfg.policy, RayConfig(actors=2)) as actors:
        remote = run_label(cfg, tmp_path / "ray", runner=actors)
        assert actors.calls_run > 2  # the samples and the rollouts went to the actors
    labels = (tmp_path / "local" / "labels.jsonl").read_text()
    assert labels and (tmp_path / "ray" / "labels.jsonl").read_text() == labels
    assert remote["rollouts"] == local["rollouts"] > 0
    assert remote["fresh_rollouts"] == local["fresh_rollouts"] > 0
    assert remote["quality"] == local["quality"]


def test_ray_scale_and_verify_equal_the_local_run(
    cluster: str, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    cfg = ScaleConfig.quick(
        policy=str(tiny_llama_dir),
        problems=4,
        n_max=4,
        difficulty=(1, 2),
        max_new_tokens=24,
        rewards=("exact",),
        n_boot=50,
        n_resamples=20,
    )
    runs = {}
    for name, ray in (("local", None), ("ray", RayConfig(actors=2))):
        with one_torch_thread() if ray is None else contextlib.nullcontext():
            result = run_scale(cfg, tmp_path / name, ray=ray)
            dump_json(tmp_path / name / "summary.json", result["summary"])  # as the CLI does
            runs[name] = (result, run_verify(tmp_path / name, "prm", ray=ray))
    (local, local_verify), (remote, remote_verify) = runs["local"], runs["ray"]
    assert remote["rows"] == local["rows"]  # every curve point
    for name in ("pool.jsonl", "picks.jsonl"):
        assert (tmp_path / "ray" / name).read_text() == (tmp_path / "local" / name).read_text()
    assert remote_verify["scores"] == local_verify["scores"]
    assert remote_verify["summary"] | {"run": ""} == local_verify["summary"] | {"run": ""}
    assert any(s.value is not None for row in remote_verify["scores"] for s in row)


SAMPLE_ARGS = ["--problems", "16", "--n", "2", "--max-new-tokens", "24", "--difficulty", "1-3"]


def _sample_cli(out: Path, policy: Path, cluster: str) -> subprocess.Popen[str]:
    args = ["sample", "--out", str(out), "--policy", str(policy), *SAMPLE_ARGS, "--seed", "3"]
    ray = ["--backend", "ray", "--ray-address", cluster, "--ray-actors", "2"]
    return subprocess.Popen(
        [sys.executable, "-m", "rewardlab.cli.main", *args, *ray],
        env={**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_rewardlab_sample_on_ray_killed_then_resumed_writes_the_local_pool(
    cluster: str, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    """The CLI end to end: ``rewardlab sample --backend ray`` SIGKILLed once a chunk is
    stored, run again: it samples only the chunks that were not stored, and writes the
    pool.jsonl of a local run."""
    out, db = tmp_path / "ray", tmp_path / "ray" / "pool.sqlite"
    proc = _sample_cli(out, tiny_llama_dir, cluster)
    deadline = time.monotonic() + 300
    while not db.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    store = SampleStore(db)
    while store.count() == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the driver ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    kept = store.count()
    assert 0 < kept < 16 * 2 and kept % (4 * 2) == 0  # whole chunks (4 problems x 2) only
    resumed = _sample_cli(out, tiny_llama_dir, cluster)
    said, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert f"this process sampled {4 - kept // 8} of 4 chunks ({kept // 8} were stored" in said
    from rewardlab.cli.sample import write_pool_jsonl
    from rewardlab.tasks.registry import load_task

    task, problems = load_task("arith", 16, seed=3, n_ops=(1, 3))
    spec = PoolSpec(2, Sampling(1.0, 1.0, 24, 3))
    with one_torch_thread():
        policy = load_policy(str(tiny_llama_dir))
        local = sample_pool(problems, task, policy, spec, SampleStore(tmp_path / "l.sqlite"))
    write_pool_jsonl(tmp_path / "local.jsonl", problems, local)
    assert (out / "pool.jsonl").read_text() == (tmp_path / "local.jsonl").read_text()
    assert store.count() == 16 * 2
