"""Trust diagnostics, each on a hand-made case with a known answer: position bias, contrast
consistency (RMC), SCIR agreement, BoN-bias shortcuts, step ablations, group breakdowns and
the alignment-ceiling rank correlation; plus the testbed text variants."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.evaluate import trust as T
from rewardlab.evaluate import trust_eval as E
from rewardlab.evaluate.reward_eval import evaluate_pairwise
from rewardlab.rewards.oracle import OracleORM, OraclePRM
from rewardlab.rewards.pairwise_judge import PAIRWISE_PROMPT, LMPairwiseJudge, ScalarPairwise
from rewardlab.tasks import arith
from rewardlab.train.pref_io import DataError
from rewardlab.types import Candidate, Problem, Score


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@dataclass(frozen=True)
class SumChecker:
    """A prompt-aware reward: 1.0 when the response's number is the prompt's sum, else 0.0."""

    name: str = "sum-checker"

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        out = []
        for p, c in zip(problems, candidates, strict=True):
            total = sum(int(x) for x in re.findall(r"\d+", p.question))
            out.append(Score(float(c.text.strip() == str(total))))
        return out


@dataclass(frozen=True)
class Length:
    """A prompt-blind reward: the response's length in characters."""

    name: str = "length"

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        return [Score(float(len(c.text))) for c in candidates]


# ------------------------------------------------------------------------------ position


def test_position_bias_hand_worked() -> None:
    # pair 1: A wins in both orders; pair 2: B wins in both; pair 3: a tie shown A-first, then
    # "first" (B) shown B-first. first-slot verdicts: (1, 0), (0, 1), (0.5, 1) -> 7/12.
    out = T.position_bias(np.array([0.9, 0.4, 0.5]), np.array([0.2, 0.7, 0.6]), n_boot=50)
    assert out["first_rate"][0] == pytest.approx(7 / 12)
    assert out["position_bias"][0] == pytest.approx(7 / 12 - 0.5)
    assert out["soft_bias"][0] == pytest.approx(0.05)
    assert out["consistency"][0] == pytest.approx(2 / 3)
    assert out["accuracy"][0] == pytest.approx(1 / 3)
    assert out["accuracy/ab"][0] == out["accuracy/ba"][0] == pytest.approx(1 / 3)


def test_a_judge_that_always_says_first_has_bias_one_half() -> None:
    out = T.position_bias(np.full(20, 0.8), np.full(20, 0.7), n_boot=50)
    assert out["position_bias"][:3] == (0.5, 0.5, 0.5)
    assert out["consistency"][0] == 0.0 and out["accuracy"][0] == 0.5


def test_scalar_rm_has_no_position_bias_by_construction(tmp_path: Path) -> None:
    rows = [
        {"prompt": f"{a} + {b}?", "chosen": str(a + b), "rejected": str(a + b + 1)}
        for a, b in itertools.product(range(1, 5), range(3, 6))
    ]
    path = _write(tmp_path / "pairs.jsonl", rows)
    res = E.evaluate_position(ScalarPairwise(SumChecker()), path, n_boot=50)
    assert res.metrics["soft_bias"].value == pytest.approx(0.0, abs=1e-12)
    assert res.metrics["position_bias"].value == 0.0
    assert res.metrics["consistency"].value == 1.0 and res.metrics["accuracy"].value == 1.0


def test_lm_pairwise_judge_reads_a_probability(tmp_path: Path) -> None:
    from rewardlab.policies.registry import load_policy

    judge = LMPairwiseJudge(
        load_policy("tiny", device="cpu"), template=PAIRWISE_PROMPT + " ", options=("A", "B")
    )
    rows = [
        {"prompt": "2 + 3?", "chosen": "5", "rejected": "6"},
        {"prompt": "4 + 4?", "chosen": "8", "rejected": "9"},
    ]
    res = E.evaluate_position(judge, _write(tmp_path / "p.jsonl", rows), n_boot=20)
    p = np.array(res.details["p_first"]["ab"] + res.details["p_first"]["ba"])
    assert ((p > 0) & (p < 1)).all()
    # the metric is the mean of what was read: recompute it from the stored probabilities
    ab, ba = (np.array(res.details["p_first"][k]) for k in ("ab", "ba"))
    assert res.metrics["soft_bias"].value == pytest.approx(float(np.mean((ab + ba) / 2 - 0.5)))


