"""Build every controlled-truth preference file from the testbed in one call.

From one :class:`PrefSetSpec`, :func:`build_sets` makes (gold rule: :mod:`.preferences`):

============== ============================================================= ===============
name           rows                                                          format
============== ============================================================= ===============
train_pairs    gold pairs of train problems, with noise / length bias        TRL pairwise
train_ratings  one row per train response, rating = 3·correct + brevity      rating
test_pairs     gold pairs of held-out problems (clean), ``subset`` = kind    RewardBench v1
test_bo4       shortest correct vs 3 strictly worse responses                RewardBench v2
test_1v9       gold solution vs 9 wrong ones                                 RewardMATH
test_pool      every response of a held-out problem, ``gold`` = rating / 4   overopt pool
============== ============================================================= ===============

>>> sets = build_sets(PrefSetSpec(problems=8, pairs_per_problem=2))
>>> sorted(sets)
['test_1v9', 'test_bo4', 'test_pairs', 'test_pool', 'train_pairs', 'train_ratings']
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.label.preferences import (
    Response,
    corrupted_pool,
    gold_pairs,
    gold_preference,
    inject,
    ratings,
    split_problems,
)
from rewardlab.tasks import arith
from rewardlab.types import Problem


@dataclass(frozen=True)
class PrefSetSpec:
    """Problems, pools, pairs, injected defects and the held-out split."""

    problems: int = 200
    n_ops: tuple[int, int] = (1, 4)
    seed: int = 0
    held_out: float = 0.25
    pairs_per_problem: int = 8
    n_corrupt: int = 9
    n_verbose: int = 2
    noise: float = 0.0
    length_bias: float = 0.0


def _rating_rows(
    problem: Problem, pool: Sequence[Response], rng: random.Random, noise: float
) -> list[dict[str, Any]]:
    rows = []
    for r, rating in zip(pool, ratings(pool), strict=True):
        flipped = rng.random() < noise
        value = rating + (3.0 * (1 - 2 * r.correct) if flipped else 0.0)
        rows.append(
            {
                "prompt": problem.question,
                "response": r.text,
                "rating": value,
                "correct": r.correct,
                "problem_id": problem.id,
                "flipped": flipped,
            }
        )
    return rows


def _bo4(problem: Problem, pool: Sequence[Response], rng: random.Random) -> dict[str, Any] | None:
    best = [r for r in pool if all(gold_preference(r, o) >= 0 for o in pool)]
    if len(best) != 1:
        return None
    worse = [r for r in pool if gold_preference(best[0], r) > 0]
    if len(worse) < 3:
        return None
    rejected = rng.sample(worse, 3)
    return {
        "prompt": problem.question,
        "chosen": [best[0].text],
        "rejected": [r.text for r in rejected],
        "subset": "arith",
        "problem_id": problem.id,
        "num_correct": 1,
        "total_completions": 4,
    }


def _one_vs_nine(
    problem: Problem, pool: Sequence[Response], rng: random.Random
) -> dict[str, Any] | None:
    gold = [r for r in pool if r.source == "gold"]
    wrong = [r for r in pool if not r.correct]
    if not gold or len(wrong) < 9:
        return None
    return {
        "prompt": problem.question,
        "chosen": gold[0].text,
        "rejected": [r.text for r in rng.sample(wrong, 9)],
        "problem_id": problem.id,
    }


def build_sets(
    spec: PrefSetSpec, pools: dict[str, list[Response]] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Every set of the module table. ``pools`` (problem id -> responses, e.g. from
    :func:`~.preferences.policy_pools`) replaces the corrupted-gold pools where given."""
    problems = arith.generate(spec.problems, seed=spec.seed, n_ops=spec.n_ops)
    train, test = split_problems(problems, spec.held_out, spec.seed)
    rng = random.Random(spec.seed + 1)

    def pool_of(p: Problem) -> list[Response]:
        if pools is not None and p.id in pools:
            return pools[p.id]
        return corrupted_pool(p, rng, spec.n_corrupt, spec.n_verbose)

    sets: dict[str, list[dict[str, Any]]] = {
        k: []
        for k in ("train_pairs", "train_ratings", "test_pairs", "test_bo4", "test_1v9", "test_pool")
    }
    for p in train:
        pool = pool_of(p)
        pairs = gold_pairs(p, pool, rng, spec.pairs_per_problem)
        sets["train_pairs"] += inject(pairs, rng, spec.noise, spec.length_bias)
        sets["train_ratings"] += _rating_rows(p, pool, rng, spec.noise)
    for p in test:
        pool = pool_of(p)
        sets["test_pairs"] += gold_pairs(p, pool, rng, spec.pairs_per_problem)
        for row in (_bo4(p, pool, rng), _one_vs_nine(p, pool, rng)):
            if row is not None:
                sets["test_bo4" if "num_correct" in row else "test_1v9"].append(row)
        sets["test_pool"].append(
            {
                "prompt": p.question,
                "problem_id": p.id,
                "responses": [r.text for r in pool],
                "gold": [g / 4.0 for g in ratings(pool)],
                "correct": [r.correct for r in pool],
            }
        )
    return sets


def write_sets(sets: dict[str, list[dict[str, Any]]], out_dir: str | Path) -> dict[str, Path]:
    """Each set as ``<out_dir>/<name>.jsonl``."""
    from rewardlab.train.pref_io import write_jsonl

    return {name: write_jsonl(rows, Path(out_dir) / f"{name}.jsonl") for name, rows in sets.items()}
