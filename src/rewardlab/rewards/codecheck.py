"""Code-checked generative PRM: the verifier writes one line of Python per step, the sandbox
runs it, and the step is judged by the result.

GenPRM (Zhao et al. 2025) has the verifier write a critique plus Python per step and feeds the
execution result back; rStar-Math (Guan et al. 2025) keeps a step only when its code runs and
agrees. Here the verifier's chain holds, for each step ``i`` of the candidate (1-based), a line

    step i: <one line of Python that computes the step's result>

(an expression, or an assignment whose value is taken). Every line of every chain in a batch
is executed in ONE :func:`rewardlab.sandbox.run` call (never in this process); the parent
compares each value with the number the candidate's step states (the last number after
``=``, or ``The answer is n``), to that number's own precision
(:func:`rewardlab.rewards.code_steps.reproduces`). A line that raises (or is killed at the
run's limits) is a wrong step; a line that is not Python at all (it does not parse: prose)
is no line; a step with no line or no stated number is not judged (None). The chain's
verdict is 1.0 when every judged step reproduces, 0.0 when one does not, None when none was
judged.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardlab.policies.prompts import plain_prompt
from rewardlab.rewards.code_steps import execute_lines, reproduces
from rewardlab.rewards.generative import GenerativeVerifier, Judgment
from rewardlab.sandbox import Limits, SandboxConfig
from rewardlab.types import Candidate, Problem, Sampling

_LINE = re.compile(r"^\s*(?:#\s*)?step\s*(\d{1,3})\s*[:.)]\s*(.+?)\s*$", re.IGNORECASE)
_CLAIMED = re.compile(r"=\s*\$?\s*(-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)(?![\d.]*\d)")
_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations
_ANSWER = re.compile(r"answer is\s*:?\s*\$?(-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)", re.I)

LINE_RUNNER = r"""
import json, math, sys
for i, code in enumerate(json.loads(sys.stdin.read())):
    ns = {"math": math, **{k: getattr(math, k) for k in dir(math) if not k.startswith("_")}}
    try:
        try:
            value = eval(compile(code, "<step>", "eval"), ns)
        except SyntaxError:
            before = set(ns)
            exec(compile(code, "<step>", "exec"), ns)
            new = [k for k in ns if k not in before and not k.startswith("_")]
            if not new:
                raise ValueError("the line assigns nothing")
            value = ns[new[-1]]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"not a number: {type(value).__name__}")
        rec = {"i": i, "ok": True, "v": value if type(value) is int else repr(float(value))}
    except BaseException as exc:
        rec = {"i": i, "ok": False, "error": type(exc).__name__}
    print(json.dumps(rec), flush=True)
