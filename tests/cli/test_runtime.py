"""Thread defaults on a shared machine (cores minus load) and --threads."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rewardlab.cli.runtime import apply_threads, available_cores, default_threads


@given(st.integers(1, 256), st.floats(0, 1000, allow_nan=False))
def test_default_threads_is_idle_cores_clipped(cores: int, load: float) -> None:
    n = default_threads(cores=cores, load=load)
    assert 1 <= n <= cores
    assert n == max(1, min(cores, round(cores - load)))


def test_default_threads_examples() -> None:
    assert default_threads(cores=2, load=0.1) == 2  # idle 2-core box: both cores
    assert default_threads(cores=2, load=1.2) == 1  # someone else uses a core
    assert default_threads(cores=2, load=9.0) == 1  # busy: never 0
    assert default_threads(cores=16, load=4.4) == 12


def test_apply_threads_sets_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        assert apply_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        n = apply_threads(None)
        assert 1 <= n <= available_cores() and torch.get_num_threads() == n
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        assert apply_threads(None) == 1  # the user's OMP_NUM_THREADS is respected
    finally:
        torch.set_num_threads(before)
    assert os.environ.get("OMP_NUM_THREADS") == "1"


def test_busy_cores_measures_a_spinning_process() -> None:
    """A real busy loop in another process shows up as about one busy core; an idle
    machine's reading stays within [0, cores]."""
    import subprocess
    import sys

    from rewardlab.cli.runtime import busy_cores

    idle = busy_cores(0.2)
    if idle is None:
        pytest.skip("no /proc/stat here")
    assert 0.0 <= idle <= available_cores() + 0.01
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = busy_cores(0.5)
    finally:
        spin.kill()
        spin.wait()
    assert busy is not None and busy >= 0.7  # the spinner's core (plus whatever else ran)