def test_lm_judge_options_must_differ_in_their_first_token() -> None:
    from rewardlab.policies.registry import load_policy
    from rewardlab.rewards.pairwise_judge import load_judge

    # the tiny policy's tokenizer reads " A" as " " + "A": both options would read " "
    with pytest.raises(ValueError, match="same token"):
        LMPairwiseJudge(load_policy("tiny", device="cpu"))
    judge = load_judge("lm:tiny")
    assert judge.template == PAIRWISE_PROMPT + " " and judge.options == ("A", "B")
    first_a, first_b = judge.first_tokens()
    assert first_a != first_b


def test_lm_judge_template_must_show_both_responses() -> None:
    from rewardlab.policies.registry import load_policy

    with pytest.raises(ValueError, match="second"):
        LMPairwiseJudge(load_policy("tiny", device="cpu"), template="{question} {first}")


# ------------------------------------------------------------------------------ contrast


def test_contrast_consistency_hand_worked() -> None:
    # pair 1 right on both sides; pair 2 right on x1 only; pair 3 NaN on one side -> fails it
    out = T.contrast_consistency(
        np.array([2.0, 1.0, np.nan]),
        np.array([1.0, 0.0, 1.0]),
        np.array([3.0, 1.0, 5.0]),
        np.array([0.0, 2.0, 1.0]),
        n_boot=50,
    )
    assert out["consistency"][0] == pytest.approx(1 / 3)
    assert out["side_accuracy"][0] == pytest.approx((1 + 0.5 + 0.5) / 3)


def test_contrast_prompt_blind_reward_is_never_consistent(tmp_path: Path) -> None:
    rows = [
        {
            "prompt1": f"{a} + {b}?",
            "response1": str(a + b),
            "prompt2": f"{a} + {b + 10}?",
            "response2": str(a + b + 10),
        }
        for a in range(1, 6)
        for b in range(1, 4)
    ]
    path = _write(tmp_path / "contrast.jsonl", rows)
    aware = E.evaluate_contrast(SumChecker(), path, n_boot=50)
    assert aware.metrics["consistency"].value == 1.0
    blind = E.evaluate_contrast(Length(), path, n_boot=50)
    assert blind.metrics["consistency"].value == 0.0
    assert blind.metrics["side_accuracy"].value == pytest.approx(0.5)  # length never ties here
    assert blind.baseline["consistency"].value == 0.0  # the length baseline is prompt-blind too


def test_contrast_file_without_a_contrast_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "c.jsonl", [{"prompt1": "a", "response1": "1", "prompt2": "a", "response2": "2"}]
    )
    with pytest.raises(DataError, match="identical"):
        E.evaluate_contrast(Length(), path)


# ----------------------------------------------------------------------------------- SCIR


def test_scir_agreement_hand_worked() -> None:
    # signs a: + - + + ; b: + - - 0 -> agree on pairs 1, 2; pair 2 agrees on the wrong side
    out = T.scir_agreement(
        np.array([1.0, -1.0, 2.0, 0.5]), np.array([2.0, -1.0, -1.0, np.nan]), n_boot=50
    )
    assert out["agreement"][0] == 0.5
    assert out["accuracy/a"][0] == 0.75 and out["accuracy/b"][0] == 0.25
    assert out["kept_precision"][0] == 0.5 and out["kept_precision"][3] == 2


def test_scir_filter_raises_precision_of_two_independent_noisy_judges(tmp_path: Path) -> None:
    # two oracle ORMs with independent noise: where they agree, the label is right more often
    problems = arith.generate(60, seed=5, n_ops=(2, 3))
    rows = []
    for p in problems:
        wrong = arith.gold_solution(p).replace(f"is {p.answer}.", f"is {int(p.answer) + 1}.")
        rows.append((p, arith.gold_solution(p), wrong))
    a, b = OracleORM(q=0.75, seed=1), OracleORM(q=0.75, seed=2)
    deltas = []
    for r in (a, b):
        cands = [Candidate(p.id, t, tuple(t.split("\n")), None) for p, c, w in rows for t in (c, w)]
        v = np.array([s.value for s in r.score([p for p, _, _ in rows for _ in (0, 1)], cands)])
        deltas.append(v[0::2] - v[1::2])
    out = T.scir_agreement(deltas[0], deltas[1], n_boot=50)
    assert out["kept_precision"][0] > out["accuracy/a"][0]


