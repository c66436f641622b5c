"""One local Ray cluster (``ray.init(num_cpus=2)``) for every Ray test of the session: Ray
starts slowly, and fails to start at all on a crowded machine (docs/cluster.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def cluster() -> Iterator[str]:
    """The GCS address of a local cluster shared by the session's Ray tests."""
    pytest.importorskip("ray.data")
    from rewardlab.pipelines.ray_backend import RayConfig, ray_session

    started = time.monotonic()
    with ray_session(RayConfig(num_cpus=2)):
        import ray

        print(f"local Ray cluster up in {time.monotonic() - started:.1f} s")
        yield str(ray.get_runtime_context().gcs_address)
