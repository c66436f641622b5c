"""The testbed's generative verifier (GenRM-FT, Zhang et al. 2024): a chain that re-derives
every step of an ``arith`` candidate, judges it, and ends with a verdict.

The verifier reads the question and the candidate's numbered lines and writes one compact
check line per step, in order, up to and including the first wrong step::

    Question: Ana has 45 coins. Then Ana gives away 12. Then ... becomes 3 times as large. ...
    Answer:
    1|45 - 12 = 33
    2|33 * 3 = 99
    3|The answer is 99.
    Check:
    1:-12 33+12=45|45 Y        <- step 1 should do "- 12" (question); 33 + 12 = 45 = previous
    2:*3 33*3=99|99 Y          <- step 2 should do "* 3"; 33 * 3 = 99 = the step's value
    3:= A99|99 Y               <- no operation left ("="): the answer line repeats 99
    V:Y

A check line is ``k:<expected> <check> <mark>``:

- ``<expected>`` is what step ``k`` must do, copied from the question: its ``k``-th operation
  (``-12``), or ``=`` when the question has no operation left (only the answer line may come);
- ``<check>`` re-derives the step from the previous value ``p`` (the question's start for step
  1, else the value of the step before, which is right: the chain stops at the first error) and
  the candidate's value ``c``, always by addition or one-digit multiplication, which a small
  model does more reliably than subtraction or division: ``a + b`` as ``p+b=r|c``, ``a - b`` as
  ``c+b=r|p``, ``a * b`` as ``p*b=r|c``, ``a / b`` as ``c*b=r|p`` (right iff ``r`` equals the
  value after ``|``). An answer line checks ``A<n>|<p>`` (it must repeat ``p``); an equation
  where the question has no operation left is ``x``; a line that is neither is ``?``;
- ``<mark>`` is ``Y`` (the step is right) or ``N`` (wrong).

The chain stops after the first ``N`` (every later step is judged wrong, as ProcessBench counts
a solution's first error) and ends with ``V:Y`` or ``V:N``: ``Y`` iff every step is right and
the solution ends with its answer line, i.e. the candidate is right by its process.

:func:`build_chain` writes this chain from the testbed's exact step truth
(:func:`rewardlab.tasks.arith.check_steps`): the marks are the truth, the checks the values
above. It is the training target of the shipped verifier (``scripts/train_genrm.py``);
:meth:`ArithVerifyFormat.parse` reads any chain back, never raising.

Step judgments follow the prefix convention: step ``i`` is right iff it and every step before
it are correct (``1.0`` for ``i < first_error`` or when there is none, else ``0.0``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from rewardlab.rewards.generative import GenerativeVerifier, Judgment
from rewardlab.steps import split_lines
from rewardlab.tasks.arith import ANSWER_RE, STEP_RE, check_steps
from rewardlab.types import Candidate, Problem, Sampling, Score

FORMAT_NAME = "arith-check"
PROMPT_HEAD = "Question: {question}\nAnswer:\n"
CHECK_HEAD = "Check:\n"
VERDICT_PREFIX = "V:"
ASSET = "genrm_arith"

_CHECK_LINE = re.compile(r"^(\d{1,3}):(.*)\s([YN])\s*$")
_VERDICT_LINE = re.compile(r"^V:\s*([YN])\b")


@dataclass(frozen=True)
class ChainTruth:
    """What a chain built from the truth says about a candidate.

    ``steps``: 1.0/0.0 per step (prefix convention), ``first_error`` (-1 if none),
    ``verdict``: 1.0 iff every step is right and the text ends with its answer line.
    """

    steps: tuple[float, ...]
    first_error: int
    verdict: float


def candidate_lines(candidate: Candidate) -> tuple[str, ...]:
    """The candidate's lines as the verifier sees and judges them (the testbed's segmentation:
    one step per non-blank line of the text, as :func:`check_steps` grades them)."""
    return split_lines(candidate.text)


def verify_prompt(problem: Problem, lines: Sequence[str]) -> str:
    """The verification prompt: the question, the candidate's numbered lines, ``Check:``."""
    body = "".join(f"{k}|{line}\n" for k, line in enumerate(lines, start=1))
    return PROMPT_HEAD.format(question=problem.question) + body + CHECK_HEAD


