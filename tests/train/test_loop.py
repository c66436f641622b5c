"""The shared training loop lowers a simple objective's loss and logs what it did."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from rewardlab.train.loop import LoopConfig, fit, lr_factor  # noqa: E402


def _mse(model: Any, batch: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
    pred = model(batch["x"]).squeeze(-1)
    loss = torch.nn.functional.mse_loss(pred, batch["y"])
    return loss, {"abs_err": float((pred - batch["y"]).abs().mean().detach())}


def test_fit_lowers_the_loss_and_logs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    batches = [{"x": x[i : i + 16], "y": y[i : i + 16]} for i in range(0, 64, 16)]
    model = torch.nn.Linear(3, 1)
    cfg = LoopConfig(steps=150, lr=5e-2, warmup_steps=5, log_every=50, cpu=True)
    hist = fit(model, batches, _mse, cfg, log_path=tmp_path / "log.jsonl")
    assert [h["step"] for h in hist] == [50, 100, 150]
    assert hist[-1]["loss"] < 0.05 * hist[0]["loss"]
    assert "abs_err" in hist[-1]
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["config"]["steps"] == 150 and len(lines) == 4


def test_lr_schedules_by_hand() -> None:
    cfg = LoopConfig(steps=10, warmup_steps=2)
    assert lr_factor(0, cfg) == 0.5 and lr_factor(1, cfg) == 1.0
    assert lr_factor(2, cfg) == pytest.approx(1.0)
    assert lr_factor(6, cfg) == pytest.approx(0.5)  # cosine half-way through the decay
    assert lr_factor(6, LoopConfig(steps=10, warmup_steps=2, schedule="linear")) == 0.5
    with pytest.raises(ValueError, match="unknown schedule"):
        LoopConfig(schedule="step")
    with pytest.raises(ValueError, match="empty"):
        fit(torch.nn.Linear(1, 1), [], _mse, LoopConfig(steps=1, cpu=True))


def test_an_infinite_gradient_is_an_error_not_a_silent_zero_step() -> None:
    """Clipping an infinite norm scales every gradient to zero (or NaN): the step would change
    nothing and training would go on as if it learned (how a near-zero-std feature hid)."""
    x = torch.tensor([[1.0], [2.0]])
    batches = [{"x": x / torch.tensor(1e-38) ** 2, "y": torch.zeros(2)}]  # inf inputs
    model = torch.nn.Linear(1, 1)
    with pytest.raises(FloatingPointError, match="step 1: the gradient norm is"):
        fit(model, batches, _mse, LoopConfig(steps=3, cpu=True))
