"""Preference heads on features: the existing objectives, noise-robust flips, the feature cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rewardlab.train.encoder_pref import cached_features, feature_pair_batches, train_head
from rewardlab.train.loop import LoopConfig
from rewardlab.train.preference import PreferenceConfig, bt_loss, bt_margin_loss


def _data(n: int = 240, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pairs whose preference is set by feature 0: chosen has the larger value."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    swap = a[:, 0] < b[:, 0]
    return np.where(swap[:, None], b, a), np.where(swap[:, None], a, b)


def _cfg(objective: str, steps: int = 80) -> PreferenceConfig:
    loop = LoopConfig(steps=steps, lr=1e-2, warmup_steps=5, log_every=1000, cpu=True)
    return PreferenceConfig(objective=objective, loop=loop, batch_size=32)


def test_batches_layout_and_margin_defaults() -> None:
    fc, fr = np.ones((5, 2)), np.zeros((5, 2))
    margin = np.array([2.0, np.nan, 1.0, np.nan, 3.0])
    (b,) = feature_pair_batches(5, fc, fr, margin, batch_size=5, n_batches=1, seed=0)
    assert b["features"].shape == (10, 2)
    assert b["features"][:5].sum() == 10 and b["features"][5:].sum() == 0
    assert sorted(b["margin"].tolist()) == [0.0, 0.0, 1.0, 2.0, 3.0]  # absent -> 0
    assert sorted(b["strength"].tolist()) == [1.0, 1.0, 1.0, 2.0, 3.0]  # absent -> 1


@pytest.mark.parametrize("objective", ["bt", "bt-margin", "label-smoothing"])
def test_heads_learn_a_separable_preference(objective: str) -> None:
    fc, fr = _data()
    tc, tr = _data(seed=1)
    margin = np.ones(len(fc)) if objective == "bt-margin" else None
    head, info = train_head(fc, fr, margin, _cfg(objective), hidden=0, dropout=0.0, seed=0)
    assert info["pairs"] == len(fc)
    acc = float((head.score(tc) > head.score(tr)).mean())
    assert acc > 0.9, acc


def test_objective_loss_is_the_existing_formula() -> None:
    """One step's loss on a fixed batch is the objective's loss on the head's outputs."""
    from rewardlab.train.encoder_pref import _loss_fn

    fc, fr = _data(8)
    (b,) = feature_pair_batches(8, fc, fr, np.full(8, 0.5), batch_size=8, n_batches=1, seed=0)
    head, _ = train_head(fc, fr, None, _cfg("bt", steps=1), hidden=0, dropout=0.0)
    r = head(b["features"])
    for name, want in (
        ("bt", bt_loss(r[:8], r[8:])),
        ("bt-margin", bt_margin_loss(r[:8], r[8:], torch.full((8,), 0.5))),
    ):
        got, _ = _loss_fn(name, _cfg(name))(head, b)
        assert float(got.detach()) == pytest.approx(float(want.detach()), abs=1e-6)
    with pytest.raises(ValueError, match="needs rating data"):
        _loss_fn("regression", _cfg("regression"))


def test_noise_robust_flips_mostly_the_noisy_pairs() -> None:
    fc, fr = _data(300)
    rng = np.random.default_rng(5)
    noisy = rng.random(len(fc)) < 0.2
    nc, nr = np.where(noisy[:, None], fr, fc), np.where(noisy[:, None], fc, fr)
    cfg = PreferenceConfig(
        objective="noise-robust",
        loop=LoopConfig(steps=100, lr=1e-2, warmup_steps=5, log_every=1000, cpu=True),
        batch_size=32,
        noise_members=3,
    )
    head, info = train_head(nc, nr, None, cfg, hidden=0, dropout=0.0, seed=0)
    flip = np.array(info["flip_mask"])
    assert info["flipped"] == int(flip.sum()) > 0
    precision = (flip & noisy).sum() / flip.sum()
    recall = (flip & noisy).sum() / noisy.sum()
    # 20% of pairs are noisy: flips hit them far above that base rate, and catch most of them
    assert precision > 2 * noisy.mean() and recall > 0.5, (precision, recall)
    tc, tr = _data(seed=2)
    # the final head learns the preference (chance is 0.5). It does NOT match BT here: measured
    # 0.66 vs BT's 0.82 after 100 steps on these 20%-noisy pairs (0.79 vs 0.92 after 300);
    # reported in docs/preference_rms.md, not hidden by this bound
    assert float((head.score(tc) > head.score(tr)).mean()) > 0.6


def test_bad_shapes() -> None:
    fc, fr = _data(10)
    with pytest.raises(ValueError, match="same \\[n, D\\]"):
        train_head(fc, fr[:5], None, _cfg("bt"))
    with pytest.raises(ValueError, match="margin must be"):
        train_head(fc, fr, np.ones(3), _cfg("bt-margin"))


def test_feature_cache_resumes(tmp_path: Path) -> None:
    from rewardlab.rewards.encoder_rm import EncoderFeaturizer
    from tinybert import build_tiny_bert

    f = EncoderFeaturizer(build_tiny_bert(tmp_path / "bert"), max_length=16, response_tokens=4)
    prompts, responses = ["the cat", "a dog", "yes", "no"], ["sat", "ran", "good", "bad"]
    first = cached_features(f, prompts, responses, tmp_path / "cache", chunk=2)
    files = sorted((tmp_path / "cache").glob("*.npy"))
    assert len(files) == 2
    files[1].unlink()  # as if interrupted before the second chunk was written
    calls: list[int] = []
    orig = f.features

    def counting(p: list[str], r: list[str]) -> np.ndarray:
        calls.append(len(p))
        return orig(p, r)

    f.features = counting  # type: ignore[method-assign]
    again = cached_features(f, prompts, responses, tmp_path / "cache", chunk=2)
    assert calls == [2]  # only the missing chunk was recomputed
    np.testing.assert_allclose(first, again, atol=1e-6)
