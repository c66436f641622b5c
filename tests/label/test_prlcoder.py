"""PRLCoder line labels: the mutation operators on hand-made programs (and hypothesis-made
ones), the labelling rule on a tiny problem whose failing mutants are known, and end-to-end
runs of ``rewardlab label --method prlcoder`` through the real sandbox (resume included)."""

from __future__ import annotations

import ast
import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rewardlab.cli.main import app
from rewardlab.label.mutation import OPERATORS, mutants
from rewardlab.label.prlcoder import (
    PRLCoderConfig,
    PRLCoderLabeler,
    mutant_labels,
    program_steps,
    stored_judge,
)
from rewardlab.store import SampleStore
from rewardlab.tasks.code import from_record
from rewardlab.train.process_data import load_stepwise

# ----------------------------------------------------------------------------- operators

HAND = """def f(a, b, xs):
    total = 0
    if a < b and not xs:
        total += a * 2
    while total > -1:
        total -= 1
    flag = True
    return total if flag else xs[1:]
"""


def _by_line(source: str) -> dict[int, list[tuple[str, str]]]:
    out: dict[int, list[tuple[str, str]]] = {}
    for m in mutants(source):
        out.setdefault(m.line, []).append((m.operator, m.mutated.strip()))
    return out


def test_every_operator_on_a_hand_made_program() -> None:
    got = _by_line(HAND)
    assert got[1] == [("delete", "pass"), ("constant", "total = 1")]
    assert set(got[2]) == {
        ("boolop", "if a < b or not xs:"),
        ("negate", "if not (a < b and (not xs)):"),
        ("compare", "if a <= b and not xs:"),
        ("compare", "if a > b and not xs:"),
    }
    assert set(got[3]) == {
        ("delete", "pass"),
        ("arith", "total -= a * 2"),
        ("arith", "total += a / 2"),
        ("constant", "total += a * 3"),
        ("constant", "total += a * 1"),
    }
    assert set(got[4]) == {
        ("negate", "while not total > -1:"),
        ("compare", "while total >= -1:"),
        ("compare", "while total < -1:"),
        ("unary", "while total > 1:"),
        ("constant", "while total > -2:"),
        ("constant", "while total > -0:"),  # the literal 1 under the minus, off by one down
    }
    assert set(got[6]) == {("delete", "pass"), ("constant", "flag = False")}
    assert ("negate", "return total if not flag else xs[1:]") in got[7]
    assert ("constant", "return total if flag else xs[2:]") in got[7]
    assert ("constant", "return total if flag else xs[0:]") in got[7]
    assert 0 not in got and 5 in got  # the def line spans the body: never mutated
    assert {op for ops in got.values() for op, _ in ops} == set(OPERATORS)


def test_docstrings_and_multi_line_nodes_are_left_alone() -> None:
    source = 'def g(x):\n    """Doc 1."""\n    y = (x +\n         1)\n    return y\n'
    lines = {m.line for m in mutants(source)}
    assert lines == {3, 4}  # 3: the "1" constant on its own line; 4: the return
    assert 1 not in lines and 2 not in lines


def test_the_cap_keeps_a_seeded_subset_per_line() -> None:
    full = mutants(HAND)
    capped = mutants(HAND, seed=3, max_per_line=2)
    assert capped == mutants(HAND, seed=3, max_per_line=2)  # deterministic
    assert max(Counter(m.line for m in capped).values()) == 2
    assert set(capped) <= set(full)
    assert {m.line for m in capped} == {m.line for m in full}
    seeds = {tuple(m.mutated for m in mutants(HAND, seed=s, max_per_line=1)) for s in range(8)}
    assert len(seeds) > 1  # the seed matters
    with pytest.raises(ValueError, match="max_per_line"):
        mutants(HAND, max_per_line=0)


_ATOM = st.one_of(st.integers(-3, 12).map(str), st.sampled_from(["a", "b", "x", "xs[1]"]))
_BINOPS = st.sampled_from(["+", "-", "*", "//", "%", "&", "|", "^", "<<"])
_CMPS = st.sampled_from(["<", "<=", ">", ">=", "==", "!=", "in", "not in", "is", "is not"])


