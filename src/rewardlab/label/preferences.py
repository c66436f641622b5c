"""Controlled-truth preference data from the ``arith`` testbed: pairs whose gold label is known.

**The gold rule** (:func:`gold_preference`), applied to two responses a, b to the same problem:

1. a response whose final answer is correct beats one whose answer is wrong (``kind =
   "correctness"``, strength/margin 2.0);
2. between two responses of the same correctness, the one with **fewer characters** wins
   (brevity; ``kind = "brevity"``, strength/margin 1.0);
3. same correctness and same length: no gold preference, no pair is made.

Ratings follow the same order: rating = 3·correct + brevity, brevity = 1 − (len − min)/(max −
min) over the problem's pool (1.0 when all lengths are equal), so ratings lie in [0, 4] and
sort responses exactly as the gold rule does.

**Candidate pools** come from two sources:

- :func:`corrupted_pool`: the gold solution, verbose variants of it (filler sentences inserted
  before the steps: still correct, longer), and corrupted solutions — a wrong result written at
  a known step, later steps recomputed from it (:func:`corrupt_gold`, certified by
  :func:`rewardlab.tasks.arith.check_steps` to have its first error at that step and a wrong
  answer);
- :func:`policy_pools`: samples of any policy through :func:`rewardlab.search.pool.sample_pool`
  (e.g. the tiny policy), graded by the testbed.

**Injected defects** (training split only; held-out rows stay clean): ``noise`` flips each pair
with that probability (``flipped: true``; for ratings the correctness part is inverted),
``length_bias`` appends filler to the chosen side of that fraction of correctness pairs (length
then correlates with preference in training data but is not the cause). Problems are split into
train and held-out **by problem** (``held_out`` fraction).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rewardlab.tasks import arith
from rewardlab.types import Problem

FILLER = (
    "Let me solve this step by step.",
    "I will write one operation per line.",
    "First I track the quantity after each change.",
    "Each line applies one operation to the running total.",
)


@dataclass(frozen=True)
class Response:
    """A candidate answer with its exact truth: correctness, first error (-1: none), origin."""

    text: str
    correct: bool
    first_error: int
    source: str


def grade(problem: Problem, text: str, source: str) -> Response:
    report = arith.check_steps(problem, text)
    return Response(text, report.correct, report.first_error, source)


def corrupt_gold(
    problem: Problem, position: int, rng: random.Random, tries: int = 20
) -> str | None:
    """The gold solution with a wrong result written at equation step ``position``; later steps
    recompute from it (floor division where division is no longer exact). None if no corruption
    with its first error exactly at ``position`` and a wrong final answer was found."""
    ops = problem.meta["ops"]
    if not 0 <= position < len(ops):
        raise ValueError(f"position must be in [0, {len(ops)}), got {position}")
    for _ in range(tries):
        delta = rng.choice([d for d in range(-9, 10) if d])
        lines, state = [], None
        for i, (a, op, b, r) in enumerate(ops):
            if i < position:
                lines.append(f"{a} {op} {b} = {r}")
                state = r
                continue
            left = a if i == position else state
            assert left is not None
            result = r + delta if i == position else arith.apply_op(left, op, b)
            if result is None:
                result = left // b
            lines.append(f"{left} {op} {b} = {result}")
            state = result
        text = "\n".join([*lines, f"The answer is {state}."])
        report = arith.check_steps(problem, text)
        if report.first_error == position and not report.correct:
            return text
    return None


def add_filler(text: str, rng: random.Random, n_lines: int = 1) -> str:
    """``text`` with ``n_lines`` filler sentences inserted before its first line."""
    return "\n".join([*rng.sample(FILLER, k=min(n_lines, len(FILLER))), text])


def corrupted_pool(
    problem: Problem, rng: random.Random, n_corrupt: int = 6, n_verbose: int = 2
) -> list[Response]:
    """Gold, ``n_verbose`` verbose golds and up to ``n_corrupt`` distinct corrupted solutions
    (positions drawn uniformly; every other one also gets filler), all graded exactly."""
    gold = arith.gold_solution(problem)
    texts = {gold: "gold"}
    for v in range(n_verbose):
        texts.setdefault(add_filler(gold, rng, v + 1), f"gold+filler{v + 1}")
    n_ops = len(problem.meta["ops"])
    for j in range(4 * n_corrupt):
        if sum(s.startswith("corrupt") for s in texts.values()) >= n_corrupt:
            break
        pos = rng.randrange(n_ops)
        bad = corrupt_gold(problem, pos, rng)
        if bad is None:
            continue
        if j % 2:
            bad = add_filler(bad, rng, 1)
        texts.setdefault(bad, f"corrupt@{pos}")
    return [grade(problem, t, s) for t, s in texts.items()]


def policy_pools(
    problems: Sequence[Problem], policy: Any, store: Any, n: int, sampling: Any = None
) -> list[list[Response]]:
    """``n`` samples per problem from ``policy`` (through the store, resumable), graded."""
    from rewardlab.search.pool import PoolSpec, sample_pool
    from rewardlab.types import Sampling

    spec = PoolSpec(n=n, sampling=sampling or Sampling())
    pools = sample_pool(problems, arith.ArithTask(), policy, spec, store)
    return [
        [grade(p, c.text, f"policy#{c.index}") for c in row]
        for p, row in zip(problems, pools, strict=True)
    ]


def gold_preference(a: Response, b: Response) -> int:
    """+1 if a is preferred, −1 if b is, 0 if the gold rule has no preference."""
    if a.correct != b.correct:
        return 1 if a.correct else -1
    if len(a.text) != len(b.text):
        return 1 if len(a.text) < len(b.text) else -1
    return 0


def ratings(pool: Sequence[Response]) -> list[float]:
    """3·correct + brevity for each response (see the module docstring)."""
    lengths = [len(r.text) for r in pool]
    lo, hi = min(lengths), max(lengths)
    return [
        3.0 * r.correct + (1.0 if hi == lo else 1.0 - (len(r.text) - lo) / (hi - lo)) for r in pool
    ]


def gold_pairs(
    problem: Problem, pool: Sequence[Response], rng: random.Random, max_pairs: int
) -> list[dict[str, Any]]:
    """Up to ``max_pairs`` pairs (drawn uniformly without replacement among all unordered pairs
    with a gold preference), in TRL format with ``subset``, ``kind`` and ``problem_id``."""
    cands = [
        (i, j)
        for i in range(len(pool))
        for j in range(i + 1, len(pool))
        if gold_preference(pool[i], pool[j]) != 0
    ]
    rows = []
    for i, j in rng.sample(cands, k=min(max_pairs, len(cands))):
        win, lose = (
            (pool[i], pool[j]) if gold_preference(pool[i], pool[j]) > 0 else (pool[j], pool[i])
        )
        kind = "correctness" if win.correct != lose.correct else "brevity"
        rows.append(
            {
                "prompt": problem.question,
                "chosen": win.text,
                "rejected": lose.text,
                "margin": 2.0 if kind == "correctness" else 1.0,
                "subset": f"arith-{kind}",
                "kind": kind,
                "problem_id": problem.id,
                "flipped": False,
            }
        )
    return rows


def inject(
    rows: Sequence[dict[str, Any]], rng: random.Random, noise: float = 0.0, length_bias: float = 0.0
) -> list[dict[str, Any]]:
    """Copies of pair rows with a length bias (filler appended to the chosen side of that
    fraction of correctness pairs) and then label noise (chosen/rejected swapped)."""
    if not (0 <= noise <= 1 and 0 <= length_bias <= 1):
        raise ValueError("noise and length_bias must lie in [0, 1]")
    out = []
    for row in rows:
        r = dict(row)
        if r["kind"] == "correctness" and rng.random() < length_bias:
            r["chosen"] = r["chosen"] + "\n" + " ".join(FILLER)
            r["length_biased"] = True
        if rng.random() < noise:
            r["chosen"], r["rejected"], r["flipped"] = r["rejected"], r["chosen"], True
        out.append(r)
    return out


def split_problems(
    problems: Sequence[Problem], held_out: float, seed: int
) -> tuple[list[Problem], list[Problem]]:
    """(train, held-out) by problem: a seeded shuffle, the last ``held_out`` fraction held out."""
    if not 0 <= held_out < 1:
        raise ValueError(f"held_out must be in [0, 1), got {held_out}")
    order = list(problems)
    random.Random(seed).shuffle(order)
    cut = len(order) - round(held_out * len(order))
    return order[:cut], order[cut:]
