"""Step-level beam searches guided by a process reward or value model.

- :class:`BeamSearch` — Snell et al. 2024 (and search-and-learn): sample N first steps, score
  them, keep the top N/M, sample M continuations of each (N again), repeat until N solutions
  have finished or none is open; choose among the finished ones by best-of-N weighted
  (``select="wmaj"``). With ``lookahead=k`` each candidate step is scored by the reward at the
  end of a k-step greedy (T = 0) rollout from it, and the rollout is thrown away (lookahead
  search; cost ≈ N(k+1) generations). With ``alpha > 0`` the beam keeps the steps with the
  largest ``Q + α·A``, where Q is the step's score and A its *progress* (the score minus the
  previous step's score): PAV, Setlur et al. 2024, with the reward as both Q and the prover's
  value (the advantage of a step is the change of value it causes). With an outcome-supervised
  value model as the reward it is OVM's value-guided beam search (Yu et al. 2024).
- :class:`DiverseVerifierTreeSearch` — DVTS (search-and-learn): N/M independent subtrees, each
  greedy by step score over M expansions per step; returns the finished leaf of each subtree.

Both return only *finished* candidates. Beam search never pads with duplicates: when fewer
than N finish within the step limit or budget, ``SearchResult.shortfall`` says how many.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rewardlab.search.online.base import Partial, SearchResult, pick
from rewardlab.search.online.engine import BudgetExhausted, StepExpander
from rewardlab.types import Problem


def _key(x: float) -> float:
    return -math.inf if x != x else x


def _best(row: Sequence[Partial]) -> Partial:
    """The highest-scoring partial of a row (ties: the first)."""
    return row[max(range(len(row)), key=lambda i: (_key(row[i].last_score), -i))]


def progress_score(p: Partial, alpha: float) -> float:
    """``Q + α·A`` of a partial's last step: Q its score, A = Q − (previous step's score);
    the first step has A = 0 (PAV's effective reward, Setlur et al. 2024)."""
    q = p.last_score
    if alpha == 0.0 or len(p.scores) < 2 or q != q or p.scores[-2] != p.scores[-2]:
        return q
    return q + alpha * (q - p.scores[-2])


def finish_result(
    name: str,
    problem: Problem,
    engine: StepExpander,
    n: int,
    done: Sequence[Partial],
    target: int,
    select: str,
    info: dict[str, object],
) -> SearchResult:
    """Turn finished partials into a :class:`SearchResult` (top ``target`` by last score)."""
    ranked = sorted(range(len(done)), key=lambda i: (-_key(done[i].last_score), i))[:target]
    kept = [done[i] for i in sorted(ranked)]
    cands = tuple(engine.candidate(problem, p, j) for j, p in enumerate(kept))
    chosen = pick(cands, [p.last_score for p in kept], select, engine.task.same_answer)
    return SearchResult(
        problem_id=problem.id,
        strategy=name,
        n=n,
        candidates=cands,
        chosen=chosen,
        shortfall=max(0, target - len(kept)),
        cost=engine.cost,
        cost_by_model=dict(engine.ledger.models()),
        info=info,
    )


@dataclass(frozen=True)
class BeamSearch:
    """Beam search with budget N and beam width M (keep N/M, expand each M times).

    Attributes:
        reward: the reward's name (for the strategy's name; the engine holds the reward).
        width: M, expansions per kept beam.
        lookahead: k, greedy rollout steps used to score a candidate step (0: plain beam).
        alpha: weight of the step's progress in the selection score (0: plain; PAV > 0).
        select: final choice among finished solutions: ``wmaj`` | ``bon`` | ``maj``.
        kind: the name's prefix (``beam``, ``lookahead``, ``pav``, ``ovm``).
    """

    reward: str
    width: int = 4
    lookahead: int = 0
    alpha: float = 0.0
    select: str = "wmaj"
    kind: str = "beam"
    label: str = ""  # options shown in the name (set by parse_online)

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"beam width must be >= 1, got {self.width}")
        if self.lookahead < 0:
            raise ValueError(f"lookahead must be >= 0, got {self.lookahead}")

    @property
    def name(self) -> str:
        arg = self.lookahead if self.kind == "lookahead" else self.width
        return f"{self.kind}[{self.reward}:{arg}{'@' + self.label if self.label else ''}]"

    def _rank(self, engine: StepExpander, problem: Problem, kids: list[Partial]) -> list[float]:
        if self.lookahead == 0:
            return [progress_score(p, self.alpha) for p in kids]
        open_ = [i for i, p in enumerate(kids) if not p.finished]
        values = [progress_score(p, self.alpha) for p in kids]
        if open_:
            rolled = engine.advance(problem, [kids[i] for i in open_], self.lookahead, 0.0)
            for i, v in zip(open_, engine.score(problem, rolled), strict=True):
                values[i] = v
        return values

    def search(self, problem: Problem, engine: StepExpander, n: int) -> SearchResult:
        engine.reset()
        keep = max(1, n // self.width)
        done: list[Partial] = []
        rounds = 0
        stopped = ""
        try:
            active = engine.expand(problem, [Partial()], n)[0]
            while True:
                rounds += 1
                done += [p for p in active if p.finished]
                open_ = [p for p in active if not p.finished]
                if len(done) >= n or not open_:
                    break
                ranks = self._rank(engine, problem, open_)
                order = sorted(range(len(open_)), key=lambda i: (-_key(ranks[i]), i))[:keep]
                kept = [open_[i] for i in order]
                # N expansions per round, dealt out over the kept beams (M each when N/M kept)
                counts = [
                    n // len(kept) + (1 if j < n % len(kept) else 0) for j in range(len(kept))
                ]
                active = [c for row in engine.expand(problem, kept, counts) for c in row]
        except BudgetExhausted as e:
            stopped = str(e)
        info: dict[str, object] = {"rounds": rounds, "finished": len(done)}
        if stopped:
            info["budget_stop"] = stopped
        return finish_result(self.name, problem, engine, n, done, n, self.select, info)


@dataclass(frozen=True)
class DiverseVerifierTreeSearch:
    """DVTS: ``N/M`` independent subtrees, each greedy by step score over ``M`` expansions.

    The subtrees start from N/M distinct first steps (sampled from the prompt); each round,
    every open subtree samples M continuations of its current step and keeps the best. A
    subtree ends when its best child finished. Returns the finished leaf of every subtree.
    Below N = M there is one subtree of width N, so a round never samples more than N rows.
    """

    reward: str
    width: int = 4
    select: str = "wmaj"
    label: str = ""  # options shown in the name (set by parse_online)

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")

    @property
    def name(self) -> str:
        return f"dvts[{self.reward}:{self.width}{'@' + self.label if self.label else ''}]"

    def search(self, problem: Problem, engine: StepExpander, n: int) -> SearchResult:
        engine.reset()
        width = min(self.width, n)  # below N = M: one subtree of width N (N rows per round)
        trees = max(1, n // width)
        done: list[Partial] = []
        stopped = ""
        rounds = 0
        try:
            current = engine.expand(problem, [Partial()], trees)[0]
            while True:
                rounds += 1
                done += [p for p in current if p.finished]
                current = [p for p in current if not p.finished]
                if not current:
                    break
                rows = engine.expand(problem, current, width)
                current = [_best(row) for row in rows]
        except BudgetExhausted as e:
            stopped = str(e)
        info: dict[str, object] = {"subtrees": trees, "width": width, "rounds": rounds}
        if stopped:
            info["budget_stop"] = stopped
        return finish_result(self.name, problem, engine, n, done, trees, self.select, info)
