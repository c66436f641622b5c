"""`rewardlab eval process` on plain transformers directories (no rewardlab.json) named by
--recipe, and the refusal to report metrics when too many items are unscored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli.main import app
from rewardlab.evaluate.process import load_processbench
from rewardlab.rewards.learned import QWEN_PRM_TEMPLATE, load_hf_reward
from tinymodels import TinyLlamaSpec, build_tiny_llama

EXCERPT = Path(__file__).resolve().parents[1] / "assets" / "processbench_gsm8k_excerpt.json"
runner = CliRunner()


def _plain_dir(root: Path, kind: str, max_positions: int = 4096) -> Path:
    """A tiny Llama with a head, saved as a published model would be: no rewardlab.json."""
    from transformers import (
        AutoTokenizer,
        LlamaConfig,
        LlamaForSequenceClassification,
        LlamaForTokenClassification,
    )

    base = build_tiny_llama(root / "base", TinyLlamaSpec(train_steps=0))
    tok = AutoTokenizer.from_pretrained(base)
    tok.add_special_tokens({"additional_special_tokens": ["<extra_0>"]})
    cfg = LlamaConfig.from_pretrained(base)
    cfg.max_position_embeddings = max_positions
    cfg.pad_token_id = tok.pad_token_id
    torch.manual_seed(0)
    if kind == "qwen-prm":
        cfg.num_labels = 2
        model: Any = LlamaForTokenClassification(cfg)
    else:
        cfg.num_labels = 1
        model = LlamaForSequenceClassification(cfg)
    model.resize_token_embeddings(len(tok))
    out = root / kind
    model.save_pretrained(out)
    tok.save_pretrained(out)
    assert not (out / "rewardlab.json").exists()
    return out


@pytest.fixture(scope="module")
def prm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _plain_dir(tmp_path_factory.mktemp("qwen"), "qwen-prm")


def _token_lengths(model_dir: Path) -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    items = load_processbench(EXCERPT)
    return [
        len(tok(QWEN_PRM_TEMPLATE.format(question=it.problem))["input_ids"])
        + sum(len(tok(s, add_special_tokens=False)["input_ids"]) + 1 for s in it.steps)
        for it in items
    ]


def test_qwen_prm_recipe_reads_p_good_at_each_separator(prm_dir: Path) -> None:
    """The preset's scores are P(class 1) of the head at every <extra_0>, computed by hand."""
    from rewardlab.types import Candidate, Problem

    reward = load_hf_reward(prm_dir, "qwen-prm", device="cpu")
    p = Problem("p", "What is 2+3?", "5", "t")
    steps = ("2+3=5", "The answer is 5.")
    got = reward.score_steps([p], [Candidate("p", "\n".join(steps), steps, "5")])[0]
    tok, model = reward.tokenizer, reward.model
    sep = tok.convert_tokens_to_ids("<extra_0>")
    ids = tok(QWEN_PRM_TEMPLATE.format(question=p.question))["input_ids"]
    for s in steps:
        ids += tok(s, add_special_tokens=False)["input_ids"] + [sep]
    with torch.no_grad():
        probs = model(torch.tensor([ids])).logits[0].softmax(-1)[:, 1].numpy()
    where = [i for i, t in enumerate(ids) if t == sep]
    assert len(where) == 2
    np.testing.assert_allclose(got.steps, probs[where], rtol=1e-5)
    assert "\\boxed{}" in QWEN_PRM_TEMPLATE.format(question="q")


