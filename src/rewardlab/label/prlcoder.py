"""PRLCoder line labels: mutate one line of a passing program, run the tests, label the line.

PRLCoder (papers.md #57, "Process-Supervised Reinforcement Learning for Code Generation")
builds line-level process supervision for code without human labels: edit a line of a program
that passes its tests, run the tests again, and label the line by the result. Here the edit is
a mutation operator (:mod:`rewardlab.label.mutation`; the paper has a teacher model rewrite the
line) and the tests run in the sandbox (:class:`~rewardlab.rewards.code.CodeReward`, one
sandboxed judge run per program; the batch runs on pre-isolated workers in parallel).

Steps are the program's non-blank lines. Records (TRL stepwise, :class:`StepLabels`):

- the **reference** (``sample_index`` 0): the passing program, every line positive
  (``first_error`` -1);
- a **killed** mutant (some test fails, errors or times out): the lines before the mutated one
  are positive (they are the reference's own lines), the mutated line is **negative**
  (``first_error`` = its step); the record stops there when ``truncate`` (the repo's default:
  what follows a bad step is undetermined), else the later lines are labelled bad as every
  labeler does (:func:`~rewardlab.label.base.labels_from_first_error`);
- a **surviving** mutant (every test still passes): the mutated line is **positive** by
  default (``survivors="positive"``, truncated the same way), the paper's rule ("a line is
  correct if the program still compiles and passes after the edit"). A survivor is either an
  equivalent mutant (``i < n`` -> ``i != n`` in a counting loop: the line *is* correct) or a
  real bug the tests miss; nothing here can tell them apart, so the record says
  ``info["survived"] = True`` and ``survivors="drop"`` leaves survivors out instead (kept =
  False). Positive rather than a third "ambiguous" label because the stepwise format and the
  PRM trainer take a bool or a probability per step, and a program that passes every test is,
  to the only oracle the method has, as right as the reference.
- a mutant the sandbox could not grade (an ``unsupported`` test, a sandbox failure) is kept =
  False with the reason; it is counted, never labelled.

A reference that fails its own tests is not mutated; the problem is listed as skipped with the
judge's verdict. Mutant ``i`` of a problem has ``sample_index`` ``i + 1`` (ids
``<problem>#<i + 1>``), its operator, line and both versions of the line in ``info``.

>>> mutant_labels(n_steps=4, step=2, killed=True)
((True, True, False), 2)
>>> mutant_labels(n_steps=4, step=2, killed=False)
((True, True, True), -1)
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from rewardlab.label.base import StepLabels, labels_from_first_error
from rewardlab.label.job import ProgressFactory, null_progress
from rewardlab.label.mutation import Mutant, mutants
from rewardlab.store import Store, run_store, work_digest
from rewardlab.types import Candidate, Problem, Score

LABELER = "prlcoder"
Judge = Callable[[Sequence[Problem], Sequence[str]], list[Score]]
Survivors = Literal["positive", "drop"]


def program_steps(program: str) -> tuple[tuple[str, ...], dict[int, int]]:
    """The steps of a program (its non-blank lines, as written) and, per line index of
    ``program.split("\\n")``, the step it is (blank lines have none)."""
    steps: list[str] = []
    step_of: dict[int, int] = {}
    for i, line in enumerate(program.split("\n")):
        if line.strip():
            step_of[i] = len(steps)
            steps.append(line)
    return tuple(steps), step_of


def mutant_labels(
    n_steps: int, step: int, killed: bool, truncate: bool = True
) -> tuple[tuple[bool, ...], int]:
    """Labels of a mutant's steps and its first error (the module docstring's rule).

    Killed: positive before ``step``, negative at it (and after it when not ``truncate``).
    Survived: positive through ``step`` (through the end when not ``truncate``), first error -1.
    """
    if not 0 <= step < n_steps:
        raise ValueError(f"mutated step {step} outside 0..{n_steps - 1}")
    if killed:
        return labels_from_first_error(n_steps, step, truncate), step
    return (True,) * (step + 1 if truncate else n_steps), -1


def passed(score: Score) -> bool | None:
    """True when every test passed, False when one did not, None when ungraded."""
    return None if score.value is None else score.value == 1.0


@dataclass(frozen=True)
class PRLCoderLabeler:
    """Line labels of passing programs from their one-line mutants (module docstring).

    Args:
        mutants_per_line: keep at most this many mutants per line (seeded subset); None: all.
        seed: the seed of that subset.
        survivors: ``positive`` (label the surviving mutant's line good) or ``drop``.
        truncate: stop each mutant record at its mutated line.
    """

    mutants_per_line: int | None = None
    seed: int = 0
    survivors: Survivors = "positive"
    truncate: bool = True

    def __post_init__(self) -> None:
        if self.survivors not in ("positive", "drop"):
            raise ValueError(f"survivors must be 'positive' or 'drop', got {self.survivors!r}")
        if self.mutants_per_line is not None and self.mutants_per_line < 1:
            raise ValueError(f"mutants_per_line must be >= 1, got {self.mutants_per_line}")

    @property
    def name(self) -> str:
        return LABELER

    def plan(self, program: str) -> list[Mutant]:
        """The mutants of ``program`` this labeler tests."""
        return mutants(program, self.seed, self.mutants_per_line)

    def reference_record(self, problem: Problem, program: str, score: Score) -> StepLabels:
        """The passing reference: every step positive."""
        steps, _ = program_steps(program)
        info = {"kind": "reference", "program": program, "passed": score.info.get("passed")}
        return StepLabels(
            problem, 0, steps, (True,) * len(steps), LABELER, -1, len(steps), info=info
        )

    def mutant_record(self, problem: Problem, index: int, m: Mutant, score: Score) -> StepLabels:
        """The record of mutant ``index`` (0-based) of ``problem``, judged ``score``."""
        steps, step_of = program_steps(m.program)
        step = step_of[m.line]
        info: dict[str, Any] = {
            "kind": "mutant",
            "operator": m.operator,
            "line": m.line,
            "step": step,
            "original": m.original,
            "mutated": m.mutated,
            "program": m.program,
            "passed": score.info.get("passed"),
            "total": score.info.get("total"),
        }
        ok = passed(score)
        if ok is None:
            info["ungraded"] = str(score.info.get("reason", "ungraded"))
            return StepLabels(
                problem, index + 1, (), (), LABELER, -1, len(steps), kept=False, info=info
            )
        info["survived"] = ok
        labels, first_error = mutant_labels(len(steps), step, not ok, self.truncate)
        kept = not (ok and self.survivors == "drop")
        return StepLabels(
            problem,
            index + 1,
            steps[: len(labels)],
            labels,
            LABELER,
            first_error,
            len(steps),
            kept=kept,
            info=info,
        )

    def label(
        self, problems: Sequence[Problem], programs: Sequence[str], judge: Judge
    ) -> tuple[list[StepLabels], list[dict[str, Any]]]:
        """Records of every problem whose reference ``programs[i]`` passes, and the problems
        skipped (``{"id", "reason"}``). ``judge`` runs programs against their problems' tests
        (two calls: the references, then every mutant)."""
        if len(problems) != len(programs):
            raise ValueError(f"{len(problems)} problems for {len(programs)} programs")
        ref_scores = judge(problems, programs)
        out: list[StepLabels] = []
        skipped: list[dict[str, Any]] = []
        todo: list[tuple[Problem, int, Mutant]] = []
        for p, prog, s in zip(problems, programs, ref_scores, strict=True):
            ok = passed(s)
            if not ok:
                why = "ungraded: " + str(s.info.get("reason", "")) if ok is None else "fails"
                skipped.append(
                    {"id": p.id, "reason": f"reference {why}", "passed": s.info.get("passed")}
                )
                continue
            out.append(self.reference_record(p, prog, s))
            todo += [(p, i, m) for i, m in enumerate(self.plan(prog))]
        scores = judge([p for p, _, _ in todo], [m.program for _, _, m in todo])
        out += [self.mutant_record(p, i, m, s) for (p, i, m), s in zip(todo, scores, strict=True)]
        order = {p.id: k for k, p in enumerate(problems)}
        out.sort(key=lambda r: (order[r.problem.id], r.sample_index))
        return out, skipped


# ------------------------------------------------------------------------------ the job


@dataclass(frozen=True)
class PRLCoderConfig:
    """A ``rewardlab label --method prlcoder`` run (saved in ``summary.json``).

    ``task``: ``code`` (the bundled problems) or a HumanEval/MBPP-style JSONL file whose
    records have a reference solution. ``chunk``: programs per sandbox batch (the unit stored,
    so a killed run resumes after its last finished chunk).
    """

    task: str = "code"
    problems: int | None = None
    seed: int = 0
    mutants_per_line: int | None = None
    survivors: Survivors = "positive"
    truncate: bool = True
    chunk: int = 64
    test_timeout_s: float = 2.0
    wall_s: float = 20.0
    workers: int = 0

    def __post_init__(self) -> None:
        PRLCoderLabeler(self.mutants_per_line, self.seed, self.survivors, self.truncate)
        if self.chunk < 1 or (self.problems is not None and self.problems < 1):
            raise ValueError("chunk and problems must be >= 1")
        if self.test_timeout_s <= 0 or self.wall_s <= 0:
            raise ValueError("test_timeout_s and wall_s must be > 0")


def load_code_problems(spec: str, n: int | None = None) -> list[Problem]:
    """The bundled code problems (``"code"``) or a JSONL file's, the first ``n``; each must
    carry a reference solution (ValueError naming the first that does not)."""
    from rewardlab.tasks import code

    if spec == "code":
        problems = code.bundled()
    elif spec.endswith(".jsonl"):
        if not Path(spec).is_file():
            raise FileNotFoundError(f"task file {spec} does not exist")
        problems = code.load_jsonl(spec)
    else:
        raise ValueError(
            f"prlcoder labels code: --task must be 'code' (the bundled problems) or a "
            f"HumanEval/MBPP-style .jsonl file, got {spec!r}"
        )
    problems = problems[:n]
    for p in problems:
        if not p.answer.strip():
            raise ValueError(
                f"{spec}: problem {p.id!r} has no reference solution (canonical_solution/code)"
            )
    if not problems:
        raise ValueError(f"{spec}: no problems")
    return problems


def reference_program(problem: Problem) -> str:
    """The whole program of a problem's reference solution (a HumanEval body gets its
    prompt in front, as the code reward builds it)."""
    from rewardlab.rewards.code import build_program

    return build_program(problem, problem.answer, "auto")


def stored_judge(
    cfg: PRLCoderConfig, store: Store, bar: ProgressFactory, counter: Counter[str]
) -> Judge:
    """A judge that reads verdicts from ``store`` and runs only the missing programs, ``chunk``
    at a time in one batched :class:`CodeReward` call each, storing each chunk as it finishes.
    ``counter`` counts ``judged`` (run by this process) and ``cached`` programs."""
    from rewardlab.rewards.code import CodeReward
    from rewardlab.sandbox import Limits, SandboxConfig

    limits = Limits(wall_s=cfg.wall_s, cpu_s=max(1, int(cfg.wall_s)), memory_mb=512)
    reward = CodeReward(
        config=SandboxConfig(limits=limits),
        test_timeout_s=cfg.test_timeout_s,
        mode="full",
        workers=cfg.workers,
    )
    name = "prlcoder-judge@" + work_digest([cfg.test_timeout_s, cfg.wall_s])

    def key(p: Problem, program: str) -> tuple[str, int]:
        m = p.meta
        return work_digest([m.get("tests"), m.get("test"), m.get("setup"), program]), 0

    def judge(problems: Sequence[Problem], programs: Sequence[str]) -> list[Score]:
        keys = [key(p, prog) for p, prog in zip(problems, programs, strict=True)]
        found = store.scores(name, keys)
        missing = [i for i, s in enumerate(found) if s is None]
        counter["cached"] += len(found) - len(missing)
        with bar(f"judging {len(missing)} programs in the sandbox", len(missing)) as update:
            for start in range(0, len(missing), cfg.chunk):
                part = missing[start : start + cfg.chunk]
                cands = [Candidate(problems[i].id, programs[i], (programs[i],), None) for i in part]
                scores = reward.score([problems[i] for i in part], cands)
                store.put_scores(name, [(*keys[i], s) for i, s in zip(part, scores, strict=True)])
                for i, s in zip(part, scores, strict=True):
                    found[i] = s
                counter["judged"] += len(part)
                update(start + len(part), len(missing))
        done = [s for s in found if s is not None]
        assert len(done) == len(found), "a program was left unjudged"
        return done

    return judge


def run_prlcoder(
    cfg: PRLCoderConfig,
    out: Path,
    progress: ProgressFactory | None = None,
    store_at: str | None = None,
) -> dict[str, Any]:
    """Label, and write ``labels.jsonl``, ``summary.json`` and ``report.md`` to ``out``;
    verdicts live in the run's store (``out/pool.sqlite`` unless ``store_at`` names another,
    see :func:`rewardlab.store.run_store`), so a rerun judges only what is missing."""
    bar = progress or null_progress
    started = time.time()
    problems = load_code_problems(cfg.task, cfg.problems)
    out.mkdir(parents=True, exist_ok=True)
    labeler = PRLCoderLabeler(cfg.mutants_per_line, cfg.seed, cfg.survivors, cfg.truncate)
    counter: Counter[str] = Counter()
    store = run_store(out, store_at)
    try:
        judge = stored_judge(cfg, store, bar, counter)
        records, skipped = labeler.label(problems, [reference_program(p) for p in problems], judge)
    finally:
        store.close()
    seconds = time.time() - started
    _write_jsonl(out / "labels.jsonl", [r for r in records if r.kept])
    summary = summarize(cfg, records, skipped, len(problems))
    summary["this_process"] = {"judged": counter["judged"], "cached": counter["cached"]}
    summary["seconds"] = round(seconds, 2)
    summary["labels_per_s"] = round(summary["steps_labelled"] / max(seconds, 1e-9), 2)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "report.md").write_text(report_markdown(summary))
    return summary


def _write_jsonl(path: Path, records: Sequence[StepLabels]) -> None:
    tmp = path.with_suffix(f".jsonl.{os.getpid()}.tmp")
    with tmp.open("w") as fh:
        for r in records:
            fh.write(json.dumps(r.to_record(), ensure_ascii=False) + "\n")
    tmp.replace(path)


def summarize(
    cfg: PRLCoderConfig,
    records: Sequence[StepLabels],
    skipped: Sequence[dict[str, Any]],
    n_problems: int,
) -> dict[str, Any]:
    """Counts of a run: mutants, killed fraction (overall and per operator), labels."""
    muts = [r for r in records if r.info.get("kind") == "mutant"]
    graded = [r for r in muts if "survived" in r.info]
    per_op: dict[str, dict[str, Any]] = {}
    for op in sorted({str(r.info["operator"]) for r in muts}):
        rows = [r for r in graded if r.info["operator"] == op]
        killed = sum(not r.info["survived"] for r in rows)
        n_op = sum(r.info["operator"] == op for r in muts)
        per_op[op] = {
            "mutants": n_op,
            "killed": killed,
            "killed_fraction": _frac(killed, len(rows)),
        }
    kept = [r for r in records if r.kept]
    labels = [y for r in kept for y in r.labels]
    killed = sum(not r.info["survived"] for r in graded)
    return {
        "config": asdict(cfg),
        "labeler": LABELER,
        "problems": n_problems,
        "problems_labelled": n_problems - len(skipped),
        "skipped": list(skipped),
        "mutants": len(muts),
        "ungraded": len(muts) - len(graded),
        "killed": killed,
        "survived": len(graded) - killed,
        "killed_fraction": _frac(killed, len(graded)),
        "per_operator": per_op,
        "records_kept": len(kept),
        "steps_labelled": len(labels),
        "negative_steps": sum(not y for y in labels),
    }


def _frac(a: int, b: int) -> float | None:
    return a / b if b else None


def report_markdown(summary: dict[str, Any]) -> str:
    """The run's report for people."""
    cfg = summary["config"]
    kf = summary["killed_fraction"]
    lines = [
        "# rewardlab label — prlcoder (line labels from mutation)",
        "",
        f"Task `{cfg['task']}`: {summary['problems_labelled']} of {summary['problems']} "
        f"problems labelled; mutants per line: {cfg['mutants_per_line'] or 'all'} "
        f"(seed {cfg['seed']}); survivors: {cfg['survivors']}.",
        "",
        "| mutants | killed | survived | ungraded | killed % | records | steps labelled | "
        "negative steps | labels/s |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {summary['mutants']} | {summary['killed']} | {summary['survived']} | "
        f"{summary['ungraded']} | {'–' if kf is None else f'{100 * kf:.1f}'} | "
        f"{summary['records_kept']} | {summary['steps_labelled']} | "
        f"{summary['negative_steps']} | {summary.get('labels_per_s', '–')} |",
        "",
        "| operator | mutants | killed | killed % |",
        "|---|---|---|---|",
    ]
    for op, row in summary["per_operator"].items():
        f = row["killed_fraction"]
        pct = "–" if f is None else f"{100 * f:.1f}"
        lines.append(f"| {op} | {row['mutants']} | {row['killed']} | {pct} |")
    lines.append("")
    if summary["skipped"]:
        lines += ["## Skipped problems", ""]
        lines += [f"- `{s['id']}`: {s['reason']}" for s in summary["skipped"]]
        lines.append("")
    lines += [
        "A killed mutant's line is a negative step (the lines before it positive); a surviving "
        "mutant's line is positive (the paper's rule; it may be an equivalent mutant or a bug "
        "the tests miss). See docs/process_supervision.md#prlcoder.",
        "",
    ]
    return "\n".join(lines)
