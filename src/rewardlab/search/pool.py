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
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import numpy as np

from rewardlab.policies.base import Policy
from rewardlab.steps import segment
from rewardlab.store import ClaimStats, Store, claim_each, request_key, work_digest
from rewardlab.tasks.base import Task
from rewardlab.types import Candidate, Completion, Problem, Sampling, Score

Progress = Callable[[int, int], None]
T = TypeVar("T")


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
    runner: CallRunner | None = None,
) -> list[list[Candidate]]:
    """Return ``spec.n`` candidates for every problem, sampling only what the store lacks.

    Several processes may run this on one store at once: each chunk is sampled under a work
    lease (:func:`rewardlab.store.claim_each`), so each chunk is sampled by one of them only,
    and every process returns the same pool. ``runner`` (e.g. a Ray actor pool) runs the
    policy calls elsewhere: see :func:`sample_pool_counted`.
    """
    return sample_pool_counted(problems, task, policy, spec, store, progress, runner)[0]


def sample_pool_counted(
    problems: Sequence[Problem],
    task: Task,
    policy: Policy,
    spec: PoolSpec,
    store: Store,
    progress: Progress | None = None,
    runner: CallRunner | None = None,
) -> tuple[list[list[Candidate]], ClaimStats]:
    """:func:`sample_pool`, plus what this process did (chunks sampled here, chunks found
    done by an earlier run or another worker, seconds waited on other workers' leases).

    Without ``runner`` the chunks are sampled here, one at a time. With one, every chunk
    this process can claim is claimed at once, all their calls (:func:`chunk_calls`) go to
    ``runner.run`` together, and each chunk is stored (one transaction) as soon as its last
    call is back; ``policy`` is then only the driver's copy (its name and prompt format).
    The calls, their seeds and batches are the same either way, so is the pool.
    """
    keys = pool_keys(problems, policy.name, spec)
    chunks = pool_chunks(len(problems), spec.chunk_problems)
    done_problems = 0

    def is_done(chunk: list[int]) -> bool:
        return not any(store.missing(keys[i], spec.n) for i in chunk)

    def tick(chunk: list[int]) -> None:
        nonlocal done_problems
        done_problems += len(chunk)
        if progress is not None:
            progress(done_problems, len(problems))

    def plan(chunk: list[int]) -> ChunkCalls:
        return chunk_calls(chunk, problems, keys, spec, policy.format_prompt, store)

    def store_chunk(planned: ChunkCalls, results: Sequence[list[list[Completion]]]) -> None:
        batches = planned.candidates(task, problems, policy.name, results)
        if batches:
            store.put_many(batches)

    def run(chunk: list[int]) -> None:
        planned = plan(chunk)
        store_chunk(
            planned, [policy.sample(list(c.prompts), c.n, c.sampling) for c in planned.calls]
        )

    def run_together(claimed: list[list[int]]) -> None:
        assert runner is not None
        plans = [plan(chunk) for chunk in claimed]
        order = [(c, j) for c, p in enumerate(plans) for j in range(len(p.calls))]
        got: list[dict[int, list[list[Completion]]]] = [{} for _ in plans]
        for position, rows in runner.run([plans[c].calls[j] for c, j in order]):
            c, j = order[position]
            got[c][j] = rows
            if len(got[c]) == len(plans[c].calls):
                store_chunk(plans[c], [got[c][m] for m in range(len(plans[c].calls))])
                tick(claimed[c])

    def work(chunk: list[int]) -> str:
        return sample_work([keys[i] for i in chunk])

    if runner is None:
        stats = claim_each(store, chunks, work, is_done, run, on_done=tick)
    else:
        stats = claim_together(store, chunks, work, is_done, run_together, on_found=tick)
    return [store.candidates(k, spec.n) for k in keys], stats


def claim_together(
    store: Store,
    items: Sequence[T],
    work: Callable[[T], str],
    is_done: Callable[[T], bool],
    run: Callable[[list[T]], None],
    *,
    on_found: Callable[[T], None] | None = None,
    poll: float = 0.25,
) -> ClaimStats:
    """:func:`rewardlab.store.claim_each` for a backend that computes many items side by side.

    Each pass claims the leases of every item not yet done, checks each claimed item again
    (one finished between the check and the claim is not redone) and calls ``run`` once
    with all of them, holding the leases (renewed by a heartbeat) until it returns; ``run``
    stores each item as it finishes. Items another worker holds are retried in the next pass
    (after ``poll`` seconds when a pass claimed nothing), until every item is done.
    ``on_found(item)`` is called for each item found done (stored already, or by another
    worker); ``run`` reports its own progress.
    """
    pending = list(items)
    computed = found = 0
    waited = 0.0
    while pending:
        todo = []
        for item in pending:
            if is_done(item):
                found += 1
                if on_found is not None:
                    on_found(item)
            else:
                todo.append(item)
        if not todo:
            break
        works = {work(item): n for n, item in enumerate(todo)}
        with store.holding(list(works)) as got:
            mine = sorted(works[w] for w in got)
            fresh = []
            for n in mine:
                if is_done(todo[n]):
                    found += 1
                    if on_found is not None:
                        on_found(todo[n])
                else:
                    fresh.append(todo[n])
            if fresh:
                run(fresh)
                computed += len(fresh)
        taken = set(mine)
        pending = [item for n, item in enumerate(todo) if n not in taken]
        if pending and not mine:
            time.sleep(poll)
            waited += poll
    return ClaimStats(computed, found, waited)