"""


def claimed_value(step: str) -> str | None:
    """The number a candidate's step states: ``the answer is n``, else the number right after
    its last ``=`` (GSM8K's ``<<a*b=c>>`` annotations are ignored)."""
    text = _CALCULATOR.sub("", step)
    if (m := _ANSWER.search(text)) is not None:
        return m.group(1).replace(",", "")
    found = _CLAIMED.findall(text)
    return found[-1].replace(",", "") if found else None


def code_lines(chain: str) -> dict[int, str]:
    """``{step index (0-based): code}`` from ``step i: <code>`` lines (the last one per step
    wins; code fences and inline backticks are stripped). Never raises."""
    out: dict[int, str] = {}
    for line in str(chain).splitlines():
        m = _LINE.match(line.strip().strip("`"))
        if m is None:
            continue
        code = m.group(2).strip().strip("`").strip()
        if code and int(m.group(1)) >= 1 and is_python(code):
            out[int(m.group(1)) - 1] = code
    return out


def is_python(code: str) -> bool:
    """Whether a line parses as Python (parsing only: nothing runs in this process)."""
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _default_config() -> SandboxConfig:
    return SandboxConfig(limits=Limits(wall_s=10.0, cpu_s=5, memory_mb=256))


@dataclass(frozen=True)
class CodeCheckFormat:
    """A :class:`~rewardlab.rewards.generative.VerifierFormat` with a batched parser that runs
    the chains' code in the sandbox (see the module docstring).

    Attributes:
        question_prompt: the policy's prompt wrapper (``policy.format_prompt``).
        config: sandbox configuration of the batch's run.
        max_runs: re-runs allowed when a line exhausts the run's limits (the line in flight
            is then judged wrong and the rest run again).
    """

    question_prompt: Callable[[str], str] = plain_prompt
    config: SandboxConfig = field(default_factory=_default_config)
    max_runs: int = 4
    name: str = "codecheck"
    stop: tuple[str, ...] = ()
    judges_steps: bool = True

    def prompt(self, problem: Problem, candidate: Candidate) -> str:
        numbered = "\n".join(f"{i + 1}) {s}" for i, s in enumerate(candidate.steps))
        instruction = (
            "Turn each step of the solution into one line of Python that computes the result "
            "that step states. Write one line per step as 'step <number>: <Python "
            "expression>' and nothing else. Example: for the step '2) She buys 12 + 5 = 17 "
            "pens' write 'step 2: 12 + 5'.\n\n"
            f"Question: {problem.question}\n\nSolution:\n{numbered}\n"
        )
        return self.question_prompt(instruction) + "step 1:"

    def parse(self, chain: str, candidate: Candidate) -> Judgment:
        return self.parse_batch([chain], [candidate])[0]

    def parse_batch(self, chains: Sequence[str], candidates: Sequence[Candidate]) -> list[Judgment]:
        """Judge every chain; all code lines of the batch run in one sandbox call."""
        # a chain continues the prompt's "step 1:" cue, so its first line is step 1's code
        lines = [code_lines(_with_cue(ch)) for ch in chains]
        codes = sorted({c for row in lines for c in row.values()})
        values, failure = self._execute(codes)
        out = []
        for row, cand in zip(lines, candidates, strict=True):
            if failure:
                out.append(Judgment(None, (), failure))
                continue
            steps: list[float | None] = []
            for i, step in enumerate(cand.steps):
                claimed = claimed_value(step)
                if i not in row or claimed is None:
                    steps.append(None)
                    continue
                got = values[row[i]]
                steps.append(float(not isinstance(got, str) and reproduces(got, claimed)))
            judged = [s for s in steps if s is not None]
            if not judged:
                reason = (
                    "no code line for a step with a stated result" if cand.steps else "no steps"
                )
                out.append(Judgment(None, tuple(steps), reason))
            else:
                out.append(Judgment(min(judged), tuple(steps)))
        return out

    def _execute(self, codes: list[str]) -> tuple[dict[str, int | float | str], str]:
        """Each line's value (a string = why it failed), and a sandbox failure if any; the
        sandbox's output is read with bounds (``code_steps.execute_lines``)."""
        return execute_lines(LINE_RUNNER, codes, self.config, self.max_runs)


def _with_cue(chain: str) -> str:
    """The chain as written after the prompt's ``step 1:`` cue (restored unless present)."""
    text = str(chain)
    return text if _LINE.match(text.strip().split("\n", 1)[0] or "") else "step 1:" + text


def load_codecheck(
    policy: str = "smollm2",
    V: int = 1,
    temperature: float | None = None,
    max_new_tokens: int = 160,
    seed: int = 0,
    device: str | None = "cpu",
    name: str | None = None,
    **kwargs: Any,
) -> GenerativeVerifier:
    """The ``codecheck`` reward: ``policy`` writes a Python line per step; the sandbox judges."""
    from rewardlab.policies.registry import load_policy

    pol = load_policy(policy, device=device)
    temp = (0.0 if V == 1 else 0.7) if temperature is None else float(temperature)
    return GenerativeVerifier(
        pol,
        CodeCheckFormat(question_prompt=pol.format_prompt),
        n_verifications=V,
        sampling=Sampling(temperature=temp, max_new_tokens=max_new_tokens, seed=seed),
        name=name or ("codecheck" if V == 1 else f"codecheck-V{V}"),
        **kwargs,
    )
