"""picks.jsonl's fast path (scores computed once per strategy) equals ``select`` per call."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.pipelines.scale_job import picks
from rewardlab.search.offline import PoolArrays, parse_strategy


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(0, 10_000))
def test_picks_equal_select(p: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = rng.integers(-1, 3, size=(p, n))
    correct = ids == 1
    scores = {"orm": rng.integers(0, 3, size=(p, n)).astype(float)}  # ties on purpose
    scores["orm"][rng.random((p, n)) < 0.2] = np.nan
    steps = {"prm": [[rng.random(rng.integers(1, 4)) for _ in range(n)] for _ in range(p)]}
    arrays = PoolArrays(correct, ids, scores, steps)
    specs = ["pass", "maj", "bon:orm", "wmaj:orm", "bon:prm:min", "wmaj:prm:prod"]
    strategies = [parse_strategy(s) for s in specs]
    ks = [k for k in (1, 2, 4, 8) if k <= n] or [n]
    pool = [[None] * n for _ in range(p)]
    got = list(picks(pool, arrays, strategies, ks))  # type: ignore[arg-type]
    by_name = {s.name: s for s in strategies}
    assert len(got) == p * (len(specs) - 1) * len(ks)  # pass picks nothing
    for prob, name, k, i in got:
        assert i == by_name[name].select(arrays, prob, range(k))  # type: ignore[attr-defined]
