"""The dial verifier (oracle-prm / oracle-orm): measured AUROC = requested q, determinism,
prefix consistency, exact truth at q = 1, the Reward contract.

Run: .venv/bin/python -m pytest -q tests/rewards/test_oracle.py
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.evaluate.process import auroc, step_targets
from rewardlab.rewards.base import Reward, StepReward, check_reward
from rewardlab.rewards.oracle import OracleORM, OraclePRM, noise, separation, step_labels
from rewardlab.rewards.registry import load_reward
from rewardlab.tasks.arith import check_steps, generate, gold_steps
from rewardlab.types import Candidate, Problem

PROBLEMS = generate(n=500, seed=11, n_ops=(1, 8))


def cand(problem: Problem, steps: list[str], index: int = 0) -> Candidate:
    text = "\n".join(steps)
    return Candidate(problem.id, text, tuple(steps), check_steps(problem, text).answer, index=index)


def variants(p: Problem, i: int) -> list[list[str]]:
    """Deterministic corruptions of the gold solution: every kind of step error the checker
    knows, at a position that moves with ``i`` (so labels flip at every depth)."""
    gold = gold_steps(p)
    n_ops = len(p.meta["ops"])
    k = i % n_ops
    a, op, b, r = p.meta["ops"][k]
    slip = [*gold[:k], f"{a} {op} {b} = {r + 1 + i % 3}", *gold[k + 1 :]]
    # a valid equation off the gold track, then carried on from the wrong value
    off = [*gold[:k], f"{a} + {b + 1} = {a + b + 1}", f"{a + b + 1} + 1 = {a + b + 2}"]
    wrong_answer = [*gold[:-1], f"The answer is {int(p.answer) + 1 + i % 5}."]
    garbage = [*gold[:k], "so we carry the two", *gold[k:]]
    truncated = gold[: max(1, k)]
    return [gold, slip, off, wrong_answer, garbage, truncated]


def pool() -> tuple[list[Problem], list[Candidate]]:
    probs, cands = [], []
    for i, p in enumerate(PROBLEMS):
        for j, steps in enumerate(variants(p, i)):
            probs.append(p)
            cands.append(cand(p, steps, j))
    return probs, cands


def hanley_mcneil_se(a: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUROC estimate (Hanley & McNeil 1982, eq. 2)."""
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    return math.sqrt(var)


def distinct_steps(
    reward: OraclePRM, probs: list[Problem], cands: list[Candidate]
) -> tuple[np.ndarray, np.ndarray]:
    """(label, score) per distinct (problem, prefix): equal prefixes share their noise, so only
    distinct ones are independent draws."""
    seen: dict[tuple[str, str], tuple[float, float]] = {}
    for p, c, s in zip(probs, cands, reward.score_steps(probs, cands), strict=True):
        for i, (y, v) in enumerate(zip(step_labels(p, c.steps), s.steps, strict=True)):
            seen[(p.id, "\n".join(c.steps[: i + 1]))] = (float(y), v)
    arr = np.array(list(seen.values()))
    return arr[:, 0], arr[:, 1]


@pytest.mark.parametrize("q", [0.6, 0.7, 0.8, 0.9])
def test_measured_step_auroc_matches_q(q: float) -> None:
    probs, cands = pool()
    y, s = distinct_steps(OraclePRM(q=q), probs, cands)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    assert n_pos > 2000 and n_neg > 2000, (n_pos, n_neg)
    measured = auroc(y, s)
    se = hanley_mcneil_se(q, n_pos, n_neg)
    assert abs(measured - q) < 4 * se, f"q={q}: measured {measured:.4f}, SE {se:.4f}"


def test_processbench_auroc_also_matches_q() -> None:
    """Read as ProcessBench does (steps up to the first error only), the AUROC is q too."""
    probs, cands = pool()
    scores = OraclePRM(q=0.75, seed=3).score_steps(probs, cands)
    firsts = [check_steps(p, c.text).first_error for p, c in zip(probs, cands, strict=True)]
    y, s = step_targets(firsts, [sc.steps for sc in scores])
    measured = auroc(y, s)
    # not deduplicated: shared prefixes make the draws dependent, so a wider margin than 4 SE
    assert abs(measured - 0.75) < 0.03, measured


def test_orm_auroc_matches_q() -> None:
    probs, cands = pool()
    seen = {}
    for p, c, s in zip(probs, cands, OracleORM(q=0.7).score(probs, cands), strict=True):
        seen[(p.id, c.text)] = (float(check_steps(p, c.text).correct), s.value)
    arr = np.array(list(seen.values()))
    n_pos, n_neg = int(arr[:, 0].sum()), int((1 - arr[:, 0]).sum())
    assert abs(auroc(arr[:, 0], arr[:, 1]) - 0.7) < 4 * hanley_mcneil_se(0.7, n_pos, n_neg)


