"""Bring your own pool: import candidates sampled elsewhere (vLLM, an API) from JSONL.

One record per problem. Two formats, detected from the first record (``fmt="auto"``):

``generic`` (ours)::

    {"id": "p-7",                       # optional; default "<task>-<line index>"
     "question": "...", "answer": "18",  # required: problem text, reference final answer
     "task": "gsm8k",                    # optional; default the ``task`` argument
     "meta": {...},                      # optional; copied into Problem.meta
     "candidates": [                     # required, a list (may be empty)
        {"text": "...",                  # required
         "scores": {"my-rm": 0.83},      # optional: reward name -> number
         "prompt_tokens": 120,           # optional int >= 0
         "generated_tokens": 85,         # optional int >= 0
         "is_correct": true,             # optional bool label
         "meta": {...}}]}                # optional; copied into Candidate.meta

``gsm8k-example``: openai/grade-school-math's ``example_model_solutions.jsonl``::

    question                -> Problem.question
    ground_truth            -> Problem.answer = text after its last "A:" (the whole text is
                               meta["solution"]); the format requires that marker
    6b_finetuning, 6b_verification, 175b_finetuning, 175b_verification
                            -> candidates 0..3, in this order; each {"solution", "is_correct"}:
                               solution -> Candidate.text, is_correct -> meta["is_correct"],
                               the field name -> meta["model"]
    (no token counts)       -> prompt_tokens = generated_tokens = 0, meta["tokens_absent"] True
    line index i            -> Problem.id "gsm8k-<i>", task "gsm8k" (line i of this file is
                               line i of GSM8K's test.jsonl, so the ids match load_jsonl_task's)

Any other field is an error: nothing is dropped silently. Each candidate gets steps from the
named segmenter (default ``"paragraphs"`` for generic, ``"lines"`` for the example file, one
step per line there), the answer from the ``extract_answer`` you pass (normally
:func:`rewardlab.rewards.math_answer.extract_answer`: tasks may not import rewards, so it is
passed in), and ``meta`` with ``source`` (the file name), ``tokens_absent``, and ``scores``,
``is_correct`` and ``model`` where given. Problems get ``meta["source"]`` and ``meta["line"]``.
Full description: ``docs/pool_import.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from rewardlab.steps import get_segmenter
from rewardlab.tasks.jsonl import (
    JsonlError,
    PathLike,
    final_answer,
    read_jsonl,
    require,
    text_field,
    where,
)
from rewardlab.types import Candidate, Problem, Score

PoolFormat = Literal["auto", "generic", "gsm8k-example"]
AnswerExtractor = Callable[[str], str | None]
Grader = Callable[[Sequence[Problem], Sequence[Candidate]], list[Score]]
Pool = tuple[list[Problem], list[list[Candidate]]]

EXAMPLE_MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
EXAMPLE_FIELDS = ("question", "ground_truth", *EXAMPLE_MODELS)
GENERIC_FIELDS = ("id", "question", "answer", "task", "meta", "candidates")
CANDIDATE_FIELDS = ("text", "scores", "prompt_tokens", "generated_tokens", "is_correct", "meta")


@dataclass(frozen=True)
class _Raw:
    """One candidate as read, before segmentation and answer extraction."""

    text: str
    meta: dict[str, Any]
    prompt_tokens: int = 0
    generated_tokens: int = 0


def _no_extra(record: Mapping[str, Any], allowed: tuple[str, ...], at: str) -> None:
    extra = sorted(set(record) - set(allowed))
    if extra:
        raise JsonlError(f"{at}: unknown field(s) {extra}; expected only {list(allowed)}")


def _label(value: Any, at: str) -> bool:
    if not isinstance(value, bool):
        raise JsonlError(f"{at}: 'is_correct' must be true or false, got {value!r}")
    return value


def _tokens(record: Mapping[str, Any], field: str, at: str) -> int | None:
    value = record.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise JsonlError(f"{at}: {field!r} must be an int >= 0, got {value!r}")
    return value


def _scores(value: Any, at: str) -> dict[str, float]:
    ok = isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
        for k, v in value.items()
    )
    if not ok:
        raise JsonlError(f"{at}: 'scores' must map reward names to numbers, got {value!r}")
    return {k: float(v) for k, v in value.items()}


def _dict(record: Mapping[str, Any], field: str, at: str) -> dict[str, Any]:
    value = record.get(field, {})
    if not isinstance(value, dict):
        raise JsonlError(f"{at}: {field!r} must be an object, got {type(value).__name__}")
    return dict(value)


def _generic_candidate(raw: Any, at: str) -> _Raw:
    if not isinstance(raw, dict):
        raise JsonlError(f"{at}: a candidate must be an object, got {type(raw).__name__}")
    _no_extra(raw, CANDIDATE_FIELDS, at)
    require(raw, ("text",), at)
    meta = _dict(raw, "meta", at)
    if "scores" in raw:
        meta["scores"] = _scores(raw["scores"], at)
    if "is_correct" in raw:
        meta["is_correct"] = _label(raw["is_correct"], at)
    prompt, generated = (_tokens(raw, f, at) for f in ("prompt_tokens", "generated_tokens"))
    meta["tokens_absent"] = prompt is None or generated is None
    return _Raw(text_field(raw, "text", at, allow_empty=True), meta, prompt or 0, generated or 0)


def _generic(record: dict[str, Any], task: str, at: str, index: int) -> tuple[Problem, list[_Raw]]:
    _no_extra(record, GENERIC_FIELDS, at)
    require(record, ("question", "answer", "candidates"), at)
    raws = record["candidates"]
    if not isinstance(raws, list):
        raise JsonlError(f"{at}: 'candidates' must be a list, got {type(raws).__name__}")
    name = text_field(record, "task", at) if "task" in record else task
    pid = text_field(record, "id", at) if "id" in record else f"{name}-{index}"
    meta = {"line": index, **_dict(record, "meta", at)}
    question, answer = (text_field(record, f, at) for f in ("question", "answer"))
    problem = Problem(pid, question, answer.strip(), name, meta)
    cands = [_generic_candidate(c, f"{at}: candidate {j}") for j, c in enumerate(raws)]
    return problem, cands


def _example(record: dict[str, Any], task: str, at: str, index: int) -> tuple[Problem, list[_Raw]]:
    _no_extra(record, EXAMPLE_FIELDS, at)
    require(record, EXAMPLE_FIELDS, at)
    solution = text_field(record, "ground_truth", at)
    meta = {"line": index, "solution": solution}
    answer = final_answer(solution, "A:", at)
    problem = Problem(f"{task}-{index}", text_field(record, "question", at), answer, task, meta)
    cands = []
    for model in EXAMPLE_MODELS:
        sub = record[model]
        where_ = f"{at}: {model}"
        if not isinstance(sub, dict):
            raise JsonlError(f"{where_}: must be an object, got {type(sub).__name__}")
        _no_extra(sub, ("solution", "is_correct"), where_)
        require(sub, ("solution", "is_correct"), where_)
        label = _label(sub["is_correct"], where_)
        text = text_field(sub, "solution", where_, allow_empty=True)
        cands.append(_Raw(text, {"model": model, "is_correct": label, "tokens_absent": True}))
    return problem, cands


Reader = Callable[[dict[str, Any], str, str, int], tuple[Problem, list[_Raw]]]
# format -> (reader, default segmentation, default task)
_READERS: dict[str, tuple[Reader, str, str]] = {
    "generic": (_generic, "paragraphs", "imported"),
    "gsm8k-example": (_example, "lines", "gsm8k"),
}


def detect_pool_format(record: Mapping[str, Any], at: str) -> str:
    """``"generic"`` if the record has ``candidates``, ``"gsm8k-example"`` if it has the
    example file's fields; else :class:`JsonlError`."""
    if "candidates" in record:
        return "generic"
    if "ground_truth" in record and any(m in record for m in EXAMPLE_MODELS):
        return "gsm8k-example"
    raise JsonlError(
        f"{at}: fields {sorted(record)} match no pool format (generic: 'question', 'answer', "
        f"'candidates'; gsm8k-example: {list(EXAMPLE_FIELDS)})"
    )


