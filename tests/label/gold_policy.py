"""A deterministic policy with known success rates on the ``arith`` testbed, and test samples.

``GoldPolicy`` is a real :class:`~rewardlab.policies.base.Policy`: it reads the problem and the
solution prefix out of the prompt and continues with the gold remainder when the prefix is on
track (``check_steps`` finds no error), for the first ``ceil(rate * n)`` of the ``n`` samples
of a call; otherwise it writes a wrong final answer. So from an on-track prefix exactly
``ceil(rate * k)`` of ``k`` fresh rollouts are correct, from an off-track prefix none: MC labels
are exactly checkable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rewardlab.policies.prompts import plain_prompt
from rewardlab.steps import split_lines
from rewardlab.tasks import arith
from rewardlab.types import Candidate, Completion, Problem, Sampling

MARK = "\nAnswer:\n"


class GoldPolicy:
    """Continues on-track prefixes with the gold solution at a known rate (see module doc)."""

    def __init__(self, problems: Sequence[Problem], rate: float = 1.0, name: str = "gold") -> None:
        self.by_question = {p.question: p for p in problems}
        self.rate = rate
        self.name = name
        self.params = 1
        self.calls: list[tuple[int, int]] = []  # (prompts, n) per sample() call

    def format_prompt(self, question: str) -> str:
        return plain_prompt(question)

    def _parse(self, prompt: str) -> tuple[Problem, str]:
        head, _, body = prompt.partition(MARK)
        return self.by_question[head.removeprefix("Question: ")], body

    def continuation(self, prompt: str, success: bool) -> str:
        problem, body = self._parse(prompt)
        done = split_lines(body)
        on_track = arith.check_steps(problem, body).first_error == -1
        if success and on_track:
            return "\n".join(arith.gold_steps(problem)[len(done) :])
        return f"The answer is {int(problem.answer) + 1}."

    def sample(self, prompts: Sequence[str], n: int, params: Sampling) -> list[list[Completion]]:
        self.calls.append((len(prompts), n))
        good = math.ceil(self.rate * n)
        out = []
        for prompt in prompts:
            row = []
            for j in range(n):
                text = self.continuation(prompt, j < good)
                row.append(Completion(text, len(prompt.split()), len(text.split())))
            out.append(row)
        return out

    def extend(
        self, prefixes: Sequence[str], params: Sampling, stop: Sequence[str]
    ) -> list[Completion]:
        rows = self.sample(prefixes, 1, params)
        return [r[0] for r in rows]

    @property
    def rollouts(self) -> int:
        return sum(p * n for p, n in self.calls)


def sample_of(problem: Problem, steps: Sequence[str], index: int = 0) -> Candidate:
    """A candidate with the given step lines."""
    text = "\n".join(steps)
    return Candidate(problem.id, text, tuple(steps), arith.extract_answer(text), index=index)


def corrupted(problem: Problem, at: int) -> list[str]:
    """Gold steps with a wrong result at equation ``at`` and a wrong final answer."""
    steps = arith.gold_steps(problem)
    a, op, b, r = problem.meta["ops"][at]
    steps[at] = f"{a} {op} {b} = {r + 1}"
    steps[-1] = f"The answer is {int(problem.answer) + 1}."
    return steps


def make_bed(n: int = 4, seed: int = 3) -> tuple[list[Problem], list[Candidate], list[int]]:
    """Problems with 3-5 operations; per problem: the gold solution, an error at each equation
    step, and the gold solution cut before its answer line (unfinished). Returns problems and
    samples aligned, and the true first error of each sample."""
    probs: list[Problem] = []
    samples: list[Candidate] = []
    truth: list[int] = []
    for p in arith.generate(n, seed=seed, n_ops=(3, 5)):
        gold = arith.gold_steps(p)
        variants = [(gold, -1), (gold[:-1], -1)]
        variants += [(corrupted(p, e), e) for e in range(len(gold) - 1)]
        for i, (steps, fe) in enumerate(variants):
            probs.append(p)
            samples.append(sample_of(p, steps, index=i))
            truth.append(fe)
    return probs, samples, truth
