"""The ``hf`` backend's own decode loop: one preallocated key/value buffer, prefix reuse, no
``generate``.

Per chunk of rows (see :func:`decode_rows`):

1. Rows with the same prompt ids are computed once (their states are copied afterwards).
2. Each distinct prompt is looked up in the :class:`~rewardlab.policies.prefix_cache.PrefixCache`
   (when given); the states of its longest cached prefix are copied into the buffer and only
   the rest of the prompt is run through the model.
3. The buffer holds every layer's keys and values, ``[layers, 2, rows, heads, capacity,
   head_dim]``, preallocated for prompt + ``max_new_tokens``: a decode step writes one column
   in place (``DynamicCache`` concatenates, copying the whole cache every step).
   Layout per row: ``[cached prefix | rest of prompt | generated]``, each block right-aligned
   and left-padded, the padding masked out; position ids count real tokens only, so a row's
   states are those of the same tokens run alone.
4. Each step draws the next token of every running row (:func:`choose`: per-row random
   streams, the Gumbel-max trick, as in ``hf_sampling``), looks the tokens up in a per-vocab
   table (eos / could end a stop string / neither) and decodes text only for rows whose new
   token could end a stop string. Finished rows leave the batch once half of it has
   finished (their states are dropped; for ``extend`` they are first stored in the prefix
   cache).
5. A stop string that the table missed (a tokenizer whose pieces decode differently in
   context) is caught after the loop: the row is cut at the first token that completes it,
   which gives the same result as stopping there (a row's tokens never depend on later ones).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from rewardlab.policies.hf_sampling import choose
from rewardlab.policies.prefix_cache import PrefixCache
from rewardlab.types import Sampling

EOS, MAY_STOP = 1, 2


@dataclass(frozen=True)
class Decoded:
    """What :func:`decode_rows` returns for one chunk, per row in input order.

    Attributes:
        tokens: generated token ids, cut at the finish (eos or the stop-completing token).
        raw: untempered model logprob of each token in ``tokens``.
        sampled: logprob under the distribution sampled from (0.0 when greedy).
        reasons: ``"stop"`` or ``"length"`` per row.
        computed_prompt_tokens: prompt tokens actually run through the model (after
            deduplication and the prefix cache), summed over the chunk.
    """

    tokens: list[list[int]]
    raw: list[list[float]]
    sampled: list[list[float]]
    reasons: list[str]
    computed_prompt_tokens: int


@dataclass(frozen=True)
class StopRule:
    """How rows end: ``table[token]`` is :data:`EOS`, :data:`MAY_STOP` or 0;
    ``hit(prompt_ids, generated_ids)`` says whether the decoded continuation holds a stop
    string (None when there are no stop strings)."""

    table: torch.Tensor
    hit: Callable[[list[int], list[int]], bool] | None


class _Buffer:
    """Every layer's keys and values for a batch, in one preallocated tensor shaped
    ``[rows, layers, 2, heads, capacity, head_dim]`` (rows first, so that dropping rows moves
    whole rows in place). Columns ``0..length-1`` are filled; the rest is never read."""

    def __init__(self, layers: int, rows: int, capacity: int, device: torch.device) -> None:
        self.layers, self.rows, self.capacity, self.device = layers, rows, capacity, device
        self.data: torch.Tensor | None = None
        self.length = 0
        self.mask = torch.zeros((rows, capacity), dtype=torch.long, device=device)

    def ensure(self, heads: int, head_dim: int, dtype: torch.dtype) -> torch.Tensor:
        """The buffer, allocated on first use (uninitialised; filled column by column)."""
        if self.data is None:
            shape = (self.rows, self.layers, 2, heads, self.capacity, head_dim)
            self.data = torch.empty(shape, dtype=dtype, device=self.device)
        return self.data

    def repeat(self, index: torch.Tensor) -> None:
        """Rows ``index`` (with repeats) become the batch: a new buffer, filled columns copied."""
        if self.data is not None:
            data = torch.empty(
                (len(index), *self.data.shape[1:]), dtype=self.data.dtype, device=self.device
            )
            for j, i in enumerate(index.tolist()):  # row by row: no gathered temporary
                data[j, ..., : self.length, :] = self.data[i, ..., : self.length, :]
            self.data = data
        self.mask = self.mask[index]
        self.rows = len(index)

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (increasing): each moves down in place, filled columns only."""
        if self.data is not None:
            for j, i in enumerate(rows):
                if i != j:
                    self.data[j, ..., : self.length, :] = self.data[i, ..., : self.length, :]
        self.mask = self.mask[rows]
        self.rows = len(rows)

    def cache(self) -> DynamicCache:
        cache = DynamicCache()
        cache.layers = [_BufferLayer(self, i) for i in range(self.layers)]
        return cache