def import_pool(
    path: PathLike,
    *,
    extract_answer: AnswerExtractor,
    fmt: PoolFormat = "auto",
    segmentation: str | None = None,
    task: str | None = None,
) -> Pool:
    """Read a pool file into problems and, aligned with them, each problem's candidates.

    Args:
        path: the JSONL file (formats in the module docstring).
        extract_answer: text -> final answer or None; pass
            ``rewardlab.rewards.math_answer.extract_answer``.
        fmt: ``"generic"``, ``"gsm8k-example"`` or ``"auto"`` (from the first record; every
            record must then be of that format).
        segmentation: a :mod:`rewardlab.steps` segmenter name; default by format.
        task: task name for problems without one (default ``"imported"`` for generic,
            ``"gsm8k"`` for the example file).

    Returns:
        ``(problems, pool)`` with ``pool[i]`` the candidates of ``problems[i]``, indexed 0..n-1.

    Raises:
        JsonlError: malformed JSON, a missing, unknown or ill-typed field, or a duplicate id;
            the message names the file and line.
    """
    if fmt != "auto" and fmt not in _READERS:
        raise ValueError(f"unknown pool format {fmt!r}; choose 'auto' or one of {list(_READERS)}")
    if segmentation is not None:
        get_segmenter(segmentation)  # fail before reading on an unknown name
    path = Path(path)
    name: str | None = None if fmt == "auto" else fmt
    problems: list[Problem] = []
    pool: list[list[Candidate]] = []
    first_line: dict[str, int] = {}
    for index, record in read_jsonl(path):
        at = where(path, index)
        name = name or detect_pool_format(record, at)  # the first record decides for all
        reader, default_segmentation, default_task = _READERS[name]
        problem, raws = reader(record, task or default_task, at, index)
        if problem.id in first_line:
            first = first_line[problem.id] + 1
            raise JsonlError(f"{at}: duplicate id {problem.id!r} (first on line {first})")
        first_line[problem.id] = index
        problem = replace(problem, meta={"source": path.name, **problem.meta})
        seg = segmentation or default_segmentation
        problems.append(problem)
        pool.append(
            [_candidate(problem, r, j, seg, path.name, extract_answer) for j, r in enumerate(raws)]
        )
    return problems, pool


