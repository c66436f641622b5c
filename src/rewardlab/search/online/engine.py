"""The one step-expansion engine every online strategy uses.

:class:`StepExpander` extends partial solutions by one step through ``Policy.extend`` (the
task's segmentation decides where a step ends: a newline for ``lines``, a blank line for
``paragraphs``), scores the new prefixes with a process reward (``score_steps``: the last
step's score) or an outcome/value reward (``score`` on the prefix), and charges every token to
its :class:`~rewardlab.compute.Ledger`: the prefix the policy re-reads, the tokens it
generates, and the tokens the verifier reads.

Determinism and the store. The ``j``-th expansion of a prefix is the ``j``-th row of a call
that repeats the prefix text (the ``hf`` backend seeds each row from ``(seed, text, j)``), so
it does not depend on which other prefixes share the batch. With a store, expansions are kept
under a content key (problem, policy, sampling, prefix text) and index ``j``, and scores under
the reward's store label and the prefix's content key: an interrupted search re-run computes
nothing twice and reaches the same result. Cost is charged for every expansion and score a
search *uses*, cached or not, so a resumed search reports the same compute as an uninterrupted
one (the ledger measures the strategy, not the machine).

What is charged (FLOPs = 2 · params · tokens per model):

- policy: every generated token, plus the prompt once per trajectory (per row sampled from the
  root). Extending a prefix re-reads nothing: its key/value states are those its own generation
  left (the ``hf`` backend keeps them in its prefix cache), exactly as a best-of-N sample reads
  its prompt once and then only generates. So N trajectories cost what N samples of the same
  length cost, and search pays only for the extra steps it generates.
- verifier: each distinct prefix it scores, read whole (prompt + solution so far: a PRM
  re-reads the prefix at every step; no incremental scoring), or a generative verifier's own
  verification tokens when its scores report them.

Budget. With ``max_flops`` set, the engine refuses (raises :class:`BudgetExhausted`) any call
whose worst-case cost (every row generating ``max_step_tokens``) would take the ledger past
the budget; strategies stop and return what they finished. So no search exceeds its budget.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rewardlab.compute import Cost, Ledger, forward_flops
from rewardlab.policies.base import Policy
from rewardlab.search.online.base import Partial
from rewardlab.search.pool import reward_store_label
from rewardlab.steps import segment
from rewardlab.store import Store, request_key
from rewardlab.tasks.base import Task
from rewardlab.types import Candidate, Completion, Problem, Sampling, Score

#: Where a step ends, per segmentation (the stop string is kept in the step's text).
STEP_STOPS: dict[str, str] = {"lines": "\n", "paragraphs": "\n\n"}


class BudgetExhausted(RuntimeError):
    """The next call would take the ledger past the search's FLOPs budget."""


@dataclass(frozen=True)
class EngineConfig:
    """How the engine expands.

    Attributes:
        sampling: temperature, top-p and seed of step sampling; ``max_new_tokens`` is the
            token limit of ONE step.
        max_steps: a partial solution with this many steps is finished (``"max_steps"``).
        max_flops: the FLOPs budget of one search (None: unbounded).
    """

    sampling: Sampling = Sampling(temperature=1.0, max_new_tokens=48)
    max_steps: int = 16
    max_flops: float | None = None

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.max_flops is not None and self.max_flops <= 0:
            raise ValueError(f"max_flops must be > 0, got {self.max_flops}")


