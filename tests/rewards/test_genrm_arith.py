"""The testbed's generative verifier: chain builder <-> parser round trip, parsing garbage,
and the shipped weights as a reward."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.rewards.genrm_arith import (
    ArithVerifyFormat,
    build_chain,
    chain_truth,
    verify_prompt,
)
from rewardlab.steps import split_lines
from rewardlab.tasks import arith
from rewardlab.types import Candidate, Problem

FMT = ArithVerifyFormat()


def cand(p: Problem, text: str) -> Candidate:
    return Candidate(p.id, text, split_lines(text), arith.extract_answer(text))


def corrupt(rng: random.Random, p: Problem, kind: str) -> str:
    """A solution of ``p``: gold, or gold with one realistic mistake of ``kind``."""
    lines = arith.gold_steps(p)
    eq = [i for i, line in enumerate(lines) if arith.STEP_RE.match(line)]
    i = rng.choice(eq)
    a, op, b, c = p.meta["ops"][i]
    if kind == "value":  # invalid arithmetic
        lines[i] = f"{a} {op} {b} = {c + rng.choice([-10, -1, 1, 2, 10])}"
    elif kind == "operand":  # valid arithmetic on a wrong operand
        b2 = b + rng.choice([1, 2, 3])
        lines[i] = f"{a} + {b2} = {a + b2}"
    elif kind == "answer":  # wrong final answer line
        lines[-1] = f"The answer is {int(p.answer) + rng.choice([-2, -1, 1, 7])}."
    elif kind == "drop":  # a step left out
        del lines[i]
    elif kind == "extra":  # a step after the last operation
        lines.insert(len(lines) - 1, f"{p.answer} + 1 = {int(p.answer) + 1}")
    elif kind == "garbage":
        lines.insert(i, "so we think about it")
    elif kind == "no-answer":
        lines = lines[:-1]
    elif kind == "truncated":
        lines = lines[: i + 1]
        lines[-1] = lines[-1][: max(1, len(lines[-1]) // 2)]
    return "\n".join(lines)


KINDS = ("gold", "value", "operand", "answer", "drop", "extra", "garbage", "no-answer", "truncated")


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    n_ops=st.integers(1, 8),
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=2),
)
def test_chain_round_trip_gives_back_the_truth(seed: int, n_ops: int, kinds: list[str]) -> None:
    rng = random.Random(seed)
    p = arith.make_problem(rng, n_ops)
    text = arith.gold_solution(p)
    for kind in kinds:
        if kind != "gold":
            base = Problem(p.id, p.question, p.answer, p.task, p.meta)
            text = corrupt(rng, base, kind) if text == arith.gold_solution(p) else text
    c = cand(p, text)
    truth = chain_truth(p, text)
    report = arith.check_steps(p, text)
    judged = FMT.parse(build_chain(p, text), c)
    assert judged.steps == truth.steps
    assert len(judged.steps) == len(c.steps)
    first = next((i for i, s in enumerate(judged.steps) if s == 0.0), -1)
    assert first == report.first_error
    assert judged.verdict == truth.verdict
    # the verdict means "right by its process": never Yes for a wrong final answer
    if judged.verdict == 1.0:
        assert report.correct
    if kinds == ["gold"]:
        assert judged.verdict == 1.0 and all(s == 1.0 for s in judged.steps)


def test_chain_format_by_hand() -> None:
    p = Problem(
        "h",
        "Ana has 45 coins. Then Ana gives away 12. Then Ana multiplies the coins by 3. "
        "How many coins does Ana have now?",
        "99",
        "arith",
        {"ops": [[45, "-", 12, 33], [33, "*", 3, 99]], "states": [45, 33, 99]},
    )
    gold = "45 - 12 = 33\n33 * 3 = 99\nThe answer is 99."
    assert build_chain(p, gold) == "1:-12 33+12=45|45 Y\n2:*3 33*3=99|99 Y\n3:= A99|99 Y\nV:Y"
    assert verify_prompt(p, split_lines(gold)).endswith(
        "Answer:\n1|45 - 12 = 33\n2|33 * 3 = 99\n3|The answer is 99.\nCheck:\n"
    )
    wrong = "45 - 12 = 33\n33 * 3 = 98\nThe answer is 98."
    assert build_chain(p, wrong) == "1:-12 33+12=45|45 Y\n2:*3 33*3=99|98 N\nV:N"
    assert FMT.parse(build_chain(p, wrong), cand(p, wrong)).steps == (1.0, 0.0, 0.0)
    bad_line = "45 - 12 = 33\n33 * 3 = 99\nThe answer is 98."
    assert build_chain(p, bad_line).endswith("3:= A98|99 N\nV:N")


def test_parse_rules() -> None:
    p = arith.generate(1, seed=3, n_ops=(2, 2))[0]
    c = cand(p, arith.gold_solution(p))  # 3 lines
    assert FMT.parse("1:+1 x Y\n2:+1 x N\nV:Y", c).verdict == 0.0  # Yes beside a wrong step
    no_verdict = FMT.parse("1:+1 x Y\n2:+1 x Y", c)
    assert no_verdict.verdict is None and "verdict" in no_verdict.reason
    early = FMT.parse("1:+1 x Y\nV:Y", c)  # Yes without judging steps 2 and 3
    assert early.verdict is None and early.steps == (1.0, None, None) and early.reason
    assert FMT.parse("1:+1 x Y\nV:N", c) == FMT.parse("1:+1 x Y\nV:N\n2:? Y", c)
    assert FMT.parse("3:= A1|1 Y\n1:+1 x N\nV:N", c).steps == (0.0, 0.0, 0.0)


@settings(max_examples=300, deadline=None)
@given(
    chain=st.one_of(
        st.text(),
        st.text(alphabet="0123456789:YNV|=+-*/ Ax?\n", max_size=200),
        st.lists(
            st.tuples(st.integers(-3, 12), st.sampled_from("YN"), st.text(max_size=6)),
            max_size=12,
        ).map(lambda xs: "\n".join(f"{k}:{t} {m}" for k, m, t in xs) + "\nV:Y"),
    ),
    n_lines=st.integers(0, 10),
)
def test_parse_never_raises_and_never_guesses(chain: str, n_lines: int) -> None:
    text = "\n".join(f"{i} + 1 = {i + 1}" for i in range(n_lines))
    c = Candidate("x", text, split_lines(text), None)
    j = FMT.parse(chain, c)
    assert len(j.steps) == len(c.steps)
    assert j.verdict in (None, 0.0, 1.0)
    if j.verdict is None:
        assert j.reason
    if j.verdict == 1.0:  # a Yes only when every step was read as right
        assert all(s == 1.0 for s in j.steps) and c.steps


# ------------------------------------------------------------------ the shipped weights


@pytest.fixture(scope="module")
def genrm():  # type: ignore[no-untyped-def]
    from rewardlab.rewards.registry import load_reward

    try:
        return load_reward("genrm", device="cpu")
    except FileNotFoundError as e:  # pragma: no cover - a tree without the asset
        pytest.fail(str(e))


def _gold_and_corrupted(n: int) -> tuple[list[Problem], list[Candidate], list[bool]]:
    rng = random.Random(7)
    probs = arith.generate(n, seed=4242, n_ops=(1, 8))
    ps, cs, right = [], [], []
    for i, p in enumerate(probs):
        text = corrupt(rng, p, ("value", "answer", "operand")[i % 3])
        for t in (arith.gold_solution(p), text):
            ps.append(p)
            cs.append(cand(p, t))
            right.append(t == arith.gold_solution(p))
    return ps, cs, right


def test_shipped_verifier_is_a_conforming_reward(genrm) -> None:  # type: ignore[no-untyped-def]
    from rewardlab.rewards.base import check_reward

    ps, cs, _ = _gold_and_corrupted(3)
    check_reward(genrm, ps, cs)
    assert genrm.text_only and genrm.fingerprint and genrm.name == "genrm"
    steps = genrm.score_steps(ps, cs)
    assert all(len(s.steps) == len(c.steps) for s, c in zip(steps, cs, strict=True))


@pytest.mark.xfail(
    strict=True,
    reason="the shipped verifier is undertrained (CPU-starved run, see assets/genrm_arith/"
    "report.md): it says Yes to nearly every solution; remove this marker with a retrained asset",
)
def test_shipped_verifier_tells_gold_from_corrupted(genrm) -> None:  # type: ignore[no-untyped-def]
    """12 gold solutions and 12 with one mistake each (a wrong value, a wrong final answer
    line, a wrong operand). A constant verdict scores 0.5 on this balanced set; a verifier
    that re-derives every step (what the chain format asks for) should get nearly all 24, so
    requiring 20 leaves room for a few slips without letting a chance-level verifier pass
    (P(>= 20 of 24 | p = 0.5) < 0.001)."""
    ps, cs, right = _gold_and_corrupted(12)
    scores = genrm.score(ps, cs)
    verdicts = [s.value is not None and s.value >= 0.5 for s in scores]
    hits = sum(v == r for v, r in zip(verdicts, right, strict=True))
    assert hits >= 20, [(c.text, s.value) for c, s in zip(cs, scores, strict=True)]


def test_registry_specs_load_the_verifier(genrm) -> None:  # type: ignore[no-untyped-def]
    from rewardlab.rewards.registry import load_reward

    v2 = load_reward("genrm:V=2", device="cpu")
    assert v2.n_verifications == 2 and v2.sampling.temperature == 1.0
    assert genrm.n_verifications == 1 and genrm.sampling.temperature == 0.0
    assert v2.fingerprint != genrm.fingerprint
    assert v2.fingerprint.split("-")[0] == genrm.fingerprint.split("-")[0]  # same weights
    ps, cs, _ = _gold_and_corrupted(1)
    first = v2.score(ps, cs)
    assert first == v2.score(ps, cs)  # V sampled chains, deterministic for the seed
    assert all(len(s.info["verdicts"]) == 2 for s in first if s.value is not None)
    with pytest.raises(ValueError, match="V"):
        load_reward("genrm:V=0")
