"""The tiny-policy trainer, run for seconds on a very small model (never the real schedule)."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from rewardlab.policies.prompts import plain_prompt  # noqa: E402
from rewardlab.tasks import arith  # noqa: E402
from rewardlab.train.tiny_policy import (  # noqa: E402
    TinyPolicyConfig,
    build_tokenizer,
    lr_at,
    make_batch,
    train,
)

SMALL = TinyPolicyConfig(
    hidden_size=32,
    layers=1,
    heads=2,
    intermediate_size=64,
    batch_size=4,
    minutes=0.05,
    eval_every_min=100.0,
    eval_problems_per_bin=2,
    n_ops=(1, 2),
    warmup_steps=5,
    tokenizer_corpus=300,
)


def test_tokenizer_round_trips_and_splits_digits(tmp_path: Path) -> None:
    tok = build_tokenizer(SMALL, tmp_path)
    p = arith.generate(3, seed=5)[2]
    text = plain_prompt(p.question) + arith.gold_solution(p)
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text
    pieces = tok.convert_ids_to_tokens(tok("123 * 4")["input_ids"])
    assert all(len(x) == 1 for x in pieces if x.isdigit())


def test_batch_masks_the_prompt(tmp_path: Path) -> None:
    tok = build_tokenizer(SMALL, tmp_path)
    ids, attn, labels = make_batch(random.Random(0), SMALL, tok)
    assert ids.shape == labels.shape == attn.shape
    row = 0
    supervised = labels[row][labels[row] != -100].tolist()
    text = tok.decode(supervised)
    assert text.startswith(tuple("0123456789"))  # the solution, not the question
    assert text.endswith("<|endoftext|>")
    assert "Question" not in text
    assert (labels[attn == 0] == -100).all()


def test_lr_schedule() -> None:
    cfg = replace(SMALL, lr=1.0, warmup_steps=10)
    assert lr_at(0.0, 0, cfg) == pytest.approx(0.1)
    assert lr_at(0.5, 100, cfg) == 1.0
    assert lr_at(1.0, 100, cfg) == pytest.approx(0.1)
    assert lr_at(0.85, 100, cfg) == pytest.approx(0.55)


def test_train_for_seconds_saves_a_loadable_model(tmp_path: Path) -> None:
    record = train(SMALL, tmp_path / "m", log=lambda s: None)
    assert record["step"] > 0
    assert set(record["greedy"]) == {1, 2}
    log = [json.loads(x) for x in (tmp_path / "m" / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["params"] > 0 and "greedy" in log[-1]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m", local_files_only=True)
    tok = AutoTokenizer.from_pretrained(tmp_path / "m", local_files_only=True)
    assert model.config.vocab_size == len(tok)
    # continuing from the checkpoint keeps the tokenizer
    cont = train(
        replace(SMALL, init_from=str(tmp_path / "m"), minutes=0.02),
        tmp_path / "m2",
        log=lambda s: None,
    )
    assert cont["step"] > 0
    assert (tmp_path / "m2" / "tokenizer.json").read_text() == (
        tmp_path / "m" / "tokenizer.json"
    ).read_text()