def _expr() -> st.SearchStrategy[str]:
    return st.recursive(
        _ATOM,
        lambda inner: st.one_of(
            st.tuples(inner, _BINOPS, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            inner.map(lambda e: f"-{e}"),
            inner.map(lambda e: f"(not {e})"),
        ),
        max_leaves=5,
    )


_COND = st.one_of(
    st.tuples(_expr(), _CMPS, _expr()).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
    st.tuples(_expr(), st.sampled_from(["and", "or"]), _expr()).map(" ".join),
)


@st.composite
def programs(draw: st.DrawFn) -> str:
    lines = ["def f(a, b, xs):", "    x = " + draw(_expr())]
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["assign", "aug", "if", "while", "ifexp"]))
        if kind == "assign":
            lines.append(f"    x = {draw(_expr())}")
        elif kind == "aug":
            lines.append(f"    x {draw(st.sampled_from(['+=', '-=', '*=']))} {draw(_expr())}")
        elif kind == "if":
            lines += [f"    if {draw(_COND)}:", f"        x = {draw(_expr())}"]
        elif kind == "while":
            lines += [f"    while {draw(_COND)}:", "        break"]
        else:
            lines.append(f"    x = {draw(_expr())} if {draw(_COND)} else {draw(_expr())}")
    lines.append(f"    return {draw(_expr())}")
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None)
@given(programs(), st.integers(0, 5), st.sampled_from([None, 1, 3]))
def test_every_mutant_parses_and_differs_in_exactly_one_line(
    source: str, seed: int, cap: int | None
) -> None:
    tree = ast.dump(ast.parse(source))
    src_lines = source.split("\n")
    found = mutants(source, seed=seed, max_per_line=cap)
    assert found  # every generated program has something to mutate (its first assignment)
    assert len({m.program for m in found}) == len(found)  # no duplicates
    for m in found:
        assert m.operator in OPERATORS
        new_tree = ast.parse(m.program)  # parses
        assert ast.dump(new_tree) != tree  # a real change of the program, not only its text
        new_lines = m.program.split("\n")
        assert len(new_lines) == len(src_lines)
        diff = [i for i, (u, v) in enumerate(zip(src_lines, new_lines, strict=True)) if u != v]
        assert diff == [m.line]
        assert src_lines[m.line] == m.original and new_lines[m.line] == m.mutated


# ----------------------------------------------------------------------------- labels


def test_mutant_labels_hand_worked() -> None:
    assert mutant_labels(5, 0, killed=True) == ((False,), 0)
    assert mutant_labels(5, 3, killed=True) == ((True, True, True, False), 3)
    assert mutant_labels(5, 3, killed=True, truncate=False) == ((True,) * 3 + (False,) * 2, 3)
    assert mutant_labels(5, 3, killed=False) == ((True,) * 4, -1)
    assert mutant_labels(5, 3, killed=False, truncate=False) == ((True,) * 5, -1)
    with pytest.raises(ValueError, match="outside"):
        mutant_labels(2, 2, killed=True)


def test_program_steps_skip_blank_lines() -> None:
    steps, step_of = program_steps("def f():\n\n    return 1\n")
    assert steps == ("def f():", "    return 1") and step_of == {0: 0, 2: 1}


FIRST_POSITIVE = {
    "task_id": "tiny/first_positive",
    "prompt": "def first_positive(xs):\n",
    "entry_point": "first_positive",
    "canonical_solution": (
        "def first_positive(xs):\n"
        "    for x in xs:\n"
        "        if x > 0:\n"
        "            return x\n"
        "    return None\n"
    ),
    "tests": ["assert first_positive([-1, 2, 3]) == 2", "assert first_positive([-5]) is None"],
}


def test_labels_of_a_tiny_program_with_known_failing_mutants(tmp_path: Path) -> None:
    problem = from_record(FIRST_POSITIVE)
    program = problem.answer
    store = SampleStore(tmp_path / "pool.sqlite")
    counter: Counter[str] = Counter()
    judge = stored_judge(PRLCoderConfig(chunk=8), store, _no_bar, counter)
    records, skipped = PRLCoderLabeler().label([problem], [program], judge)
    assert skipped == []
    ref, *muts = records
    assert ref.info["kind"] == "reference" and ref.labels == (True,) * 5
    by_line = {(r.info["mutated"].strip(), r.info["step"]): r for r in muts}
    assert len(by_line) == len(muts)
    # known: each of these breaks a test, so its line is the first (and last) bad step
    for text, step in [
        ("if x < 0:", 2),  # returns -1 on [-1, 2, 3]
        ("if not x > 0:", 2),
        ("pass", 3),  # return x deleted: [-1, 2, 3] gives None
    ]:
        r = by_line[text, step]
        assert r.info["survived"] is False and r.first_error == step, text
        assert r.labels == (True,) * step + (False,)
        assert r.completions[-1].strip() == text
    # known survivors: x >= 0 and x > 1 pass both tests (bugs the tests miss); deleting
    # "return None" is an equivalent mutant (the function returns None anyway)
    for text, step in [("if x >= 0:", 2), ("if x > 1:", 2), ("return None", 4)]:
        r = by_line[text if text != "return None" else "pass", step]
        assert r.info["survived"] is True and r.first_error == -1
        assert r.labels == (True,) * (step + 1) and r.kept
    dropped, _ = PRLCoderLabeler(survivors="drop").label([problem], [program], judge)
    assert {r.id for r in dropped if not r.kept} == {r.id for r in muts if r.info["survived"]}
    assert counter["cached"] == len(records)  # the second labelling judged nothing
    store.close()


