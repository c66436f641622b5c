"""Ensembles: every aggregation on a hand-made matrix, z-normalisation, the Reward contract,
ungraded members, loading from disk; length-sorted dynamic batching."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.rewards.base import check_reward, values
from rewardlab.rewards.ensemble import (
    AGGREGATES,
    EnsembleReward,
    aggregate_matrix,
    load_ensemble,
    zscore_stats,
)
from rewardlab.rewards.preference_rm import length_sorted_batches
from rewardlab.types import Candidate, Problem, Score

# three members (rows) x two candidates (columns)
M = np.array([[1.0, 4.0], [3.0, 0.0], [2.0, 2.0]])


def test_aggregations_by_hand() -> None:
    assert aggregate_matrix(M, "mean").tolist() == [2.0, 2.0]
    assert aggregate_matrix(M, "median").tolist() == [2.0, 2.0]
    assert aggregate_matrix(M, "min").tolist() == [1.0, 0.0]
    # population variances: col 0 (1 + 1 + 0)/3 = 2/3, col 1 (4 + 4 + 0)/3 = 8/3
    assert aggregate_matrix(M, "mean-var", lam=0.5).tolist() == pytest.approx(
        [2 - 1 / 3, 2 - 4 / 3]
    )
    std = [np.sqrt(2 / 3), np.sqrt(8 / 3)]
    assert aggregate_matrix(M, "mean-std", lam=1.0).tolist() == pytest.approx(
        [2 - std[0], 2 - std[1]]
    )
    assert aggregate_matrix(M, "mean-var", lam=0.0).tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate_matrix(M, "max")  # type: ignore[arg-type]


def test_zscore_then_aggregate_by_hand() -> None:
    m = np.array([[0.0, 10.0], [1.0, 3.0]])  # member 0 on a 10x larger scale
    mu, sd = zscore_stats(m)
    assert mu.tolist() == [5.0, 2.0] and sd.tolist() == [5.0, 1.0]
    # z: member 0 -> [-1, 1], member 1 -> [-1, 1]; mean = [-1, 1]
    assert aggregate_matrix(m, "mean", stats=(mu, sd)).tolist() == [-1.0, 1.0]
    assert zscore_stats(np.array([[2.0, 2.0]]))[1].tolist() == [1.0]  # constant: sd -> 1


def test_nan_member_makes_the_candidate_nan() -> None:
    m = np.array([[1.0, np.nan], [2.0, 3.0]])
    for how in AGGREGATES:
        out = aggregate_matrix(m, how)
        assert out[0] == pytest.approx(aggregate_matrix(m[:, :1], how)[0]) and np.isnan(out[1])


@dataclass(frozen=True)
class Table:
    """A reward that looks a candidate's text up in a table (missing -> ungraded)."""

    table: dict[str, float]
    name: str = "table"
    params: int = 10

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        return [
            Score(self.table[c.text]) if c.text in self.table else Score.ungraded("unknown")
            for c in candidates
        ]


def _cands(texts: Sequence[str]) -> tuple[list[Problem], list[Candidate]]:
    probs = [Problem(f"p{i}", "q", "1") for i in range(len(texts))]
    return probs, [Candidate(p.id, t, (), None) for p, t in zip(probs, texts, strict=True)]


def test_ensemble_is_a_reward_and_reports_members() -> None:
    a = Table({"x": 1.0, "y": 4.0}, "a")
    b = Table({"x": 3.0, "y": 0.0}, "b")
    c = Table({"x": 2.0, "y": 2.0}, "c")
    ens = EnsembleReward((a, b, c), aggregate="min")
    probs, cands = _cands(["x", "y"])
    check_reward(ens, probs, cands)
    scores = ens.score(probs, cands)
    assert values(scores).tolist() == [1.0, 0.0]
    assert scores[0].info["members"] == [1.0, 3.0, 2.0] and ens.params == 30
    probs, cands = _cands(["x", "z"])
    out = EnsembleReward((a, Table({"x": 1.0, "z": 1.0}, "d"))).score(probs, cands)
    assert out[0].value == 1.0 and out[1].value is None and "a" in out[1].info["reason"]


def test_fitted_normalisation_makes_scores_batch_independent() -> None:
    a, b = Table({"x": 0.0, "y": 10.0, "w": 5.0}, "a"), Table({"x": 1.0, "y": 3.0, "w": 2.0}, "b")
    ens = EnsembleReward((a, b), normalize=True)
    ref_p, ref_c = _cands(["x", "y"])
    with pytest.raises(ValueError, match="fit_normalization"):
        ens.score(ref_p, ref_c)  # batch statistics would make scores batch-dependent
    fitted = ens.fit_normalization(ref_p, ref_c)
    assert fitted.stats == ((5.0, 2.0), (5.0, 1.0))
    assert values(fitted.score(ref_p, ref_c)).tolist() == [-1.0, 1.0]
    one_p, one_c = _cands(["w"])
    assert values(fitted.score(one_p, one_c)).tolist() == [0.0]  # same stats in any batch


def test_load_ensemble_from_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    mod = types.ModuleType("fake_rewards")
    mod.load = lambda path, **kw: Table(json.loads((path / "t.json").read_text()), path.name)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_rewards", mod)
    for i, table in enumerate(({"x": 1.0}, {"x": 3.0})):
        d = tmp_path / f"member-{i}"
        d.mkdir()
        (d / "t.json").write_text(json.dumps(table))
        (d / "rewardlab.json").write_text(json.dumps({"loader": "fake_rewards:load"}))
    (tmp_path / "rewardlab.json").write_text(
        json.dumps(
            {
                "kind": "ensemble",
                "members": ["member-0", "member-1"],
                "aggregate": "mean-std",
                "lam": 1.0,
            }
        )
    )
    ens = load_ensemble(tmp_path)
    probs, cands = _cands(["x"])
    assert ens.aggregate == "mean-std" and values(ens.score(probs, cands)).tolist() == [1.0]
    assert load_ensemble(tmp_path, aggregate="min").score(probs, cands)[0].value == 1.0


@given(
    st.lists(st.integers(1, 60), min_size=0, max_size=40), st.integers(1, 200), st.integers(1, 8)
)
@settings(max_examples=60, deadline=None)
def test_length_sorted_batches_cover_every_index_within_budget(
    lengths: list[int], max_tokens: int, max_batch: int
) -> None:
    batches = length_sorted_batches(lengths, max_tokens, max_batch)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    for b in batches:
        width = max(lengths[i] for i in b)
        assert len(b) <= max_batch
        assert len(b) == 1 or len(b) * width <= max_tokens
        assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)


@given(
    st.lists(st.lists(st.floats(-5, 5), min_size=3, max_size=3), min_size=1, max_size=6),
    st.floats(0, 2),
)
@settings(max_examples=60, deadline=None)
def test_conservative_aggregates_never_exceed_the_mean(rows: list[list[float]], lam: float) -> None:
    m = np.array(rows).T  # [K=3, C]
    mean = aggregate_matrix(m, "mean")
    for how in ("min", "mean-var", "mean-std"):
        assert (aggregate_matrix(m, how, lam) <= mean + 1e-9).all()
    assert (aggregate_matrix(m, "min") <= aggregate_matrix(m, "median") + 1e-12).all()
