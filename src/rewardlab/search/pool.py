"""Sample a pool of N candidates per problem once, through the store, resumably.

The pool is the input of every offline strategy: sample once, score once, then answer every
later question (another strategy, another budget) without a model call.

Determinism and resume: problems are cut into fixed chunks (by their position in the list).
Each chunk is sampled with a seed derived from the base seed and the chunk's content, and
stored in ONE transaction. A run killed at any point therefore loses at most the chunk in
flight; re-running samples exactly the missing chunks with the same seeds, so the resumed pool
equals the pool of an uninterrupted run, with no duplicates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rewardlab.policies.base import Policy
from rewardlab.steps import segment
from rewardlab.store import ClaimStats, Store, claim_each, request_key, work_digest
from rewardlab.tasks.base import Task
from rewardlab.types import Candidate, Completion, Problem, Sampling, Score

Progress = Callable[[int, int], None]


def derive_seed(base: int, *parts: object) -> int:
    """A 31-bit seed derived from a base seed and any parts (stable across runs/platforms)."""
    h = hashlib.sha256(repr((base, *parts)).encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def make_candidate(
    task: Task, problem: Problem, completion: Completion, index: int, policy: str
) -> Candidate:
    """Turn a policy completion into a checked candidate (steps, answer, correctness, truth)."""
    answer = task.extract_answer(completion.text)
    meta: dict[str, Any] = {
        "policy": policy,
        "correct": task.is_correct(problem, answer),
        "finish_reason": completion.finish_reason,
        **task.annotate(problem, completion.text),
    }
    return Candidate(
        problem_id=problem.id,
        text=completion.text,
        steps=segment(completion.text, task.segmentation),
        answer=answer,
        prompt_tokens=completion.prompt_tokens,
        generated_tokens=completion.generated_tokens,
        logprobs=completion.logprobs,
        segmentation=task.segmentation,
        index=index,
        meta=meta,
    )


@dataclass(frozen=True)
class PoolSpec:
    """How a pool is sampled: candidates per problem, sampling params, problems per chunk."""

    n: int
    sampling: Sampling = field(default_factory=Sampling)
    chunk_problems: int = 4

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.chunk_problems < 1:
            raise ValueError(f"chunk_problems must be >= 1, got {self.chunk_problems}")


def sample_pool(
    problems: Sequence[Problem],
    task: Task,
    policy: Policy,
    spec: PoolSpec,
    store: Store,
    progress: Progress | None = None,
) -> list[list[Candidate]]:
    """Return ``spec.n`` candidates for every problem, sampling only what the store lacks.

    Several processes may run this on one store at once: each chunk is sampled under a work
    lease (:func:`rewardlab.store.claim_each`), so each chunk is sampled by one of them only,
    and every process returns the same pool.
    """
    return sample_pool_counted(problems, task, policy, spec, store, progress)[0]


def sample_pool_counted(
    problems: Sequence[Problem],
    task: Task,
    policy: Policy,
    spec: PoolSpec,
    store: Store,
    progress: Progress | None = None,
) -> tuple[list[list[Candidate]], ClaimStats]:
    """:func:`sample_pool`, plus what this process did (chunks sampled here, chunks found
    done by an earlier run or another worker, seconds waited on other workers' leases)."""
    keys = [request_key(p, policy.name, spec.sampling) for p in problems]
    size = spec.chunk_problems
    chunks = [list(range(s, min(s + size, len(problems)))) for s in range(0, len(problems), size)]

    def is_done(chunk: list[int]) -> bool:
        return not any(store.missing(keys[i], spec.n) for i in chunk)

    def run(chunk: list[int]) -> None:
        by_start: dict[int, list[int]] = {}
        for i in chunk:
            missing = store.missing(keys[i], spec.n)
            if missing:
                by_start.setdefault(missing[0], []).append(i)
        batches: dict[str, list[Candidate]] = {}
        for first, members in sorted(by_start.items()):
            seed = derive_seed(spec.sampling.seed, [keys[i] for i in members], first)
            prompts = [policy.format_prompt(problems[i].question) for i in members]
            completions = policy.sample(prompts, spec.n - first, replace(spec.sampling, seed=seed))
            for i, comps in zip(members, completions, strict=True):
                batches[keys[i]] = [
                    make_candidate(task, problems[i], c, first + j, policy.name)
                    for j, c in enumerate(comps)
                ]
        if batches:
            store.put_many(batches)

    done_problems = 0

    def tick(chunk: list[int]) -> None:
        nonlocal done_problems
        done_problems += len(chunk)
        if progress is not None:
            progress(done_problems, len(problems))

    stats = claim_each(
        store,
        chunks,
        lambda chunk: "sample:" + work_digest([keys[i] for i in chunk]),
        is_done,
        run,
        on_done=tick,
    )
    return [store.candidates(k, spec.n) for k in keys], stats


@dataclass(frozen=True)
class PoolSummary:
    """pass@1 (mean correctness) and pass@n (any correct) by difficulty, plus token means."""

    rows: tuple[tuple[str, int, float, float, float], ...]  # difficulty, problems, p@1, p@n, tok

    def as_dicts(self) -> list[dict[str, Any]]:
        return [
            {"difficulty": d, "problems": p, "pass@1": a, "pass@n": b, "mean_generated_tokens": t}
            for d, p, a, b, t in self.rows
        ]


def summarize(problems: Sequence[Problem], pool: Sequence[Sequence[Candidate]]) -> PoolSummary:
    """Summarise a pool by ``problem.meta['difficulty']`` (or ``all``)."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(problems):
        groups.setdefault(str(p.meta.get("difficulty", "all")), []).append(i)
    groups_sorted = sorted(groups.items(), key=lambda kv: (len(kv[0]), kv[0]))
    if len(groups) > 1:
        groups_sorted.append(("all", list(range(len(problems)))))
    rows = []
    for name, idx in groups_sorted:
        correct = [[bool(c.meta.get("correct")) for c in pool[i]] for i in idx]
        tokens = [c.generated_tokens for i in idx for c in pool[i]]
        rows.append(
            (
                name,
                len(idx),
                float(np.mean([np.mean(c) for c in correct])),
                float(np.mean([any(c) for c in correct])),
                float(np.mean(tokens)) if tokens else 0.0,
            )
        )
    return PoolSummary(tuple(rows))


def fingerprint_of(reward: Any) -> str:
    """A reward's weights fingerprint (learned rewards), else ``""``."""
    return str(getattr(reward, "fingerprint", "") or "")


def reward_store_label(reward: Any, step: bool = False) -> str:
    """The store's name for a reward's scores: ``name[@fingerprint][#steps]``."""
    fingerprint = fingerprint_of(reward)
    label = f"{reward.name}@{fingerprint}" if fingerprint else str(reward.name)
    return f"{label}#steps" if step else label


def input_groups(
    flat: Sequence[tuple[int, Candidate]], todo: Sequence[int], text_only: bool
) -> list[list[int]]:
    """``todo`` as groups scored by one call each: a reward whose score depends only on the
    problem and the candidate's text and steps (``text_only``) scores each distinct
    (problem, text, steps) once; otherwise every candidate is its own group."""
    if not text_only:
        return [[j] for j in todo]
    groups: dict[tuple[int, str, tuple[str, ...]], list[int]] = {}
    for j in todo:
        i, c = flat[j]
        groups.setdefault((i, c.text, tuple(c.steps)), []).append(j)
    return list(groups.values())


def score_inputs(
    fn: Callable[[Sequence[Problem], Sequence[Candidate]], list[Score]],
    problems: Sequence[Problem],
    candidates: Sequence[Candidate],
    label: str,
) -> list[Score]:
    """One scoring call, checked: exactly one score per candidate, else a clear error."""
    new = fn(problems, candidates)
    if len(new) != len(candidates):
        raise RuntimeError(f"reward {label} returned {len(new)} scores for {len(candidates)}")
    return list(new)


def score_chunks(
    flat: Sequence[tuple[int, Candidate]], text_only: bool, batch_size: int
) -> list[list[int]]:
    """Positions of ``flat`` cut into the chunks :func:`score_pool` claims one at a time.

    A chunk is a run of whole problems holding about ``batch_size`` model inputs (distinct
    candidates for a ``text_only`` reward), one problem at least. The cut depends only on the
    pool, never on what is already stored, so every worker cuts it the same way.
    """
    chunks: list[list[int]] = []
    current: list[int] = []
    inputs = 0
    by_problem: dict[int, list[int]] = {}
    for j, (i, _) in enumerate(flat):
        by_problem.setdefault(i, []).append(j)
    for members in by_problem.values():
        size = len(input_groups(flat, members, text_only))
        if current and inputs + size > batch_size:
            chunks.append(current)
            current, inputs = [], 0
        current.extend(members)
        inputs += size
    if current:
        chunks.append(current)
    return chunks


def score_work(label: str, keys: Sequence[tuple[str, int]]) -> str:
    """The lease name of scoring the candidates ``keys`` with the reward stored as ``label``
    (every backend uses it, so local and Ray workers on one store never overlap)."""
    return "score:" + work_digest([label, [list(k) for k in keys]])


def score_pool(
    reward: Any,
    problems: Sequence[Problem],
    pool: Sequence[Sequence[Candidate]],
    keys: Sequence[str],
    store: Store,
    *,
    step: bool = False,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> list[list[Score]]:
    """Scores of ``reward`` for every candidate, computing (and storing) only what is missing.

    ``keys[i]`` is the store request key of ``pool[i]``. With ``step=True`` the reward's
    ``score_steps`` is used (a process reward) and stored under ``<name>#steps``. A reward
    with a non-empty ``fingerprint`` (learned rewards: a hash of their weights) is stored
    under ``<name>@<fingerprint>``, so retrained weights never reuse an older model's scores.
    A reward with ``text_only = True`` (its score depends only on the problem and the
    candidate's text and steps: learned RMs, checkers) scores each distinct candidate of a
    problem once and stores that score for every copy: a tiny policy at T = 1 repeats itself,
    and the default pool holds 4,626 distinct solutions in 15,360.

    The pool is scored in chunks of whole problems (:func:`score_chunks`), each under a work
    lease, so processes scoring one store at once never score a chunk twice; the scores
    returned are read back from the store, whoever computed them.
    """
    label = reward_store_label(reward, step)
    flat = [(i, c) for i, row in enumerate(pool) for c in row]
    flat_keys = [(keys[i], c.index) for i, c in flat]
    text_only = bool(getattr(reward, "text_only", False))
    fn = reward.score_steps if step else reward.score
    cached = {j for j, s in enumerate(store.scores(label, flat_keys)) if s is not None}
    done = len(cached)  # progress counts every candidate, cached ones as done

    def missing(chunk: list[int]) -> list[int]:
        got = store.scores(label, [flat_keys[j] for j in chunk])
        return [j for j, s in zip(chunk, got, strict=True) if s is None]

    def run(chunk: list[int]) -> None:
        groups = input_groups(flat, missing(chunk), text_only)
        for start in range(0, len(groups), batch_size):
            batch = groups[start : start + batch_size]
            new = score_inputs(
                fn, [problems[flat[g[0]][0]] for g in batch], [flat[g[0]][1] for g in batch], label
            )
            store.put_scores(
                label, [(*flat_keys[j], s) for g, s in zip(batch, new, strict=True) for j in g]
            )

    def tick(chunk: list[int]) -> None:
        nonlocal done
        fresh = sum(j not in cached for j in chunk)
        done += fresh
        if progress is not None and fresh:
            progress(done, len(flat))

    if progress is not None:
        progress(done, len(flat))
    chunks = score_chunks(flat, text_only, batch_size)
    claim_each(
        store,
        chunks,
        lambda chunk: score_work(label, [flat_keys[j] for j in chunk]),
        lambda chunk: not missing(chunk),
        run,
        on_done=tick,
    )
    stored = store.scores(label, flat_keys)
    out: list[list[Score]] = [[] for _ in pool]
    for (i, _), s in zip(flat, stored, strict=True):
        assert s is not None
        out[i].append(s)
    return out