def _no_bar(_: str, __: int):  # type: ignore[no-untyped-def]
    from contextlib import nullcontext

    return nullcontext(lambda done, total: None)


def test_a_mutant_that_never_ends_is_killed_by_the_test_timeout(tmp_path: Path) -> None:
    problem = from_record(
        {
            "task_id": "tiny/count",
            "prompt": "def count(n):\n",
            "entry_point": "count",
            "canonical_solution": (
                "def count(n):\n    i = 0\n    while i != n:\n        i += 1\n    return i\n"
            ),
            "tests": ["assert count(3) == 3"],
        }
    )
    labeler = PRLCoderLabeler()
    hang = [m for m in labeler.plan(problem.answer) if m.mutated == "        i -= 1"]
    assert len(hang) == 1
    store = SampleStore(tmp_path / "pool.sqlite")
    judge = stored_judge(PRLCoderConfig(test_timeout_s=0.5, wall_s=5), store, _no_bar, Counter())
    records, _ = labeler.label([problem], [problem.answer], judge)
    r = next(r for r in records if r.info.get("mutated") == "        i -= 1")
    assert r.info["survived"] is False and r.labels == (True, True, True, False)
    store.close()


def test_a_reference_that_fails_its_tests_is_skipped_with_the_reason(tmp_path: Path) -> None:
    broken = from_record(
        {**FIRST_POSITIVE, "canonical_solution": "def first_positive(xs):\n    return xs[0]\n"}
    )
    store = SampleStore(tmp_path / "pool.sqlite")
    judge = stored_judge(PRLCoderConfig(), store, _no_bar, Counter())
    records, skipped = PRLCoderLabeler().label([broken], [broken.answer], judge)
    assert records == [] and skipped == [
        {"id": "tiny/first_positive", "reason": "reference fails", "passed": 0}
    ]
    store.close()


# ----------------------------------------------------------------------------- end to end


def test_cli_labels_bundled_problems_resumes_and_feeds_the_prm_reader(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "prl"
    args = ["label", "--method", "prlcoder", "--task", "code", "--problems", "3"]
    args += ["--out", str(out), "--mutants-per-line", "2", "--chunk", "8"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problems_labelled"] == 3 and summary["mutants"] > 0
    assert summary["killed"] + summary["survived"] + summary["ungraded"] == summary["mutants"]
    assert summary["this_process"]["judged"] == 3 + summary["mutants"]
    rows = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert len(rows) == summary["records_kept"] == 3 + summary["mutants"] - summary["ungraded"]
    for row in rows:
        if row["info"]["kind"] == "mutant":
            assert row["completions"][-1] == row["info"]["mutated"]
            assert row["labels"][-1] is row["info"]["survived"]
    examples = load_stepwise(out / "labels.jsonl")  # what `rewardlab train --objective prm` reads
    assert sum(len(e.step_labels) for e in examples) == summary["steps_labelled"]
    assert "| mutants | killed |" in (out / "report.md").read_text()
    before = (out / "labels.jsonl").read_bytes()
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    resumed = json.loads((out / "summary.json").read_text())["this_process"]
    assert resumed == {"judged": 0, "cached": 3 + summary["mutants"]}
    assert (out / "labels.jsonl").read_bytes() == before


def test_cli_refuses_non_code_tasks_and_missing_references(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["label", "--method", "prlcoder", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "--task must be 'code'" in bad.output
    data = tmp_path / "p.jsonl"
    data.write_text(json.dumps({**FIRST_POSITIVE, "canonical_solution": ""}) + "\n")
    res = runner.invoke(
        app, ["label", "--method", "prlcoder", "--task", str(data), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2 and "has no reference solution" in res.output
    stray = runner.invoke(
        app,
        ["label", "--method", "prlcoder", "--task", "code", "--rollouts", "4", "--out", "o"],
    )
    assert stray.exit_code == 2 and "--rollouts does not apply to --method prlcoder" in (
        " ".join(stray.output.split())
    )
    other = runner.invoke(app, ["label", "--method", "mc", "--survivors", "drop", "--out", "o"])
    assert other.exit_code == 2 and "only prlcoder reads it" in " ".join(other.output.split())
    assert not (tmp_path / "o").exists() and not Path("o").exists()
