"""Tokenised training batches for preference and rating objectives (the collators of ``fit``).

A pairwise batch stacks the B chosen texts, then the B rejected texts, into ONE right-padded
tensor (one forward pass per step): ``input_ids``/``attention_mask`` [2B, L], ``margin`` [B]
(the row's margin, 0.0 when absent) and ``strength`` [B] (the row's margin, 1.0 when absent:
the weight of scaled BT). A rating batch holds ``input_ids``/``attention_mask`` [B, L] and
``rating`` [B]. Batches are cut from a fresh seeded permutation of the rows for every epoch, and
enough epochs are laid out for ``n_batches`` batches (``fit`` cycles the list).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch

from rewardlab.rewards.preference_rm import encode_texts, pad_right
from rewardlab.train.pref_io import PairRow, RatingRow


def _epoch_orders(n_rows: int, batch_size: int, n_batches: int, seed: int) -> list[list[int]]:
    """Row indices of ``n_batches`` batches: seeded permutations, epoch after epoch."""
    if n_rows == 0:
        raise ValueError("no training rows")
    size = min(batch_size, n_rows)
    rng = random.Random(seed)
    out: list[list[int]] = []
    while len(out) < n_batches:
        perm = list(range(n_rows))
        rng.shuffle(perm)
        out += [perm[i : i + size] for i in range(0, n_rows - size + 1, size)]
    return out[:n_batches]


def pair_batches(
    rows: Sequence[PairRow],
    tokenizer: Any,
    template: str,
    *,
    batch_size: int,
    max_length: int,
    n_batches: int,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """``n_batches`` pairwise batches (see the module docstring for the layout)."""
    chosen = encode_texts(
        tokenizer, [template.format(prompt=r.prompt, response=r.chosen) for r in rows], max_length
    )
    rejected = encode_texts(
        tokenizer, [template.format(prompt=r.prompt, response=r.rejected) for r in rows], max_length
    )
    margin = [0.0 if r.margin is None else r.margin for r in rows]
    strength = [1.0 if r.margin is None else r.margin for r in rows]
    out = []
    for idx in _epoch_orders(len(rows), batch_size, n_batches, seed):
        ids, mask = pad_right(
            [chosen[i] for i in idx] + [rejected[i] for i in idx], tokenizer.pad_token_id
        )
        out.append(
            {
                "input_ids": ids,
                "attention_mask": mask,
                "margin": torch.tensor([margin[i] for i in idx], dtype=torch.float32),
                "strength": torch.tensor([strength[i] for i in idx], dtype=torch.float32),
            }
        )
    return out


def rating_batches(
    rows: Sequence[RatingRow],
    tokenizer: Any,
    template: str,
    *,
    batch_size: int,
    max_length: int,
    n_batches: int,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """``n_batches`` rating batches: ``input_ids``, ``attention_mask``, ``rating``."""
    ids_all = encode_texts(
        tokenizer, [template.format(prompt=r.prompt, response=r.response) for r in rows], max_length
    )
    out = []
    for idx in _epoch_orders(len(rows), batch_size, n_batches, seed):
        ids, mask = pad_right([ids_all[i] for i in idx], tokenizer.pad_token_id)
        out.append(
            {
                "input_ids": ids,
                "attention_mask": mask,
                "rating": torch.tensor([rows[i].rating for i in idx], dtype=torch.float32),
            }
        )
    return out
