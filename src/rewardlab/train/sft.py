"""Supervised fine-tuning of a causal LM on (prompt, completion) pairs, with an optional KL anchor.

The learning half of expert iteration (ReST-EM, Singh et al. 2024; SuperHF, Mukobi et al. 2023,
papers.md §29): after best-of-K selection, maximise the likelihood of the kept completions.
SuperHF adds a KL penalty to the prior, L = CE(best) + β·KL(π‖π_0); here the KL is the exact
KL between the next-token distributions of π and π_0 at every completion position of the batch,
Σ_v π(v)·(log π(v) − log π_0(v)), averaged over those positions (the prompt is not penalised).

Only completion tokens (and the EOS appended to each) carry loss; prompt tokens are masked.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

IGNORE = -100


@dataclass(frozen=True)
class SFTExample:
    """Token ids of one example: the prompt, then the completion (EOS included)."""

    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]


def encode_examples(
    tokenizer: Any, prompts: Sequence[str], completions: Sequence[str], max_length: int = 512
) -> list[SFTExample]:
    """Tokenize prompt and completion separately (so the mask boundary is exact) and append
    EOS to the completion. Raises ValueError for mismatched lengths or an example longer than
    ``max_length`` tokens (nothing is silently truncated)."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    eos = tokenizer.eos_token_id
    out = []
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        pi = tuple(tokenizer(p, add_special_tokens=False)["input_ids"])
        ci = tuple(tokenizer(c, add_special_tokens=False)["input_ids"])
        if eos is not None:
            ci = (*ci, int(eos))
        if not pi or not ci:
            raise ValueError(f"example {i}: an empty prompt or completion")
        if len(pi) + len(ci) > max_length:
            raise ValueError(f"example {i}: {len(pi) + len(ci)} tokens, more than {max_length}")
        out.append(SFTExample(pi, ci))
    return out


def collate(examples: Sequence[SFTExample], pad_id: int) -> dict[str, Any]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (prompt and padding are
    ``-100``).

    >>> b = collate([SFTExample((5, 6), (7,)), SFTExample((5,), (8, 9))], pad_id=0)
    >>> b["input_ids"].tolist(), b["labels"].tolist()
    ([[5, 6, 7], [5, 8, 9]], [[-100, -100, 7], [-100, 8, 9]])
    """
    import torch

    width = max(len(e.prompt_ids) + len(e.completion_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for r, e in enumerate(examples):
        seq = [*e.prompt_ids, *e.completion_ids]
        ids[r, : len(seq)] = torch.tensor(seq)
        mask[r, : len(seq)] = 1
        labels[r, len(e.prompt_ids) : len(seq)] = torch.tensor(e.completion_ids)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def batches(
    examples: Sequence[SFTExample], batch_size: int, pad_id: int, seed: int = 0
) -> list[dict[str, Any]]:
    """One epoch of shuffled batches (the training loop cycles through them)."""
    if batch_size < 1 or not examples:
        raise ValueError("need at least one example and batch_size >= 1")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [
        collate([examples[i] for i in order[s : s + batch_size]], pad_id)
        for s in range(0, len(order), batch_size)
    ]


def sft_kl_loss(
    model: Any, ref: Any | None, batch: Mapping[str, Any], kl_coef: float
) -> tuple[Any, dict[str, float]]:
    """Mean cross-entropy of the completion tokens + ``kl_coef`` · mean exact next-token
    KL(π‖π_0) at the same positions (``ref`` is π_0; unused when ``kl_coef == 0``)."""
    import torch

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits = logits[:, :-1].float()
    target = batch["labels"][:, 1:]
    keep = target != IGNORE
    logp = logits.log_softmax(-1)
    ce = -logp.gather(2, target.clamp(min=0)[..., None])[..., 0][keep].mean()
    metrics = {"ce": float(ce.detach())}
    loss = ce
    if kl_coef > 0:
        if ref is None:
            raise ValueError("kl_coef > 0 needs a reference model")
        with torch.no_grad():
            ref_logits = (
                ref(
                    input_ids=batch["input_ids"].to(next(ref.parameters()).device),
                    attention_mask=batch["attention_mask"].to(next(ref.parameters()).device),
                )
                .logits[:, :-1]
                .float()
            )
        ref_logp = ref_logits.log_softmax(-1).to(logp.device)
        kl = (logp.exp() * (logp - ref_logp)).sum(-1)[keep].mean()
        loss = ce + kl_coef * kl
        metrics["kl"] = float(kl.detach())
    return loss, metrics
