"""Length-sorted pairwise training batches: little compute goes to padding.

:func:`rewardlab.train.pref_batches.pair_batches` cuts batches from a random permutation, so a
batch holding one long dialogue pads every other row to it. Here the pairs are ordered by their
longer side (chosen or rejected, in tokens), cut into consecutive batches of ``batch_size``
pairs, and the **order of the batches** is shuffled (seeded, afresh every epoch): each batch
holds pairs of similar length, while training still sees lengths in random order. The
similar-length grouping of TRL's / transformers' ``group_by_length``, done per pair.

The batch layout is :func:`~rewardlab.train.pref_batches.pair_batches`' (B chosen rows, then
their B rejected rows, right-padded; ``margin`` and ``strength``), so every objective's loss
reads it unchanged. :func:`padded_tokens` counts what a batch list costs (rows × width).

>>> order = sorted_pair_order([5, 1, 3, 9], [2, 8, 1, 1])  # longer sides 5, 8, 3, 9
>>> order
[2, 0, 1, 3]
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from rewardlab.rewards.preference_rm import encode_texts, pad_right
from rewardlab.train.pref_io import PairRow


def sorted_pair_order(len_chosen: Sequence[int], len_rejected: Sequence[int]) -> list[int]:
    """Pair indices by ascending longer side (ties by index)."""
    width = [max(c, r) for c, r in zip(len_chosen, len_rejected, strict=True)]
    return sorted(range(len(width)), key=lambda i: (width[i], i))


def length_sorted_pair_batches(
    rows: Sequence[PairRow],
    tokenizer: Any,
    template: str,
    *,
    batch_size: int,
    max_length: int,
    n_batches: int,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """``n_batches`` pairwise batches of similar-length pairs, in shuffled batch order."""
    if not rows:
        raise ValueError("no training rows")
    chosen = encode_texts(
        tokenizer, [template.format(prompt=r.prompt, response=r.chosen) for r in rows], max_length
    )
    rejected = encode_texts(
        tokenizer, [template.format(prompt=r.prompt, response=r.rejected) for r in rows], max_length
    )
    order = sorted_pair_order([len(x) for x in chosen], [len(x) for x in rejected])
    size = min(batch_size, len(rows))
    groups = [order[i : i + size] for i in range(0, len(order) - size + 1, size)]
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    while len(out) < n_batches:
        epoch = list(groups)
        rng.shuffle(epoch)
        for idx in epoch:
            ids, mask = pad_right(
                [chosen[i] for i in idx] + [rejected[i] for i in idx], tokenizer.pad_token_id
            )
            margins = [rows[i].margin for i in idx]
            out.append(
                {
                    "input_ids": ids,
                    "attention_mask": mask,
                    "margin": torch.tensor([m or 0.0 for m in margins], dtype=torch.float32),
                    "strength": torch.tensor(
                        [1.0 if m is None else m for m in margins], dtype=torch.float32
                    ),
                }
            )
    return out[:n_batches]


def padded_tokens(batches: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """``(real tokens, padded tokens = rows × width)`` summed over the batches."""
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    padded = sum(int(b["attention_mask"].numel()) for b in batches)
    return real, padded
