"""The scaling job's default strategies per kind of reward."""

from __future__ import annotations

import numpy as np

from rewardlab.pipelines.scale_job import _signed, _unbounded_steps, default_strategies
from rewardlab.search.offline import PoolArrays


def _arrays() -> PoolArrays:
    correct = np.array([[True, False], [False, True]])
    return PoolArrays(
        correct=correct,
        answer_ids=np.array([[0, 1], [0, 1]]),
        scores={"logprob": np.array([[-0.1, -2.0], [-0.3, -0.2]]), "orm": np.full((2, 2), 0.5)},
        step_scores={
            "prm": [[np.array([0.9, 0.2]), np.array([1.0])] for _ in range(2)],
            "implicit": [[np.array([0.3, -1.5]), np.array([2.0])] for _ in range(2)],
        },
    )


def test_signed_and_unbounded_rewards_are_detected() -> None:
    arrays = _arrays()
    assert _signed(arrays) == ["logprob"]
    assert _unbounded_steps(arrays) == ["implicit"]


def test_default_strategies_match_each_kind_of_reward() -> None:
    names = [
        s.name
        for s in default_strategies(
            ["logprob", "orm"], ["prm", "implicit"], ["logprob"], ["implicit"]
        )
    ]
    assert names[:2] == ["pass", "maj"]
    assert "bon[logprob]" in names and "wmaj[logprob]" not in names
    assert {"bon[orm]", "wmaj[orm]"} <= set(names)
    for agg in ("last", "min", "prod", "mean"):
        assert {f"bon[prm:{agg}]", f"wmaj[prm:{agg}]"} <= set(names)
    implicit = {n for n in names if "implicit" in n}
    assert implicit == {f"bon[implicit:{a}]" for a in ("last", "min", "mean", "sum")}
