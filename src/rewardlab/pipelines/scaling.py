"""Accuracy against compute for every offline strategy, from one scored pool.

Input: problems, their pools of N candidates, the scores each reward gave them. Output: one row
per (strategy, reward, difficulty bin, budget k) with the expected accuracy, its 95% bootstrap
CI over problems, and the compute spent at that budget (tokens and FLOPs, policy + verifier).

Compute per problem at budget k is k times the mean per-candidate cost over the problem's pool:
policy FLOPs ``2 * policy_params * (prompt + generated tokens)`` plus, for strategies that use a
learned verifier, ``2 * verifier_params * scored tokens`` (the verifier reads prompt and
solution). Rules (the exact checker, Math-Verify) and the policy's own logprobs cost no model
FLOPs. The point's x value is the mean over the problems of the bin (Snell et al. 2024 count
inference FLOPs the same way, 2·N·D).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rewardlab.evaluate.estimators import bootstrap_ci
from rewardlab.search.offline import PoolArrays, Strategy
from rewardlab.tasks.base import Task
from rewardlab.types import Candidate, Problem, Score

CSV_COLUMNS = (
    "strategy",
    "reward",
    "difficulty",
    "n",
    "tokens",
    "flops",
    "accuracy",
    "ci_low",
    "ci_high",
)


@dataclass(frozen=True)
class VerifierCost:
    """A reward's cost: its parameter count and the tokens it reads per candidate [P, N]."""

    params: int
    scored_tokens: np.ndarray


def answer_ids(task: Task, pool: Sequence[Sequence[Candidate]]) -> np.ndarray:
    """Group each problem's answers into equivalence classes with ``task.same_answer``.

    Returns int [P, N]; -1 for candidates without an answer. Classes are numbered in order of
    first appearance; each answer is compared with one representative per class.
    """
    out = np.full((len(pool), max((len(r) for r in pool), default=0)), -1, dtype=np.int64)
    for i, row in enumerate(pool):
        reps: list[str] = []
        for j, c in enumerate(row):
            if c.answer is None:
                continue
            for cls, rep in enumerate(reps):
                if c.answer == rep or task.same_answer(c.answer, rep):
                    out[i, j] = cls
                    break
            else:
                reps.append(c.answer)
                out[i, j] = len(reps) - 1
    return out


def token_arrays(pool: Sequence[Sequence[Candidate]]) -> tuple[np.ndarray, np.ndarray]:
    """(prompt tokens, generated tokens), each int [P, N]."""
    prompt = np.array([[c.prompt_tokens for c in row] for row in pool], dtype=np.int64)
    gen = np.array([[c.generated_tokens for c in row] for row in pool], dtype=np.int64)
    return prompt, gen


def build_arrays(
    problems: Sequence[Problem],
    pool: Sequence[Sequence[Candidate]],
    task: Task,
    outcome_scores: Mapping[str, Sequence[Sequence[Score]]] | None = None,
    step_scores: Mapping[str, Sequence[Sequence[Score]]] | None = None,
) -> PoolArrays:
    """The pool as arrays: correctness from the task, answer classes, reward scores."""
    if len(problems) != len(pool):
        raise ValueError(f"{len(problems)} problems but {len(pool)} pool rows")
    sizes = {len(r) for r in pool}
    if len(sizes) > 1:
        raise ValueError(f"every problem needs the same number of candidates, got sizes {sizes}")
    correct = np.array(
        [
            [task.is_correct(p, c.answer) for c in row]
            for p, row in zip(problems, pool, strict=True)
        ],
        dtype=bool,
    )
    scores = {
        name: np.array(
            [[np.nan if s.value is None else float(s.value) for s in row] for row in rows],
            dtype=float,
        )
        for name, rows in (outcome_scores or {}).items()
    }
    steps = {
        name: [[np.asarray(s.steps, dtype=float) for s in row] for row in rows]
        for name, rows in (step_scores or {}).items()
    }
    return PoolArrays(
        correct=correct, answer_ids=answer_ids(task, pool), scores=scores, step_scores=steps
    )


def difficulty_bins(problems: Sequence[Problem]) -> dict[str, np.ndarray]:
    """``{"all": all rows, "<d>": rows of difficulty d ...}`` (only ``all`` without labels)."""
    bins: dict[str, list[int]] = {}
    for i, p in enumerate(problems):
        d = p.meta.get("difficulty")
        if d is not None:
            bins.setdefault(str(d), []).append(i)
    out = {"all": np.arange(len(problems))}
    if len(bins) > 1:
        for name in sorted(bins, key=lambda b: (len(b), b)):
            out[name] = np.array(bins[name])
    return out


def strategy_reward(strategy: Strategy) -> str:
    """The reward a strategy reads (``""`` for majority vote and the oracle)."""
    reward = getattr(strategy, "reward", "")
    agg = getattr(strategy, "aggregate", None)
    return f"{reward}:{agg}" if reward and agg else str(reward or "")


def scaling_rows(
    problems: Sequence[Problem],
    arrays: PoolArrays,
    strategies: Sequence[Strategy],
    ks: Sequence[int],
    *,
    prompt_tokens: np.ndarray,
    generated_tokens: np.ndarray,
    policy_params: int,
    verifier_costs: Mapping[str, VerifierCost] | None = None,
    n_resamples: int = 200,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per (strategy, difficulty bin, k) with accuracy, CI and compute (see module doc)."""
    costs = verifier_costs or {}
    bins = difficulty_bins(problems)
    policy_tokens = (prompt_tokens + generated_tokens).astype(float)
    rows: list[dict[str, Any]] = []
    for strategy in strategies:
        curve = strategy.curve(arrays, ks, seed, n_resamples)  # [P, K]
        base_reward = str(getattr(strategy, "reward", "") or "")
        vc = costs.get(base_reward)
        v_tokens = vc.scored_tokens.astype(float) if vc else np.zeros_like(policy_tokens)
        v_params = vc.params if vc else 0
        tok_per_cand = (policy_tokens + v_tokens).mean(axis=1)  # [P]
        flops_per_cand = (2.0 * policy_params * policy_tokens + 2.0 * v_params * v_tokens).mean(
            axis=1
        )
        for b_name, idx in bins.items():
            mean, low, high = bootstrap_ci(curve[idx], n_boot=n_boot, rng=seed)
            for j, k in enumerate(ks):
                rows.append(
                    {
                        "strategy": strategy.name,
                        "reward": strategy_reward(strategy) or "-",
                        "difficulty": b_name,
                        "n": int(k),
                        "tokens": float(k * tok_per_cand[idx].mean()),
                        "flops": float(k * flops_per_cand[idx].mean()),
                        "accuracy": float(mean[j]),
                        "ci_low": float(low[j]),
                        "ci_high": float(high[j]),
                    }
                )
    return rows
