"""PRIME's online implicit PRM: it learns from outcome labels while it scores (tiny local model)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from rewardlab.integrations.prime import OnlineImplicitPRM
from rewardlab.rewards.implicit import ImplicitPRM
from rewardlab.tasks import arith


def _prm(tiny_llama_dir: Path) -> ImplicitPRM:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    ref = copy.deepcopy(model).eval()
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    return ImplicitPRM(model=model, ref=ref, tokenizer=tok, beta=0.5)


def test_online_updates_separate_right_from_wrong(tiny_llama_dir: Path) -> None:
    prm = _prm(tiny_llama_dir)
    ref_before = [p.detach().clone() for p in prm.ref.parameters()]
    p = arith.generate(n=1, seed=5, n_ops=(2, 2))[0]
    good = arith.gold_solution(p)
    bad = good.replace(f"The answer is {p.answer}.", f"The answer is {int(p.answer) + 3}.")
    labels_seen: list[bool] = []

    def outcome(kw: dict[str, Any], i: int, text: str) -> bool:
        ok = arith.check_steps(p, text).correct
        labels_seen.append(ok)
        return ok

    fn = OnlineImplicitPRM(prm, outcome, lr=3e-3)
    kwargs = {"prompts": ["P", "P"], "completions": [good, bad], "question": [p.question] * 2}
    first = fn(**kwargs)
    # the model starts equal to its reference: r(y) = 0 for every response
    assert first == [pytest.approx(0.0, abs=1e-5), pytest.approx(0.0, abs=1e-5)]
    for _ in range(12):
        last = fn(**kwargs)
    assert last[0] is not None and last[1] is not None
    assert last[0] > 0 > last[1]  # CE on the outcome pushes r(good) up and r(bad) down
    assert fn.stats.updates == 13 and fn.stats.losses[-1] < fn.stats.losses[0]
    assert labels_seen[:2] == [True, False]
    for a, b in zip(ref_before, prm.ref.parameters(), strict=True):
        assert torch.equal(a, b)  # the reference never moves


def test_frozen_mode_and_bad_column(tiny_llama_dir: Path) -> None:
    prm = _prm(tiny_llama_dir)
    fn = OnlineImplicitPRM(prm, lambda kw, i, t: True, lr=1e-3, update=False)
    before = [p.detach().clone() for p in prm.model.parameters()]
    fn(prompts=["P"], completions=["1 + 1 = 2\nThe answer is 2."], question=["q"])
    assert all(torch.equal(a, b) for a, b in zip(before, prm.model.parameters(), strict=True))
    with pytest.raises(ValueError, match="column 'question': 0 values for 1"):
        fn(prompts=["P"], completions=["x"])
    with pytest.raises(ValueError, match="lr must be > 0"):
        OnlineImplicitPRM(prm, lambda kw, i, t: True, lr=0.0)
