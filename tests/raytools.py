"""Helpers of the Ray tests (tests/pipelines/test_ray_*.py): one local cluster for the whole
session, and the local reference run on one torch thread as the actors run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from rewardlab.types import Candidate


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """torch on one intra-op thread for the block, like a Ray actor with one CPU (Ray sets
    OMP_NUM_THREADS=1 there); the pytest process may have more, and a float32 reduction split
    over more threads can differ in its last bits (seen in CI: 0.33997962 vs 0.33997959)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def assert_same_pool(a: list[list[Candidate]], b: list[list[Candidate]]) -> None:
    """Equal candidates (text, steps, answer, tokens, correctness, step truth, ...), and
    log-probabilities equal up to float32 noise: a policy replica's prefix cache serves prompt
    states (the shared few-shot prompt) computed in its earlier calls, so a call's last bits
    depend on which calls that replica ran before. The local path shows the same between a
    resumed and an uninterrupted run (docs/cluster.md)."""
    assert [[replace(c, logprobs=None) for c in row] for row in a] == [
        [replace(c, logprobs=None) for c in row] for row in b
    ]
    for x, y in zip((c for row in a for c in row), (c for row in b for c in row), strict=True):
        assert x.logprobs is not None and y.logprobs is not None
        assert np.allclose(x.logprobs, y.logprobs, rtol=0, atol=1e-4)