# ------------------------------------------------------------------------ BoN bias


def _pool(problems: list[Problem], texts: list[list[str]]) -> list[list[Candidate]]:
    return [
        [
            Candidate(p.id, t, tuple(t.split("\n")), arith.extract_answer(t), index=i)
            for i, t in enumerate(ts)
        ]
        for p, ts in zip(problems, texts, strict=True)
    ]


def _no_division(n: int, seed: int, n_ops: tuple[int, int]) -> list[Problem]:
    """``n`` testbed problems without division (an off-by-one error then always propagates to
    a wrong answer: + and - keep the offset, * by b >= 1 scales it)."""
    found = [
        p
        for p in arith.generate(20 * n, seed=seed, n_ops=n_ops)
        if all(op != "/" for _, op, _, _ in p.meta["ops"])
    ]
    assert len(found) >= n
    return found[:n]


def _wrong_at(p: Problem, k: int) -> str:
    """The gold solution with step k's result off by one and recomputed after it (a wrong
    answer: the problem must have no division, see :func:`_no_division`)."""
    state = int(p.meta["states"][0])
    lines = []
    for i, (_, op, b, _) in enumerate(p.meta["ops"]):
        r = arith.apply_op(state, op, b)
        assert r is not None
        r = r + 1 if i == k else r
        lines.append(f"{state} {op} {b} = {r}")
        state = r
    return "\n".join([*lines, f"The answer is {state}."])


def test_variants_of_a_solution() -> None:
    steps = ("3 + 4 = 7", "7 * 2 = 14", "14 - 1 = 13", "The answer is 13.")
    assert E.answer_only(steps) == ("The answer is 13.",)
    assert E.truncated(steps) == ("3 + 4 = 7", "The answer is 13.")
    assert E.truncated(("3 + 4 = 7", "The answer is 7.")) is None  # would be answer-only
    assert E.answer_only(("3 + 4 = 7",)) is None


def test_bon_bias_known_answers_for_process_and_outcome_oracles() -> None:
    problems = _no_division(12, 3, (2, 4))
    pool = _pool(problems, [[arith.gold_solution(p), _wrong_at(p, 0)] for p in problems])
    prm = E.evaluate_bon_bias(OraclePRM(q=1.0), problems, pool, n_boot=50).metrics
    # the checker counts "The answer is n." right: the exact PRM ties it with the full solution
    assert prm["answer_only/ties"].value == 1.0
    # a truncated solution's answer does not follow from its last line: the exact PRM says 0
    assert prm["truncated/prefers_full"].value == 1.0
    assert prm["steps/min_at_first_error"].value == 1.0  # wrong at step 0: min (0.0) is there
    assert prm["steps/min_at_last"].value == 0.0 and prm["steps/error_at_last"].value == 0.0
    # an outcome-only verifier cannot tell a truncated solution from the full one
    orm = E.evaluate_bon_bias(OracleORM(q=1.0), problems, pool, n_boot=50).metrics
    assert orm["truncated/ties"].value == 1.0 and orm["answer_only/ties"].value == 1.0
    assert "steps/min_at_last" not in orm


def test_shortcut_preference_and_min_at_last_hand_worked() -> None:
    out = T.shortcut_preference(
        np.array([1.0, 2.0, 3.0, np.nan]),
        np.array([2.0, 2.0, 1.0, 0.0]),
        np.array([0, 0, 1, 1]),
        n_boot=50,
    )
    assert out["prefers_short"][0] == 0.5  # pairs 1 and 4 (a NaN full side loses)
    assert out["ties"][0] == 0.25 and out["prefers_full"][0] == 0.25
    steps = [(0.9, 0.8, 0.1), (0.2, 0.9), (0.5, 0.1, 0.7), (0.3,)]
    out = T.min_at_last_step(steps, [2, 0, 2, 0], np.arange(4), n_boot=50)
    # 3 candidates qualify (the 1-step one does not); mins at 2, 0, 1; errors at 2, 0, 2
    assert out["min_at_last"][0] == pytest.approx(1 / 3)
    assert out["error_at_last"][0] == pytest.approx(2 / 3)
    assert out["min_at_first_error"][0] == pytest.approx(2 / 3)


