"""The testbed's code-checked generative PRM (GenPRM, Zhao et al. 2025; rStar-Math's code
verification, Guan et al. 2025): a trained verifier that turns every step of an ``arith``
candidate into one line of Python, executed in the sandbox; each step is judged by the result.

Why code: the classifier PRMs and the arithmetic-writing GenRM (:mod:`genrm_arith`) must do a
step's arithmetic themselves, and they fail where the policy fails (their errors correlate
with the candidate's: a verifier that copies ``90*8=700`` from the candidate calls it right).
Here the verifier only *transcribes*: for step ``k`` it copies the value the candidate's step
``k - 1`` states and turns the question's ``k``-th sentence into an operation; Python does the
arithmetic. It writes one short line per step, each from its own probe (a
:class:`~rewardlab.rewards.generative.ProbeFormat`) that holds the line before the step and the
question's sentence the step must follow, so every copy is local, and never the step itself,
so the verifier cannot copy what it judges (the parent compares)::

    Before: 9 * 4 = 36                                  <- the candidate's step k - 1
    Rule: Then a friend gives Emma 17 more cards.       <- the question's k-th sentence
    Code:
    36 + 17                                             <- the verifier writes this line;
                                                           the step says 36 * 4 = 144: wrong

The question is split into sentences after ``.``/``?``/``!``: sentence 0 states the start
(the ``Before`` of step 1), sentence ``k`` the operation of step ``k``, the last one asks for
the answer; a step beyond them reads ``Rule: none``. The line for step ``k`` of a candidate
whose question has ``m`` operations is

- ``<p> <op> <b>`` for ``k <= m`` (``p``: the number ``Before`` states, its last; ``op b``: the
  sentence's operation);
- ``<p>`` for ``k = m + 1`` (only the answer line may come: it must repeat ``p``);
- ``raise ValueError(...)`` for a step after ``k = m + 1`` ("the question has no step left")
  or a ``Before`` line that states no number.

An answer line must also repeat the number the step before it states (a rule of the format,
checked by the parent, as the testbed grades answer lines), so an answer written one
operation early is wrong even when it states the final value.

The parent (never the model, never this process) executes every line of a batch in ONE
:func:`rewardlab.sandbox.run` call (:func:`rewardlab.rewards.code_steps.execute_lines`) and
compares each value with the number the step states. Judgments follow ProcessBench's prefix
convention: step ``k`` is right iff its line reproduces its number and every step before it
is right; a step that states no number is wrong. The verdict is 1.0 iff every step is right
and the candidate ends with its answer line. A probe whose output is not Python is unread:
that step is ``None`` and, unless an earlier step is already wrong, so is the verdict (with
the reason); never a guess.

The target lines depend only on the question and the candidate's text (not on the truth), so
:func:`code_for_steps` writes them exactly; they are the training targets of the shipped
verifier (``scripts/train_genrm.py --format code``). Executed, they give the testbed's exact
step truth (:func:`rewardlab.tasks.arith.check_steps`) for every mistake the testbed knows
except one: an equation whose stated value is right although its own arithmetic is not
(``10 - 11 = 9`` where ``10 - 1 = 9`` was due) is judged right (tested; about 1% of the
held-out policy candidates). Every other error of the shipped verifier is a transcription
error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardlab.rewards.code_steps import execute_lines, reproduces
from rewardlab.rewards.codecheck import LINE_RUNNER, is_python
from rewardlab.rewards.generative import Judgment
from rewardlab.rewards.genrm_arith import ArithGenRM, build_verifier, candidate_lines, shipped_path
from rewardlab.sandbox import Limits, SandboxConfig
from rewardlab.tasks.arith import ANSWER_RE, STEP_RE
from rewardlab.types import Candidate, Problem

FORMAT_NAME = "arith-code"
PROBE = "Before: {before}\nRule: {rule}\nCode:\n"
NO_STEP_LEFT = 'raise ValueError("the question has no step left")'
NO_NUMBER_BEFORE = 'raise ValueError("the step before states no number")'
ASSET = "genprm_arith"
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


def question_sentences(question: str) -> list[str]:
    """The question split into sentences (after ``.``, ``?`` or ``!`` and a space)."""
    return [s for s in _SENTENCE_END.split(question.strip()) if s]


def stated_number(line: str) -> int | None:
    """The number a testbed line states: an equation's result or the answer; else None."""
    if (m := STEP_RE.match(line)) is not None:
        return int(m.group(4))
    if (m := ANSWER_RE.match(line)) is not None:
        return int(m.group(1))
    return None


def step_probes(problem: Problem, lines: Sequence[str]) -> list[str]:
    """One probe per step (see the module docstring): ``Before``, ``Rule``, ``Code:``. The
    probe never shows the step itself: the verifier cannot copy what it judges."""
    sentences = question_sentences(problem.question)
    out = []
    for k in range(len(lines)):
        before = sentences[0] if k == 0 else lines[k - 1]
        rule = sentences[k + 1] if k + 1 < len(sentences) else "none"
        out.append(PROBE.format(before=before, rule=rule))
    return out


