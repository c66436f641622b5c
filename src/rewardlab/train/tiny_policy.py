"""Train the built-in tiny policy on gold traces of the ``arith`` testbed, from scratch.

Run: ``rewardlab train-policy --out src/rewardlab/assets/tiny_policy --minutes 90``

The model is a small Llama (about 2.7M parameters) with a byte-level BPE tokenizer trained on
the spot from testbed text, digits split one per token. It is saved in transformers format
(safetensors + tokenizer.json), so the ``hf`` policy backend loads it like any other model.
Training is time-budgeted: the learning rate warms up, holds, then decays linearly over the
last 30% of the budget. Every ``eval_every_min`` minutes a checkpoint is saved and greedy and
sampled (T=1) accuracy by number of operations is logged to ``train_log.jsonl``.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rewardlab.policies.prompts import plain_prompt

EOS = "<|endoftext|>"
PAD = "<pad>"


@dataclass(frozen=True)
class TinyPolicyConfig:
    """Architecture and schedule of the tiny policy (the parameters are the recipe)."""

    hidden_size: int = 256
    layers: int = 4
    heads: int = 4
    intermediate_size: int = 768
    vocab_size: int = 640
    max_positions: int = 512
    batch_size: int = 32
    lr: float = 1.5e-3
    warmup_steps: int = 200
    weight_decay: float = 0.01
    minutes: float = 90.0
    seed: int = 0
    n_ops: tuple[int, int] = (1, 8)
    operand_digits: int = 2
    eval_every_min: float = 10.0
    eval_problems_per_bin: int = 40
    tokenizer_corpus: int = 5000  # problems the BPE tokenizer is trained on
    init_from: str | None = None  # continue from a saved checkpoint (its tokenizer too)


def corpus(n: int, seed: int, cfg: TinyPolicyConfig) -> Iterator[str]:
    """Training texts: prompt + gold solution, for tokenizer training."""
    from rewardlab.tasks import arith

    rng = random.Random(seed)
    for _ in range(n):
        p = arith.make_problem(rng, rng.randint(*cfg.n_ops), cfg.operand_digits)
        yield plain_prompt(p.question) + arith.gold_solution(p)


def build_tokenizer(cfg: TinyPolicyConfig, out_dir: Path) -> Any:
    """Train a byte-level BPE tokenizer (digits split individually) and save it to ``out_dir``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(cfg.tokenizer_corpus, cfg.seed + 1, cfg), trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=PAD, padding_side="left"
    )
    fast.save_pretrained(out_dir)
    return fast


def build_model(cfg: TinyPolicyConfig, tokenizer: Any) -> Any:
    """A freshly initialised Llama causal LM sized by ``cfg``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(cfg.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.heads,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def make_batch(rng: random.Random, cfg: TinyPolicyConfig, tokenizer: Any) -> tuple[Any, Any, Any]:
    """One batch of fresh problems: input ids, attention mask, labels (prompt masked out).

    All problems of a batch share one number of operations, so little compute goes to padding.
    """
    import torch

    from rewardlab.tasks import arith

    seqs: list[list[int]] = []
    masks: list[int] = []
    n_ops = rng.randint(*cfg.n_ops)
    for _ in range(cfg.batch_size):
        p = arith.make_problem(rng, n_ops, cfg.operand_digits)
        prompt_ids = tokenizer(plain_prompt(p.question))["input_ids"]
        answer_ids = tokenizer(arith.gold_solution(p))["input_ids"] + [tokenizer.eos_token_id]
        seqs.append(prompt_ids + answer_ids)
        masks.append(len(prompt_ids))
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (s, n_prompt) in enumerate(zip(seqs, masks, strict=True)):
        ids[i, : len(s)] = torch.tensor(s)
        attn[i, : len(s)] = 1
        labels[i, n_prompt : len(s)] = torch.tensor(s[n_prompt:])
    return ids, attn, labels


def lr_at(fraction: float, step: int, cfg: TinyPolicyConfig) -> float:
    """Warm-up over ``warmup_steps``, hold, then linear decay to 10% over the last 30% of time."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps)
    decay = 1.0 if fraction < 0.7 else max(0.1, 1.0 - (fraction - 0.7) / 0.3 * 0.9)
    return cfg.lr * warm * decay