# ------------------------------------------------------------------------ step ablation


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n_ops=st.integers(1, 8))
def test_strip_words_undoes_verbalise(seed: int, n_ops: int) -> None:
    p = arith.generate(1, seed=seed, n_ops=(n_ops, n_ops))[0]
    steps = arith.gold_steps(p)
    worded = E.verbalise(p, steps)
    assert tuple(E.strip_words(s) for s in worded) == tuple(steps)
    words = [E.strip_math(s) for s in worded]
    assert all(not E.MATH_RE.search(w) for w in words[:-1])  # the equations are gone
    assert words[-1] == steps[-1]  # the answer line is the same in every condition


_TEXT = st.text(alphabet="0123456789 +-*/x=.:;,abcDEF\t", max_size=40)
_WORDS = st.lists(
    st.sampled_from(["Then", "Dev", "finds", "more", "apples", "are", "taken", "away", "of"]),
    min_size=1,
    max_size=6,
).map(" ".join)
_EXPR = st.lists(
    st.tuples(st.sampled_from(["+", "-", "*", "/", "="]), st.integers(0, 999)),
    min_size=1,
    max_size=3,
).flatmap(
    lambda tail: st.integers(0, 999).map(
        lambda first: " ".join([str(first), *(f"{op} {n}" for op, n in tail)])
    )
)


@settings(max_examples=300, deadline=None)
@given(text=_TEXT)
def test_stripping_is_idempotent_and_total(text: str) -> None:
    words, maths = E.strip_math(text), E.strip_words(text)
    assert E.strip_math(words) == words
    assert E.strip_words(maths) == maths
    assert not E.MATH_RE.search(words)  # no arithmetic survives in the words condition
    # every number of the input's expressions is kept, in order, by strip_words
    if E.MATH_RE.search(text):
        assert words  # a step stays a step (labels carry over)
        found = re.findall(r"\d+", " ".join(E.MATH_RE.findall(text)))
        assert re.findall(r"\d+", maths) == found
    else:
        assert maths == text and words == text  # nothing to strip: unchanged


@settings(max_examples=200, deadline=None)
@given(words=_WORDS, expr=_EXPR, sep=st.sampled_from([": ", " ", ", "]))
def test_stripping_splits_words_from_the_equation(words: str, expr: str, sep: str) -> None:
    step = f"{words}{sep}{expr}"
    assert E.strip_words(step) == expr  # the equation tokens, exactly
    assert E.strip_math(step) == words  # the words, exactly
    assert E.strip_math(expr) == E.NO_WORDS  # nothing but maths: a placeholder, not maths


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n_ops=st.integers(1, 6), extra=st.integers(0, 2))
def test_ablate_steps_keeps_the_step_count_and_leaks_no_arithmetic(
    seed: int, n_ops: int, extra: int
) -> None:
    p = arith.generate(1, seed=seed, n_ops=(n_ops, n_ops))[0]
    gold = arith.gold_steps(p)
    # extra equation lines past the question's operations are not verbalised
    steps = (*gold[:-1], *(f"{k} + 1 = {k + 1}" for k in range(extra)), gold[-1])
    out = {c: E.ablate_steps(p, steps, c) for c in E.STEP_CONDITIONS}
    assert all(len(v) == len(steps) for v in out.values())
    assert out["math"] == steps  # words removed: the bare arithmetic again
    assert not any(E.MATH_RE.search(s) for s in out["words"])
    assert out["words"][-1] == out["math"][-1] == steps[-1]  # the answer line is kept
    assert all(w != m for w, m in zip(out["words+math"][:n_ops], steps[:n_ops], strict=True))


def test_ablate_steps_rejects_an_unknown_condition() -> None:
    p = arith.generate(1, seed=0, n_ops=(2, 2))[0]
    with pytest.raises(ValueError, match="unknown step condition 'numbers'"):
        E.ablate_steps(p, arith.gold_steps(p), "numbers")


