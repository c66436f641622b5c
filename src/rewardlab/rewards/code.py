"""Code reward: run a candidate program against its problem's tests in the sandbox.

Problems come from :mod:`rewardlab.tasks.code` (HumanEval/MBPP-style JSONL or the bundled
set): ``meta`` holds ``prompt``, ``entry_point``, ``tests`` (assert strings) and/or ``test`` (a
``check(candidate)`` module), and ``setup``. The reward is 1.0 when every test passes, else 0.0
(pass@1 semantics of human-eval, Chen et al. 2021); ``info`` carries the fraction passed and
per-test results. Tests are judged by :func:`rewardlab.sandbox.judge`: expected values stay
in this process, so the usual reward hacks (``os._exit(0)``, rigged ``__eq__``, patched
asserts, printed "PASSED", edited test files, ``atexit``) score 0.

A candidate is either a full program (typically a fenced block from a chat model) or a
HumanEval-style completion of the prompt; ``mode="auto"`` tells them apart by whether the
extracted code defines the entry point.

>>> from rewardlab.tasks.code import bundled
>>> p = bundled()[0]
>>> reward = CodeReward()
>>> c = Candidate(p.id, p.answer, (p.answer,), None)
>>> reward.score([p], [c])[0].value                      # doctest: +SKIP
1.0
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rewardlab.sandbox import (
    JudgeResult,
    Limits,
    Program,
    RunResult,
    SandboxConfig,
    detect,
    judge,
    parallel_map,
    parse_asserts,
    parse_check,
    resolve_level,
)
from rewardlab.sandbox.judge import Test
from rewardlab.sandbox.pool import default_workers
from rewardlab.sandbox.untrusted import UntrustedInputError, parse_python
from rewardlab.sandbox.zygote import ZygotePool
from rewardlab.types import Candidate, Problem, Score

_LANG = re.compile(r"[ \t]*([A-Za-z0-9_+-]*)")
_CODE_LANGS = {"", "python", "py", "python3", "Python"}


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of each fenced block: a ```` ``` ```` opener (anywhere), the rest
    of its line (the language tag first), then the body up to the next ```` ``` ````.

    Linear time (one forward scan): the candidate writes this text, and the equivalent
    backtracking regex was quadratic in the number of unclosed openers on one line.

    >>> fenced_blocks("x\n```python\nprint(1)\n```\n")
    [('python', 'print(1)\n')]
    """
    out: list[tuple[str, str]] = []
    pos = 0
    while (start := text.find("```", pos)) >= 0:
        eol = text.find("\n", start + 3)
        if eol < 0:
            break  # no opener from here on is followed by a line break
        end = text.find("```", eol + 1)
        if end < 0:
            break  # no opener from here on has a closing fence
        lang = _LANG.match(text, start + 3, eol)
        out.append((lang.group(1) if lang else "", text[eol + 1 : end]))
        pos = end + 3
    return out


def extract_code(text: str, entry_point: str | None = None) -> str:
    """The program in ``text``: the fenced Python block that defines ``entry_point`` (the last
    one if several do), else all Python blocks joined, else ``text`` itself when unfenced."""
    blocks: list[str] = [body for lang, body in fenced_blocks(text) if lang in _CODE_LANGS]
    if not blocks:
        return text
    if entry_point:
        defining = [b for b in blocks if defines(b, entry_point)]
        if defining:
            return defining[-1]
    return "\n\n".join(blocks)


