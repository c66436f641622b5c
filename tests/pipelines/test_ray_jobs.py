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
import textwrap
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


def _sample_cli(out: Path, policy: Path, *ray: str) -> str:
    args = ["sample", "--out", str(out), "--policy", str(policy), "--problems", "6", "--n", "2"]
    args += ["--max-new-tokens", "24", "--difficulty", "1-3", "--seed", "3", *ray]
    done = subprocess.run(
        [sys.executable, "-m", "rewardlab.cli.main", *args],
        env={**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_rewardlab_sample_on_ray_writes_the_local_pool(
    cluster: str, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    said = _sample_cli(
        tmp_path / "ray", tiny_llama_dir, "--backend", "ray", "--ray-address", cluster
    )
    assert "this process sampled 2 of 2 chunks" in said
    _sample_cli(tmp_path / "local", tiny_llama_dir)
    local = (tmp_path / "local" / "pool.jsonl").read_text()
    assert local and (tmp_path / "ray" / "pool.jsonl").read_text() == local


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
        rewards=("exact", "orm"),
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


DRIVER = textwrap.dedent(
    """
    import sys, time
    from rewardlab.pipelines.ray_backend import RayConfig, RayPolicyPool, ray_session
    from rewardlab.policies.registry import load_policy
    from rewardlab.search.pool import PoolSpec, sample_pool
    from rewardlab.store import SampleStore
    from rewardlab.tasks import arith
    from rewardlab.types import Sampling
    spec = PoolSpec(n=3, sampling=Sampling(temperature=1.0, max_new_tokens=24, seed=5),
                    chunk_problems=1)
    problems = arith.generate(12, seed=2, n_ops=(1, 3))
    def tick(done, total):
        print(done, flush=True)
    with ray_session(RayConfig(address=sys.argv[1])):
        policy = load_policy(sys.argv[3])
        with RayPolicyPool(sys.argv[3], RayConfig(actors=1), policy.name) as actors:
            sample_pool(problems, arith.ArithTask(), policy, spec, SampleStore(sys.argv[2]),
                        tick, actors)
    print("finished", flush=True)
    """
)


def test_a_killed_ray_sampling_job_resumes_where_it_stopped(
    cluster: str, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    db = tmp_path / "pool.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, cluster, str(db), str(tiny_llama_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"},
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # kill the driver once some chunks are stored
        if line.strip() not in ("0", "finished"):
            break
    else:
        pytest.fail("the driver ended before it stored a chunk")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    store = SampleStore(db)
    kept = store.count()
    assert 0 < kept < 12 * 3 and kept % 3 == 0  # whole chunks (one problem x 3) only
    spec = PoolSpec(3, SAMPLING, chunk_problems=1)
    problems = arith.generate(12, seed=2, n_ops=(1, 3))
    task = arith.ArithTask()
    driver = load_policy(str(tiny_llama_dir))
    with RayPolicyPool(str(tiny_llama_dir), RayConfig(actors=2), driver.name) as actors:
        resumed = sample_pool(problems, task, driver, spec, store, runner=actors)
        assert actors.calls_run == 12 - kept // 3  # the stored chunks are not sampled again
    with one_torch_thread():
        clean = sample_pool(
            problems,
            task,
            load_policy(str(tiny_llama_dir)),
            spec,
            SampleStore(tmp_path / "c.sqlite"),
        )
    assert_same_pool(resumed, clean)
    assert store.count() == 12 * 3
    # what is left is the killed driver's own lease on a chunk someone finished (dead: free)
    assert all(f"/{proc.pid}/" in owner for _, owner, _ in store.leases())
