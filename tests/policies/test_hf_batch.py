"""Batched generation and completion log-probs on a tiny local model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rewardlab.policies.hf_batch import completion_logprobs, generate_texts


def test_logprobs_match_a_single_forward(tiny_llama_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    prompts, comps = ["Question: 2 + 3\nAnswer:\n", "Question: 7\nAnswer:\n"], ["2 + 3 = 5", "7"]
    got = completion_logprobs(model, tok, prompts, comps, batch_size=1)
    both = completion_logprobs(model, tok, prompts, comps, batch_size=2)  # padding changes nothing
    assert both == pytest.approx(got, abs=1e-4)
    for i, (p, c) in enumerate(zip(prompts, comps, strict=True)):
        a = tok(p, add_special_tokens=False)["input_ids"]
        b = [*tok(c, add_special_tokens=False)["input_ids"], tok.eos_token_id]
        ids = torch.tensor([a + b])
        with torch.no_grad():
            lp = model(input_ids=ids).logits[0].log_softmax(-1)
        want = sum(float(lp[len(a) + j - 1, t]) for j, t in enumerate(b))
        assert got[i] == pytest.approx(want, abs=1e-4)


def test_greedy_is_deterministic_and_restores_mode(tiny_llama_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).train()
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    prompts = [
        "Question: Ana has 3 pens.\nAnswer:\n",
        "Question: 1\nAnswer:\n",
        "Question: x\nAnswer:\n",
    ]
    a = generate_texts(model, tok, prompts, 12, batch_size=2)
    b = generate_texts(model, tok, prompts, 12, batch_size=3)
    assert a == b and len(a) == 3 and model.training
    s1 = generate_texts(model, tok, prompts, 12, temperature=1.0, seed=4)
    s2 = generate_texts(model, tok, prompts, 12, temperature=1.0, seed=4)
    assert s1 == s2
    with pytest.raises(ValueError, match="temperature"):
        generate_texts(model, tok, prompts, 12, temperature=-1.0)