def pool_keys(problems: Sequence[Problem], policy_name: str, spec: PoolSpec) -> list[str]:
    """The store request key of every problem's candidates."""
    return [request_key(p, policy_name, spec.sampling) for p in problems]


def pool_chunks(n_problems: int, size: int) -> list[list[int]]:
    """Problem positions cut into the chunks :func:`sample_pool` claims one at a time (by
    position only, so every worker and every backend cuts them the same way)."""
    return [list(range(s, min(s + size, n_problems))) for s in range(0, n_problems, size)]


def sample_work(keys: Sequence[str]) -> str:
    """The lease name of sampling the requests ``keys`` (one chunk; every backend uses it, so
    local and Ray workers on one store never sample a chunk twice)."""
    return "sample:" + work_digest(list(keys))


@dataclass(frozen=True)
class PolicyCall:
    """One ``policy.sample(list(prompts), n, sampling)`` call, as planned by the process that
    owns the store; any replica of the policy may run it (locally or on a Ray actor)."""

    prompts: tuple[str, ...]
    n: int
    sampling: Sampling


class CallRunner(Protocol):
    """Runs planned policy calls somewhere (this process, a Ray actor pool) and yields
    ``(position in calls, completions)`` as each call finishes, in any order."""

    def run(self, calls: Sequence[PolicyCall]) -> Iterator[tuple[int, list[list[Completion]]]]:
        """Run every call once; yield each one's ``policy.sample`` result with its position."""
        ...


@dataclass(frozen=True)
class LocalCalls:
    """:class:`CallRunner` of this process: the calls run one after the other, in order."""

    policy: Policy

    def run(self, calls: Sequence[PolicyCall]) -> Iterator[tuple[int, list[list[Completion]]]]:
        for i, c in enumerate(calls):
            yield i, self.policy.sample(list(c.prompts), c.n, c.sampling)


@dataclass(frozen=True)
class ChunkCalls:
    """The policy calls that complete one sampling chunk: ``members[j]`` are the problem
    positions of ``calls[j]`` (one prompt each) and ``first[j]`` the index of its first
    candidate (the first one the store lacks); ``keys[j]`` their request keys."""

    calls: tuple[PolicyCall, ...]
    members: tuple[tuple[int, ...], ...]
    first: tuple[int, ...]
    keys: tuple[tuple[str, ...], ...]

    def candidates(
        self,
        task: Task,
        problems: Sequence[Problem],
        policy_name: str,
        results: Sequence[Sequence[Sequence[Completion]]],
    ) -> dict[str, list[Candidate]]:
        """The candidates to store (request key → candidates) from ``results[j]``, the
        completions of ``calls[j]``."""
        if len(results) != len(self.calls):
            raise ValueError(f"{len(results)} results for {len(self.calls)} calls")
        batches: dict[str, list[Candidate]] = {}
        for members, keys, first, comps_of in zip(
            self.members, self.keys, self.first, results, strict=True
        ):
            for i, key, comps in zip(members, keys, comps_of, strict=True):
                batches[key] = [
                    make_candidate(task, problems[i], c, first + j, policy_name)
                    for j, c in enumerate(comps)
                ]
        return batches


def chunk_calls(
    chunk: Sequence[int],
    problems: Sequence[Problem],
    keys: Sequence[str],
    spec: PoolSpec,
    format_prompt: Callable[[str], str],
    store: Store,
) -> ChunkCalls:
    """The policy calls that sample what ``store`` lacks of ``chunk`` (problem positions).

    Problems are grouped by their first missing index; each group is one call for the
    missing ``spec.n - first`` candidates, seeded by the base seed, the group's request keys
    and ``first`` (:func:`derive_seed`). Whoever runs the calls (this process or a Ray actor
    with the same weights) therefore produces the same candidates.
    """
    by_start: dict[int, list[int]] = {}
    for i in chunk:
        missing = store.missing(keys[i], spec.n)
        if missing:
            by_start.setdefault(missing[0], []).append(i)
    calls, members, firsts, group_keys = [], [], [], []
    for first, group in sorted(by_start.items()):
        seed = derive_seed(spec.sampling.seed, [keys[i] for i in group], first)
        prompts = tuple(format_prompt(problems[i].question) for i in group)
        calls.append(PolicyCall(prompts, spec.n - first, replace(spec.sampling, seed=seed)))
        members.append(tuple(group))
        firsts.append(first)
        group_keys.append(tuple(keys[i] for i in group))
    return ChunkCalls(tuple(calls), tuple(members), tuple(firsts), tuple(group_keys))


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