def evaluate_accuracy(
    model: Any, tokenizer: Any, cfg: TinyPolicyConfig, seed: int = 12345, temperature: float = 0.0
) -> dict[int, float]:
    """Accuracy by number of operations on fresh problems (greedy when ``temperature == 0``)."""
    import torch

    from rewardlab.tasks import arith

    model.eval()
    rng = random.Random(seed)
    out: dict[int, float] = {}
    for n_ops in range(cfg.n_ops[0], cfg.n_ops[1] + 1):
        problems = [
            arith.make_problem(rng, n_ops, cfg.operand_digits)
            for _ in range(cfg.eval_problems_per_bin)
        ]
        enc = tokenizer(
            [plain_prompt(p.question) for p in problems], return_tensors="pt", padding=True
        )
        with torch.inference_mode():
            gen = model.generate(
                **enc,
                max_new_tokens=16 * (n_ops + 2),
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id,
            )
        texts = tokenizer.batch_decode(
            gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True
        )
        ok = [arith.check_steps(p, t).correct for p, t in zip(problems, texts, strict=True)]
        out[n_ops] = sum(ok) / len(ok)
    model.train()
    return out


def train(
    cfg: TinyPolicyConfig, out_dir: Path, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Train from scratch for ``cfg.minutes``; save checkpoints and the final model to ``out_dir``.

    Returns the last evaluation record. ``out_dir/checkpoints/step-N`` holds every evaluated
    checkpoint so the one that fits the testbed's target profile can be chosen afterwards.
    """
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    if cfg.init_from:
        from transformers import AutoTokenizer, LlamaForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(cfg.init_from, local_files_only=True)
        tokenizer.save_pretrained(out_dir)
        model = LlamaForCausalLM.from_pretrained(cfg.init_from, local_files_only=True)
        model.train()
    else:
        tokenizer = build_tokenizer(cfg, out_dir)
        model = build_model(cfg, tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"tiny policy: {n_params / 1e6:.2f}M parameters, vocab {len(tokenizer)}")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = random.Random(cfg.seed)
    budget = cfg.minutes * 60.0
    start = last_eval = time.monotonic()
    step, record = 0, {}
    log_path = out_dir / "train_log.jsonl"
    with log_path.open("a") as fh:
        fh.write(json.dumps({"config": asdict(cfg), "params": n_params}) + "\n")
    losses: list[float] = []
    while True:
        elapsed = time.monotonic() - start
        done = elapsed >= budget
        if done or time.monotonic() - last_eval >= cfg.eval_every_min * 60:
            last_eval = time.monotonic()
            greedy = evaluate_accuracy(model, tokenizer, cfg)
            sampled = evaluate_accuracy(model, tokenizer, cfg, temperature=1.0)
            record = {
                "step": step,
                "minutes": round(elapsed / 60, 2),
                "loss": sum(losses) / max(1, len(losses)),
                "greedy": greedy,
                "sampled": sampled,
            }
            losses = []
            log(json.dumps(record))
            with log_path.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            ckpt = out_dir / "checkpoints" / f"step-{step}"
            model.save_pretrained(ckpt)
            tokenizer.save_pretrained(ckpt)
            last_eval = time.monotonic()
            if done:
                break
        ids, attn, labels = make_batch(rng, cfg, tokenizer)
        for group in opt.param_groups:
            group["lr"] = lr_at(elapsed / budget, step, cfg)
        loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        step += 1
        if step % 100 == 0:
            log(
                f"step {step} loss {sum(losses[-100:]) / min(100, len(losses)):.4f} "
                f"lr {lr_at(elapsed / budget, step, cfg):.2e} {elapsed / 60:.1f} min"
            )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return record


def install_checkpoint(ckpt: Path, dest: Path) -> None:
    """Copy a chosen checkpoint's weights, config and tokenizer into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in ckpt.iterdir():
        if f.is_file():
            shutil.copy2(f, dest / f.name)


if __name__ == "__main__":  # pragma: no cover - convenience for background runs
    import sys

    minutes = float(sys.argv[2]) if len(sys.argv) > 2 else 90.0
    train(TinyPolicyConfig(minutes=minutes), Path(sys.argv[1]))
