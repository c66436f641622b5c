"""The radix tree of key/value states: longest-prefix match, stored contents, memory bound."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.policies.prefix_cache import PrefixCache

BYTES_PER_TOKEN = 1 * 2 * 1 * 2 * 4  # [layers=1, 2, heads=1, tokens, head_dim=2] float32


def states(ids: list[int]) -> torch.Tensor:
    """Fake states that encode each token id and its position, so contents can be checked."""
    values = torch.tensor([[float(t), float(i)] for i, t in enumerate(ids)])
    return values.reshape(1, 1, 1, len(ids), 2).expand(1, 2, 1, len(ids), 2).clone()


def slicer(ids: list[int], calls: list[tuple[int, int]] | None = None):  # type: ignore[no-untyped-def]
    full = states(ids)

    def kv(a: int, b: int) -> torch.Tensor:
        if calls is not None:
            calls.append((a, b))
        return full[..., a:b, :]

    return kv


def joined(segments: list[tuple[torch.Tensor, int]]) -> torch.Tensor:
    return torch.cat([kv[..., :n, :] for kv, n in segments], dim=-2)


def test_longest_prefix_and_contents() -> None:
    cache = PrefixCache(max_bytes=1 << 20)
    cache.insert([1, 2, 3, 4], slicer([1, 2, 3, 4]))
    cache.insert([1, 2, 7], slicer([1, 2, 7]))  # splits [1, 2, 3, 4] after [1, 2]
    assert cache.tokens == 5  # 1 2 | 3 4 | 7: the shared part is held once
    n, segments = cache.match([1, 2, 3, 9])
    assert n == 3
    assert torch.equal(joined(segments), states([1, 2, 3]))
    n, segments = cache.match([1, 2, 7, 5])
    assert n == 3 and torch.equal(joined(segments), states([1, 2, 7]))
    assert cache.match([9, 1])[0] == 0
    assert cache.stats.served_tokens == 6 and cache.stats.lookups == 3


def test_insert_asks_only_for_the_new_part() -> None:
    cache = PrefixCache(max_bytes=1 << 20)
    cache.insert([1, 2, 3], slicer([1, 2, 3]))
    calls: list[tuple[int, int]] = []
    cache.insert([1, 2, 3, 4, 5], slicer([1, 2, 3, 4, 5], calls))
    cache.insert([1, 2], slicer([1, 2], calls))
    assert calls == [(3, 5)]
    assert cache.stats.inserted_tokens == 5


def test_budget_evicts_least_recently_used_leaves() -> None:
    cache = PrefixCache(max_bytes=6 * BYTES_PER_TOKEN)
    cache.insert([1, 2, 3], slicer([1, 2, 3]))
    cache.insert([4, 5, 6], slicer([4, 5, 6]))
    cache.match([1, 2, 3])  # [1, 2, 3] is now the more recent
    cache.insert([7, 8], slicer([7, 8]))
    assert cache.nbytes <= cache.max_bytes
    assert cache.match([4, 5, 6])[0] == 0  # the least recently used went
    assert cache.match([1, 2, 3])[0] == 3 and cache.match([7, 8])[0] == 2
    assert cache.stats.evicted_tokens == 3


def test_inner_nodes_outlive_their_children() -> None:
    cache = PrefixCache(max_bytes=5 * BYTES_PER_TOKEN)
    cache.insert([1, 2, 3], slicer([1, 2, 3]))
    cache.insert([1, 2, 4], slicer([1, 2, 4]))  # [1 2] -> {[3], [4]}
    cache.insert([9, 9], slicer([9, 9]))  # over budget: a leaf goes, never [1 2] first
    assert cache.nbytes <= cache.max_bytes
    n, segments = cache.match([1, 2, 4])
    assert n >= 2 and torch.equal(joined(segments), states([1, 2, 4])[..., :n, :])


def test_zero_budget_stores_nothing_and_bad_budget_is_refused() -> None:
    cache = PrefixCache(max_bytes=0)
    cache.insert([1, 2], slicer([1, 2]))
    assert cache.tokens == 0 and cache.match([1, 2])[0] == 0
    with pytest.raises(ValueError, match="max_bytes"):
        PrefixCache(max_bytes=-1)


def test_wrong_slice_length_is_an_error() -> None:
    cache = PrefixCache(max_bytes=1 << 20)
    with pytest.raises(ValueError, match="returned 1 tokens"):
        cache.insert([1, 2], lambda a, b: states([1]))


sequences = st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=8), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(inserted=sequences, queries=sequences, budget=st.integers(0, 40))
def test_matches_are_true_prefixes_within_budget(
    inserted: list[list[int]], queries: list[list[int]], budget: int
) -> None:
    """Whatever the budget: a match is a prefix of some inserted sequence with that
    sequence's states, never longer than the longest common prefix; memory stays bounded; and
    with room for everything the match is the longest common prefix."""
    bounded = PrefixCache(max_bytes=budget * BYTES_PER_TOKEN)
    roomy = PrefixCache(max_bytes=1 << 20)
    for ids in inserted:
        bounded.insert(ids, slicer(ids))
        roomy.insert(ids, slicer(ids))
        assert bounded.nbytes <= bounded.max_bytes
    for q in queries:
        best = max(_common(q, ids) for ids in inserted)
        for cache in (bounded, roomy):
            n, segments = cache.match(q)
            assert n <= best
            if n:
                assert torch.equal(joined(segments), states(q[:n]))
        assert roomy.match(q)[0] == best


def _common(a: list[int], b: list[int]) -> int:
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return k
