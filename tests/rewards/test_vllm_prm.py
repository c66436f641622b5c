"""``vllm-prm``: Qwen2.5-Math-PRM's recipe read from vLLM-shaped pooling outputs, without vLLM.

vLLM is not installed here (it needs a GPU). Its pooling engine is stood in for by
:class:`PoolingEngine`: the tiny Qwen PRM look-alike's real backbone + head on CPU, returning
``PoolingRequestOutput``-shaped objects the way vLLM's poolers do (``STEP``: softmax rows at
every ``<extra_0>``; ``ALL``: one row per token, logits or probabilities). The adapter's scores
must equal the transformers preset's (``qwen-prm``) on the same weights, step for step. The
engine itself runs in ``scripts/device/vllm_e2e.py`` on a GPU machine.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lookalikes
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from rewardlab.rewards.base import StepReward, check_reward
from rewardlab.rewards.presets import vllm_prm as vp
from rewardlab.rewards.registry import check_reward as check_spec
from rewardlab.rewards.registry import load_reward
from rewardlab.rewards.step_format import Encoded
from rewardlab.types import Candidate, Problem

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"
STEPS = [
    ("Tom starts with 3 apples.", "He buys 4 more, so 3 + 4 = 7.", "The answer is 7."),
    ("3 + 4 = 8.", "The answer is 8."),
    ("I write <extra_0> here.", "The answer is 7."),  # a step holding the separator's text
]


@dataclass
class PoolingOutput:  # vllm.outputs.PoolingOutput
    data: torch.Tensor


@dataclass
class PoolingRequestOutput:  # vllm.outputs.PoolingRequestOutput (the fields read)
    request_id: str
    outputs: PoolingOutput
    prompt_token_ids: list[int]
    finished: bool = True


class PoolingEngine:
    """A CPU stand-in for ``vllm.LLM(..., runner="pooling")`` on the look-alike PRM: the real
    weights, pooled as vLLM's ``STEP`` (softmax at every ``step_tag_id``) or ``ALL`` pooler."""

    def __init__(self, model: Any, step_tag_id: int, pooling: str, softmax: bool) -> None:
        self.model, self.tag, self.pooling, self.softmax = model, step_tag_id, pooling, softmax
        self.calls: list[dict[str, Any]] = []

    def encode(self, prompts: list[dict[str, list[int]]], pooling_task: str | None = None) -> Any:
        self.calls.append({"n": len(prompts), "pooling_task": pooling_task})
        outs = []
        for i, p in enumerate(prompts):
            ids = torch.tensor([p["prompt_token_ids"]])
            with torch.inference_mode():
                rows = self.model(ids)[0]
            if self.softmax:
                rows = rows.softmax(-1)
            if self.pooling == "STEP":
                rows = rows[ids[0] == self.tag]
            outs.append(PoolingRequestOutput(str(i), PoolingOutput(rows), p["prompt_token_ids"]))
        return outs


