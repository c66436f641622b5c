"""Prompted judges for instruct models: GenRM-Base Yes/No and DeepSeek-GRM pointwise scores.

Two :class:`~rewardlab.rewards.generative.VerifierFormat` s for models that follow
instructions (SmolLM2-Instruct, any chat model), run through
:class:`~rewardlab.rewards.generative.GenerativeVerifier` (V samples = k-sample voting,
optional meta-RM filter, ledger, P(Yes) reading on HF policies):

- :class:`YesNoFormat`, GenRM-Base (Zhang et al. 2024, "Generative verifiers"; Singhi et al.
  2025 use it as the untuned verifier): "verify step by step, then say whether the answer is
  correct (Yes/No)". Verdict 1.0 / 0.0.
- :class:`GRMFormat`, DeepSeek-GRM (Liu et al. 2025, "Inference-time scaling for generalist
  reward modeling"): the judge writes principles, then a critique, then ``Score: s`` with
  ``s`` in 1..10. The verdict is ``(s - 1) / 9`` in [0, 1]; averaging it over k samples ranks
  candidates exactly as the paper's voting ``S* = sum_j S_j`` does when every sample is read
  (unread samples are left out of the mean instead of counting as 0).

The parsers (:func:`parse_yes_no`, :func:`parse_score`) never raise: text they cannot read
gives ``(None, reason)``, so the verifier returns ``Score(None, reason)``, never a guess.

>>> parse_yes_no("The steps check out.\\nVerdict: Yes")
(1.0, '')
>>> parse_score("Principles: ...\\nCritique: ...\\nScore: 7/10")
(7.0, '')
>>> parse_yes_no("maybe")
(None, 'no Yes/No verdict in the chain')
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rewardlab.policies.prompts import plain_prompt
from rewardlab.rewards.generative import GenerativeVerifier, Judgment, VerdictMode
from rewardlab.types import Candidate, Problem, Sampling

# "(Yes/No)", "[yes|no]", "Yes or No": the cue itself, never a verdict
_CUE_CHOICE = re.compile(r"[(\[{]?\s*\byes\s*(?:/|\||\bor\b)\s*no\b\s*[)\]}]?", re.IGNORECASE)
_MARKED = re.compile(
    r"(?:verdict|final answer|answer|correct|judg(?:e)?ment|conclusion|decision)"
    r"\s*(?:\*\*)?\s*[:=?\-]\s*(?:\*\*)?\s*(?:\\boxed\{)?\s*\**\s*(yes|no)\b",
    re.IGNORECASE,
)
_BOXED = re.compile(r"\\boxed\{\s*(yes|no)\s*\}", re.IGNORECASE)
_WORD = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_NUM = r"(-?\d+(?:\.\d+)?)"
_SCORE_MARKED = re.compile(
    rf"(?:score|rating|grade|rated|scored)\s*(?:\*\*)?\s*(?:is|of|:|=|-)?\s*(?:\*\*)?\s*"
    rf"(?:\\boxed\{{)?\s*{_NUM}\s*(?:\}})?\s*(?:/\s*(10)\b|out of\s*(10)\b)?",
    re.IGNORECASE,
)
_SCORE_FRACTION = re.compile(rf"{_NUM}\s*(?:/|out of)\s*10\b", re.IGNORECASE)
_SCORE_BOXED = re.compile(rf"\\boxed\{{\s*{_NUM}\s*\}}")


def _verdict(word: str) -> float:
    return 1.0 if word.lower() == "yes" else 0.0


def parse_yes_no(text: str) -> tuple[float | None, str]:
    """A Yes/No verdict from a chain: ``(1.0 | 0.0, "")`` or ``(None, reason)``; never raises.

    Read in order of trust: the last ``\\boxed{Yes|No}``; the last marked verdict
    (``Verdict: No``, ``Is the answer correct? Yes`` style markers: verdict, answer, correct,
    judgment, conclusion, decision); else, with the cue's own ``(Yes/No)`` removed, a chain
    whose remaining words hold Yes or No but not both. A chain with both and no marker is
    ambiguous (None).
    """
    if not isinstance(text, str):
        return None, f"chain is not text ({type(text).__name__})"
    clean = _CUE_CHOICE.sub(" ", text)
    for pattern in (_BOXED, _MARKED):
        found = pattern.findall(clean)
        if found:
            return _verdict(found[-1]), ""
    words = {w.lower() for w in _WORD.findall(clean)}
    if words == {"yes"} or words == {"no"}:
        return _verdict(words.pop()), ""
    if words:
        return None, "ambiguous: both Yes and No, and no marked verdict"
    return None, "no Yes/No verdict in the chain"


def parse_score(text: str, lo: float = 1.0, hi: float = 10.0) -> tuple[float | None, str]:
    """A pointwise score in ``[lo, hi]``: ``(score, "")`` or ``(None, reason)``; never raises.

    Read in order: the last ``Score: s`` (rating/grade, ``s/10`` or ``s out of 10``
    allowed), the last ``\\boxed{s}``, the last ``s/10``. A score outside ``[lo, hi]`` is not
    clipped: it is unreadable (None, with the value in the reason).
    """
    if not isinstance(text, str):
        return None, f"chain is not text ({type(text).__name__})"
    for pattern in (_SCORE_MARKED, _SCORE_BOXED, _SCORE_FRACTION):
        found = pattern.findall(text)
        if found:
            last = found[-1]
            raw = last[0] if isinstance(last, tuple) else last
            try:
                value = float(raw)
            except ValueError:
                return None, f"score {raw!r} is not a number"
            if not lo <= value <= hi:
                return None, f"score {raw} outside [{lo:g}, {hi:g}]"
            return value, ""
    return None, "no score in the chain"


def _solution_block(problem: Problem, candidate: Candidate) -> str:
    return f"Question: {problem.question}\n\nProposed solution:\n{candidate.text.strip()}\n"


@dataclass(frozen=True)
class YesNoFormat:
    """GenRM-Base: verify step by step, end with ``Verdict: Yes`` or ``Verdict: No``.

    Attributes:
        question_prompt: wraps the instruction in the policy's chat template
            (``policy.format_prompt``); the plain format by default.
    """

    question_prompt: Callable[[str], str] = plain_prompt
    name: str = "yes-no"
    stop: tuple[str, ...] = ()
    judges_steps: bool = False
    verdict_cue: str = "\nIs the answer correct (Yes/No)?"
    finish_cue: str = "\nVerdict:"
    finish_tokens: int = 4
    yes: str = " Yes"
    no: str = " No"

    def prompt(self, problem: Problem, candidate: Candidate) -> str:
        instruction = (
            "You are a careful math teacher. Check the proposed solution step by step: redo "
            "each calculation and say whether it is right. Then end with one line, "
            "'Verdict: Yes' if the final answer is correct or 'Verdict: No' if it is not.\n\n"
            + _solution_block(problem, candidate)
        )
        return self.question_prompt(instruction) + "Let's verify step by step.\n"

    def parse(self, chain: str, candidate: Candidate) -> Judgment:
        verdict, reason = parse_yes_no(chain)
        return Judgment(verdict, (), reason)


@dataclass(frozen=True)
class DirectYesNoFormat:
    """GenRM without the chain of thought (Zhang et al.'s "direct" verifier): the model
    answers Yes or No at once. Its ``verdict_cue`` is empty: p(Yes) is read right after the
    prompt, at the first token of the answer."""

    question_prompt: Callable[[str], str] = plain_prompt
    name: str = "yes-no-direct"
    stop: tuple[str, ...] = ("\n",)
    judges_steps: bool = False
    verdict_cue: str = ""
    yes: str = "Yes"
    no: str = "No"

    def prompt(self, problem: Problem, candidate: Candidate) -> str:
        instruction = (
            _solution_block(problem, candidate)
            + "\nIs the final answer of the proposed solution correct? Answer Yes or No."
        )
        return self.question_prompt(instruction)

    def parse(self, chain: str, candidate: Candidate) -> Judgment:
        verdict, reason = parse_yes_no(chain)
        return Judgment(verdict, (), reason)


@dataclass(frozen=True)
class GRMFormat:
    """DeepSeek-GRM pointwise: principles, critique, ``Score: s`` (1-10); verdict (s-1)/9."""

    question_prompt: Callable[[str], str] = plain_prompt
    name: str = "grm"
    stop: tuple[str, ...] = ()
    judges_steps: bool = False
    finish_cue: str = "\nScore:"
    finish_tokens: int = 6
    lo: float = 1.0
    hi: float = 10.0

    def prompt(self, problem: Problem, candidate: Candidate) -> str:
        instruction = (
            "You are a strict grader. First list the principles a correct solution to this "
            "question must satisfy. Then write a critique of the proposed solution against "
            "them, checking every calculation. Finally give the solution a score from 1 "
            "(wrong) to 10 (fully correct) on its own line as 'Score: <number>'.\n\n"
            + _solution_block(problem, candidate)
        )
        return self.question_prompt(instruction) + "Principles:\n"

    def parse(self, chain: str, candidate: Candidate) -> Judgment:
        score, reason = parse_score(chain, self.lo, self.hi)
        if score is None:
            return Judgment(None, (), reason)
        return Judgment((score - self.lo) / (self.hi - self.lo), (), f"score {score:g}")


def load_judge(
    kind: str = "yes-no",
    policy: str = "smollm2",
    V: int = 1,
    temperature: float | None = None,
    max_new_tokens: int = 256,
    seed: int = 0,
    verdict: VerdictMode = "parse",
    meta: str | None = None,
    k_meta: int | None = None,
    device: str | None = "cpu",
    name: str | None = None,
    **kwargs: Any,
) -> GenerativeVerifier:
    """A prompted judge (``kind`` = ``yes-no``, ``yes-no-direct`` or ``grm``) on ``policy``
    (a :func:`~rewardlab.policies.registry.load_policy` spec).

    ``V`` samples are voted (mean verdict); ``meta`` names a reward (registry spec) used as
    meta-RM to keep the top ``k_meta`` samples (default V // 2).
    """
    from rewardlab.policies.registry import load_policy

    formats: dict[str, Any] = {
        "yes-no": YesNoFormat,
        "yes-no-direct": DirectYesNoFormat,
        "grm": GRMFormat,
    }
    if kind not in formats:
        raise ValueError(f"unknown judge kind {kind!r}; choose from {sorted(formats)}")
    pol = load_policy(policy, device=device)
    fmt = formats[kind](question_prompt=pol.format_prompt)
    meta_reward = None
    if meta is not None:
        from rewardlab.rewards.registry import load_reward

        meta_reward = load_reward(meta)
    temp = (0.0 if V == 1 else 0.7) if temperature is None else float(temperature)
    suffix = f"-V{V}" if V > 1 else ""
    return GenerativeVerifier(
        pol,
        fmt,
        n_verifications=V,
        sampling=Sampling(temperature=temp, max_new_tokens=max_new_tokens, seed=seed),
        name=name or f"judge-{kind}{suffix}",
        verdict=verdict,
        meta_reward=meta_reward,
        k_meta=k_meta,
        **kwargs,
    )


def load_yes_no_judge(**kwargs: Any) -> GenerativeVerifier:
    """Registry entry ``judge-yes-no``: :func:`load_judge` with ``kind="yes-no"``."""
    return load_judge(kind="yes-no", **kwargs)


def load_direct_judge(**kwargs: Any) -> GenerativeVerifier:
    """Registry entry ``judge-yes-no-direct``: :func:`load_judge` with ``kind="yes-no-direct"``."""
    return load_judge(kind="yes-no-direct", **kwargs)


def load_grm_judge(**kwargs: Any) -> GenerativeVerifier:
    """Registry entry ``judge-grm``: :func:`load_judge` with ``kind="grm"``."""
    return load_judge(kind="grm", **kwargs)
