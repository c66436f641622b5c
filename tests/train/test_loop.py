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


def _pair_loss(seen: list[Any]) -> Any:
    def fn(model: Any, batch: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        r = model(batch["input_ids"], batch["attention_mask"])
        seen.append(r.detach().clone())
        b = r.shape[0] // 2
        return -torch.nn.functional.logsigmoid(r[:b] - r[b:]).mean(), {}

    return fn


def test_disable_dropout_trains_the_reward_that_is_scored(tmp_path: Path) -> None:
    """With ``disable_dropout`` the first training forward equals the eval-mode forward bit for
    bit (TRL's RewardTrainer default); without it BERT's dropout makes them differ; the
    dropout probabilities are back after ``fit``."""
    from rewardlab.rewards.preference_rm import build_reward_model, pad_right
    from tinybert import build_tiny_bert

    model, tok = build_reward_model(build_tiny_bert(tmp_path / "bert"), "seqcls", seed=0)
    texts = ["the cat sat on the mat", "a dog ran fast", "yes please", "no the dog is bad"]
    ids, mask = pad_right(tok(texts)["input_ids"], tok.pad_token_id)
    batch = {"input_ids": ids, "attention_mask": mask}
    model.eval()
    with torch.no_grad():
        scored = model(ids, mask)
    before = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert before and max(before) > 0
    for off in (True, False):
        seen: list[Any] = []
        cfg = LoopConfig(steps=1, lr=0.0, warmup_steps=0, cpu=True, disable_dropout=off)
        fit(model, [batch], _pair_loss(seen), cfg)
        assert torch.equal(seen[0], scored) is off
        assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == before


def test_dropout_comes_back_after_an_error() -> None:
    from rewardlab.train.loop import dropout_disabled

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.3))
    with pytest.raises(RuntimeError, match="boom"), dropout_disabled(model) as n:
        assert n == 1 and model[1].p == 0.0
        raise RuntimeError("boom")
    assert model[1].p == 0.3


def test_fused_adamw_steps_like_the_reference_adamw() -> None:
    """``fit``'s (fused on CPU) AdamW lands on the weights torch's default AdamW reaches."""
    from rewardlab.train.loop import make_adamw

    torch.manual_seed(0)
    x = torch.randn(32, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    batches = [{"x": x[i : i + 8], "y": y[i : i + 8]} for i in range(0, 32, 8)]
    ours = torch.nn.Linear(3, 1)
    ref = torch.nn.Linear(3, 1)
    ref.load_state_dict(ours.state_dict())
    start = ours.weight.detach().clone()
    assert make_adamw(list(ours.parameters()), 1e-2, 0.1).defaults["fused"] is True
    cfg = LoopConfig(
        steps=8, lr=1e-2, weight_decay=0.1, warmup_steps=0, schedule="constant", cpu=True
    )
    fit(ours, batches, _mse, cfg)
    opt = torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.1, foreach=False)
    for step in range(8):
        loss, _ = _mse(ref, batches[step % 4])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    for a, b in zip(ours.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    assert (ours.weight - start).abs().min() > 1e-3  # it did train
