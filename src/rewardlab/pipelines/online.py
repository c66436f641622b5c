"""Online strategies on the scaling curves: run each at budgets N = 1, 2, 4 ... and turn the
per-problem results into the same rows (accuracy, 95% CI, tokens, FLOPs) as the offline ones.

Searches of several problems run side by side on threads sharing one
:class:`~rewardlab.search.online.batching.BatchingBackend`, so the model sees batches as
large as best-of-N's. Expansions and scores go through the run's store: an interrupted run
re-run computes nothing twice and gives the same results. Compute per point is the mean over
the bin's problems of what each search's ledger recorded (policy tokens re-read and generated,
verifier tokens read), in FLOPs = 2 · params · tokens per model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rewardlab.evaluate.estimators import bootstrap_ci
from rewardlab.pipelines.scaling import difficulty_bins
from rewardlab.search.online import EngineConfig, SearchResult, StepExpander, parse_online
from rewardlab.search.online.batching import BatchingBackend, run_side_by_side
from rewardlab.store import Store
from rewardlab.types import Problem, Sampling

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class OnlineSettings:
    """How online strategies run inside a scaling study.

    Attributes:
        n_max: the largest budget N (budgets are 1, 2, 4 ... up to it).
        problems: run on the first this-many problems of the study (None: all of them).
        step_tokens: token limit of one step.
        max_steps: steps after which a solution is cut (finished as ``max_steps``).
        workers: searches run side by side (their model calls are batched together).
        temperature / top_p / seed: step sampling.
    """

    n_max: int = 16
    problems: int | None = None
    step_tokens: int = 48
    max_steps: int = 16
    workers: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0

    def budgets(self) -> list[int]:
        out, n = [], 1
        while n <= self.n_max:
            out.append(n)
            n *= 2
        return out


def run_online(
    spec: str,
    problems: Sequence[Problem],
    task: Any,
    policy: Any,
    reward: Any,
    settings: OnlineSettings,
    store: Store | None,
    progress: Progress | None = None,
) -> dict[int, list[SearchResult]]:
    """Results of strategy ``spec`` on every problem at every budget (keyed by N)."""
    strategy, _ = parse_online(spec)
    sampling = Sampling(settings.temperature, settings.top_p, settings.step_tokens, settings.seed)
    config = EngineConfig(sampling=sampling, max_steps=settings.max_steps)
    budgets = settings.budgets()
    jobs = [(p, n) for n in budgets for p in problems]
    threads = max(1, min(settings.workers, len(jobs)))
    backend = BatchingBackend(policy, reward, threads)
    done = [0]

    def work(job: tuple[Problem, int]) -> SearchResult:
        problem, n = job
        engine = StepExpander(policy, task, reward, config, store, backend=backend)
        result: SearchResult = strategy.search(problem, engine, n)
        done[0] += 1
        if progress is not None:
            progress(done[0], len(jobs))
        return result

    results = run_side_by_side(jobs, work, backend, threads)
    by_n: dict[int, list[SearchResult]] = {n: [] for n in budgets}
    for (_, n), r in zip(jobs, results, strict=True):
        by_n[n].append(r)
    return by_n


def online_rows(
    problems: Sequence[Problem],
    by_n: dict[int, list[SearchResult]],
    reward: str,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Rows in the scaling table's columns: per difficulty bin and budget, accuracy with a 95%
    bootstrap CI over problems, and mean tokens and FLOPs per problem."""
    rows: list[dict[str, Any]] = []
    bins = difficulty_bins(problems)
    for n, results in sorted(by_n.items()):
        correct = np.array([[float(r.correct)] for r in results])
        flops = np.array([r.cost.flops for r in results])
        tokens = np.array([r.cost.tokens for r in results], dtype=float)
        for b_name, idx in bins.items():
            mean, low, high = bootstrap_ci(correct[idx], n_boot=n_boot, rng=seed)
            rows.append(
                {
                    "strategy": results[0].strategy,
                    "reward": reward,
                    "difficulty": b_name,
                    "n": int(n),
                    "tokens": float(tokens[idx].mean()),
                    "flops": float(flops[idx].mean()),
                    "accuracy": float(mean[0]),
                    "ci_low": float(low[0]),
                    "ci_high": float(high[0]),
                }
            )
    return rows


def result_records(
    problems: Sequence[Problem], by_n: dict[int, list[SearchResult]]
) -> list[dict[str, Any]]:
    """Per-problem rows for ``online.jsonl`` (strategy, N, correct, answer, cost ...)."""
    out = []
    for n, results in sorted(by_n.items()):
        for p, r in zip(problems, results, strict=True):
            out.append({**r.as_row(), "difficulty": p.meta.get("difficulty"), "n": n})
    return out
