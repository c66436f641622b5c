"""A rewardlab reward for OpenRLHF: a ``reward_func`` file, or the URL of ``rewardlab serve``.

OpenRLHF's ``--reward.remote_url`` takes either an HTTP endpoint or a ``.py`` file defining
``reward_func(queries, prompts, labels, **kwargs)`` that returns
``{"rewards": tensor, "scores": tensor, "extra_logs": {...}}``; ``queries`` are prompt +
response decoded with special tokens kept (see :func:`~rewardlab.integrations.common.split_query`).
:func:`write_reward_func_file` writes such a file for a reward spec; :func:`remote_url` gives
the URL of a running ``rewardlab serve`` (``/get_reward``, the same protocol over HTTP).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardlab.integrations.common import TimedScorer, make_pair, parse_label, split_query
from rewardlab.types import Score


def score_queries(
    scorer: TimedScorer,
    queries: Sequence[str],
    prompts: Sequence[str] | None,
    labels: Sequence[Any] | None,
) -> tuple[list[Score], list[str | None]]:
    """Scores of OpenRLHF queries, and per query a note on how the prompt was split off."""
    n = len(queries)
    for name, xs in (("prompts", prompts), ("labels", labels)):
        if xs is not None and len(xs) != n:
            raise ValueError(f"{name} has {len(xs)} entries for {n} queries")
    problems, candidates, notes = [], [], []
    for i, q in enumerate(queries):
        prompt, response, note = split_query(q, prompts[i] if prompts is not None else None)
        answer, meta = parse_label(labels[i] if labels is not None else None)
        p, c = make_pair(prompt, response, answer, meta, pid=f"q{i}")
        problems.append(p)
        candidates.append(c)
        notes.append(note)
    return scorer.score(problems, candidates), notes


def openrlhf_result(scores: Sequence[Score], ungraded_value: float = 0.0) -> dict[str, Any]:
    """``{"rewards", "scores", "extra_logs"}`` as lists; ungraded samples get ``ungraded_value``
    and ``extra_logs["ungraded"]`` = 1 for them."""
    rewards = [ungraded_value if s.value is None else float(s.value) for s in scores]
    ungraded = [1.0 if s.value is None else 0.0 for s in scores]
    return {"rewards": rewards, "scores": list(rewards), "extra_logs": {"ungraded": ungraded}}


_TEMPLATE = '''"""OpenRLHF reward_func for the rewardlab reward {spec!r} (written by rewardlab).

Use: --reward.remote_url {path}
"""

import torch

from rewardlab.integrations.common import load_scorer
from rewardlab.integrations.openrlhf import openrlhf_result, score_queries

_SCORER = load_scorer({spec!r}, timeout_s={timeout_s!r})


def reward_func(queries, prompts, labels, **kwargs):
    scores, _ = score_queries(_SCORER, list(queries), list(prompts), list(labels))
    out = openrlhf_result(scores, ungraded_value={ungraded_value!r})
    return {{
        "rewards": torch.tensor(out["rewards"], dtype=torch.float),
        "scores": torch.tensor(out["scores"], dtype=torch.float),
        "extra_logs": {{k: torch.tensor(v) for k, v in out["extra_logs"].items()}},
    }}
'''


def write_reward_func_file(
    path: str | Path, spec: str, timeout_s: float = 10.0, ungraded_value: float = 0.0
) -> Path:
    """Write an OpenRLHF ``reward_func`` file for ``spec``; returns its path."""
    from rewardlab.rewards.registry import check_reward

    check_reward(spec)  # fail now, naming the problem, not inside the trainer
    out = Path(path)
    out.write_text(
        _TEMPLATE.format(spec=spec, path=out, timeout_s=timeout_s, ungraded_value=ungraded_value)
    )
    return out


def remote_url(host: str = "127.0.0.1", port: int = 5000) -> str:
    """The ``--reward.remote_url`` of a ``rewardlab serve`` at ``host:port``."""
    return f"http://{host}:{port}/get_reward"
