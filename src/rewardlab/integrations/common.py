"""Text in, scores out, with a per-sample wall-clock timeout that works from any thread.

Trainers hand a reward function text: a prompt, a response (or both glued together, OpenRLHF's
``query``) and a reference answer. :func:`make_pair` turns one sample into a
(:class:`~rewardlab.types.Problem`, :class:`~rewardlab.types.Candidate`) pair; :class:`TimedScorer`
scores pairs with any rewardlab reward and gives each sample at most ``timeout_s`` seconds.

The timeout is a thread deadline, not a signal: ``signal.alarm`` (Math-Verify's own timeout)
only works in the main thread, while trainers call reward functions from worker threads
(verl's and OpenRLHF's thread offload, TRL's async path). A sample whose time runs out is
``Score.ungraded("timeout")``; Python cannot kill a thread, so the stuck call keeps its worker
until it returns and the scorer starts a fresh pool for the next samples. Rewards that can
hang for good must isolate themselves: :class:`~rewardlab.rewards.math_answer.MathVerifyReward`
does, with a killable process pool off the main thread (``isolation="auto"``).

OpenRLHF labels: a label is the reference answer text, or a JSON object text
``{"answer": "...", "meta": {...}}`` when a reward needs more (the arith testbed's exact checker
needs ``meta.states``).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from rewardlab.steps import segment
from rewardlab.types import Candidate, Problem, Score

SPECIAL_SUFFIXES: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|end|>",
    "</s>",
    "<eos>",
    "<pad>",
    "[PAD]",
)
"""Special tokens stripped from the end of an OpenRLHF ``query`` (decoded with
``skip_special_tokens=False``) before scoring."""


def split_query(
    query: str, prompt: str | None, suffixes: Sequence[str] = SPECIAL_SUFFIXES
) -> tuple[str, str, str | None]:
    """(prompt, response, note) from an OpenRLHF ``query`` (prompt + response text).

    The response is what follows the prompt: ``query[len(prompt):]`` when the query starts with
    the prompt, else what follows the prompt's first occurrence; with no prompt, or a prompt not
    in the query, the whole query is the response and ``note`` says so. Trailing special tokens
    (``suffixes``, repeatedly) are stripped from the response.
    """
    note: str | None = None
    if not prompt:
        response, prompt, note = query, "", "no prompt given: the whole query is the response"
    elif query.startswith(prompt):
        response = query[len(prompt) :]
    elif (at := query.find(prompt)) >= 0:
        response = query[at + len(prompt) :]
    else:
        response, note = query, "prompt not found in query: the whole query is the response"
    changed = True
    while changed:
        changed = False
        stripped = response.rstrip()
        for s in suffixes:
            if s and stripped.endswith(s):
                response, changed = stripped[: -len(s)], True
                break
    return prompt, response, note


def parse_label(label: Any) -> tuple[str, dict[str, Any]]:
    """(answer, meta) from a label: text is the answer, unless it is a JSON object (as text, or
    already an object) with an ``answer`` key (then its ``meta`` object rides along); None is no
    answer ("").

    Raises ValueError for a label of another type or a JSON object without ``answer``."""
    if label is None:
        return "", {}
    if isinstance(label, dict):
        return _label_object(label)
    if isinstance(label, bool) or not isinstance(label, str | int | float):
        raise ValueError(f"a label must be text or a number, got {type(label).__name__}")
    if isinstance(label, int | float):
        return str(label), {}
    text = label.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            return label, {}
        if not isinstance(obj, dict):
            raise ValueError("a JSON label must be an object with an 'answer' key")
        return _label_object(obj)
    return label, {}


def _label_object(obj: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if "answer" not in obj:
        raise ValueError("a JSON label must be an object with an 'answer' key")
    meta = obj.get("meta")
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        raise ValueError("a JSON label's 'meta' must be an object")
    return str(obj["answer"]), meta


def make_pair(
    prompt: str,
    response: str,
    answer: str = "",
    meta: Mapping[str, Any] | None = None,
    segmentation: str = "lines",
    pid: str = "sample",
    steps: Sequence[str] | None = None,
) -> tuple[Problem, Candidate]:
    """One sample as a (Problem, Candidate): steps by ``segmentation`` unless given."""
    problem = Problem(id=pid, question=prompt, answer=answer, meta=dict(meta or {}))
    cand_steps = tuple(steps) if steps is not None else segment(response, segmentation)
    candidate = Candidate(
        problem_id=pid, text=response, steps=cand_steps, answer=None, segmentation=segmentation
    )
    return problem, candidate


def checked(score: Any, name: str) -> Score:
    """``score`` if it is a Score with a finite value (or ungraded with a reason), else an
    ungraded Score naming what was wrong: nothing non-finite ever leaves a scorer."""
    if not isinstance(score, Score):
        return Score.ungraded("bad score", detail=f"{name} returned {type(score).__name__}")
    if score.value is None:
        return score if score.info.get("reason") else Score.ungraded("ungraded without reason")
    if not math.isfinite(score.value):
        return Score.ungraded("non-finite value", value=str(score.value))
    if any(not math.isfinite(v) for v in score.steps):
        return Score.ungraded("non-finite step value")
    return score


@dataclass
class TimedScorer:
    """Scores pairs with ``reward``; each sample gets ``timeout_s`` of wall clock.

    ``per_sample=True`` (rule rewards: math-verify, exact, code) runs one call per sample on a
    pool of ``workers`` threads; ``per_sample=False`` (learned models: one batched forward)
    gives the whole batch ``timeout_s * len(batch)``. A reward that raises for a batch is
    retried sample by sample so one bad sample cannot sink the others. Thread-safe.
    """

    reward: Any
    timeout_s: float = 10.0
    per_sample: bool = True
    workers: int = 4
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")

    @property
    def name(self) -> str:
        return str(getattr(self.reward, "name", type(self.reward).__name__))

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="rewardlab-score")
            return self._pool

    def _abandon(self, pool: ThreadPoolExecutor) -> None:
        """A call timed out and still holds a worker: start a fresh pool for what follows."""
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=False)

    def _call(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        out = self.reward.score(list(problems), list(candidates))
        if not isinstance(out, list | tuple) or len(out) != len(candidates):
            n = len(out) if isinstance(out, list | tuple) else type(out).__name__
            raise RuntimeError(f"{self.name} returned {n} scores for {len(candidates)}")
        return [checked(s, self.name) for s in out]

    def _one(self, problem: Problem, candidate: Candidate) -> Score:
        try:
            return self._call([problem], [candidate])[0]
        except Exception as e:  # the grader's own failure: ungraded, with the reason
            return Score.ungraded("error", detail=f"{type(e).__name__}: {e}")

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        if len(problems) != len(candidates):
            raise ValueError(f"{len(problems)} problems for {len(candidates)} candidates")
        if not candidates:
            return []
        pool = self._executor()
        if self.per_sample:
            futures = [
                pool.submit(self._one, p, c) for p, c in zip(problems, candidates, strict=True)
            ]
            return [self._wait(f, pool, self.timeout_s) for f in futures]
        batch: Future[list[Score]] = pool.submit(self._call, problems, candidates)
        try:
            return batch.result(timeout=self.timeout_s * len(candidates))
        except FutureTimeout:
            self._abandon(pool)
            return [Score.ungraded("timeout", timeout_s=self.timeout_s)] * len(candidates)
        except Exception:
            return [self._one(p, c) for p, c in zip(problems, candidates, strict=True)]

    def _wait(self, fut: Future[Score], pool: ThreadPoolExecutor, timeout_s: float) -> Score:
        try:
            return fut.result(timeout=timeout_s)
        except FutureTimeout:
            self._abandon(pool)
            return Score.ungraded("timeout", timeout_s=self.timeout_s)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def load_scorer(
    spec: str, timeout_s: float = 10.0, per_sample: bool | None = None, **kwargs: Any
) -> TimedScorer:
    """A :class:`TimedScorer` for a registry spec or checkpoint dir (``per_sample`` defaults to
    False for learned rewards, which batch, and True for the rest)."""
    from rewardlab.rewards.registry import is_learned, load_reward

    reward = load_reward(spec, **kwargs)
    if per_sample is None:
        per_sample = not is_learned(spec)
    return TimedScorer(reward, timeout_s=timeout_s, per_sample=per_sample)