class StepExpander:
    """Extend, score and account for partial solutions of one task with one policy and reward.

    Args:
        policy: the generator (``extend`` continues a prompt + prefix by one step).
        task: segmentation, answer extraction and checking of finished candidates.
        reward: a process reward (``score_steps``) or an outcome/value reward (``score``)
            that scores prefixes; None scores nothing (every score NaN).
        config: sampling, step limit, budget.
        store: where expansions and scores are cached (None: no cache).
        backend: who runs the model calls: None calls the policy and reward directly; a
            :class:`~rewardlab.search.online.batching.BatchingBackend` shared by several
            engines merges the calls of searches running side by side into one batch.
    """

    def __init__(
        self,
        policy: Policy,
        task: Task,
        reward: Any = None,
        config: EngineConfig | None = None,
        store: Store | None = None,
        backend: Any = None,
    ) -> None:
        from rewardlab.search.online.batching import DirectBackend

        self.policy = policy
        self.task = task
        self.reward = reward
        self.config = config or EngineConfig()
        self.store = store
        self.backend = backend or DirectBackend(policy, reward)
        self.ledger = Ledger()
        self.stop = STEP_STOPS.get(task.segmentation, "\n")
        self._is_step = reward is not None and callable(getattr(reward, "score_steps", None))
        self._label = None if reward is None else reward_store_label(reward, self._is_step)
        self._verifier = None if reward is None else f"verifier:{reward.name}"
        self._prompts: dict[str, str] = {}

    # -- bookkeeping ----------------------------------------------------------------------

    def reset(self) -> None:
        """A fresh ledger (one search = one ledger)."""
        self.ledger = Ledger()

    @property
    def cost(self) -> Cost:
        return self.ledger.totals()

    def prompt(self, problem: Problem) -> str:
        if problem.id not in self._prompts:
            self._prompts[problem.id] = self.policy.format_prompt(problem.question)
        return self._prompts[problem.id]

    def _check_budget(
        self, rows: int, prompt_tokens: int, context_tokens: int, score: bool
    ) -> None:
        """Refuse a call whose worst case could pass the budget, counted as the ledger counts:
        the policy reads ``prompt_tokens`` (root rows' prompts) and generates at most the step
        limit per row; the verifier reads every new prefix whole (``context_tokens`` plus the
        new steps)."""
        limit = self.config.max_flops
        if limit is None:
            return
        step = self.config.sampling.max_new_tokens
        worst = forward_flops(int(self.policy.params), rows * step + prompt_tokens)
        if score and self.reward is not None:
            worst += forward_flops(
                int(getattr(self.reward, "params", 0)), context_tokens + rows * step
            )
        if self.ledger.totals().flops + worst > limit:
            raise BudgetExhausted(
                f"{rows} more rows could cost {worst:.3g} FLOPs; "
                f"{limit - self.ledger.totals().flops:.3g} of {limit:.3g} left"
            )

    # -- expansion ------------------------------------------------------------------------

    def expand(
        self,
        problem: Problem,
        parents: Sequence[Partial],
        k: int | Sequence[int],
        *,
        temperature: float | None = None,
        score: bool = True,
        seed_offset: int = 0,
    ) -> list[list[Partial]]:
        """``k`` one-step children of each open parent (``k`` per parent or one for all).

        Children are scored (``Partial.scores`` grows by the new step's score) unless
        ``score=False``. Parents with equal text are expanded as ONE prefix with the
        children dealt out in order, so two equal beams get distinct samples. ``seed_offset``
        shifts the sampling seed (a fresh, still deterministic draw of the same prefix).
        """
        counts = [k] * len(parents) if isinstance(k, int) else list(k)
        if len(counts) != len(parents):
            raise ValueError("one count per parent")
        for p, c in zip(parents, counts, strict=True):
            if p.finished:
                raise ValueError("cannot expand a finished solution")
            if c < 0:
                raise ValueError(f"expansion count must be >= 0, got {c}")
        sampling = self.config.sampling
        if temperature is not None:
            sampling = replace(sampling, temperature=temperature)
        if seed_offset:
            sampling = replace(sampling, seed=sampling.seed + seed_offset)
        need: dict[str, int] = defaultdict(int)
        for p, c in zip(parents, counts, strict=True):
            need[p.text] += c
        completions = self._completions(problem, dict(need), sampling, score)
        dealt: dict[str, int] = defaultdict(int)
        children: list[list[Partial]] = []
        for p, c in zip(parents, counts, strict=True):
            start = dealt[p.text]
            dealt[p.text] += c
            children.append(
                [self._child(p, comp) for comp in completions[p.text][start : start + c]]
            )
        if score:
            flat = [ch for row in children for ch in row]
            values = self.score(problem, flat)
            it = iter(values)
            children = [
                [replace(ch, scores=(*ch.scores, next(it))) for ch in row] for row in children
            ]
        return children

    def _completions(
        self, problem: Problem, need: dict[str, int], sampling: Sampling, will_score: bool
    ) -> dict[str, list[Completion]]:
        prompt = self.prompt(problem)
        keys = {
            text: request_key(problem, self.policy.name, sampling, extra=["step", text])
            for text in need
        }
        got: dict[str, list[Completion]] = {}
        todo: list[str] = []
        for text, n in need.items():
            if n == 0:
                got[text] = []
                continue
            cached = [] if self.store is None else self.store.candidates(keys[text], n)
            if len(cached) == n:
                got[text] = [_as_completion(c) for c in cached]
            else:
                todo.append(text)
        rows = [t for t in todo for _ in range(need[t])]
        context = sum(_upper_tokens(prompt + t) * n for t, n in need.items())
        prompt_read = _upper_tokens(prompt) * need.get("", 0)  # only root rows read the prompt
        self._check_budget(sum(need.values()), prompt_read, context, will_score)
        if rows:
            made = self.backend.extend([prompt + t for t in rows], sampling, (self.stop,))
            pos = 0
            batch: dict[str, list[Candidate]] = {}
            for text in todo:
                mine = made[pos : pos + need[text]]
                pos += need[text]
                got[text] = list(mine)
                batch[keys[text]] = [
                    _as_candidate(problem.id, comp, j) for j, comp in enumerate(mine)
                ]
            if self.store is not None:
                self.store.put_many(batch)
                # the store keeps the first write: read back so a re-run sees the same rows
                for text in todo:
                    got[text] = [
                        _as_completion(c) for c in self.store.candidates(keys[text], need[text])
                    ]
        used = [c for text in need for c in got[text]]
        if used:
            # a trajectory reads the prompt once; continuing a prefix reads nothing again
            # (its states are cached: the module docstring's accounting)
            prompt_read = sum(c.prompt_tokens for text in need if not text for c in got[text])
            self.ledger.record(
                self.policy.name,
                params=int(self.policy.params),
                prompt_tokens=prompt_read,
                generated_tokens=sum(c.generated_tokens for c in used),
            )
        return got

    def _child(self, parent: Partial, comp: Completion) -> Partial:
        text = parent.text + comp.text
        steps = segment(text, self.task.segmentation)
        ended_by_stop = comp.text.endswith(self.stop)
        if comp.finish_reason == "length" and not ended_by_stop:
            finish = "length"
        elif not ended_by_stop:
            finish = "eos"
        elif len(steps) >= self.config.max_steps:
            finish = "max_steps"
        else:
            finish = ""
        logprob = parent.logprob + float(sum(comp.logprobs or ()))
        return Partial(
            text=text,
            steps=steps,
            finish=finish,
            scores=parent.scores,
            logprob=logprob,
            tokens=parent.tokens + comp.generated_tokens,
            context_tokens=comp.prompt_tokens + comp.generated_tokens,
        )

    def advance(
        self,
        problem: Problem,
        partials: Sequence[Partial],
        steps: int,
        temperature: float = 0.0,
        *,
        score: bool = False,
        seed_offset: int = 0,
    ) -> list[Partial]:
        """Roll each open partial forward by up to ``steps`` steps, one sample each (lookahead
        rollouts are greedy: ``temperature=0``), scoring each new step when ``score``.
        Finished partials stay as they are.
        """
        current = list(partials)
        for _ in range(steps):
            open_ = [i for i, p in enumerate(current) if not p.finished]
            if not open_:
                break
            kids = self.expand(
                problem,
                [current[i] for i in open_],
                1,
                temperature=temperature,
                score=score,
                seed_offset=seed_offset,
            )
            for i, row in zip(open_, kids, strict=True):
                current[i] = row[0]
        return current

    # -- scoring --------------------------------------------------------------------------

    def candidate(self, problem: Problem, partial: Partial, index: int = 0) -> Candidate:
        """A partial as a checked candidate (answer, correctness, the task's annotations)."""
        answer = self.task.extract_answer(partial.text) if partial.finished else None
        meta: dict[str, Any] = {
            "policy": self.policy.name,
            "correct": self.task.is_correct(problem, answer),
            "finish_reason": partial.finish,
            "step_scores": list(partial.scores),
        }
        if partial.finished:
            meta.update(self.task.annotate(problem, partial.text))
        return Candidate(
            problem_id=problem.id,
            text=partial.text,
            steps=partial.steps,
            answer=answer,
            prompt_tokens=0,
            generated_tokens=partial.tokens,
            segmentation=self.task.segmentation,
            index=index,
            meta=meta,
        )

    def score(self, problem: Problem, partials: Sequence[Partial]) -> list[float]:
        """The reward's score of each partial's last step (process reward) or of the prefix
        as a whole (outcome / value reward); NaN where it could not grade or with no reward.
        Charges the verifier for reading each prefix (cached scores included)."""
        if self.reward is None or not partials:
            return [float("nan")] * len(partials)
        assert self._label is not None and self._verifier is not None
        keys = [
            (request_key(problem, "online-prefix", Sampling(), extra=[p.text, p.finish != ""]), 0)
            for p in partials
        ]
        found: list[Score | None] = (
            self.store.scores(self._label, keys) if self.store is not None else [None] * len(keys)
        )
        todo = [i for i, s in enumerate(found) if s is None]
        distinct = {k[0]: i for i, k in enumerate(keys)}.values()  # one read per distinct prefix
        read = sum(partials[i].context_tokens for i in distinct)
        params = int(getattr(self.reward, "params", 0))
        limit = self.config.max_flops
        worst = forward_flops(params, read)
        if limit is not None and self.ledger.totals().flops + worst > limit:
            raise BudgetExhausted(
                f"scoring {len(partials)} prefixes could pass the budget {limit:.3g}"
            )
        if todo:
            uniq: dict[str, int] = {}
            for i in todo:
                uniq.setdefault(keys[i][0], i)
            order = list(uniq.values())
            cands = [self.candidate(problem, partials[i]) for i in order]
            new = self.backend.score(self._is_step, [problem] * len(cands), cands)
            by_key = {keys[i][0]: s for i, s in zip(order, new, strict=True)}
            for i in todo:
                found[i] = by_key[keys[i][0]]
            if self.store is not None:
                self.store.put_scores(
                    self._label, [(keys[i][0], 0, by_key[keys[i][0]]) for i in order]
                )
        infos = [dict(s.info) for i in distinct if (s := found[i]) is not None]
        extra_gen = sum(int(info.get("verify_generated_tokens", 0)) for info in infos)
        extra_prompt = sum(int(info.get("verify_prompt_tokens", 0)) for info in infos)
        self.ledger.record(
            self._verifier,
            params=params,
            scored_tokens=extra_prompt or read,
            generated_tokens=extra_gen,
        )
        return [_last(s, self._is_step) for s in found]


def _last(score: Score | None, is_step: bool) -> float:
    if score is None or score.value is None:
        return float("nan")
    if is_step and score.steps:
        return float(score.steps[-1])
    return float(score.value)


def _upper_tokens(text: str) -> int:
    """An upper bound on a text's tokens for budget checks: its UTF-8 bytes (byte-level
    tokenizers never use more tokens than bytes)."""
    return len(text.encode())


def _as_candidate(problem_id: str, comp: Completion, index: int) -> Candidate:
    return Candidate(
        problem_id=problem_id,
        text=comp.text,
        steps=(),
        answer=None,
        prompt_tokens=comp.prompt_tokens,
        generated_tokens=comp.generated_tokens,
        logprobs=comp.logprobs,
        index=index,
        meta={"finish_reason": comp.finish_reason, "kind": "step"},
    )


def _as_completion(c: Candidate) -> Completion:
    return Completion(
        text=c.text,
        prompt_tokens=c.prompt_tokens,
        generated_tokens=c.generated_tokens,
        logprobs=c.logprobs,
        finish_reason=str(c.meta.get("finish_reason", "stop")),
    )


def mean_finite(xs: Sequence[float]) -> float:
    arr = np.asarray(xs, dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else float("nan")