def test_step_ablation_known_answer_with_the_exact_prm() -> None:
    problems = _no_division(10, 4, (2, 4))
    pool = _pool(problems, [[arith.gold_solution(p), _wrong_at(p, 1)] for p in problems])
    res = E.evaluate_step_ablation(OraclePRM(q=1.0), problems, pool, n_boot=30)
    m = res.metrics
    assert m["auroc/math"].value == 1.0
    # the checker cannot parse a worded step: it and every later step score 0 (prefix
    # semantics), whatever their truth: no ranking left
    assert m["auroc_worded/words+math"].value == 0.5
    assert m["auroc_worded/words"].value == 0.5
    assert res.details["strip_words_recovers_math"] == "20/20"


def test_step_ablation_runs_the_shipped_prm() -> None:
    from rewardlab.rewards.registry import load_reward

    problems = _no_division(3, 6, (2, 3))
    pool = _pool(problems, [[arith.gold_solution(p), _wrong_at(p, 0)] for p in problems])
    res = E.evaluate_step_ablation(load_reward("prm"), problems, pool, n_boot=20)
    assert res.details["ungraded_steps"] == {"math": 0, "words+math": 0, "words": 0}
    assert 0.0 <= res.metrics["auroc/math"].value <= 1.0


def test_step_ablation_needs_step_scores() -> None:
    with pytest.raises(TypeError, match="score_steps"):
        E.evaluate_step_ablation(OracleORM(q=1.0), [], [])


# ------------------------------------------------------------------------- breakdowns


def test_pairwise_breakdown_by_language(tmp_path: Path) -> None:
    rows = [
        {"prompt": "1 + 1?", "chosen": "2", "rejected": "3", "language": "de"},
        {"prompt": "1 + 2?", "chosen": "3", "rejected": "4", "language": "de"},
        {"prompt": "2 + 2?", "chosen": "5", "rejected": "4", "language": "fr"},  # gold says 5
        {"prompt": "2 + 3?", "chosen": "5", "rejected": "6"},
    ]
    res = evaluate_pairwise(SumChecker(), _write(tmp_path / "ml.jsonl", rows), n_boot=50)
    assert res.metrics["language/de"].value == 1.0 and res.metrics["language/de"].n == 2
    assert res.metrics["language/fr"].value == 0.0
    assert res.metrics["language/unknown"].value == 1.0
    assert "language/de" in res.baseline
    plain = [{k: v for k, v in r.items() if k != "language"} for r in rows]
    res = evaluate_pairwise(SumChecker(), _write(tmp_path / "plain.jsonl", plain), n_boot=20)
    assert not any(k.startswith("language/") for k in res.metrics)


def test_group_accuracy_hand_worked() -> None:
    out = T.group_accuracy(np.array([1, 0, 1, 1, 0]), ["a", "a", "b", "b", "c"], n_boot=50)
    assert {k: v[0] for k, v in out.items()} == {"a": 0.5, "b": 1.0, "c": 0.0}
    assert out["b"][1:3] == (1.0, 1.0)


# -------------------------------------------------------------------- alignment ceiling


def test_kendall_tau_b_hand_worked_and_with_ties() -> None:
    assert T.kendall_tau_b(np.array([1, 2, 3, 4]), np.array([1, 3, 2, 4])) == pytest.approx(4 / 6)
    # x ties on one pair: n1 = 5 untied pairs; y: all 6; concordant 5 -> 5 / sqrt(30)
    assert T.kendall_tau_b(np.array([1, 1, 2, 3]), np.array([1, 2, 3, 4])) == pytest.approx(
        5 / np.sqrt(30)
    )
    assert T.kendall_tau_b(np.ones(4), np.arange(4)) == 0.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=2, max_size=9))
def test_kendall_properties(xs: list[int]) -> None:
    x = np.array(xs, dtype=float)
    y = np.arange(x.size, dtype=float)
    t = T.kendall_tau_b(x, y)
    assert -1 - 1e-12 <= t <= 1 + 1e-12
    assert t == pytest.approx(T.kendall_tau_b(y, x))
    assert T.kendall_tau_b(x, -y) == pytest.approx(-t)
    if len(set(xs)) > 1:
        assert T.kendall_tau_b(x, x) == pytest.approx(1.0)


def test_auroc_hand_worked() -> None:
    assert T.auroc(np.array([0.9, 0.2, 0.5, 0.5]), np.array([1, 0, 1, 0])) == 0.875
    assert np.isnan(T.auroc(np.array([0.1, 0.2]), np.array([1, 1])))


