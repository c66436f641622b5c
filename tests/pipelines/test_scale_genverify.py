"""A generative verifier in ``rewardlab scale``: a process reward charged its own tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rewardlab.pipelines.scale_job import ScaleConfig, run_scale, verification_tokens
from rewardlab.types import Score


def test_verification_tokens_come_from_score_info() -> None:
    default = np.array([[5, 5]])
    info = {"verify_prompt_tokens": 10, "verify_generated_tokens": 3, "verify_scored_tokens": 2}
    scores = [[Score(1.0, (), info), Score.ungraded("x", verify_prompt_tokens=4)]]
    assert verification_tokens(scores, default).tolist() == [[15, 4]]
    assert verification_tokens([[Score(1.0), Score(0.0)]], default) is default


def test_scale_runs_recompute_as_a_process_reward_with_its_own_flops(tmp_path: Path) -> None:
    cfg = ScaleConfig.quick(
        problems=4, n_max=4, difficulty=(2, 3), rewards=("recompute",), n_boot=50, n_resamples=20
    )
    result = run_scale(cfg, tmp_path / "run")
    names = result["summary"]["strategies"]
    assert {f"bon[recompute:{a}]" for a in ("last", "min", "prod", "mean")} <= set(names)
    rows = [r for r in result["rows"] if r["difficulty"] == "all" and r["n"] == 4]
    maj = next(r for r in rows if r["strategy"] == "maj")
    bon = next(r for r in rows if r["strategy"] == "bon[recompute:min]")
    # the verifier's cost: 2 * params * its own tokens (every probe it read and wrote)
    from rewardlab.store import SampleStore

    store = SampleStore(tmp_path / "run" / "pool.sqlite")
    labels = [lab for lab in store.rewards() if lab.startswith("recompute")]
    assert len(labels) == 1 and labels[0].endswith("#steps")
    pool = result["pool"]
    keys = [(k, c.index) for k, row in zip(_keys(result, cfg), pool, strict=True) for c in row]
    stored = store.scores(labels[0], keys)
    tokens = np.array([sum(s.info[k] for k in s.info if k.startswith("verify_")) for s in stored])
    assert tokens.min() > 0
    params = result["summary"]["rewards"]["recompute"]["params"]
    extra = 2.0 * params * tokens.reshape(len(pool), -1).mean(axis=1).mean() * 4
    assert bon["flops"] - maj["flops"] == pytest.approx(extra, rel=1e-9)


def _keys(result: dict[str, Any], cfg: ScaleConfig) -> list[str]:
    from rewardlab.store import request_key
    from rewardlab.types import Sampling

    sampling = Sampling(cfg.temperature, 1.0, cfg.max_new_tokens, cfg.seed)
    return [request_key(p, result["summary"]["policy"], sampling) for p in result["problems"]]
