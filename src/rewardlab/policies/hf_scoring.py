"""Scoring calls for the ``hf`` backend: log-probabilities of given continuations, no sampling.

A generative verifier reads its verdict as a probability (GenRM, Zhang et al. 2024; Singhi et
al. 2025: the score of a verification is p("Yes") at the verdict token; GenPRM normalises it
by p("Yes") + p("No")). That needs the model's next-token distribution after a given text,
which only a backend with the model at hand can give: these functions take an
:class:`~rewardlab.policies.hf.HFPolicy` (or any object with ``model``, ``tokenizer`` and
``_encode``, e.g. a converted GGUF policy) and never sample.

Batches are right-padded (real tokens keep positions 0..L-1, so no position ids are needed and
the causal mask keeps padding out of every real token's context) and sorted by length.

>>> probs = next_token_probs(policy, ["Is 2 + 2 = 4? Answer:"], [" Yes", " No"])  # doctest: +SKIP
>>> probs.probs.shape                                                           # doctest: +SKIP
(1, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


def require_hf(policy: Any, what: str = "reading log-probabilities") -> None:
    """Raise TypeError unless ``policy`` exposes a transformers model and tokenizer."""
    missing = [a for a in ("model", "tokenizer", "_encode") if not hasattr(policy, a)]
    if missing:
        raise TypeError(
            f"{what} needs an HF policy (a transformers model + tokenizer, e.g. 'tiny', "
            f"'smollm2', a model directory or a .gguf); policy {getattr(policy, 'name', '?')!r} "
            f"of type {type(policy).__name__} has no {', '.join(missing)}. Use verdict='parse' "
            "with other backends"
        )


def continuation_ids(policy: Any, prefix: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of ``prefix`` and of ``continuation`` read after it.

    The continuation's ids are those the tokenizer gives the joined text beyond the prefix's
    own ids, when the prefix's ids are a prefix of the joined ids; otherwise (a merge across
    the boundary) the continuation is encoded on its own, without special tokens.
    """
    head = list(policy._encode(prefix))
    full = list(policy._encode(prefix + continuation))
    if full[: len(head)] == head and len(full) > len(head):
        return head, full[len(head) :]
    alone = list(policy.tokenizer(continuation, add_special_tokens=False)["input_ids"])
    if not alone:
        raise ValueError(f"continuation {continuation!r} has no tokens")
    return head, alone


def _forward_logprobs(policy: Any, rows: Sequence[list[int]], batch_size: int) -> list[np.ndarray]:
    """Per row, log-softmax of the logits at every position: float [len(row), vocab]."""
    device = next(policy.model.parameters()).device
    pad = policy.tokenizer.pad_token_id
    pad = 0 if pad is None else int(pad)
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
    out: list[np.ndarray | None] = [None] * len(rows)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(rows[i]) for i in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, i in enumerate(chunk):
            ids[r, : len(rows[i])] = torch.tensor(rows[i], dtype=torch.long)
            mask[r, : len(rows[i])] = 1
        with torch.inference_mode():
            logits = policy.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            logp = torch.log_softmax(logits.float(), dim=-1).cpu().numpy()
        for r, i in enumerate(chunk):
            out[i] = logp[r, : len(rows[i])]
    return [o for o in out if o is not None]


@dataclass(frozen=True)
class NextTokenProbs:
    """``probs[i, j]``: probability that option ``j``'s first token follows prefix ``i``;
    ``scored_tokens[i]``: the tokens the forward pass read for prefix ``i``."""

    probs: np.ndarray
    scored_tokens: tuple[int, ...]


def next_token_probs(
    policy: Any, prefixes: Sequence[str], options: Sequence[str], batch_size: int = 16
) -> NextTokenProbs:
    """Probability of each option's first token right after each prefix (one forward pass each).

    Args:
        policy: an HF policy (see :func:`require_hf`).
        prefixes: texts ending where the verdict token is read (e.g. ``"... (Yes/No)?"``).
        options: the verdict strings, e.g. ``(" Yes", " No")``; only their first token counts.

    Raises:
        TypeError: the policy has no model/tokenizer.
        ValueError: an empty prefix or option.
    """
    require_hf(policy)
    if not options:
        raise ValueError("give at least one option")
    if any(not p for p in prefixes):
        raise ValueError("prefixes must be non-empty")
    heads: list[list[int]] = []
    firsts: list[list[int]] = []
    for prefix in prefixes:
        pairs = [continuation_ids(policy, prefix, o) for o in options]
        heads.append(pairs[0][0])
        firsts.append([ids[0] for _, ids in pairs])
    logp = _forward_logprobs(policy, heads, batch_size)
    probs = np.array(
        [np.exp(lp[-1][f]) for lp, f in zip(logp, firsts, strict=True)], dtype=float
    ).reshape(len(prefixes), len(options))
    return NextTokenProbs(probs, tuple(len(h) for h in heads))


def continuation_logprobs(
    policy: Any, prefixes: Sequence[str], continuations: Sequence[str], batch_size: int = 16
) -> list[tuple[float, ...]]:
    """Log-probability of each token of ``continuations[i]`` read after ``prefixes[i]``.

    Raises:
        TypeError: the policy has no model/tokenizer.
        ValueError: lengths differ, or a prefix is empty.
    """
    require_hf(policy)
    if len(prefixes) != len(continuations):
        raise ValueError("prefixes and continuations must have the same length")
    if any(not p for p in prefixes):
        raise ValueError("prefixes must be non-empty")
    split = [continuation_ids(policy, p, c) for p, c in zip(prefixes, continuations, strict=True)]
    rows = [head + cont for head, cont in split]
    logp = _forward_logprobs(policy, rows, batch_size)
    out = []
    for (head, cont), lp in zip(split, logp, strict=True):
        # the token at position t is predicted by the logits at t - 1
        out.append(tuple(float(lp[len(head) - 1 + j, tok]) for j, tok in enumerate(cont)))
    return out