def test_q_one_is_the_exact_truth_with_first_error_semantics() -> None:
    probs, cands = pool()
    for p, c, s in zip(probs, cands, OraclePRM(q=1.0).score_steps(probs, cands), strict=True):
        report = check_steps(p, c.text)
        first = len(c.steps) if report.first_error == -1 else report.first_error
        assert s.steps == tuple(1.0 if i < first else 0.0 for i in range(len(c.steps)))
        assert s.value == s.steps[-1]  # last
    outcome = OracleORM(q=1.0).score(probs, cands)
    for p, c, s in zip(probs, cands, outcome, strict=True):
        assert s.value == float(check_steps(p, c.text).correct)


def test_q_half_is_uninformative_and_separation_formula() -> None:
    assert separation(0.5) == 0.0
    # AUROC of N(d,1) vs N(0,1) is Phi(d / sqrt 2): invert by hand for q = 0.9
    d = separation(0.9)
    assert abs(0.5 * (1 + math.erf(d / math.sqrt(2) / math.sqrt(2))) - 0.9) < 1e-12
    probs, cands = pool()
    y, s = distinct_steps(OraclePRM(q=0.5), probs, cands)
    assert abs(auroc(y, s) - 0.5) < 4 * hanley_mcneil_se(0.5, int(y.sum()), int((1 - y).sum()))


def test_deterministic_and_seeded() -> None:
    probs, cands = pool()
    probs, cands = probs[:60], cands[:60]
    a = OraclePRM(q=0.8).score_steps(probs, cands)
    assert OraclePRM(q=0.8).score_steps(probs, cands) == a
    other = OraclePRM(q=0.8, seed=1).score_steps(probs, cands)
    assert all(x.steps != y.steps for x, y in zip(a, other, strict=True))
    assert noise("prm", 0, "p", "x") == noise("prm", 0, "p", "x")
    assert noise("prm", 0, "p", "x") != noise("orm", 0, "p", "x")


def test_prefix_consistency() -> None:
    """Step i of a text scores exactly as the last step of its prefix (online re-scoring)."""
    probs, cands = pool()
    r = OraclePRM(q=0.7, aggregate="min")
    for p, c in list(zip(probs, cands, strict=True))[:300]:
        full = r.score_steps([p], [c])[0].steps
        for i in range(len(c.steps)):
            prefix = cand(p, list(c.steps[: i + 1]))
            assert r.score_steps([p], [prefix])[0].steps[-1] == full[i]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, len(PROBLEMS) - 1),
    st.lists(st.text(min_size=1, max_size=12).filter(lambda t: t.strip()), max_size=6),
    st.sampled_from([0.5, 0.66, 0.8, 0.97, 1.0]),
)
def test_any_text_prefix_consistent_and_in_range(pi: int, extra: list[str], q: float) -> None:
    p = PROBLEMS[pi]
    steps = [*gold_steps(p)[:2], *[e.strip().replace("\n", " ") for e in extra]]
    c = cand(p, steps)
    s = OraclePRM(q=q).score_steps([p], [c])[0]
    assert len(s.steps) == len(c.steps)
    assert all(0.0 <= v <= 1.0 for v in s.steps)
    for i in range(len(steps)):
        assert OraclePRM(q=q).score_steps([p], [cand(p, steps[: i + 1])])[0].steps[-1] == s.steps[i]


def test_contracts_registry_and_ungraded() -> None:
    probs, cands = pool()
    for spec in ("oracle-prm:q=0.8,seed=1", "oracle-orm:q=0.6"):
        r = load_reward(spec)
        assert isinstance(r, Reward)
        check_reward(r, probs[:40], cands[:40])
        assert r.params == 0 and r.text_only
    assert isinstance(load_reward("oracle-prm:q=0.9"), StepReward)
    assert load_reward("oracle-prm:q=0.9").name == "oracle-prm-q0.9"
    gsm = Problem("g1", "How many?", "3", task="gsm8k")
    c = Candidate("g1", "1 + 2 = 3", ("1 + 2 = 3",), "3")
    for r in (OraclePRM(), OracleORM()):
        s = r.score([gsm], [c])[0]
        assert s.value is None and "not an arith problem" in s.info["reason"]
    empty = Candidate(PROBLEMS[0].id, "", (), None)
    assert OraclePRM().score([PROBLEMS[0]], [empty])[0].info["reason"] == "no steps"
    assert OracleORM(q=1.0).score([PROBLEMS[0]], [empty])[0].value == 0.0


@pytest.mark.parametrize("bad", [0.4, 1.01, float("nan"), "high"])
def test_bad_q_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="q must be in"):
        OraclePRM(q=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aggregation"):
        OraclePRM(aggregate="median")
