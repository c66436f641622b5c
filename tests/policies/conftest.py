"""Shared fixtures for policy tests: one tiny Llama per session, saved in transformers format."""

from __future__ import annotations

from pathlib import Path

import pytest

from rewardlab.policies.hf import HFPolicy


@pytest.fixture(scope="session")
def tiny_policy(tiny_llama_dir: Path) -> HFPolicy:
    """The tiny Llama as an ``hf`` policy on CPU (no ledger)."""
    return HFPolicy.from_dir(tiny_llama_dir, device="cpu")