def chain_truth(problem: Problem, text: str) -> ChainTruth:
    """The judgments a perfect verifier gives ``text`` (from :func:`check_steps`)."""
    report = check_steps(problem, text)
    fe = report.first_error
    steps = tuple(1.0 if fe == -1 or i < fe else 0.0 for i in range(len(report.steps)))
    complete = bool(report.steps) and ANSWER_RE.match(report.steps[-1].text) is not None
    ok = fe == -1 and complete and report.correct
    return ChainTruth(steps, fe, 1.0 if ok else 0.0)


def _check(op: str, p: int, b: int, c: int) -> str:
    """The re-derivation of ``p op b = c`` by addition or multiplication only."""
    if op == "+":
        return f"{p}+{b}={p + b}|{c}"
    if op == "-":
        return f"{c}+{b}={c + b}|{p}"
    if op == "*":
        return f"{p}*{b}={p * b}|{c}"
    if op == "/":
        return f"{c}*{b}={c * b}|{p}"
    raise ValueError(f"unknown operator {op!r}")


def build_chain(problem: Problem, text: str) -> str:
    """The verification chain of ``text`` written from the exact step truth (the module
    docstring has the format). Raises ValueError for a problem without the testbed's
    ``meta["ops"]``/``meta["states"]``."""
    ops = problem.meta.get("ops") if problem.meta else None
    states = problem.meta.get("states") if problem.meta else None
    if not ops or not states:
        raise ValueError(f"problem {problem.id!r} has no arith ops/states in meta")
    report = check_steps(problem, text)
    truth = chain_truth(problem, text)
    out: list[str] = []
    prev = int(states[0])
    for i, step in enumerate(report.steps):
        expected = f"{ops[i][1]}{ops[i][2]}" if i < len(ops) else "="
        if (m := STEP_RE.match(step.text)) is not None:
            c = int(m.group(4))
            check = _check(str(ops[i][1]), prev, int(ops[i][2]), c) if i < len(ops) else "x"
        elif (m := ANSWER_RE.match(step.text)) is not None:
            check = f"A{int(m.group(1))}|{prev}"
        else:
            check = "?"
        mark = "Y" if truth.steps[i] == 1.0 else "N"
        out.append(f"{i + 1}:{expected} {check} {mark}\n")
        if mark == "N":
            break
        if step.value is not None:
            prev = step.value
    out.append(f"{VERDICT_PREFIX}{'Y' if truth.verdict == 1.0 else 'N'}")
    return "".join(out)


class ArithVerifyFormat:
    """The :class:`~rewardlab.rewards.generative.VerifierFormat` of the testbed verifier."""

    name = FORMAT_NAME
    stop: tuple[str, ...] = ("V:Y", "V:N")
    judges_steps = True

    def prompt(self, problem: Problem, candidate: Candidate) -> str:
        return verify_prompt(problem, candidate_lines(candidate))

    def parse(self, chain: str, candidate: Candidate) -> Judgment:
        """Per-step judgments and the verdict of a chain; never raises.

        Step ``k``'s mark is the first ``k:... Y|N`` line for it. Steps after a step judged
        wrong are wrong (the chain stops there); a step no line judged, before any wrong one,
        is None. The verdict is the ``V:`` line, except that ``V:Y`` beside a step judged
        wrong reads as 0.0, and ``V:Y`` with steps left unjudged (or no ``V:`` line at all)
        is unreadable (verdict None, with the reason).
        """
        try:
            return _parse(chain, len(candidate_lines(candidate)))
        except Exception as e:  # pragma: no cover - _parse is total; this is the contract
            return Judgment(None, (), f"unparseable chain ({type(e).__name__})")


def _parse(chain: str, n_steps: int) -> Judgment:
    marks: dict[int, float] = {}
    verdict_mark: str | None = None
    for raw in chain.splitlines():
        line = raw.strip()
        if (v := _VERDICT_LINE.match(line)) is not None:
            verdict_mark = v.group(1)
            break
        if (m := _CHECK_LINE.match(line)) is not None:
            k = int(m.group(1))
            if 1 <= k <= n_steps and k not in marks:
                marks[k] = 1.0 if m.group(3) == "Y" else 0.0
    steps: list[float | None] = []
    wrong = False
    for k in range(1, n_steps + 1):
        if wrong:
            steps.append(0.0)
            continue
        mark = marks.get(k)
        steps.append(mark)
        wrong = mark == 0.0
    unjudged = [k for k, s in enumerate(steps, start=1) if s is None]
    if verdict_mark is None:
        return Judgment(None, tuple(steps), "no V:Y/V:N verdict line")
    if verdict_mark == "N":
        return Judgment(0.0, tuple(steps))
    if wrong:
        return Judgment(0.0, tuple(steps), "V:Y contradicts a step judged wrong")
    if unjudged or n_steps == 0:
        return Judgment(None, tuple(steps), f"V:Y with steps {unjudged or '[]'} unjudged")
    return Judgment(1.0, tuple(steps))