def test_rank_correlation_of_aligned_and_inverted_models() -> None:
    # 4 models on 6 problems: accuracy j/4 everywhere; gains rise with j (aligned) or fall
    p, j = 6, 4
    num = np.tile(np.arange(1, j + 1, dtype=float), (p, 1))
    den = np.full((p, j), 4.0)
    rising = np.tile(np.linspace(0, 0.3, j), (p, 1))
    out = T.rank_correlation_ci(num, den, rising, n_boot=50)
    assert out["spearman"][:3] == (1.0, 1.0, 1.0) and out["kendall"][0] == 1.0
    assert out["kendall"][3] == j
    out = T.rank_correlation_ci(num, den, rising[:, ::-1], n_boot=50)
    assert out["spearman"][0] == -1.0 and out["kendall"][0] == -1.0
    with pytest.raises(ValueError, match=">= 3"):
        T.rank_correlation_ci(num[:, :2], den[:, :2], rising[:, :2])


def test_pair_wins_ties_and_ungraded() -> None:
    s = np.array([[2.0, 2.0, 1.0, np.nan], [np.nan, 0.0, 1.0, 1.0]])
    y = np.array([[1, 0, 0, 0], [1, 1, 0, 0]], dtype=float)
    wins, pairs = E.pair_wins(s, y)
    # row 0: right 2.0 vs wrong 2.0 (tie: lost), 1.0 (won), NaN (ungraded side: lost): 1 of 3
    # row 1: right NaN loses twice; right 0.0 vs 1.0, 1.0 loses: 0 of 4
    assert wins.tolist() == [1.0, 0.0] and pairs.tolist() == [3.0, 4.0]


def test_ceiling_known_answer_and_cache(tmp_path: Path) -> None:
    problems = _no_division(16, 7, (2, 3))
    texts = [
        [
            arith.gold_solution(p),
            _wrong_at(p, 0),
            _wrong_at(p, 1),
            arith.gold_solution(p) + "\nextra",
        ]
        for p in problems
    ]
    pool = _pool(problems, texts)
    rewards = {
        "orm-exact": OracleORM(q=1.0),
        "prm-exact": OraclePRM(q=1.0),
        "prm-0.7": OraclePRM(q=0.7),
        "prm-0.55": OraclePRM(q=0.55),
    }
    res = E.evaluate_ceiling(rewards, problems, pool, n=2, n_boot=50, cache_dir=tmp_path)
    m = res.metrics
    # the exact ORM orders every right-over-wrong pair: accuracy 1; candidates 0 and 3 are
    # right (pass@1 = 1/2); best-of-2 by it is right unless both drawn are wrong: 1 - 1/6
    assert m["orm-exact/accuracy"].value == 1.0
    assert m["orm-exact/bon_gain"].value == pytest.approx(5 / 6 - 1 / 2)
    # the exact PRM gives the right answer with an extra line 0 (a step beyond the solution):
    # it ties with the wrong ones (ties lose): accuracy 1/2
    assert m["prm-exact/accuracy"].value == 0.5
    assert res.details["pass@1"] == 0.5
    assert -1.0 <= m["rank/kendall"].value <= 1.0 and m["rank/kendall"].n == 4
    assert len(list(tmp_path.glob("*.npy"))) == 4

    class Refuses:
        name = "refuses"

        def score(self, *_: Any) -> list[Score]:
            raise AssertionError("a cached reward must not be scored again")

    again = E.evaluate_ceiling(
        {k: Refuses() for k in rewards}, problems, pool, n=2, n_boot=50, cache_dir=tmp_path
    )
    assert again.metrics["rank/spearman"] == m["rank/spearman"]


def test_score_shift_hand_worked() -> None:
    base = np.array([0.1, 0.2, 0.3, 0.4, np.nan])
    out = T.score_shift(base, np.array([0.4, 0.3, 0.2, 0.1, 0.5]), np.array([0, 0, 1, 1, 1]))
    assert out["spearman"][0] == pytest.approx(-1.0)  # the order is reversed
    assert out["mean_abs_diff"][0] == pytest.approx((0.3 + 0.1 + 0.1 + 0.3) / 4)
    assert out["spearman"][3] == 4  # the NaN pair is left out