def code_for_steps(problem: Problem, lines: Sequence[str]) -> list[str]:
    """The Python line of each step (see the module docstring). Raises ValueError for a
    problem without the testbed's ``meta["ops"]``/``meta["states"]``."""
    ops = problem.meta.get("ops") if problem.meta else None
    states = problem.meta.get("states") if problem.meta else None
    if not ops or not states:
        raise ValueError(f"problem {problem.id!r} has no arith ops/states in meta")
    m = len(ops)
    out: list[str] = []
    for k in range(len(lines)):
        before = int(states[0]) if k == 0 else stated_number(lines[k - 1])
        if k > m:
            out.append(NO_STEP_LEFT)
        elif before is None:
            out.append(NO_NUMBER_BEFORE)
        elif k < m:
            out.append(f"{before} {ops[k][1]} {int(ops[k][2])}")
        else:
            out.append(str(before))
    return out


def probe_code(output: str) -> str | None:
    """The line of Python a probe wrote: its first line, stripped; None when it is not
    Python (parsed only; nothing runs here)."""
    code = str(output).split("\n", 1)[0].strip().strip("`").strip()
    return code if code and is_python(code) else None


def judge_values(
    lines: Sequence[str], codes: dict[int, str], values: dict[str, int | float | str]
) -> Judgment:
    """The judgment of one candidate from its steps' lines (0-based step -> code) and their
    executed values (a string value: why the line failed). Pure; see the module docstring.
    Besides its line, an answer line must repeat the number the step before it states (a
    consistency rule of the format, as the testbed grades answer lines: it catches an answer
    written one operation early with the final value)."""
    steps: list[float | None] = []
    wrong = False
    for k, line in enumerate(lines):
        if wrong:
            steps.append(0.0)
            continue
        code = codes.get(k)
        if code is None:
            steps.append(None)
            continue
        stated = stated_number(line)
        got = values.get(code, "not executed")
        ok = stated is not None and not isinstance(got, str) and reproduces(got, str(stated))
        if ok and k > 0 and ANSWER_RE.match(line) is not None:
            ok = stated == stated_number(lines[k - 1])
        steps.append(1.0 if ok else 0.0)
        wrong = not ok
    if wrong:
        return Judgment(0.0, tuple(steps))
    missing = [k + 1 for k, s in enumerate(steps) if s is None]
    if missing:
        return Judgment(None, tuple(steps), f"no code line for steps {missing}")
    if not lines:
        return Judgment(None, (), "no steps")
    complete = ANSWER_RE.match(lines[-1]) is not None
    return Judgment(1.0 if complete else 0.0, tuple(steps))


def _default_config() -> SandboxConfig:
    return SandboxConfig(limits=Limits(wall_s=20.0, cpu_s=10, memory_mb=256))


@dataclass(frozen=True)
class ArithCodeFormat:
    """The :class:`~rewardlab.rewards.generative.ProbeFormat` of the testbed GenPRM: one probe
    per step; ``parse_probes_batch`` executes every probe's line of a batch in one sandbox run."""

    config: SandboxConfig = field(default_factory=_default_config)
    max_runs: int = 4
    name: str = FORMAT_NAME
    stop: tuple[str, ...] = ("\n",)
    judges_steps: bool = True

    def probes(self, problem: Problem, candidate: Candidate) -> list[str]:
        return step_probes(problem, candidate_lines(candidate))

    def parse_probes(self, outputs: Sequence[str], candidate: Candidate) -> Judgment:
        return self.parse_probes_batch([outputs], [candidate])[0]

    def parse_probes_batch(
        self, outputs: Sequence[Sequence[str]], candidates: Sequence[Candidate]
    ) -> list[Judgment]:
        """Judge every candidate from its probes' outputs; all lines run in one sandbox call.
        Never raises on an output (a sandbox failure makes every judgment None, with why)."""
        rows = [
            {k: c for k, out in enumerate(outs) if (c := probe_code(out)) is not None}
            for outs in outputs
        ]
        codes = sorted({c for row in rows for c in row.values()})
        values, failure = execute_lines(LINE_RUNNER, codes, self.config, self.max_runs)
        out = []
        for row, cand in zip(rows, candidates, strict=True):
            if failure:
                out.append(Judgment(None, (), failure))
            else:
                out.append(judge_values(candidate_lines(cand), row, values))
        return out


def asset_path() -> Path:
    """The shipped GenPRM's directory (raises naming the script that makes it)."""
    return shipped_path(
        ASSET,
        "the testbed code-checked verifier",
        "python scripts/train_genrm.py --format code",
    )


def load_genprm(
    path: str | Path,
    *,
    V: int = 1,
    temperature: float | None = None,
    seed: int = 0,
    max_new_tokens: int = 32,
    device: str | None = None,
    name: str = "genprm",
    max_batch_size: int = 64,
) -> ArithGenRM:
    """A testbed GenPRM from a checkpoint directory (arguments as
    :func:`rewardlab.rewards.genrm_arith.load_genrm`; ``V`` samples of every probe, mean
    verdict; ``max_new_tokens`` bounds one probe's line). The verifier is an
    :class:`~rewardlab.rewards.genrm_arith.ArithGenRM` (fingerprint, tokens in ``info``)."""
    return build_verifier(
        path,
        ArithCodeFormat(),
        V=V,
        temperature=temperature,
        seed=seed,
        max_new_tokens=max_new_tokens,
        device=device,
        name=name,
        max_batch_size=max_batch_size,
    )


def load_default_genprm(**kwargs: Any) -> ArithGenRM:
    """The shipped testbed GenPRM (``assets/genprm_arith``), named ``genprm``; registry specs
    ``genprm`` (greedy, V = 1) and ``genprm:V=4,temperature=1.0`` pass their arguments here."""
    return load_genprm(asset_path(), **kwargs)
