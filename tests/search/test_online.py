"""Online search invariants on the shipped tiny policy with the testbed's exact step truth.

Beam search returns exactly N finished candidates or reports the shortfall; DVTS returns only
finished ones; MCTS visit counts and value sums add up after every backup; no search exceeds
its FLOPs budget (checked against its ledger); equal seeds give equal results; an interrupted
search resumes (through the store) to the same result; searches batched side by side equal
searches run alone.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from truth_reward import TruthStepReward

from rewardlab.policies.registry import load_policy
from rewardlab.search.online import (
    MCTS,
    BeamSearch,
    BudgetExhausted,
    DiverseVerifierTreeSearch,
    EngineConfig,
    Partial,
    Refine,
    StepExpander,
    parse_online,
    pick,
    rest_values,
)
from rewardlab.search.online.batching import BatchingBackend, run_side_by_side
from rewardlab.search.online.mcts import Node, check_tree
from rewardlab.store import SampleStore
from rewardlab.tasks import arith
from rewardlab.types import Candidate, Sampling

CONFIG = EngineConfig(Sampling(temperature=1.0, max_new_tokens=32, seed=3), max_steps=10)


@pytest.fixture(scope="module")
def policy() -> Any:
    return load_policy("tiny", device="cpu")


@pytest.fixture(scope="module")
def problems() -> list[Any]:
    return arith.generate(4, seed=11, n_ops=(2, 4))


def engine(policy: Any, store: SampleStore | None = None, **kw: Any) -> StepExpander:
    return StepExpander(policy, arith.ArithTask(), TruthStepReward(), replace(CONFIG, **kw), store)


def test_beam_returns_n_finished_or_reports_shortfall(policy: Any, problems: list[Any]) -> None:
    for p in problems[:2]:
        r = BeamSearch("truth", width=2).search(p, engine(policy), 4)
        assert all(c.meta["finish_reason"] for c in r.candidates)
        assert len(r.candidates) + r.shortfall == 4
        assert len({c.text for c in r.candidates}) >= 1
        assert r.cost.flops > 0
    # a step limit that nothing can finish within: a shortfall, never padding
    short = BeamSearch("truth", width=2).search(problems[-1], engine(policy, max_steps=1), 4)
    assert all(c.meta["finish_reason"] in ("eos", "max_steps", "length") for c in short.candidates)
    assert len(short.candidates) + short.shortfall == 4


def test_beam_with_a_perfect_verifier_picks_a_right_solution_when_it_has_one(
    policy: Any,
) -> None:
    found = 0
    for p in arith.generate(3, seed=5, n_ops=(4, 5)):
        r = BeamSearch("truth", width=2).search(p, engine(policy), 8)
        right = [c for c in r.candidates if arith.check_steps(p, c.text).first_error == -1]
        if right:  # truth scores 1.0 only for solutions right at every step
            found += 1
            assert r.correct
    assert found >= 1


def test_dvts_returns_only_finished_candidates(policy: Any, problems: list[Any]) -> None:
    r = DiverseVerifierTreeSearch("truth", width=2).search(problems[1], engine(policy), 4)
    assert len(r.candidates) == 2  # N/M subtrees
    assert all(c.meta["finish_reason"] in ("eos", "max_steps", "length") for c in r.candidates)


@pytest.mark.parametrize("rule", ["mean", "rest"])
def test_mcts_visits_and_values_add_up_after_every_backup(
    policy: Any, problems: list[Any], rule: str
) -> None:
    m = MCTS("truth", width=2, value_rule=rule, check=True)
    r = m.search(problems[2], engine(policy), 6)  # check_tree runs after every backup
    assert r.info["simulations"] == 6
    assert r.info["root_visits"] == 6
    assert all(c.meta["finish_reason"] for c in r.candidates)


def test_check_tree_catches_a_broken_backup() -> None:
    nodes = [Node(Partial(), None, children=[1]), Node(Partial("x"), 0)]
    nodes[0].visits, nodes[0].value_sum = 1, 0.5
    nodes[1].visits, nodes[1].value_sum, nodes[1].ended, nodes[1].ended_value = 1, 0.5, 1, 0.5
    check_tree(nodes)
    nodes[0].visits = 2
    with pytest.raises(AssertionError, match="visits"):
        check_tree(nodes)


def test_rest_values_by_hand() -> None:
    # v1 = 0 + (1 - 0) * 1/3 = 1/3; v2 = 1/3 + (2/3) * 1/2 = 2/3; v3 = 2/3 + 1/3 * 1 = 1
    assert rest_values([0.9, 0.8, 0.7]) == pytest.approx([1 / 3, 2 / 3, 1.0])
    # a wrong step: v2 = max(0, 1/3 - (2/3) * 1/2) = 0
    assert rest_values([0.9, 0.1, 0.9]) == pytest.approx([1 / 3, 0.0, 1.0])


@pytest.mark.parametrize(
    "strategy",
    [
        BeamSearch("truth", width=2),
        BeamSearch("truth", width=2, lookahead=1, kind="lookahead"),
        DiverseVerifierTreeSearch("truth", width=2),
        MCTS("truth", width=2),
        Refine("truth"),
    ],
    ids=lambda s: s.name,
)
def test_no_search_exceeds_its_budget(policy: Any, problems: list[Any], strategy: Any) -> None:
    free = strategy.search(problems[3], engine(policy), 8)
    budget = free.cost.flops * 0.4
    capped = strategy.search(problems[3], engine(policy, max_flops=budget), 8)
    assert capped.cost.flops <= budget
    assert "budget_stop" in capped.info


def test_engine_refuses_an_expansion_past_the_budget(policy: Any, problems: list[Any]) -> None:
    e = engine(policy, max_flops=1.0)
    with pytest.raises(BudgetExhausted):
        e.expand(problems[0], [Partial()], 2)
    assert e.cost.flops == 0.0


def test_equal_seeds_give_equal_results(policy: Any, problems: list[Any]) -> None:
    for s in (BeamSearch("truth", width=2), MCTS("truth", width=2)):
        a = s.search(problems[0], engine(policy), 4)
        b = s.search(problems[0], engine(policy), 4)
        assert [c.text for c in a.candidates] == [c.text for c in b.candidates]
        assert a.chosen == b.chosen and a.cost == b.cost


class _Interrupting:
    """The real tiny policy, stopped (KeyboardInterrupt) after ``calls`` extend calls."""

    def __init__(self, policy: Any, calls: int) -> None:
        self.policy, self.left = policy, calls
        self.name, self.params = policy.name, policy.params

    def format_prompt(self, q: str) -> str:
        return str(self.policy.format_prompt(q))

    def sample(self, *a: Any) -> Any:
        return self.policy.sample(*a)

    def extend(self, *a: Any) -> Any:
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return self.policy.extend(*a)


def test_an_interrupted_search_resumes_to_the_same_result(
    policy: Any, problems: list[Any], tmp_path: Path
) -> None:
    s = BeamSearch("truth", width=2)
    whole = s.search(problems[1], engine(policy, SampleStore(tmp_path / "a.sqlite")), 4)
    store = SampleStore(tmp_path / "b.sqlite")
    stopped = StepExpander(
        _Interrupting(policy, 2), arith.ArithTask(), TruthStepReward(), CONFIG, store
    )
    with pytest.raises(KeyboardInterrupt):
        s.search(problems[1], stopped, 4)
    counted = _Interrupting(policy, 10_000)
    resumed = s.search(
        problems[1],
        StepExpander(counted, arith.ArithTask(), TruthStepReward(), CONFIG, store),
        4,
    )
    assert [c.text for c in resumed.candidates] == [c.text for c in whole.candidates]
    assert resumed.cost == whole.cost  # the ledger charges cached work too
    assert 10_000 - counted.left < whole.info["rounds"]  # the first calls came from the store
    again = _Interrupting(policy, 0)  # a full re-run makes no model call at all
    rerun = s.search(
        problems[1], StepExpander(again, arith.ArithTask(), TruthStepReward(), CONFIG, store), 4
    )
    assert [c.text for c in rerun.candidates] == [c.text for c in whole.candidates]


def test_side_by_side_batching_equals_searches_alone(policy: Any, problems: list[Any]) -> None:
    s = BeamSearch("truth", width=2)
    alone = [s.search(p, engine(policy), 4) for p in problems]
    backend = BatchingBackend(policy, TruthStepReward(), 3)

    def work(p: Any) -> Any:
        e = StepExpander(policy, arith.ArithTask(), TruthStepReward(), CONFIG, backend=backend)
        return s.search(p, e, 4)

    together = run_side_by_side(problems, work, backend, 3)
    assert [[c.text for c in r.candidates] for r in together] == [
        [c.text for c in r.candidates] for r in alone
    ]
    assert backend.calls < sum(r.info["rounds"] for r in alone) * 2  # calls were merged


def _cand(answer: str | None) -> Candidate:
    return Candidate("p", "", (), answer)


def test_pick_by_hand() -> None:
    cands = [_cand("1"), _cand("2"), _cand("2"), _cand(None)]
    scores = [0.9, 0.5, 0.6, 1.0]
    same = str.__eq__
    assert pick(cands, scores, "bon", same) == 0  # the no-answer candidate never wins
    assert pick(cands, scores, "wmaj", same) == 2  # answer 2: 1.1 > 0.9; its best member
    assert pick(cands, scores, "maj", same) == 2
    assert pick([_cand(None)], [1.0], "bon", same) is None


def test_parse_online_specs_and_errors() -> None:
    s, r = parse_online("beam:oracle-prm:q=0.8:4")
    assert (s.name, r, s.width) == ("beam[oracle-prm:q=0.8:4]", "oracle-prm:q=0.8", 4)
    assert parse_online("lookahead:prm:2@width=8")[0].lookahead == 2
    assert parse_online("pav:prm:4@alpha=0.5")[0].alpha == 0.5
    assert parse_online("mcts:prm")[0].width == 4
    assert parse_online("refine:prm@threshold=0.7")[0].threshold == 0.7
    for bad, msg in [
        ("beem:prm:4", "did you mean 'beam'"),
        ("beam", "needs a reward"),
        ("beam:prm:0", ">= 1"),
        ("beam:prm:4@bogus=1", "unknown option"),
        ("mcts:prm@rule=other", "value_rule"),
        ("beam:prm:4@select=best", "select="),
        ("mcts:prm@rollout=maybe", "true/false"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_online(bad)
