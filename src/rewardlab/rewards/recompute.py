"""The ``recompute`` verifier: the policy recomputes each equation of a candidate, greedily.

For every step ``a op b = c`` of a candidate, the policy is shown the question, the
candidate's earlier steps and ``a op b =`` and writes the result (one probe per step, stopped
at the end of the line); the step is judged right when the number it writes equals ``c``.
A ``The answer is n.`` line is judged by rule: ``n`` must repeat the last equation's result.
Other lines are not judged. The verdict is 1.0 when every judged step is right, else 0.0
(a candidate with nothing to judge has no verdict: ``Score(None, reason)``).

This is the project's naive generative baseline on the ``arith`` testbed: the shipped tiny
policy checks the arithmetic of a step, not whether its operands are the right ones (a step
that starts from a wrong state but computes it correctly passes). It is a
:class:`~rewardlab.rewards.generative.ProbeFormat`, so it runs through
:class:`~rewardlab.rewards.generative.GenerativeVerifier` (ledger, V chains, step scores).

>>> verifier = load_recompute(policy="tiny", device="cpu")   # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rewardlab.policies.prompts import plain_prompt
from rewardlab.rewards.generative import GenerativeVerifier, Judgment
from rewardlab.types import Candidate, Problem, Sampling

_NUM = r"-?\d{1,12}"
_EQUATION = re.compile(
    rf"^\s*(?P<lhs>{_NUM}\s*[+\-*/x×÷]\s*{_NUM}\s*=)\s*(?P<rhs>{_NUM})\s*\.?\s*$"
)
_ANSWER = re.compile(rf"^\s*the answer is\s*:?\s*(?P<n>{_NUM})\s*\.?\s*$", re.IGNORECASE)
_FIRST_NUMBER = re.compile(_NUM)


@dataclass(frozen=True)
class _Step:
    kind: str  # "equation" | "answer" | "other"
    lhs: str = ""
    value: int = 0


def plan(candidate: Candidate) -> list[_Step]:
    """What each step of a candidate is, for the recompute check (pure, never raises)."""
    out = []
    for step in candidate.steps:
        if (m := _EQUATION.match(step)) is not None:
            out.append(_Step("equation", m.group("lhs").strip(), int(m.group("rhs"))))
        elif (m := _ANSWER.match(step)) is not None:
            out.append(_Step("answer", value=int(m.group("n"))))
        else:
            out.append(_Step("other"))
    return out


def read_number(text: str) -> int | None:
    """The first integer the policy wrote on its line, or None."""
    line = text.strip().split("\n", 1)[0]
    m = _FIRST_NUMBER.search(line)
    return int(m.group(0)) if m else None


@dataclass(frozen=True)
class RecomputeFormat:
    """One probe per equation: question + earlier steps + ``a op b =``; see the module doc.

    Attributes:
        question_prompt: turns a question into the policy's prompt (its ``format_prompt``).
    """

    question_prompt: Callable[[str], str] = plain_prompt
    name: str = "recompute"
    stop: tuple[str, ...] = ("\n",)
    judges_steps: bool = True

    def probes(self, problem: Problem, candidate: Candidate) -> list[str]:
        head = self.question_prompt(problem.question)
        out = []
        for i, step in enumerate(plan(candidate)):
            if step.kind == "equation":
                before = "".join(s + "\n" for s in candidate.steps[:i])
                out.append(f"{head}{before}{step.lhs}")
        return out

    def parse_probes(self, outputs: Sequence[str], candidate: Candidate) -> Judgment:
        steps: list[float | None] = []
        at = 0
        last: int | None = None
        unread = 0
        for step in plan(candidate):
            if step.kind == "equation":
                got = read_number(outputs[at]) if at < len(outputs) else None
                at += 1
                if got is None:
                    unread += 1
                steps.append(None if got is None else float(got == step.value))
                last = step.value
            elif step.kind == "answer":
                steps.append(float(last is None or step.value == last))
            else:
                steps.append(None)
        judged = [s for s in steps if s is not None]
        if not judged:
            reason = "no equation or answer line to check" if not unread else "no number written"
            return Judgment(None, tuple(steps), reason)
        note = f"{unread} probe(s) wrote no number" if unread else ""
        return Judgment(float(min(judged)), tuple(steps), note)


def load_recompute(
    policy: str = "tiny",
    V: int = 1,
    temperature: float | None = None,
    max_new_tokens: int = 8,
    seed: int = 0,
    device: str | None = "cpu",
    name: str | None = None,
    **kwargs: Any,
) -> GenerativeVerifier:
    """The ``recompute`` reward: ``policy`` (a :func:`load_policy` spec) recomputes each step.

    ``V`` probes per step (greedy when V = 1, T = 1 otherwise unless ``temperature`` says);
    the reward is named ``recompute`` (``recompute-V<V>`` when V > 1).
    """
    from rewardlab.policies.registry import load_policy

    pol = load_policy(policy, device=device)
    temp = (0.0 if V == 1 else 1.0) if temperature is None else float(temperature)
    return GenerativeVerifier(
        pol,
        RecomputeFormat(question_prompt=pol.format_prompt),
        n_verifications=V,
        sampling=Sampling(temperature=temp, max_new_tokens=max_new_tokens, seed=seed),
        name=name or ("recompute" if V == 1 else f"recompute-V{V}"),
        **kwargs,
    )
