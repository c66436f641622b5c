"""SFT with a KL anchor: masks, the loss against a hand computation, KL = 0 against itself."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from rewardlab.train.sft import IGNORE, SFTExample, batches, collate, encode_examples, sft_kl_loss


def test_collate_masks_prompt_and_padding() -> None:
    b = collate([SFTExample((5, 6, 7), (8,)), SFTExample((5,), (9, 10))], pad_id=1)
    assert b["input_ids"].tolist() == [[5, 6, 7, 8], [5, 9, 10, 1]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert b["labels"].tolist() == [[IGNORE, IGNORE, IGNORE, 8], [IGNORE, 9, 10, IGNORE]]


def test_encode_appends_eos_and_refuses_too_long(tiny_llama_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    (ex,) = encode_examples(tok, ["Question: 1\nAnswer:\n"], ["The answer is 1."])
    assert ex.completion_ids[-1] == tok.eos_token_id
    with pytest.raises(ValueError, match="more than 5"):
        encode_examples(tok, ["Question: 1\nAnswer:\n"], ["The answer is 1."], max_length=5)
    with pytest.raises(ValueError, match="2 prompts for 1"):
        encode_examples(tok, ["a", "b"], ["c"])
    assert len(batches([ex] * 5, 2, pad_id=0)) == 3


def test_loss_is_completion_cross_entropy_and_kl_to_itself_is_zero(tiny_llama_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    ref = copy.deepcopy(model).eval()
    batch = collate([SFTExample((3, 4, 5), (6, 7)), SFTExample((3,), (8, 9, 10))], pad_id=1)
    loss, m = sft_kl_loss(model, ref, batch, kl_coef=0.5)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    # by hand: predict token t from position t-1, only where the label is a completion token
    terms = []
    for r in range(2):
        for t in range(1, batch["input_ids"].shape[1]):
            y = int(batch["labels"][r, t])
            if y != IGNORE:
                terms.append(-torch.log_softmax(logits[r, t - 1].float(), -1)[y])
    assert m["ce"] == pytest.approx(float(torch.stack(terms).mean()), rel=1e-5)
    assert m["kl"] == pytest.approx(0.0, abs=1e-6)
    assert float(loss.detach()) == pytest.approx(m["ce"], rel=1e-5)
    with torch.no_grad():  # move the student: the KL becomes positive
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    _, m2 = sft_kl_loss(model, ref, batch, kl_coef=0.5)
    assert m2["kl"] > 1e-4
    with pytest.raises(ValueError, match="reference"):
        sft_kl_loss(model, None, batch, kl_coef=0.1)
