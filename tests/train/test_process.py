"""Reward-model objectives by hand, data loading, and a tiny PRM that learns."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from rewardlab.tasks import arith  # noqa: E402
from rewardlab.train.process import (  # noqa: E402
    RMTrainConfig,
    implicit_ce_loss,
    load_outcome,
    load_stepwise,
    outcome_bce_loss,
    step_ce_loss,
    train_prm,
    value_mse_loss,
)
from tinymodels import TinyLlamaSpec, build_tiny_llama  # noqa: E402

LN2, LN3 = math.log(2), math.log(3)


def t(*xs: Any) -> Any:
    return torch.tensor(xs, dtype=torch.float32)


# --------------------------------------------------------------- losses on a 2-example batch


def test_orm_bce_by_hand() -> None:
    # sigmoid(0) = 1/2 with y = 1: -log 1/2 = ln 2; sigmoid(ln 3) = 3/4 with y = 0: -log 1/4
    loss = outcome_bce_loss(t(0.0, LN3), t(1.0, 0.0))
    assert float(loss) == pytest.approx((LN2 + 2 * LN2) / 2)


def test_prm_cross_entropy_hard_and_soft_by_hand() -> None:
    logits = torch.tensor([[0.0, 0.0], [0.0, LN3]])  # (bad, good): p_good = 1/2, then 3/4
    hard = step_ce_loss(logits, t(1.0, 0.0))  # -log 1/2, -log 1/4
    assert float(hard) == pytest.approx((LN2 + 2 * LN2) / 2)
    soft = step_ce_loss(logits, t(1.0, 0.25))  # second: -(1/4 log 3/4 + 3/4 log 1/4)
    second = -(0.25 * math.log(0.75) + 0.75 * math.log(0.25))
    assert float(soft) == pytest.approx((LN2 + second) / 2)
    # soft CE over two classes is BCE with float targets on logit_good - logit_bad
    bce = torch.nn.functional.binary_cross_entropy_with_logits(t(0.0, LN3), t(1.0, 0.25))
    assert float(soft) == pytest.approx(float(bce))


def test_ovm_mse_by_hand() -> None:
    assert float(value_mse_loss(t(0.2, 0.9), t(0.0, 1.0))) == pytest.approx((0.04 + 0.01) / 2)


def test_implicit_ce_by_hand() -> None:
    # beta * sums = (0, ln 3): the ORM case above, r as the logit
    loss = implicit_ce_loss(t(0.0, 20 * LN3), t(1.0, 0.0), beta=0.05)
    assert float(loss) == pytest.approx(1.5 * LN2)


# ------------------------------------------------------------------------------------- data


def test_loaders_read_trl_and_outcome_rows(tmp_path: Path) -> None:
    steps = tmp_path / "steps.jsonl"
    steps.write_text(
        json.dumps({"prompt": "q", "completions": ["a", "b"], "labels": [True, 0.5]}) + "\n"
    )
    (ex,) = load_stepwise(steps)
    assert ex.steps == ("a", "b") and ex.step_labels == (1.0, 0.5)
    out = tmp_path / "out.jsonl"
    out.write_text(
        json.dumps({"prompt": "q", "text": "1 + 1 = 2\nThe answer is 2.", "label": True})
        + "\n"
        + json.dumps({"prompt": "q", "completions": ["x"], "label": 0})
        + "\n"
    )
    a, b = load_outcome(out)
    assert a.steps == ("1 + 1 = 2", "The answer is 2.") and a.label == 1.0 and b.label == 0.0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "q", "completions": ["a"], "labels": [1, 0]}) + "\n")
    with pytest.raises(ValueError, match="1 steps but 2 labels"):
        load_stepwise(bad)
    bad.write_text(json.dumps({"prompt": "q", "completions": ["a"], "label": 2}) + "\n")
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        load_outcome(bad)


# ------------------------------------------------------------------------- a PRM that learns


def write_stepwise(path: Path, n: int = 48, seed: int = 0) -> Path:
    """Gold steps are good; filler steps (from some step on) are bad."""
    rows = []
    for i, p in enumerate(arith.generate(n, seed=seed, n_ops=(1, 3))):
        steps = arith.gold_steps(p)
        labels = [True] * len(steps)
        if i % 2:
            k = i % len(steps)
            steps[k:] = ["so many stamps here"] * (len(steps) - k)
            labels[k:] = [False] * (len(steps) - k)
        rows.append({"prompt": p.question, "completions": steps, "labels": labels})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny"), TinyLlamaSpec(train_steps=0))


@pytest.mark.parametrize("head", ["classifier", "tag"])
def test_tiny_prm_lowers_its_loss(tiny: Path, tmp_path: Path, head: str) -> None:
    data = write_stepwise(tmp_path / "steps.jsonl")
    cfg = RMTrainConfig(
        data=str(data),
        backbone=str(tiny),
        out=str(tmp_path / "prm"),
        steps=40,
        lr=1e-2,
        batch_size=8,
        warmup_steps=2,
        log_every=10,
        cpu=True,
        head=head,  # type: ignore[arg-type]
    )
    result = train_prm(cfg)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.6 * losses[0], losses
    assert result.manifest.recipe == f"prm-{head}"
    assert result.manifest.training["labels"] == "hard"
    assert (tmp_path / "prm" / "model.safetensors").is_file()
    log = (tmp_path / "prm" / "train_log.jsonl").read_text().splitlines()
    assert len(log) == 1 + 4  # the config, then one record per 10 steps
