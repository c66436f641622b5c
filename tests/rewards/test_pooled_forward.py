"""The pooled forward (last layer at the pooled token only, no attention mask) scores what the
full forward scores, on right-padded batches of mixed lengths; other models fall back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rewardlab.rewards.pooled_forward import (  # noqa: E402
    pooled_rewards,
    supports_pooled_forward,
)
from rewardlab.rewards.preference_rm import (  # noqa: E402
    PreferenceRM,
    ScalarRewardModel,
    build_reward_model,
    pad_right,
)

TEXTS = [
    "Question: 2 + 3\nAnswer:\n5",
    "Question: 12 * 4 - 7\nAnswer:\n12 * 4 = 48\n48 - 7 = 41\nThe answer is 41",
    "Question: 9 - 1\nAnswer:\nThe answer is 8",
    "Question: (3 + 4) * (5 + 6) - 2\nAnswer:\n3 + 4 = 7\n5 + 6 = 11\n7 * 11 = 77\n77 - 2 = 75",
    "Question: 1 + 1\nAnswer:\n2",
]


@pytest.mark.parametrize("head", ["seqcls", "value"])
def test_pooled_scores_match_the_full_forward(tiny_llama_dir: Path, head: str) -> None:
    model, tok = build_reward_model(tiny_llama_dir, head, seed=3)  # type: ignore[arg-type]
    assert supports_pooled_forward(model)
    # 64-token budget: several rows per batch, so right padding is in play
    fast = PreferenceRM(model, tok, max_tokens=64).score_texts(TEXTS)
    full = PreferenceRM(model, tok, max_tokens=64, pooled=False).score_texts(TEXTS)
    assert np.abs(full).max() > 1e-3  # not a model that scores everything 0
    np.testing.assert_allclose(fast, full, rtol=0, atol=1e-5)
    one_by_one = [PreferenceRM(model, tok, pooled=False).score_texts([t])[0] for t in TEXTS]
    np.testing.assert_allclose(fast, one_by_one, rtol=0, atol=1e-5)


def test_grouped_query_attention_and_pad_inside_a_text() -> None:
    """GQA (1 key/value head for 4 query heads) and a text holding the pad id mid-way: the pooled
    row is transformers' (last token that is not the pad id), attention covers the rest."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=1,
        pad_token_id=0,
        num_labels=1,
        attn_implementation="sdpa",
    )
    model = ScalarRewardModel(LlamaForSequenceClassification(cfg).eval(), "seqcls")
    assert supports_pooled_forward(model)
    seqs = [[5, 6, 7, 8, 9, 10, 11], [3, 4, 0, 12, 13], [7, 8, 9], [20]]
    ids, mask = pad_right(seqs, 0)
    with torch.inference_mode():
        full = model(ids, mask)
        fast = pooled_rewards(model, ids, mask)
    torch.testing.assert_close(fast, full, rtol=0, atol=1e-5)
    model.backbone.config.pad_token_id = None  # one row: transformers reads the last token
    with torch.inference_mode():
        one = pooled_rewards(model, ids[:1], mask[:1])
        torch.testing.assert_close(one, model(ids[:1], mask[:1]), rtol=0, atol=1e-5)


def test_other_models_fall_back_to_the_full_forward(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from tinybert import build_tiny_bert

    bert, tok = build_reward_model(build_tiny_bert(tmp_path / "bert"), "seqcls", seed=0)
    assert not supports_pooled_forward(bert)  # bidirectional: every token needs the mask
    scores = PreferenceRM(bert, tok).score_texts(["the cat sat", "a dog ran fast on the mat"])
    assert scores.shape == (2,) and np.isfinite(scores).all()
    llama, _ = build_reward_model(tiny_llama_dir, "seqcls", seed=0)
    llama.backbone.config._attn_implementation = "eager"  # eager would need a causal mask
    assert not supports_pooled_forward(llama)