@pytest.fixture(scope="module")
def qwen(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    return lookalikes.qwen_prm(tmp_path_factory.mktemp("qwen"))


def _pairs() -> tuple[list[Problem], list[Candidate]]:
    problems = [Problem("p", QUESTION, "7", "t") for _ in STEPS]
    cands = [Candidate("p", "\n".join(s), s, None, index=i) for i, s in enumerate(STEPS)]
    return problems, cands


@pytest.mark.parametrize(("pooling", "softmax"), [("STEP", True), ("ALL", False), ("ALL", True)])
def test_scores_equal_the_transformers_recipe(qwen: Any, pooling: str, softmax: bool) -> None:
    path, model, tok = qwen
    sep = tok.convert_tokens_to_ids("<extra_0>")
    engine = PoolingEngine(model, sep, pooling, softmax)
    reward = vp.load_vllm_prm(path, llm=engine, aggregate="min", batch_size=8)
    reference = load_reward(f"qwen-prm:path={path},aggregate=min", device="cpu")
    problems, cands = _pairs()
    got, want = reward.score_steps(problems, cands), reference.score_steps(problems, cands)
    for g, w, c in zip(got, want, cands, strict=True):
        assert len(g.steps) == len(c.steps)  # the third: 2 steps, though 3 <extra_0> tokens
        np.testing.assert_allclose(g.steps, w.steps, rtol=1e-5, atol=1e-6)
        assert g.value == pytest.approx(w.value, rel=1e-5)
    assert engine.calls == [{"n": 3, "pooling_task": "encode"}]  # one batch, one engine call
    assert isinstance(reward, StepReward)
    check_reward(reward, problems, cands)


def _encoded(ids: list[int], boundaries: list[int]) -> Encoded:
    return Encoded(tuple(ids), tuple(boundaries), 1)


def test_step_rows_skip_separators_that_are_not_boundaries() -> None:
    # ids: 9 = separator; the one at position 2 is inside a step's text, not a boundary
    enc = _encoded([5, 6, 9, 7, 9, 8, 9], [4, 6])
    step = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])  # rows for positions 2, 4, 6
    assert vp.step_probs(step, enc, 9) == pytest.approx([0.7, 0.4])
    every = np.zeros((7, 2))
    every[4], every[6] = [0.0, np.log(3.0)], [np.log(4.0), 0.0]  # logits: p1 = 3/4, 1/5
    assert vp.step_probs(every, enc, 9) == pytest.approx([0.75, 0.2])
    one = _encoded([5, 9], [1])
    assert vp.step_probs(np.array([0.25, 0.75]), one, 9) == pytest.approx([0.75])  # flat row


def test_shapes_that_fit_no_pooler_are_named() -> None:
    enc = _encoded([5, 6, 9, 7, 9], [2, 4])
    with pytest.raises(vp.PoolingOutputError, match="3 rows for 5 tokens with 2 separators"):
        vp.step_probs(np.zeros((3, 2)), enc, 9)
    with pytest.raises(vp.PoolingOutputError, match="boundary 3 is token 7"):
        vp.step_probs(np.zeros((5, 2)), _encoded([5, 6, 9, 7, 9], [3]), 9)
    with pytest.raises(vp.PoolingOutputError, match="classes >= 2"):
        vp.as_probabilities(np.zeros((2, 1)))


@given(st.lists(st.lists(st.floats(-30, 30), min_size=2, max_size=5), min_size=1, max_size=6))
def test_as_probabilities_gives_distributions(raw: list[list[float]]) -> None:
    width = len(raw[0])
    rows = np.array([r[:width] + [0.0] * (width - len(r)) for r in raw])
    probs = vp.as_probabilities(rows)
    assert np.all(probs >= 0) and np.allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(vp.as_probabilities(probs), probs)  # distributions pass as they are


def test_engine_and_encode_arguments_per_vllm_version() -> None:
    assert vp.pooling_engine_kwargs({"model", "runner", "task"}) == {"runner": "pooling"}
    assert vp.pooling_engine_kwargs({"model", "task"}) == {"task": "reward"}
    assert vp.pooling_engine_kwargs({"model"}) == {}
    assert vp.pooling_task_of({"prompts", "pooling_task"}, True) == {
        "pooling_task": "token_classify"
    }
    assert vp.pooling_task_of({"prompts", "pooling_task"}, False) == {"pooling_task": "encode"}
    assert vp.pooling_task_of({"prompts"}, True) == {}


HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_spec_is_registered_and_checked(qwen: Any, tmp_path: Path) -> None:
    path, _, _ = qwen
    with pytest.raises(ValueError, match="needs path=DIR"):
        check_spec("vllm-prm")
    with pytest.raises(ValueError, match="not a local model directory"):
        check_spec(f"vllm-prm:path={tmp_path}")
    if HAS_VLLM:
        assert "vllm-prm" in check_spec(f"vllm-prm:path={path}")
    else:  # found before a job starts, not after it sampled everything
        with pytest.raises(ValueError, match=r"not installed: pip install 'rewardlab\[vllm\]'"):
            check_spec(f"vllm-prm:path={path}")


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed")
def test_without_vllm_the_error_names_the_extra(qwen: Any) -> None:
    path, _, _ = qwen
    with pytest.raises(ImportError, match=r"rewardlab\[vllm\].*qwen-prm:path=DIR"):
        load_reward(f"vllm-prm:path={path}", device="cpu")
