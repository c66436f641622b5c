"""A bounded radix tree of key/value states keyed by token-id prefixes (the ``hf`` backend's
prefix reuse).

Online search calls ``Policy.extend`` again and again on prefixes that share the prompt and
earlier steps; the next call's prefixes are this call's prefixes plus their new step. Re-reading
a whole prefix every step costs a forward pass over it. :class:`PrefixCache` keeps the keys and
values the model computed for token sequences in a radix tree (as SGLang's RadixAttention does):
each node holds the states of its own segment of tokens only, so beams that share a prompt and
earlier steps share their nodes, and :meth:`PrefixCache.match` serves the *longest* cached
prefix of any token sequence.

Memory is bounded: the tree never holds more than ``max_bytes`` of states after an insert;
least recently used leaves are evicted first (a node with children is never evicted before
them, so every cached path stays complete).

States are stored as one tensor per node, shaped ``[layers, 2, heads, tokens, head_dim]``
(keys at index 0, values at 1) in the model's dtype, on the model's device.

>>> cache = PrefixCache(max_bytes=1 << 20)
>>> cache.insert([5, 6, 7], lambda a, b: torch.zeros(1, 2, 1, b - a, 4))
>>> cache.match([5, 6, 9])[0]
2
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

KVSlice = Callable[[int, int], torch.Tensor]
"""``kv(start, end)``: the states of tokens ``start..end-1`` of the sequence being inserted."""


@dataclass
class PrefixCacheStats:
    """Running counters of one cache (not frozen: updated in place).

    Attributes:
        lookups: sequences looked up.
        served_tokens: prompt tokens whose states came from the cache.
        inserted_tokens: tokens whose states were stored (new tree segments).
        evicted_tokens: tokens whose states were dropped to stay within the budget.
    """

    lookups: int = 0
    served_tokens: int = 0
    inserted_tokens: int = 0
    evicted_tokens: int = 0


class _Node:
    __slots__ = ("children", "ids", "kv", "parent", "stamp")

    def __init__(self, ids: tuple[int, ...], kv: torch.Tensor | None, parent: _Node | None):
        self.ids = ids
        self.kv = kv
        self.parent = parent
        self.children: dict[int, _Node] = {}
        self.stamp = 0

    @property
    def nbytes(self) -> int:
        return 0 if self.kv is None else self.kv.numel() * self.kv.element_size()


class PrefixCache:
    """Key/value states of token prefixes in a radix tree, at most ``max_bytes`` of them.

    Args:
        max_bytes: the budget for stored states; 0 stores nothing.

    Raises:
        ValueError: a negative budget.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.stats = PrefixCacheStats()
        self._root = _Node((), None, None)
        self._bytes = 0
        self._tokens = 0
        self._nodes = 0
        self._clock = itertools.count(1)
        self._heap: list[tuple[int, int, _Node]] = []
        self._ids = itertools.count()

    @property
    def nbytes(self) -> int:
        """Bytes of states held now (always <= ``max_bytes`` between calls)."""
        return self._bytes

    @property
    def tokens(self) -> int:
        """Tokens whose states are held now."""
        return self._tokens

    def clear(self) -> None:
        """Drop every stored state (the counters stay)."""
        self._root = _Node((), None, None)
        self._bytes = self._tokens = self._nodes = 0
        self._heap = []

    def match(self, ids: Sequence[int]) -> tuple[int, list[tuple[torch.Tensor, int]]]:
        """The longest cached prefix of ``ids``: its length and its states, segment by segment.

        Returns ``(length, segments)`` where each segment is ``(kv, n)``: the first ``n``
        tokens of ``kv`` (shape ``[layers, 2, heads, >= n, head_dim]``), in order; the ``n``
        add up to ``length``. Marks the path as recently used.
        """
        self.stats.lookups += 1
        node, pos, segments = self._root, 0, []
        while pos < len(ids):
            child = node.children.get(ids[pos])
            if child is None:
                break
            k = _common(child.ids, ids, pos)
            assert child.kv is not None
            segments.append((child.kv, k))
            self._touch(child)
            pos += k
            if k < len(child.ids):
                break
            node = child
        self.stats.served_tokens += pos
        return pos, segments

    def insert(self, ids: Sequence[int], kv: KVSlice) -> None:
        """Store the states of ``ids``; ``kv(a, b)`` is called only for the part not yet held.

        Then evicts least recently used leaves until the budget holds (possibly the new one).
        """
        if self.max_bytes == 0 or not ids:
            return
        node, pos = self._root, 0
        while pos < len(ids):
            child = node.children.get(ids[pos])
            if child is None:
                states = kv(pos, len(ids))
                if states.shape[-2] != len(ids) - pos:
                    raise ValueError(
                        f"kv({pos}, {len(ids)}) returned {states.shape[-2]} tokens of states"
                    )
                leaf = _Node(tuple(ids[pos:]), states, node)
                node.children[ids[pos]] = leaf
                self._account(leaf, +1)
                self.stats.inserted_tokens += len(leaf.ids)
                self._touch(leaf)
                break
            k = _common(child.ids, ids, pos)
            if k < len(child.ids):
                child = self._split(child, k)
            self._touch(child)
            node, pos = child, pos + k
        self._evict()

    # -- internals -------------------------------------------------------------------------

    def _touch(self, node: _Node) -> None:
        node.stamp = next(self._clock)
        heapq.heappush(self._heap, (node.stamp, next(self._ids), node))
        if len(self._heap) > 64 + 4 * self._nodes:
            self._rebuild_heap()

    def _rebuild_heap(self) -> None:
        live = [(n.stamp, next(self._ids), n) for n in self._walk()]
        heapq.heapify(live)
        self._heap = live

    def _walk(self) -> list[_Node]:
        out, todo = [], list(self._root.children.values())
        while todo:
            node = todo.pop()
            out.append(node)
            todo.extend(node.children.values())
        return out

    def _split(self, node: _Node, k: int) -> _Node:
        """Cut ``node`` after its first ``k`` tokens; return the new head (parent of the rest)."""
        assert node.kv is not None and node.parent is not None and 0 < k < len(node.ids)
        parent = node.parent
        self._account(node, -1)
        head = _Node(node.ids[:k], node.kv[..., :k, :].clone(), parent)
        head.stamp = node.stamp
        node.kv = node.kv[..., k:, :].clone()
        node.ids = node.ids[k:]
        node.parent = head
        head.children[node.ids[0]] = node
        parent.children[head.ids[0]] = head
        self._account(head, +1)
        self._account(node, +1)
        heapq.heappush(self._heap, (head.stamp, next(self._ids), head))
        return head

    def _account(self, node: _Node, sign: int) -> None:
        self._bytes += sign * node.nbytes
        self._tokens += sign * len(node.ids)
        self._nodes += sign

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and self._heap:
            stamp, _, node = heapq.heappop(self._heap)
            if stamp != node.stamp or node.children or node.parent is None:
                continue  # a stale entry, an inner node (its children go first) or gone
            parent = node.parent
            if parent.children.get(node.ids[0]) is not node:
                continue
            del parent.children[node.ids[0]]
            self._account(node, -1)
            self.stats.evicted_tokens += len(node.ids)
            node.parent, node.kv = None, None
            if parent is not self._root and not parent.children:
                heapq.heappush(self._heap, (parent.stamp, next(self._ids), parent))


def _common(segment: tuple[int, ...], ids: Sequence[int], pos: int) -> int:
    """How many leading tokens of ``segment`` equal ``ids[pos:]``."""
    n = min(len(segment), len(ids) - pos)
    k = 0
    while k < n and segment[k] == ids[pos + k]:
        k += 1
    return k
