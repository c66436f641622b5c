"""The online-search contract: partial solutions, search results, and the strategy protocol.

An online strategy (beam search, DVTS, lookahead, MCTS, refinement; Snell et al. 2024,
"Scaling LLM test-time compute optimally") drives a policy step by step through ONE
:class:`~rewardlab.search.online.engine.StepExpander`, which extends partial solutions by one
step, scores them with a process reward or value model, caches both in the store, and charges
every token to its ledger. A strategy never writes its own generation loop.

Every strategy returns a :class:`SearchResult`: only *finished* candidates (a solution that
reached the end of its text, never a padded duplicate), how many it was asked for and did not
finish (``shortfall``), the answer it picks, and the compute it spent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rewardlab.compute import Cost
from rewardlab.types import Candidate, Problem


@dataclass(frozen=True)
class Partial:
    """A partial (or finished) solution in a search.

    Attributes:
        text: the solution text so far (without the prompt); steps are cut from it by the
            task's segmentation.
        steps: the steps of ``text``.
        finish: ``""`` while open; ``"eos"`` (the policy ended the solution), ``"length"`` (a
            step ran out of tokens) or ``"max_steps"`` (the step limit) once finished.
        scores: the reward's score of each step, as scored when the step was added.
        logprob: summed token log-probability of the generated text (untempered model).
        tokens: generated tokens of the text.
        context_tokens: tokens of prompt + text as the policy last read them (what a
            verifier scoring this prefix reads; 0 at the root).
    """

    text: str = ""
    steps: tuple[str, ...] = ()
    finish: str = ""
    scores: tuple[float, ...] = ()
    logprob: float = 0.0
    tokens: int = 0
    context_tokens: int = 0

    @property
    def finished(self) -> bool:
        return bool(self.finish)

    @property
    def depth(self) -> int:
        return len(self.steps)

    @property
    def last_score(self) -> float:
        """The score of the last step (NaN at the root)."""
        return self.scores[-1] if self.scores else float("nan")


@dataclass(frozen=True)
class SearchResult:
    """What one online search on one problem produced.

    Attributes:
        problem_id: the problem searched.
        strategy: the strategy's name.
        n: the budget it was run at (``Budget.n``).
        candidates: the finished candidates (checked by the task: ``meta["correct"]``).
        chosen: index into ``candidates`` of the answer the strategy returns (None: none).
        shortfall: finished candidates asked for minus returned (0 when the search met its
            target; never hidden by padding).
        cost: compute spent, policy and verifier together (FLOPs and tokens).
        cost_by_model: the ledger's totals per model name.
        info: strategy-specific extras (tree statistics, rounds ...).
    """

    problem_id: str
    strategy: str
    n: int
    candidates: tuple[Candidate, ...]
    chosen: int | None
    shortfall: int = 0
    cost: Cost = field(default_factory=Cost)
    cost_by_model: Mapping[str, Cost] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def answer(self) -> str | None:
        return None if self.chosen is None else self.candidates[self.chosen].answer

    @property
    def correct(self) -> bool:
        return self.chosen is not None and bool(self.candidates[self.chosen].meta.get("correct"))

    def as_row(self) -> dict[str, Any]:
        """One JSON-serialisable row (for ``online.jsonl``)."""
        return {
            "strategy": self.strategy,
            "n": self.n,
            "problem_id": self.problem_id,
            "correct": self.correct,
            "answer": self.answer,
            "finished": len(self.candidates),
            "shortfall": self.shortfall,
            "policy_tokens": sum(
                c.prompt_tokens + c.generated_tokens
                for name, c in self.cost_by_model.items()
                if not name.startswith("verifier:")
            ),
            "verifier_tokens": sum(
                c.tokens for name, c in self.cost_by_model.items() if name.startswith("verifier:")
            ),
            "flops": self.cost.flops,
            "info": dict(self.info),
        }


@runtime_checkable
class OnlineStrategy(Protocol):
    """A strategy that spends a budget generating: ``search`` one problem with an engine.

    ``n`` is the budget (Snell's generation budget: beams, subtrees x width, simulations or
    attempts, comparable with best-of-N at the same N). Deterministic for the engine's seed.
    """

    @property
    def name(self) -> str: ...

    def search(self, problem: Problem, engine: Any, n: int) -> SearchResult: ...


def pick(
    candidates: Sequence[Candidate], scores: Sequence[float], how: str, same: Any
) -> int | None:
    """Choose one finished candidate: ``bon`` (highest score), ``wmaj`` (the answer with the
    largest summed score: Snell's "best-of-N weighted"), or ``maj`` (most frequent answer).

    Candidates without an answer never win; ties go to the lowest index (deterministic).
    ``same(a, b)`` is the task's answer equivalence. NaN scores count as 0 weight / -inf.
    """
    valid = [i for i, c in enumerate(candidates) if c.answer is not None]
    if not valid:
        return None
    if how == "bon":
        return max(valid, key=lambda i: (_num(scores[i], float("-inf")), -i))
    groups: list[list[int]] = []
    for i in valid:
        for g in groups:
            if same(candidates[g[0]].answer, candidates[i].answer):
                g.append(i)
                break
        else:
            groups.append([i])
    if how == "wmaj":
        weight = [sum(max(_num(scores[i], 0.0), 0.0) for i in g) for g in groups]
    elif how == "maj":
        weight = [float(len(g)) for g in groups]
    else:
        raise ValueError(f"unknown selection {how!r}; choose bon, wmaj or maj")
    best = max(range(len(groups)), key=lambda k: (weight[k], -groups[k][0]))
    g = groups[best]
    return max(g, key=lambda i: (_num(scores[i], float("-inf")), -i))


def _num(x: float, default: float) -> float:
    return default if x != x else float(x)
