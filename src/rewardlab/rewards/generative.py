"""Generative verifiers: a policy that writes a verification chain and ends with a verdict.

A generative verifier (GenRM, Zhang et al. 2024; GenPRM; DeepSeek-GRM) is a :class:`Policy`
plus a :class:`VerifierFormat`: the format turns (problem, candidate) into a verification
prompt and reads a finished chain back into a :class:`Judgment` (a Yes/No verdict and,
where the chain judges steps, one judgment per step). The verifier samples ``V`` chains per
candidate; its score is the mean verdict over the chains that could be parsed, and its step
scores the per-step means. A chain that cannot be parsed never becomes a guess: it is left
out of the mean, and a candidate none of whose chains parse is ``Score(None, reason)``.

Every verification token is the verifier's cost: the policy records it in its ledger under
its own name, and :attr:`GenerativeVerifier.last_tokens` keeps the prompt/generated tokens of
the last call, per candidate, for the solve-vs-verify accounting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np

from rewardlab.policies.base import Policy
from rewardlab.types import Candidate, Problem, Sampling, Score


@dataclass(frozen=True)
class Judgment:
    """What one verification chain says.

    Attributes:
        verdict: 1.0 (the candidate is right), 0.0 (wrong), a probability in between, or None
            when the chain has no readable verdict.
        steps: one judgment per step of the candidate (1.0 right, 0.0 wrong, None unread);
            empty when the format judges only the outcome.
        reason: why the verdict is None (or any note from the parser).
    """

    verdict: float | None
    steps: tuple[float | None, ...] = ()
    reason: str = ""


@runtime_checkable
class VerifierFormat(Protocol):
    """How a verifier is prompted and how its chain is read.

    ``stop`` ends a chain (kept in the text); ``judges_steps`` says whether ``parse`` returns
    per-step judgments. ``parse`` never raises on any text: an unreadable chain is a
    :class:`Judgment` with ``verdict=None`` and a reason.
    """

    name: str
    stop: tuple[str, ...]
    judges_steps: bool

    def prompt(self, problem: Problem, candidate: Candidate) -> str: ...

    def parse(self, chain: str, candidate: Candidate) -> Judgment: ...


class GenerativeVerifier:
    """A policy + a verification format as a ``Reward`` (and a ``StepReward`` when the format
    judges steps).

    Args:
        policy: the model that writes the chains (its ledger, if any, records their tokens).
        fmt: the prompt and parser.
        n_verifications: ``V``, chains sampled per candidate.
        sampling: temperature, top-p, length and seed of the chains (T = 0 with V = 1 is a
            greedy verifier). The seed is mixed with the candidate's text by the policy's own
            per-row seeding, so scores are deterministic for a seed.
        name: the reward's name (defaults to ``genrm`` + the format's name).
    """

    text_only = True  # the score depends only on the problem and the candidate's text

    def __init__(
        self,
        policy: Policy,
        fmt: VerifierFormat,
        *,
        n_verifications: int = 1,
        sampling: Sampling | None = None,
        name: str | None = None,
    ) -> None:
        if n_verifications < 1:
            raise ValueError(f"n_verifications must be >= 1, got {n_verifications}")
        self.policy = policy
        self.fmt = fmt
        self.n_verifications = n_verifications
        self.sampling = sampling or Sampling(temperature=0.0 if n_verifications == 1 else 1.0)
        self.name = name or f"genrm-{fmt.name}"
        self.params = int(policy.params)
        self.last_tokens: list[tuple[int, int]] = []

    def judge(
        self, problems: Sequence[Problem], candidates: Sequence[Candidate]
    ) -> list[list[Judgment]]:
        """``V`` judgments per candidate (one batched policy call for all of them)."""
        if len(problems) != len(candidates):
            raise ValueError("problems and candidates must have the same length")
        prompts = [self.fmt.prompt(p, c) for p, c in zip(problems, candidates, strict=True)]
        v = self.n_verifications
        params = replace(self.sampling)
        rows = self.policy.sample(prompts, v, params) if prompts else []
        out: list[list[Judgment]] = []
        self.last_tokens = []
        for cand, chains in zip(candidates, rows, strict=True):
            out.append([self.fmt.parse(ch.text, cand) for ch in chains])
            self.last_tokens.append(
                (sum(ch.prompt_tokens for ch in chains), sum(ch.generated_tokens for ch in chains))
            )
        return out

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        """Mean verdict over the readable chains; per-step means in ``Score.steps``."""
        return [
            _combine(js, c)
            for js, c in zip(self.judge(problems, candidates), candidates, strict=True)
        ]

    def score_steps(
        self, problems: Sequence[Problem], candidates: Sequence[Candidate]
    ) -> list[Score]:
        """Step scores (the mean per-step judgment); only for formats that judge steps."""
        if not self.fmt.judges_steps:
            raise TypeError(f"{self.name}: format {self.fmt.name!r} does not judge steps")
        return self.score(problems, candidates)


def _combine(judgments: Sequence[Judgment], candidate: Candidate) -> Score:
    """Mean verdict of the readable chains, and per step the mean of the judgments read for it.

    Chains without a verdict are left out. A step that no readable chain judged takes the mean
    verdict, so the step vector is exactly as long as the candidate's steps (never NaN).
    """
    verdicts = [j.verdict for j in judgments if j.verdict is not None]
    if not verdicts:
        reasons = sorted({j.reason or "no verdict" for j in judgments})
        return Score.ungraded("no verification chain could be read: " + "; ".join(reasons))
    value = float(np.mean(verdicts))
    n_steps = len(candidate.steps)
    steps: list[float] = []
    if any(j.steps for j in judgments):
        for i in range(n_steps):
            seen = [
                s
                for j in judgments
                if j.verdict is not None and i < len(j.steps)
                for s in [j.steps[i]]
                if s is not None
            ]
            steps.append(float(np.mean(seen)) if seen else value)
    info = {"verdicts": [j.verdict for j in judgments], "n_read": len(verdicts)}
    return Score(value, tuple(steps), info)
