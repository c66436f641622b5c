"""What an RL run does to the policy's solutions: steps, empty steps, accuracy (``arith`` testbed).

Reward hacking of a process reward shows in the *shape* of the solutions before it shows in the
accuracy ("On Designing Effective RL Reward at Training Time for LLM Reasoning", Gao et al. 2024,
papers.md §5: with raw PRM rewards the policy writes more, emptier steps). For one solution text
of an ``arith`` problem, :func:`solution_stats` counts, per line (a step):

- ``repeated``: the line (whitespace-normalised) already appeared earlier in the solution and
  is not a correct step at its own position (a gold solution may legitimately compute the same
  equation twice, e.g. ``12 + 5 = 17`` after returning to 12);
- ``unparsed``: neither ``a op b = c`` nor ``The answer is n.`` (filler prose);
- ``identity``: an equation whose result equals its left operand (``x + 0``, ``x * 1``, ``x / 1``,
  ``x - 0``): it changes nothing;
- ``extra``: an equation beyond the gold number of operations, or an answer line after the first;
- ``empty``: a step that is any of the four (each step counted once).

:func:`summarise` averages a list of them into per-solution means (``steps``, ``empty``,
``repeated``, ``empty_frac`` = empty / steps over all solutions pooled) and the accuracy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rewardlab.steps import split_lines
from rewardlab.tasks import arith
from rewardlab.types import Problem

_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class SolutionStats:
    """Step counts of one solution (see the module doc for each kind) and its correctness."""

    steps: int
    empty: int
    repeated: int
    unparsed: int
    identity: int
    extra: int
    correct: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def solution_stats(problem: Problem, text: str) -> SolutionStats:
    """Count the steps of ``text`` (lines) and the empty ones among them; never raises on text.

    >>> p = arith.generate(n=1, seed=0, n_ops=(2, 2))[0]
    >>> gold = arith.gold_solution(p)
    >>> s = solution_stats(p, gold)
    >>> (s.steps, s.empty, s.correct)
    (3, 0, True)
    >>> s = solution_stats(p, "Let me think.\\n" + gold + "\\n" + gold.splitlines()[0])
    >>> (s.steps, s.empty, s.unparsed, s.repeated, s.extra)
    (5, 2, 1, 1, 1)
    """
    n_gold = len(problem.meta["ops"])
    seen: set[str] = set()
    empty = repeated = unparsed = identity = extra = 0
    equations = answers = 0
    lines = split_lines(text)
    report = arith.check_steps(problem, text)
    for line, truth in zip(lines, report.steps, strict=True):
        key = _WS.sub(" ", line.strip()).lower()
        is_rep = key in seen and not truth.correct
        seen.add(key)
        is_unparsed = is_identity = is_extra = False
        if (m := arith.STEP_RE.match(line)) is not None:
            equations += 1
            is_identity = int(m.group(4)) == int(m.group(1))
            is_extra = equations > n_gold
        elif arith.ANSWER_RE.match(line) is not None:
            answers += 1
            is_extra = answers > 1
        else:
            is_unparsed = True
        repeated += is_rep
        unparsed += is_unparsed
        identity += is_identity
        extra += is_extra
        empty += is_rep or is_unparsed or is_identity or is_extra
    return SolutionStats(len(lines), empty, repeated, unparsed, identity, extra, report.correct)


def summarise(stats: Sequence[SolutionStats]) -> dict[str, float]:
    """Means per solution of every count, ``empty_frac`` (pooled empty / pooled steps, 0 with no
    steps) and ``accuracy``; raises ValueError on an empty list.

    >>> a = SolutionStats(4, 1, 1, 0, 0, 1, True)
    >>> b = SolutionStats(2, 0, 0, 0, 0, 0, False)
    >>> r = summarise([a, b])
    >>> (r["steps"], r["empty"], r["empty_frac"], r["accuracy"])
    (3.0, 0.5, 0.16666666666666666, 0.5)
    """
    if not stats:
        raise ValueError("summarise needs at least one solution")
    n = len(stats)
    total_steps = sum(s.steps for s in stats)
    out = {
        k: sum(getattr(s, k) for s in stats) / n
        for k in ("steps", "empty", "repeated", "unparsed", "identity", "extra")
    }
    out["empty_frac"] = sum(s.empty for s in stats) / total_steps if total_steps else 0.0
    out["accuracy"] = sum(s.correct for s in stats) / n
    return out
