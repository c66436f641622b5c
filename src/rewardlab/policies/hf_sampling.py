"""Sampling internals of the ``hf`` backend: per-row random streams, top-p, stop strings.

:class:`RowSampler` is a logits processor that draws each row's token by the Gumbel-max trick
from the row's own generator (seeded by :func:`row_seeds` from ``(seed, text, repeat)``), so a
sample never depends on its batch; :func:`neutral_config` turns off every logits-changing
option of ``generate`` so the processor sees the model's own logits; :class:`StopCriteria`
ends rows at eos or a stop string. Used by :class:`rewardlab.policies.hf.HFPolicy`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessor, StoppingCriteria


def truncate_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` right after the earliest stop string; say whether one was found.

    >>> truncate_at_stop("a = 1\\nb = 2\\n", ["\\n"])
    ('a = 1\\n', True)
    """
    ends = [i + len(s) for s in stops if s and (i := text.find(s)) >= 0]
    return (text[: min(ends)], True) if ends else (text, False)


def row_seeds(texts: Sequence[str], seed: int) -> list[int]:
    """One 63-bit seed per row from ``(seed, text, k)``; ``k`` numbers repeats of a text."""
    seen: Counter[str] = Counter()
    seeds = []
    for text in texts:
        key = f"{seed}\x00{seen[text]}\x00{text}".encode()
        seen[text] += 1
        digest = hashlib.blake2b(key, digest_size=8).digest()
        seeds.append(int.from_bytes(digest, "little") & (2**63 - 1))
    return seeds


def neutral_config(max_new_tokens: int, pad: int, eos: frozenset[int]) -> GenerationConfig:
    """Greedy selection with every logits-changing option explicitly off.

    ``generate`` fills options we leave unset from the model's ``generation_config.json``
    (repetition penalties, top-k ...); setting them here keeps the logits our processor sees
    the model's own.
    """
    return GenerationConfig(  # type: ignore[no-untyped-call]
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        temperature=1.0,
        top_k=50,
        top_p=1.0,
        min_p=None,
        typical_p=1.0,
        epsilon_cutoff=0.0,
        eta_cutoff=0.0,
        repetition_penalty=1.0,
        encoder_repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        encoder_no_repeat_ngram_size=0,
        min_length=0,
        renormalize_logits=False,
        remove_invalid_values=False,
        pad_token_id=pad,
        eos_token_id=sorted(eos) or None,
        use_cache=True,
    )


class RowSampler(LogitsProcessor):
    """Chooses each row's next token from its own random stream; records both logprobs.

    Returns scores that are 0 at the chosen token and -inf elsewhere, so ``generate``'s greedy
    argmax takes exactly our choice.
    """

    def __init__(
        self, seeds: list[int], temperature: float, top_p: float, device: torch.device
    ) -> None:
        self.temperature = temperature
        self.top_p = top_p
        self.generators: list[torch.Generator | None] = list(row_generators(seeds, device))
        self.raw: list[list[float]] = [[] for _ in seeds]
        self.sampled: list[list[float]] = [[] for _ in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.Tensor:
        chosen, picked, sampled = choose(
            scores.float(), self.generators, self.temperature, self.top_p
        )
        for r, (a, b) in enumerate(zip(picked.tolist(), sampled.tolist(), strict=True)):
            self.raw[r].append(a)
            self.sampled[r].append(b)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, chosen[:, None], 0.0)
        return out


def row_generators(seeds: Sequence[int], device: torch.device) -> list[torch.Generator]:
    """One random stream per row, seeded from :func:`row_seeds`."""
    return [torch.Generator(device=device).manual_seed(s) for s in seeds]