def _candidate(
    problem: Problem, raw: _Raw, index: int, seg: str, source: str, extract: AnswerExtractor
) -> Candidate:
    return Candidate(
        problem_id=problem.id,
        text=raw.text,
        steps=get_segmenter(seg)(raw.text),
        answer=extract(raw.text),
        prompt_tokens=raw.prompt_tokens,
        generated_tokens=raw.generated_tokens,
        segmentation=seg,
        index=index,
        meta={"source": source, **raw.meta},
    )


@dataclass(frozen=True)
class Disagreement:
    """An imported ``is_correct`` label the grader does not confirm.

    ``verdict`` is the grader's (True = correct), or None when it could not grade (``reason``).
    """

    problem_id: str
    candidate_index: int
    label: bool
    verdict: bool | None
    answer: str | None
    reason: str = ""


def label_disagreements(
    problems: Sequence[Problem], pool: Sequence[Sequence[Candidate]], grade: Grader
) -> list[Disagreement]:
    """Check every candidate's ``meta["is_correct"]`` against ``grade`` (one batched call).

    ``grade`` is a reward's ``score``, normally ``MathVerifyReward().score``; its verdict is
    "correct" when the value is 1.0. Candidates without a label are skipped. A candidate the
    grader leaves ungraded is a disagreement with verdict None. ``answer`` is the grader's
    extracted answer (``info["answer"]``) if it gives one, else the candidate's own.
    """
    if len(problems) != len(pool):
        raise ValueError(f"{len(problems)} problems for {len(pool)} candidate lists")
    pairs = [
        (p, c)
        for p, cands in zip(problems, pool, strict=True)
        for c in cands
        if "is_correct" in c.meta
    ]
    for p, c in pairs:
        if c.problem_id != p.id:
            raise ValueError(f"candidate of {c.problem_id!r} listed under problem {p.id!r}")
    scores = grade([p for p, _ in pairs], [c for _, c in pairs])
    out = []
    for (p, c), s in zip(pairs, scores, strict=True):
        verdict = None if s.value is None else s.value == 1.0
        label = bool(c.meta["is_correct"])
        if verdict != label:
            answer = s.info.get("answer", c.answer)
            reason = str(s.info.get("reason", ""))
            out.append(Disagreement(p.id, c.index, label, verdict, answer, reason))
    return out