class _BufferLayer(DynamicLayer):  # type: ignore[no-untyped-call]
    """One layer's view of a :class:`_Buffer`; ``update`` writes in place."""

    def __init__(self, buffer: _Buffer, index: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.buffer, self.index = buffer, index
        self.is_initialized = True
        self.device = buffer.device

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.buffer
        data = b.ensure(key_states.shape[1], key_states.shape[-1], key_states.dtype)
        start, end = b.length, b.length + key_states.shape[-2]
        layer = data[: b.rows, self.index]
        layer[:, 0, :, start:end] = key_states
        layer[:, 1, :, start:end] = value_states
        self.keys = layer[:, 0, :, :end]
        self.values = layer[:, 1, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.buffer.length


def forward_keywords(model: Any) -> tuple[str, str | None]:
    """The names ``model.forward`` uses for the cache and for 'logits of the last k only'."""
    names = inspect.signature(model.forward).parameters
    cache = "cache" if "cache" in names else "past_key_values"
    keep = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in names), None)
    return cache, keep


@torch.inference_mode()
def decode_rows(
    model: Any,
    prompts: Sequence[Sequence[int]],
    generators: Sequence[torch.Generator | None],
    params: Sampling,
    rule: StopRule,
    *,
    pad_id: int,
    prefix_cache: PrefixCache | None = None,
    store_generated: bool = False,
) -> Decoded:
    """Sample one continuation per prompt (ids), all rows in one batch.

    Args:
        model: a causal LM whose cache layers hold ``[batch, heads, tokens, head_dim]`` states.
        prompts: token ids per row (non-empty).
        generators: each row's random stream (unused when greedy).
        params: temperature, top-p and ``max_new_tokens``.
        rule: eos and stop-string handling.
        pad_id: the id written at padded positions (masked out).
        prefix_cache: serves and stores states of token prefixes, if given.
        store_generated: store prompt + generated tokens (``extend``); else the prompts only.
    """
    device = next(model.parameters()).device
    layers = int(model.config.get_text_config().num_hidden_layers)
    cache_kw, keep_kw = forward_keywords(model)
    max_new = params.max_new_tokens
    rows = len(prompts)

    # 1-2: distinct prompts, their cached prefixes
    distinct: dict[tuple[int, ...], int] = {}
    source = [distinct.setdefault(tuple(p), len(distinct)) for p in prompts]
    unique = list(distinct)
    matches = [prefix_cache.match(p[:-1]) if prefix_cache is not None else (0, []) for p in unique]
    cached = [m[0] for m in matches]
    rest = [len(p) - c for p, c in zip(unique, cached, strict=True)]
    w_cached, w_rest = max(cached), max(rest)
    w_prompt = w_cached + w_rest
    buf = _Buffer(layers, len(unique), w_prompt + max_new, device)
    for u, (c, segments) in enumerate(matches):
        buf.mask[u, w_cached - c : w_cached] = 1
        buf.mask[u, w_prompt - rest[u] : w_prompt] = 1
        at = w_cached - c
        for kv, n in segments:
            data = buf.ensure(kv.shape[2], kv.shape[-1], kv.dtype)
            data[u, ..., at : at + n, :] = kv[..., :n, :]
            at += n
    if buf.data is not None:  # padding before a shorter cached prefix: read (masked), so finite
        for u, c in enumerate(cached):
            buf.data[u, ..., : w_cached - c, :] = 0
    ids = torch.full((len(unique), w_rest), pad_id, dtype=torch.long)
    pos = torch.zeros((len(unique), w_rest), dtype=torch.long)
    for u, (p, c) in enumerate(zip(unique, cached, strict=True)):
        ids[u, w_rest - rest[u] :] = torch.tensor(p[c:], dtype=torch.long)
        pos[u, w_rest - rest[u] :] = torch.arange(c, len(p))
    cache = buf.cache()
    buf.length = w_cached
    extra = {keep_kw: 1} if keep_kw else {}
    out = model(
        input_ids=ids.to(device),
        attention_mask=buf.mask[:, :w_prompt],
        position_ids=pos.to(device),
        use_cache=True,
        **{cache_kw: cache},
        **extra,
    )
    buf.length = w_prompt
    logits = out.logits[:, -1, :].float()

    def states_of(row_buf: int, c: int, r: int, fed: int) -> Callable[[int, int], torch.Tensor]:
        """States of a row's tokens ``a..b-1`` (prompt then generated) from the buffer."""

        def kv(a: int, b: int) -> torch.Tensor:
            where = [
                w_cached - c + i
                if i < c
                else w_prompt - r + (i - c)
                if i < c + r
                else w_prompt + (i - c - r)
                for i in range(a, b)
            ]
            assert buf.data is not None and max(where) < w_prompt + fed
            index = torch.tensor(where, device=device)
            return buf.data[row_buf].index_select(-2, index)

        return kv

    if prefix_cache is not None and not store_generated:
        for u, p in enumerate(unique):
            prefix_cache.insert(p, states_of(u, cached[u], rest[u], 0))
    if len(unique) < rows:
        expand = torch.tensor(source, device=device)
        buf.repeat(expand)
        logits = logits[expand]

    # 3-4: decode
    tokens = torch.zeros((rows, max(max_new, 1)), dtype=torch.long, device=device)
    raw = torch.zeros((rows, max(max_new, 1)), dtype=torch.float32, device=device)
    sampled = torch.zeros_like(raw)
    table = rule.table.to(device)
    live = list(range(rows))  # original row of each batch row
    live_t = torch.arange(rows, device=device)
    gens = list(generators)
    next_pos = torch.tensor([len(p) for p in prompts], dtype=torch.long, device=device)
    finished: dict[int, tuple[int, str]] = {}
    by_string: set[int] = set()

    def store(batch_rows: list[int], fed: int) -> None:
        if prefix_cache is None or not store_generated:
            return
        gen = tokens[[live[i] for i in batch_rows], :fed].tolist()
        for i, g in zip(batch_rows, gen, strict=True):
            row = live[i]
            keep = min(fed, finished.get(row, (fed, ""))[0])
            c, r = cached[source[row]], rest[source[row]]
            prefix_cache.insert(list(prompts[row]) + g[:keep], states_of(i, c, r, fed))

    steps = 0
    for t in range(max_new):
        chosen, lp_raw, lp_sampled = choose(logits, gens, params.temperature, params.top_p)
        tokens[live_t, t] = chosen
        raw[live_t, t] = lp_raw
        sampled[live_t, t] = lp_sampled
        steps = t + 1
        codes = table[chosen]
        if bool(codes.any()):
            for i in codes.nonzero()[:, 0].tolist():
                row = live[i]
                if row in finished:
                    continue
                if int(codes[i]) == EOS:
                    finished[row] = (t + 1, "stop")
                elif rule.hit is not None and rule.hit(
                    list(prompts[row]), tokens[row, : t + 1].tolist()
                ):
                    finished[row] = (t + 1, "stop")
                    by_string.add(row)
        alive = [i for i, row in enumerate(live) if row not in finished]
        if not alive or t == max_new - 1:
            break
        if 2 * (len(live) - len(alive)) >= len(live):
            gone = [i for i, row in enumerate(live) if row in finished]
            store(gone, t)
            keep = torch.tensor(alive, device=device)
            buf.keep(alive)
            chosen, next_pos, live_t = chosen[keep], next_pos[keep], live_t[keep]
            live = [live[i] for i in alive]
            gens = [gens[i] for i in alive]
        buf.mask[:, buf.length] = 1
        out = model(
            input_ids=chosen[:, None],
            attention_mask=buf.mask[:, : buf.length + 1],
            position_ids=next_pos[:, None],
            use_cache=True,
            **{cache_kw: cache},
        )
        buf.length += 1
        next_pos += 1
        logits = out.logits[:, -1, :].float()
    store(list(range(len(live))), buf.length - w_prompt)

    # 5: results, with stop strings the table missed
    all_tokens, all_raw, all_sampled = tokens.tolist(), raw.tolist(), sampled.tolist()
    reasons, out_tokens, out_raw, out_sampled = [], [], [], []
    for row in range(rows):
        length, reason = finished.get(row, (steps, "length"))
        if rule.hit is not None and row not in by_string:
            first = _first_stop(rule.hit, list(prompts[row]), all_tokens[row][:length])
            if first is not None:
                length, reason = first, "stop"
        out_tokens.append(all_tokens[row][:length])
        out_raw.append(all_raw[row][:length])
        out_sampled.append(all_sampled[row][:length])
        reasons.append(reason)
    return Decoded(out_tokens, out_raw, out_sampled, reasons, sum(rest))


def _first_stop(
    hit: Callable[[list[int], list[int]], bool], prompt: list[int], gen: list[int]
) -> int | None:
    """The fewest leading tokens of ``gen`` whose text holds a stop string (None: never)."""
    if not gen or not hit(prompt, gen):
        return None
    return next(k for k in range(1, len(gen) + 1) if hit(prompt, gen[:k]))