def choose(
    logits: torch.Tensor,
    generators: Sequence[torch.Generator | None],
    temperature: float,
    top_p: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each row's next token by the Gumbel-max trick on its own stream (argmax when T = 0).

    ``token = argmax(top_p(logits / T) - log E)`` with ``E ~ Exp(1)`` per vocabulary entry,
    drawn as ``-log1p(-U)`` from ``U ~ Uniform[0, 1)`` of the row's generator (one draw of the
    whole vocabulary per row and step): an exact sample from ``softmax(top_p(logits / T))``.

    Returns:
        ``(chosen, raw, sampled)``: token ids; their untempered model logprobs
        ``log_softmax(logits)``; their logprobs under the distribution sampled from (0.0 when
        greedy).
    """
    raw = torch.log_softmax(logits, dim=-1)
    if temperature == 0:
        chosen = logits.argmax(dim=-1)
        sampled = torch.zeros(len(chosen), device=logits.device)
    else:
        tempered = top_p_filter(logits / temperature, top_p)
        noise = exp_noise(generators, logits.shape[-1], logits.device)
        chosen = (tempered.double() - noise.log()).argmax(dim=-1)
        sampled = torch.log_softmax(tempered, dim=-1).gather(1, chosen[:, None])[:, 0]
    picked = raw.gather(1, chosen[:, None])[:, 0]
    return chosen, picked, sampled


def exp_noise(
    generators: Sequence[torch.Generator | None], size: int, device: torch.device
) -> torch.Tensor:
    """One Exp(1) draw per row and vocabulary entry, each row from its own generator."""
    uniform = torch.empty((len(generators), size), dtype=torch.float64, device=device)
    for row, g in zip(uniform, generators, strict=True):
        row.uniform_(generator=g)
    return (-torch.log1p(-uniform)).clamp_min(1e-300)


def stop_table(
    tokenizer: Any, vocab_size: int, stops: Sequence[str], eos: frozenset[int]
) -> torch.Tensor:
    """Per token id: 1 if it ends a row (eos), 2 if it could complete a stop string, else 0.

    A token "could complete" a stop string when its text, alone or after a letter, holds the
    last character of a stop string, holds a replacement character (a partial UTF-8 sequence)
    or is empty (special tokens). Only rows whose new token is marked 2 have their text
    decoded during decoding; the decode loop re-checks every other row once at the end, so a
    token this misses costs time, never correctness.
    """
    table = torch.zeros(vocab_size, dtype=torch.int8)
    lasts = {s[-1] for s in stops if s}
    if lasts:
        known = min(vocab_size, len(tokenizer))
        context = list(tokenizer("a", add_special_tokens=False)["input_ids"])
        head = tokenizer.decode(context, skip_special_tokens=True)
        alone = tokenizer.batch_decode([[v] for v in range(known)], skip_special_tokens=True)
        after = tokenizer.batch_decode(
            [[*context, v] for v in range(known)], skip_special_tokens=True
        )
        for v in range(vocab_size):
            if v >= known:
                table[v] = 2
                continue
            texts = (alone[v], after[v][len(head) :] if after[v].startswith(head) else after[v])
            if any(not t or "\ufffd" in t or any(c in t for c in lasts) for t in texts):
                table[v] = 2
    for e in eos:
        if 0 <= e < vocab_size:
            table[e] = 1
    return table


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Set logits outside the nucleus (smallest set with mass >= top_p) to -inf."""
    if top_p >= 1.0:
        return logits
    sorted_logits, idx = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    before = probs.cumsum(dim=-1) - probs  # mass of strictly better tokens
    drop_sorted = before >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(1, idx, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


class StopCriteria(StoppingCriteria):
    """Stops a row at an eos token or once its decoded continuation holds a stop string
    (``continuation(prompt_ids, generated_ids)`` decodes a row's generated text).

    ``finished[row] = (generated tokens, "stop")`` records where each row ended; rows absent
    from it ran to the length limit.
    """

    def __init__(
        self,
        continuation: Callable[[list[int], list[int]], str],
        prompts: list[list[int]],
        width: int,
        stops: tuple[str, ...],
        eos: frozenset[int],
    ) -> None:
        self.continuation = continuation
        self.prompts = prompts
        self.width = width
        self.stops = stops
        self.eos = eos
        self.finished: dict[int, tuple[int, str]] = {}

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None, **kwargs: Any
    ) -> torch.BoolTensor:
        gen = input_ids[:, self.width :]
        last = gen[:, -1].tolist()
        for r, token in enumerate(last):
            if r in self.finished:
                continue
            if token in self.eos:
                self.finished[r] = (gen.shape[1], "stop")
            elif self.stops:
                text = self.continuation(self.prompts[r], gen[r].tolist())
                if truncate_at_stop(text, self.stops)[1]:
                    self.finished[r] = (gen.shape[1], "stop")
        done = [r in self.finished for r in range(len(last))]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]