class ArithGenRM(GenerativeVerifier):
    """The testbed verifier: a :class:`GenerativeVerifier` with :class:`ArithVerifyFormat`
    and a ``fingerprint`` (weights + sampling), so stored scores of other weights or another
    ``V``/temperature/seed are never reused."""

    def __init__(self, *args: Any, fingerprint: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fingerprint = fingerprint

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        """As :meth:`GenerativeVerifier.score`; each score's ``info`` also holds the tokens its
        ``V`` chains cost (``verify_prompt_tokens``, ``verify_generated_tokens``), so stored
        scores keep the verifier's own compute."""
        scores = super().score(problems, candidates)
        return [
            replace(s, info={**s.info, "verify_prompt_tokens": p, "verify_generated_tokens": g})
            for s, (p, g) in zip(scores, self.last_tokens, strict=True)
        ]


def shipped_path(asset: str, what: str, make: str) -> Path:
    """The directory of a shipped verifier under ``rewardlab/assets`` (raises naming ``make``,
    the command that makes it, when the weights are missing)."""
    path = Path(str(resources.files("rewardlab") / "assets" / asset))
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{what} is not installed at {path}; make it with `{make}`")
    return path


def asset_path() -> Path:
    """The shipped verifier's directory (raises naming the script that makes it)."""
    return shipped_path(ASSET, "the testbed generative verifier", "python scripts/train_genrm.py")


def build_verifier(
    path: str | Path,
    fmt: Any,
    *,
    V: int,
    temperature: float | None,
    seed: int,
    max_new_tokens: int,
    device: str | None,
    name: str,
    max_batch_size: int,
) -> ArithGenRM:
    """A trained testbed verifier: the HF policy in ``path`` writing ``fmt``'s chains (or
    probes), ``V`` per candidate (greedy for ``V == 1`` unless ``temperature`` says otherwise,
    else T = 1.0), fingerprinted by its weights and sampling."""
    from rewardlab.policies.hf import HFPolicy
    from rewardlab.rewards.learned import weights_fingerprint

    if V < 1:
        raise ValueError(f"V must be >= 1, got {V}")
    path = Path(path)
    temp = (0.0 if V == 1 else 1.0) if temperature is None else float(temperature)
    policy = HFPolicy.from_dir(path, name=name, device=device, max_batch_size=max_batch_size)
    sampling = Sampling(temperature=temp, top_p=1.0, max_new_tokens=max_new_tokens, seed=seed)
    fp = f"{weights_fingerprint(path)}-V{V}-T{temp:g}-s{seed}-m{max_new_tokens}"
    return ArithGenRM(policy, fmt, n_verifications=V, sampling=sampling, name=name, fingerprint=fp)


def load_genrm(
    path: str | Path,
    *,
    V: int = 1,
    temperature: float | None = None,
    seed: int = 0,
    max_new_tokens: int = 256,
    device: str | None = None,
    name: str = "genrm",
    max_batch_size: int = 64,
) -> ArithGenRM:
    """A testbed verifier from a checkpoint directory.

    Args:
        V: verification chains per candidate; the score is the mean verdict.
        temperature: of the chains; default 0 (greedy) for ``V == 1``, else 1.0.
        seed: of sampled chains (mixed with each prompt's text by the policy).
        max_new_tokens: longest chain (a chain cut off has no verdict: unreadable).
        device: ``cpu``/``cuda``; default CUDA when available.
    """
    return build_verifier(
        path,
        ArithVerifyFormat(),
        V=V,
        temperature=temperature,
        seed=seed,
        max_new_tokens=max_new_tokens,
        device=device,
        name=name,
        max_batch_size=max_batch_size,
    )


def load_default_genrm(**kwargs: Any) -> ArithGenRM:
    """The shipped testbed verifier (``assets/genrm_arith``), named ``genrm``; registry specs
    ``genrm`` (greedy, V = 1) and ``genrm:V=4,temperature=1.0`` pass their arguments here."""
    return load_genrm(asset_path(), **kwargs)
