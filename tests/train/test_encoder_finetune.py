"""Encoder fine-tuning (pairs and outcomes), the encoder ORM and its CLI path, on a tiny BERT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardlab.rewards.encoder_rm import (
    EncoderFeaturizer,
    EncoderRM,
    EncoderScorer,
    FeatureHead,
    collate_rows,
    save_encoder_rm,
    set_trainable_layers,
)
from rewardlab.train.encoder_finetune import (
    epoch_batches,
    finetune_outcome,
    finetune_pairs,
    steps_for_epochs,
)
from rewardlab.train.encoder_orm import is_encoder_backbone, train_outcome_head
from rewardlab.train.loop import LoopConfig
from rewardlab.train.preference import PreferenceConfig


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tinybert import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("bert"))


def _feat(bert_dir: Path) -> EncoderFeaturizer:
    return EncoderFeaturizer(bert_dir, max_length=24, response_tokens=8, device="cpu")


def _texts(n: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    """Prompts and two replies: the preferred one holds 'good', the other 'bad'."""
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "dog", "sat", "on", "mat", "ran", "fast"]
    prompts = [" ".join(rng.choice(words, 4)) for _ in range(n)]
    filler = [" ".join(rng.choice(words, 2)) for _ in range(n)]
    return prompts, [f"{f} good" for f in filler], [f"{f} bad" for f in filler]


def test_epoch_batches_are_permutations_with_the_tail_dropped() -> None:
    b = epoch_batches(10, 4, 4, seed=0)
    assert [len(x) for x in b] == [4, 4, 4, 4]
    assert len(set(b[0] + b[1])) == 8  # one epoch: no index twice, 2 of 10 dropped
    assert epoch_batches(10, 4, 4, seed=0) == b
    assert steps_for_epochs(10, 4, 1.0) == 2 and steps_for_epochs(10, 4, 0.1) == 1
    with pytest.raises(ValueError, match="batch size"):
        epoch_batches(0, 4, 1, seed=0)


def test_trainable_layers(bert_dir: Path) -> None:
    model = _feat(bert_dir).model
    blocks = list(model.encoder.layer)
    n_top = sum(p.numel() for p in blocks[-1].parameters())
    assert set_trainable_layers(model, 1) == n_top
    assert all(p.requires_grad for p in blocks[-1].parameters())
    assert not any(p.requires_grad for p in blocks[0].parameters())
    assert not any(p.requires_grad for p in model.embeddings.parameters())
    total = set_trainable_layers(model, -1)
    pooler = sum(p.numel() for p in model.pooler.parameters()) if model.pooler else 0
    assert total == sum(p.numel() for p in model.parameters()) - pooler
    assert set_trainable_layers(model, 0) == 0
    with pytest.raises(ValueError, match="layers must be"):
        set_trainable_layers(model, 3)


def test_scorer_reads_the_encoder_as_the_featurizer_does(bert_dir: Path) -> None:
    f = _feat(bert_dir)
    prompts, chosen, _ = _texts(5, 0)
    torch.manual_seed(0)
    head = FeatureHead(2 * f.hidden, hidden=0, dropout=0.0).eval()
    want = head.score(f.features(prompts, chosen))
    ids, types, mask = collate_rows(
        [f.pair_ids(p, r) for p, r in zip(prompts, chosen, strict=True)], 0
    )
    with torch.no_grad():
        got = EncoderScorer(f.model, head).eval()(ids, mask, types).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_finetune_pairs_learns_and_moves_only_the_top_block(bert_dir: Path, tmp_path: Path) -> None:
    f = _feat(bert_dir)
    prompts, chosen, rejected = _texts(64, 0)
    bottom = [p.detach().clone() for p in f.model.encoder.layer[0].parameters()]
    top = [p.detach().clone() for p in f.model.encoder.layer[1].parameters()]
    torch.manual_seed(0)
    head = FeatureHead(2 * f.hidden, hidden=0, dropout=0.0)
    head.set_standardisation(f.features(prompts + prompts, chosen + rejected))
    loop = LoopConfig(steps=60, lr=3e-3, warmup_steps=5, log_every=20, cpu=True)
    pref = PreferenceConfig(objective="bt", loop=loop, batch_size=16)
    report = finetune_pairs(f, head, prompts, chosen, rejected, pref, layers=1)
    assert report.steps == 60 and report.batch_size == 16 and report.history
    assert report.epochs == pytest.approx(60 * 16 / 64)
    assert all(
        torch.equal(a, b)
        for a, b in zip(bottom, f.model.encoder.layer[0].parameters(), strict=True)
    )
    assert not all(
        torch.equal(a, b) for a, b in zip(top, f.model.encoder.layer[1].parameters(), strict=True)
    )
    tp, tc, tr = _texts(40, 1)
    acc = float((head.score(f.features(tp, tc)) > head.score(f.features(tp, tr))).mean())
    assert acc > 0.9, acc
    # saved with its encoder, loaded back: the same scores
    path = save_encoder_rm(head, f, tmp_path / "ft", save_encoder=True, name="ft")
    meta = json.loads((path / "rewardlab.json").read_text())
    assert meta["encoder"] == "encoder" and meta["encoder_in_checkpoint"] is True
    assert meta["base_encoder"] == str(bert_dir)
    rm = EncoderRM.from_dir(path, device="cpu")
    np.testing.assert_allclose(rm.score_pairs(tp, tc), head.score(f.features(tp, tc)), atol=1e-5)


def test_finetune_outcome_learns_labels(bert_dir: Path) -> None:
    f = _feat(bert_dir)
    prompts, good, bad = _texts(48, 2)
    texts, labels = good + bad, [1.0] * 48 + [0.0] * 48
    torch.manual_seed(0)
    head = FeatureHead(2 * f.hidden, hidden=0, dropout=0.0)
    head.set_standardisation(f.features(prompts * 2, texts))
    loop = LoopConfig(steps=60, lr=3e-3, warmup_steps=5, log_every=1000, cpu=True)
    report = finetune_outcome(f, head, prompts * 2, texts, labels, loop, batch_size=16, layers=-1)
    assert report.trainable_params > 0
    tp, tg, tb = _texts(30, 3)
    z = head.score(f.features(tp * 2, tg + tb))
    assert ((z > 0) == np.array([True] * 30 + [False] * 30)).mean() > 0.9
    with pytest.raises(ValueError, match="labels must lie"):
        finetune_outcome(f, head, ["a"], ["b"], [2.0], loop)


def test_outcome_head_on_features_and_bad_labels() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = (x[:, 2] > 0).astype(float)
    loop = LoopConfig(steps=150, lr=5e-2, warmup_steps=5, log_every=1000, cpu=True)
    head = train_outcome_head(x, y, loop, batch_size=32, hidden=0, dropout=0.0)
    xt = rng.normal(size=(200, 5)).astype(np.float32)
    assert ((head.score(xt) > 0) == (xt[:, 2] > 0)).mean() > 0.9
    with pytest.raises(ValueError, match="labels must lie"):
        train_outcome_head(x, y * 2, loop)
    with pytest.raises(ValueError, match="n labels"):
        train_outcome_head(x, y[:5], loop)


def test_is_encoder_backbone(bert_dir: Path, tmp_path: Path) -> None:
    assert is_encoder_backbone("minilm") and is_encoder_backbone(bert_dir)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert not is_encoder_backbone(tmp_path)
    assert not is_encoder_backbone(tmp_path / "missing")


def test_cli_trains_an_encoder_orm_and_evaluates_selection(bert_dir: Path, tmp_path: Path) -> None:
    """``rewardlab train --objective orm --backbone <encoder>`` then ``rewardlab eval select``."""
    from typer.testing import CliRunner

    from rewardlab.cli.main import app

    prompts, good, bad = _texts(32, 4)
    rows = [
        {"prompt": p, "text": t, "label": lab}
        for p, t, lab in [
            *zip(prompts, good, [True] * 32, strict=True),
            *zip(prompts, bad, [False] * 32, strict=True),
        ]
    ]
    data = tmp_path / "outcome.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "orm"
    runner = CliRunner()
    args = [
        "train",
        "--objective",
        "orm",
        "--backbone",
        str(bert_dir),
        "--data",
        str(data),
        "--out",
        str(out),
        "--steps",
        "80",
        "--lr",
        "0.01",
        "--batch-size",
        "16",
        "--max-length",
        "24",
        "--finetune-layers",
        "1",
        "--finetune-steps",
        "3",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "rewardlab.json").read_text())
    assert meta["kind"] == "encoder-rm" and meta["finetune_layers"] == 1
    assert meta["encoder_in_checkpoint"] is True and (out / "encoder" / "config.json").is_file()
    assert (out / "report.md").is_file() and (out / "loss.png").is_file()
    stages = [json.loads(x)["stage"] for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert stages[0] == "head" and stages[-1] == "finetune"
    tp, tg, tb = _texts(12, 5)
    pool = tmp_path / "pool.jsonl"
    pool.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": p,
                    "responses": [b, g, b + " cat"],
                    "correct": [False, True, False],
                    "answers": ["2", "1", "2"],
                }
            )
            + "\n"
            for p, g, b in zip(tp, tg, tb, strict=True)
        )
    )
    ev = tmp_path / "eval"
    res = runner.invoke(
        app,
        [
            "eval",
            "select",
            "--reward",
            str(out),
            "--data",
            str(pool),
            "--out",
            str(ev),
            "--n-boot",
            "50",
        ],
    )
    assert res.exit_code == 0, res.output
    got = json.loads((ev / "select.json").read_text())
    # majority always picks the wrong answer "2"; the ORM learnt 'good' from 'bad'
    assert got["baseline"]["majority"]["value"] == 0.0
    assert got["baseline"]["pass_at_n"]["value"] == 1.0
    assert got["metrics"]["best_of_n"]["value"] > 0.9
    assert (ev / "select.md").is_file()


def test_near_constant_features_are_not_blown_up() -> None:
    """A feature constant up to rounding (MiniLM has such dimensions, std ~1e-33) is divided by
    1, not by its std: otherwise rounding noise becomes O(1) input and, in fine-tuning, the
    gradient infinite (clipping then zeroes every update)."""
    x = np.zeros((4, 3), dtype=np.float32)
    x[:, 0] = [0.0, 1.0, 2.0, 3.0]
    x[:, 1] = np.array([0, 1e-12, 0, -1e-12], dtype=np.float32)  # std 7e-13, not 0
    assert 0 < x[:, 1].std() < 1e-9
    head = FeatureHead(3, hidden=0, dropout=0.0)
    head.set_standardisation(x)
    assert head.sd.tolist()[1:] == [1.0, 1.0]
    assert head.sd[0].item() == pytest.approx(np.std([0.0, 1.0, 2.0, 3.0]))
    feats = torch.tensor(x, requires_grad=True)
    head(feats).sum().backward()
    assert feats.grad is not None and torch.isfinite(feats.grad).all()
