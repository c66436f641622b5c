"""Plain batched generation and sequence log-probabilities for a transformers model being trained.

The ``hf`` policy backend (:mod:`rewardlab.policies.hf`) owns its model, caches prefixes and
counts compute; a trainer (GRPO, DPO, expert iteration) owns a model that changes every step.
These two functions work on such a model directly: :func:`generate_texts` (left-padded batches,
greedy or sampled with a seed) and :func:`completion_logprobs` (Σ_t log π(y_t | x, y_<t) of given
completions: the per-sequence term of a KL estimate).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def generate_texts(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int,
    temperature: float = 0.0,
    seed: int = 0,
    batch_size: int = 64,
) -> list[str]:
    """One completion per prompt (greedy when ``temperature == 0``), special tokens removed.

    The model is put in eval mode for the call and restored to its previous mode after."""
    import torch

    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError("max_new_tokens and batch_size must be >= 1")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    was_training = model.training
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    dev = next(model.parameters()).device
    out: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            chunk = list(prompts[start : start + batch_size])
            enc = tokenizer(chunk, return_tensors="pt", padding=True).to(dev)
            torch.manual_seed(seed + start)
            with torch.inference_mode():
                gen = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=temperature > 0,
                    temperature=temperature if temperature > 0 else None,
                    top_p=None,
                    top_k=None,
                    pad_token_id=tokenizer.pad_token_id,
                )
            out += tokenizer.batch_decode(
                gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True
            )
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


def completion_logprobs(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    completions: Sequence[str],
    batch_size: int = 32,
    add_eos: bool = True,
) -> np.ndarray:
    """Σ_t log π(y_t | x, y_<t) over each completion's tokens (plus EOS when ``add_eos``), [N].

    Prompt and completion are tokenized separately and concatenated, as TRL's trainers do."""
    import torch

    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    dev = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rows = []
    for p, c in zip(prompts, completions, strict=True):
        pi = list(tokenizer(p, add_special_tokens=False)["input_ids"])
        ci = list(tokenizer(c, add_special_tokens=False)["input_ids"])
        if add_eos and tokenizer.eos_token_id is not None:
            ci.append(tokenizer.eos_token_id)
        rows.append((pi, ci))
    out = np.zeros(len(rows))
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            width = max(len(a) + len(b) for a, b in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            target = torch.zeros((len(chunk), width), dtype=torch.bool)
            for r, (a, b) in enumerate(chunk):
                n = len(a) + len(b)
                ids[r, :n] = torch.tensor(a + b)
                mask[r, :n] = 1
                target[r, len(a) : n] = True
            with torch.inference_mode():
                logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits.float()
            lp = logits[:, :-1].log_softmax(-1).gather(2, ids[:, 1:, None].to(dev))[..., 0]
            sums = (lp * target[:, 1:].to(dev)).sum(-1)
            out[start : start + len(chunk)] = sums.cpu().numpy()
    finally:
        model.train(was_training)
    return out