def test_eval_process_with_a_recipe_reports_scored_items(prm_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["eval", "process", "--data", str(EXCERPT), "--reward", str(prm_dir)]
    args += ["--recipe", "qwen-prm", "--out", str(out), "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "scored 40 of 40 items" in result.output
    got = json.loads((out / "process_eval.json").read_text())
    assert got["scored"] == 40 and got["unscored"] == 0
    assert got["predictor"] == f"{prm_dir} (qwen-prm)"


def test_eval_process_refuses_when_too_many_items_are_unscored(
    tmp_path: Path, prm_dir: Path
) -> None:
    lengths = sorted(_token_lengths(prm_dir))
    limit = lengths[len(lengths) // 2]  # about half the items are longer than the model's context
    short = _plain_dir(tmp_path / "short", "qwen-prm", max_positions=limit)
    n_long = sum(n > limit for n in lengths)
    assert 0.2 * 40 < n_long < 0.8 * 40
    out = tmp_path / "out"
    args = ["eval", "process", "--data", str(EXCERPT), "--reward", str(short)]
    args += ["--recipe", "qwen-prm", "--out", str(out)]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1, refused.output
    assert f"scored {40 - n_long} of 40 items ({n_long} unscored" in refused.output
    assert f"{n_long} x longer than the model's {limit} tokens" in refused.output
    assert "refusing to report metrics" in refused.output and "Traceback" not in refused.output
    assert not (out / "process_eval.json").exists()
    anyway = runner.invoke(app, [*args, "--max-unscored", "0.9"])
    assert anyway.exit_code == 0, anyway.output
    got = json.loads((out / "process_eval.json").read_text())
    assert got["scored"] == 40 - n_long and got["unscored"] == n_long
    assert f"scored {40 - n_long}, unscored {n_long}" in (out / "process_eval.md").read_text()


def test_seq_cls_recipe_scores_every_prefix(tmp_path: Path) -> None:
    from rewardlab.cli.eval_process import scores_from_reward

    orm_dir = _plain_dir(tmp_path, "seq-cls")
    reward = load_hf_reward(orm_dir, "seq-cls", device="cpu")
    items = load_processbench(EXCERPT)[:3]
    scores, skipped = scores_from_reward(reward, items, batch_size=2)
    assert skipped == {}
    from rewardlab.cli.eval_process import _as_pair

    for item, s in zip(items, scores, strict=True):
        assert s is not None and len(s) == len(item.steps)
        p, c = _as_pair(item)
        from dataclasses import replace

        first = reward.score([p], [replace(c, steps=c.steps[:1])])[0].value
        whole = reward.score([p], [c])[0].value
        assert s[0] == pytest.approx(first, rel=1e-5) and s[-1] == pytest.approx(whole, rel=1e-5)


def test_a_plain_directory_without_a_recipe_says_how(prm_dir: Path, tmp_path: Path) -> None:
    args = ["eval", "process", "--data", str(EXCERPT), "--reward", str(prm_dir)]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "name its recipe" in result.output


def test_math_shepherd_recipe_reads_plus_against_minus_at_each_tag(tmp_path: Path) -> None:
    """The preset's step score is softmax(logit[-], logit[+])[+] at each ``ки`` after a step,
    computed by hand on a causal LM saved without rewardlab.json."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewardlab.types import Candidate, Problem

    base = build_tiny_llama(tmp_path / "base", TinyLlamaSpec(train_steps=0))
    tok = AutoTokenizer.from_pretrained(base)
    tok.add_special_tokens({"additional_special_tokens": ["ки"]})
    model = AutoModelForCausalLM.from_pretrained(base)
    model.resize_token_embeddings(len(tok))
    out = tmp_path / "shepherd"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    reward = load_hf_reward(out, "math-shepherd", device="cpu")
    p = Problem("p", "What is 2+3?", "5", "t")
    steps = ("Step 1: 2+3=5.", "The answer is: 5")
    got = reward.score_steps([p], [Candidate("p", "\n".join(steps), steps, "5")])[0]
    tag = tok.convert_tokens_to_ids("ки")
    plus, minus = (tok(t, add_special_tokens=False)["input_ids"] for t in ("+", "-"))
    assert len(plus) == len(minus) == 1
    ids = tok(f"{p.question} ")["input_ids"]
    for s in steps:
        ids += tok(s, add_special_tokens=False)["input_ids"] + [tag]
    with torch.no_grad():
        logits = reward.model(torch.tensor([ids])).logits[0]
    where = [i for i, t in enumerate(ids) if t == tag]
    want = logits[where][:, [minus[0], plus[0]]].softmax(-1)[:, 1].numpy()
    np.testing.assert_allclose(got.steps, want, rtol=1e-5)
