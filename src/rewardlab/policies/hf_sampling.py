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
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
        self.raw: list[list[float]] = [[] for _ in seeds]
        self.sampled: list[list[float]] = [[] for _ in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.Tensor:
        logits = scores.float()
        raw = torch.log_softmax(logits, dim=-1)
        if self.temperature == 0:
            chosen = logits.argmax(dim=-1)
            sampled = torch.zeros(len(chosen), device=logits.device)
        else:
            tempered = top_p_filter(logits / self.temperature, self.top_p)
            chosen = (tempered.double() - self._exp_noise(logits).log()).argmax(dim=-1)
            sampled = torch.log_softmax(tempered, dim=-1).gather(1, chosen[:, None])[:, 0]
        picked = raw.gather(1, chosen[:, None])[:, 0]
        for r, (a, b) in enumerate(zip(picked.tolist(), sampled.tolist(), strict=True)):
            self.raw[r].append(a)
            self.sampled[r].append(b)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, chosen[:, None], 0.0)
        return out

    def _exp_noise(self, logits: torch.Tensor) -> torch.Tensor:
        """One Exp(1) draw per row and vocabulary entry, each row from its own generator."""
        size, device = logits.shape[-1], logits.device
        f64 = torch.float64
        draws = [torch.rand(size, generator=g, device=device, dtype=f64) for g in self.generators]
        uniform = torch.stack(draws)
        return (-torch.log1p(-uniform)).clamp_min(1e-300)


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
