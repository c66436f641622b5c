"""Tiny causal LMs for tests, built in-process with fixed seeds (no network, a few seconds).

>>> path = build_tiny_llama(tmp_path / "tiny")  # doctest: +SKIP
>>> HFPolicy.from_dir(path)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TinyLlamaSpec:
    """Size of a test model; the tokenizer is the tiny policy's byte-level BPE."""

    hidden_size: int = 32
    layers: int = 2
    heads: int = 2
    intermediate_size: int = 64
    vocab_size: int = 320
    seed: int = 0
    train_steps: int = 60  # a few steps on arith traces teach it lines, answers and eos
    batch_size: int = 16
    lr: float = 1e-2


def build_tiny_llama(
    out_dir: Path, spec: TinyLlamaSpec = TinyLlamaSpec(), chat_template: str | None = None
) -> Path:
    """Build a randomly initialised Llama + tokenizer and save both to ``out_dir``.

    Args:
        out_dir: created if missing; receives config, safetensors weights and tokenizer files.
        spec: model size and seed.
        chat_template: a jinja chat template to save with the tokenizer (none by default).

    Returns:
        ``out_dir``, loadable with ``AutoModelForCausalLM.from_pretrained`` or ``HFPolicy``.
    """
    from rewardlab.train.tiny_policy import TinyPolicyConfig, build_model, build_tokenizer

    cfg = TinyPolicyConfig(
        hidden_size=spec.hidden_size,
        layers=spec.layers,
        heads=spec.heads,
        intermediate_size=spec.intermediate_size,
        vocab_size=spec.vocab_size,
        batch_size=spec.batch_size,
        seed=spec.seed,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(cfg, out_dir)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
        tokenizer.save_pretrained(out_dir)
    model = build_model(cfg, tokenizer)
    if spec.train_steps:
        _train(model, tokenizer, cfg, spec)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir)
    return out_dir


def _train(model: Any, tokenizer: Any, cfg: Any, spec: TinyLlamaSpec) -> None:
    """A few AdamW steps on fresh testbed batches (fixed seed)."""
    import random

    import torch

    from rewardlab.train.tiny_policy import make_batch

    rng = random.Random(spec.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr)
    model.train()
    for _ in range(spec.train_steps):
        ids, attn, labels = make_batch(rng, cfg, tokenizer)
        model(input_ids=ids, attention_mask=attn, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    model.eval()
