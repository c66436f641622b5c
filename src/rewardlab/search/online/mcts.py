"""Monte-Carlo tree search over solution steps, guided by a process reward or value model.

Each of the N simulations (the budget) walks from the root to a leaf by PUCT,

    a* = argmax_a  Q(s, a) + c · P(s, a) · √N(s) / (1 + N(s, a)),

expands the leaf with M sampled next steps (each scored by the reward when created), evaluates
the leaf, and backs the value up along the path (every node on it: visits += 1, value += v).
Q of an unvisited child is its own step score (first-play value: rStar-Math initialises nodes
with its preference model's score); P is the policy's probability of the step, normalised over
siblings. Leaf evaluation: with ``rollout=True`` a greedy rollout to the end of the solution
scored by the reward (rStar-Math's terminal-guided values, with the verifier's score in place
of the answer check that only training has), else the leaf's own step score. Finished
rollouts and finished tree leaves are the search's candidates.

``value_rule="rest"`` backs up ReST-MCTS*'s value targets instead of one shared value: along
the path s_1..s_d, v_k = max(0, v_{k-1} + (1 - v_{k-1}) · r_k / m_k) with v_0 = 0, r_k = +1 if
the step's score >= 0.5 else -1, and m_k = d - k + 1 steps to the path's end (Zhang et al.
2024, :func:`rest_values`).

Invariants (tested after every backup): a node's visits = simulations that ended at it + the
sum of its children's visits; with ``value_rule="mean"`` the same holds for value sums.

Any reward works as the value, including a pairwise-trained step preference model (an
rStar-Math PPM is trained on pairs but scores one step at a time).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from rewardlab.search.online.base import Partial, SearchResult
from rewardlab.search.online.beam import finish_result
from rewardlab.search.online.engine import BudgetExhausted, StepExpander
from rewardlab.types import Problem


def rest_values(step_scores: Sequence[float], threshold: float = 0.5) -> list[float]:
    """ReST-MCTS* value targets along one path (Zhang et al. 2024, MCTS/base.py):
    v_k = max(0, v_{k-1} + (1 - v_{k-1}) · r_k / m_k), v_0 = 0, r_k = +1 if step k scores at
    least ``threshold`` else -1, m_k = steps from k to the path's end, counting step k.

    >>> rest_values([0.9, 0.9])
    [0.5, 1.0]
    >>> rest_values([0.9, 0.1, 0.9])
    [0.3333333333333333, 0.0, 1.0]
    """
    d = len(step_scores)
    out: list[float] = []
    v = 0.0
    for k, s in enumerate(step_scores):
        r = 1.0 if (s == s and s >= threshold) else -1.0
        m = d - k
        v = max(0.0, v + (1.0 - v) * r / m)
        out.append(v)
    return out


@dataclass
class Node:
    """One node of the search tree (mutable: visits and values grow with each backup)."""

    partial: Partial
    parent: int | None
    prior: float = 1.0
    children: list[int] = field(default_factory=list)
    visits: int = 0
    value_sum: float = 0.0
    ended: int = 0
    ended_value: float = 0.0

    @property
    def init_value(self) -> float:
        v = self.partial.last_score
        return 0.0 if v != v else v

    @property
    def q(self) -> float:
        return self.value_sum / self.visits if self.visits else self.init_value


def check_tree(nodes: Sequence[Node], values_add_up: bool = True) -> None:
    """Raise AssertionError unless visits (and, for shared-value backups, value sums) of every
    node equal those that ended at it plus its children's."""
    for i, node in enumerate(nodes):
        kids = [nodes[c] for c in node.children]
        visits = node.ended + sum(k.visits for k in kids)
        assert node.visits == visits, f"node {i}: {node.visits} visits, children+ended {visits}"
        if values_add_up:
            total = node.ended_value + sum(k.value_sum for k in kids)
            assert math.isclose(node.value_sum, total, rel_tol=1e-9, abs_tol=1e-9), (
                f"node {i}: value sum {node.value_sum} != {total}"
            )


