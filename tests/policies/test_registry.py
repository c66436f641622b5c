"""Policy specs: directories, backend prefixes, built-in names, helpful errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from rewardlab.policies.hf import HFPolicy
from rewardlab.policies.registry import load_policy, tiny_policy_dir


def test_directory_and_prefixed_specs(tiny_llama_dir: Path) -> None:
    plain = load_policy(str(tiny_llama_dir), device="cpu")
    prefixed = load_policy(f"hf:{tiny_llama_dir}", device="cpu", name="t")
    assert isinstance(plain, HFPolicy) and isinstance(prefixed, HFPolicy)
    assert (plain.name, prefixed.name) == (tiny_llama_dir.name, "t")


def test_unknown_names_suggest_a_fix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="did you mean 'hf'"):
        load_policy("hff:somewhere")
    with pytest.raises(FileNotFoundError, match="did you mean 'tiny'"):
        load_policy("tiyn")
    with pytest.raises(FileNotFoundError, match="no GGUF file"):
        load_policy(str(tmp_path / "absent.gguf"))


def test_tiny_loads_when_shipped() -> None:
    try:
        directory = tiny_policy_dir()
    except FileNotFoundError as err:
        assert "train-policy" in str(err)
        return
    policy = load_policy("tiny", device="cpu")
    assert policy.name == "tiny" and directory.is_dir()