def defines(code: str, name: str) -> bool:
    """Whether ``code`` defines ``name`` at top level (def, class or assignment).

    ``code`` is the candidate's: it is parsed with size and depth bounds
    (:func:`~rewardlab.sandbox.untrusted.parse_python`); code that is invalid or beyond the
    bounds falls back to a linear-time search for a ``def`` line (the sandboxed run then gives
    that candidate its own verdict)."""
    try:
        tree = parse_python(code)
    except (SyntaxError, UntrustedInputError):
        pattern = rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\("
        return re.search(pattern, code, re.M) is not None
    assert isinstance(tree, ast.Module)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                return True
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return True
    return False


def _prompt_imports(prompt: str) -> str:
    return "\n".join(
        line for line in prompt.splitlines() if re.match(r"\s*(import|from)\s+\w", line)
    )


def build_program(
    problem: Problem, text: str, mode: Literal["auto", "full", "completion"] = "auto"
) -> str:
    """The program to test: the candidate's own code, or the prompt followed by it."""
    meta = problem.meta
    prompt, entry = str(meta.get("prompt", problem.question)), str(meta["entry_point"])
    if mode == "completion":
        return prompt + text
    code = extract_code(text, entry)
    if mode == "full" or defines(code, entry):
        imports = _prompt_imports(prompt)  # a full function still needs the prompt's imports
        return f"{imports}\n{code}" if imports else code
    return prompt + code


def problem_tests(problem: Problem) -> tuple[list[Test], str]:
    """The problem's tests as judge tests, and the judge-side set-up code."""
    meta = problem.meta
    entry = str(meta["entry_point"])
    setup = str(meta.get("setup", ""))
    tests: list[Test] = []
    if meta.get("tests"):
        tests += parse_asserts(list(meta["tests"]), entry)
    if meta.get("test"):
        checks, module = parse_check(str(meta["test"]), entry)
        tests += checks
        if module:  # HumanEval test code may use helpers defined in the prompt
            setup = "\n\n".join(s for s in (setup, str(meta.get("prompt", "")), module) if s)
    return tests, setup


def _default_config() -> SandboxConfig:
    return SandboxConfig(limits=Limits(wall_s=30.0, cpu_s=20, memory_mb=512))


@dataclass(frozen=True)
class CodeReward:
    """1.0 if the candidate passes every test of its problem, else 0.0.

    Attributes:
        config: sandbox configuration of one candidate's run (its wall limit covers all tests).
        test_timeout_s: per-test limit inside the run.
        mode: ``auto``, ``full`` (the candidate is a whole program) or ``completion`` (it
            continues the prompt, as HumanEval samples do).
        workers: candidates judged in parallel (0 = one per CPU).
    """

    config: SandboxConfig = field(default_factory=_default_config)
    test_timeout_s: float = 5.0
    mode: Literal["auto", "full", "completion"] = "auto"
    workers: int = 0
    name: str = "code"

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        """One :class:`Score` per candidate; ``info`` has ``passed``, ``total``, ``fraction``,
        ``tests`` (per-test status/detail/source), ``verdict`` and ``level``."""
        if len(problems) != len(candidates):
            raise ValueError("problems and candidates must have the same length")
        pairs = list(zip(problems, candidates, strict=True))
        workers = min(self.workers or default_workers(), max(len(pairs), 1))
        level = resolve_level(self.config, detect(self.config.python))
        if level == "isolated" and len(pairs) > 1:  # pre-isolated workers for the batch
            with ZygotePool(self.config, workers=workers) as pool:
                return parallel_map(lambda p: self._score_one(p, pool.run), pairs, workers)
        return parallel_map(self._score_one, pairs, workers)

    def _score_one(
        self,
        pair: tuple[Problem, Candidate],
        runner: Callable[[Program], RunResult] | None = None,
    ) -> Score:
        problem, candidate = pair
        if "entry_point" not in problem.meta:
            return Score.ungraded("problem has no entry_point (not a code problem?)")
        tests, setup = problem_tests(problem)
        if not tests:
            return Score.ungraded("problem has no tests")
        program = build_program(problem, candidate.text, self.mode)
        if not program.strip():
            return Score(
                0.0,
                info={
                    "reason": "no code in the candidate",
                    "passed": 0,
                    "total": len(tests),
                    "fraction": 0.0,
                },
            )
        result = judge(
            program,
            tests,
            entry_point=str(problem.meta["entry_point"]),
            setup=setup,
            config=self.config,
            test_timeout_s=self.test_timeout_s,
            runner=runner,
        )
        info = _info(result, tests)
        if not result.graded:
            return Score.ungraded(result.ungraded_reason(), **info)
        return Score(1.0 if result.all_passed else 0.0, info=info)


def _info(result: JudgeResult, tests: Sequence[Test]) -> dict[str, Any]:
    per_test: list[Mapping[str, Any]] = [
        {
            "index": o.index,
            "status": o.status,
            "detail": o.detail,
            "test": getattr(t, "source", "") or getattr(t, "expr", ""),
        }
        for o, t in zip(result.outcomes, tests, strict=True)
    ]
    return {
        "passed": result.n_passed,
        "total": len(tests),
        "fraction": result.fraction,
        "tests": per_test,
        "verdict": result.run.verdict,
        "level": result.run.level,
    }