@dataclass(frozen=True)
class MCTS:
    """PUCT tree search with ``n`` simulations (the budget), ``width`` children per expansion.

    Attributes:
        reward: the reward's name (for the strategy's name; the engine holds the reward).
        width: M, children sampled when a leaf is expanded.
        c_puct: exploration constant.
        rollout: evaluate a leaf by a greedy rollout to the end (else by its step score).
        value_rule: ``mean`` (one value backed up along the path) or ``rest`` (ReST-MCTS*).
        select: final choice among finished candidates: ``wmaj`` | ``bon`` | ``maj``.
        check: verify the tree invariants after every backup (tests; cheap).
    """

    reward: str
    width: int = 4
    c_puct: float = 1.0
    rollout: bool = True
    value_rule: str = "mean"
    select: str = "wmaj"
    check: bool = False
    label: str = ""  # options shown in the name (set by parse_online)

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if self.value_rule not in ("mean", "rest"):
            raise ValueError(f"value_rule must be mean or rest, got {self.value_rule!r}")

    @property
    def name(self) -> str:
        return f"mcts[{self.reward}:{self.width}{'@' + self.label if self.label else ''}]"

    def search(self, problem: Problem, engine: StepExpander, n: int) -> SearchResult:
        engine.reset()
        width = min(self.width, n)  # below N = M, N children per expansion
        nodes = [Node(Partial(), None)]
        finished: dict[str, Partial] = {}
        stopped = ""
        sims = 0
        try:
            for _ in range(n):
                path = self._select(nodes)
                leaf = nodes[path[-1]]
                if leaf.partial.finished:
                    finished.setdefault(leaf.partial.text, leaf.partial)
                    value = leaf.init_value
                else:
                    self._expand(engine, problem, nodes, path[-1], width)
                    for c in nodes[path[-1]].children:
                        if nodes[c].partial.finished:
                            finished.setdefault(nodes[c].partial.text, nodes[c].partial)
                    value = self._evaluate(engine, problem, nodes, path[-1], finished)
                self._backup(nodes, path, value)
                sims += 1
                if self.check:
                    check_tree(nodes, self.value_rule == "mean")
        except BudgetExhausted as e:
            stopped = str(e)
        done = list(finished.values())
        info: dict[str, object] = {"simulations": sims, "nodes": len(nodes)}
        if stopped:
            info["budget_stop"] = stopped
        root = nodes[0]
        info["root_visits"] = root.visits
        return finish_result(
            self.name, problem, engine, n, done, max(1, len(done)), self.select, info
        )

    def _select(self, nodes: list[Node]) -> list[int]:
        path = [0]
        while nodes[path[-1]].children and not nodes[path[-1]].partial.finished:
            node = nodes[path[-1]]
            sqrt_n = math.sqrt(max(node.visits, 1))
            values = {c: self._puct(nodes[c], c, sqrt_n) for c in node.children}
            path.append(max(node.children, key=values.__getitem__))
        return path

    def _puct(self, child: Node, index: int, sqrt_n: float) -> tuple[float, int]:
        """PUCT value of a child (ties: the earlier child)."""
        u = self.c_puct * child.prior * sqrt_n / (1 + child.visits)
        return (child.q + u, -index)

    def _expand(
        self, engine: StepExpander, problem: Problem, nodes: list[Node], i: int, width: int
    ) -> None:
        parent = nodes[i].partial
        kids = engine.expand(problem, [parent], width)[0]
        # prior: the policy's probability of each step, normalised over the siblings
        logps = [k.logprob - parent.logprob for k in kids]
        top = max(logps)
        weights = [math.exp(lp - top) for lp in logps]
        total = sum(weights)
        for k, w in zip(kids, weights, strict=True):
            nodes[i].children.append(len(nodes))
            nodes.append(Node(k, i, prior=w / total))

    def _evaluate(
        self,
        engine: StepExpander,
        problem: Problem,
        nodes: list[Node],
        i: int,
        finished: dict[str, Partial],
    ) -> float:
        node = nodes[i]
        if not self.rollout:
            if node.parent is None:  # the root: the mean of its new children's scores
                vals = [nodes[c].init_value for c in node.children]
                return sum(vals) / len(vals)
            return node.init_value
        # greedy rollout from the best new child to the end, scored by the reward
        best = max(node.children, key=lambda c: (nodes[c].init_value, -c))
        start = nodes[best].partial
        if start.finished:
            return nodes[best].init_value
        end = engine.advance(problem, [start], engine.config.max_steps, 0.0)[0]
        value = engine.score(problem, [end])[0]
        end = Partial(
            end.text,
            end.steps,
            end.finish,
            (*end.scores, value),
            end.logprob,
            end.tokens,
            end.context_tokens,
        )
        if end.finished:
            finished.setdefault(end.text, end)
        return 0.0 if value != value else value

    def _backup(self, nodes: list[Node], path: list[int], value: float) -> None:
        if self.value_rule == "rest":
            scores = [nodes[i].init_value for i in path[1:]]
            values = [0.0, *rest_values(scores)]
        else:
            values = [value] * len(path)
        for i, v in zip(path, values, strict=True):
            nodes[i].visits += 1
            nodes[i].value_sum += v
        nodes[path[-1]].ended += 1
        nodes[path[-1]].ended_value += values[-1]
