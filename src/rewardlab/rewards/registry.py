"""One explicit registry of rewards by name, imported lazily, with "did you mean" on typos.

A reward on the command line is a registry name or a checkpoint directory (a learned reward
saved by ``rewardlab train``; its ``rewardlab.json`` names the scoring recipe).
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Any

REWARDS: dict[str, str] = {
    "exact": "rewardlab.rewards.exact:ArithExactReward",
    "math-verify": "rewardlab.rewards.math_answer:MathVerifyReward",
    "logprob": "rewardlab.rewards.logprob:MeanLogprobReward",
    "orm": "rewardlab.rewards.learned:load_default_orm",
    "prm": "rewardlab.rewards.learned:load_default_prm",
    "implicit-prm": "rewardlab.rewards.learned:load_default_implicit_prm",
    "code": "rewardlab.rewards.code:CodeReward",
    "code-steps": "rewardlab.rewards.code_steps:CodeStepReward",
}


def register(name: str, target: str) -> None:
    """Add a reward ``"module:Class"`` under ``name``; refuses to shadow an existing name."""
    if name in REWARDS and REWARDS[name] != target:
        raise ValueError(f"reward name {name!r} is already registered to {REWARDS[name]}")
    REWARDS[name] = target


def _import(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def load_reward(spec: str, **kwargs: Any) -> Any:
    """A reward by registry name or checkpoint directory."""
    if spec in REWARDS:
        return _import(REWARDS[spec])(**kwargs)
    path = Path(spec)
    if path.is_dir() and (path / "rewardlab.json").exists():
        return _import("rewardlab.rewards.learned:load_learned_reward")(path, **kwargs)
    hint = difflib.get_close_matches(spec, list(REWARDS), n=1)
    did_you_mean = f"; did you mean {hint[0]!r}?" if hint else ""
    raise ValueError(
        f"unknown reward {spec!r}: not a registered name {sorted(REWARDS)} nor a checkpoint "
        f"directory with rewardlab.json{did_you_mean}"
    )
