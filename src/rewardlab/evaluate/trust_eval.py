"""Trust diagnostics harness: score files and testbed pools, return :class:`EvalResult` s.

The metrics are in :mod:`.trust` (pure numpy, 95% bootstrap CIs); this module builds the
inputs. Two kinds of data:

==============  =======================================================  =================
diagnostic      data                                                     subject
==============  =======================================================  =================
position        pairwise file (prompt, chosen, rejected)                 a pairwise judge
contrast        rows prompt1, response1, prompt2, response2 (RMC)        a reward
scir            pairwise file; two rewards (judge, implicit reward)      two rewards
bon_bias        ``arith`` pool (problems with step truth + candidates)   a reward / PRM
step_ablation   ``arith`` pool                                           a PRM (score_steps)
ceiling         ``arith`` pool; several rewards                          a set of rewards
==============  =======================================================  =================

Length bias and per-subset / per-language breakdowns live in ``evaluate_pairwise``
(``length_corr/*``, the longer-response baseline, ``subset/*``, ``language/*``).

Testbed variants (all from the exact ``arith`` truth, :func:`rewardlab.tasks.arith.check_steps`):

- :func:`answer_only`: the solution cut to its answer line ``The answer is n.`` (the testbed's
  checker counts it correct: nothing is left to check; it has no derivation);
- :func:`truncated`: the first ⌊k/2⌋ of its k equation lines, then the answer line (the
  answer no longer follows from the last line: wrong by the checker, right answer);
- :func:`verbalise`: each equation line prefixed with the question's sentence for that
  operation, ``Then Dev finds 78 more: 114 + 78 = 192``; :func:`strip_words` takes it back to
  the bare arithmetic exactly, :func:`strip_math` keeps only the words.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.evaluate import trust as T
from rewardlab.evaluate.overopt import bon_gold
from rewardlab.evaluate.reward_eval import Estimate, EvalResult, _prompt_id, score_responses
from rewardlab.rewards.base import values
from rewardlab.rewards.oracle import step_labels
from rewardlab.tasks.arith import ANSWER_RE, STEP_RE, check_steps
from rewardlab.train.pref_io import DataError, read_records, require_str
from rewardlab.types import Candidate, Problem


def _est(stats: Mapping[str, T.Stat], prefix: str = "") -> dict[str, Estimate]:
    return {f"{prefix}{k}": Estimate(*v) for k, v in stats.items()}


def _name(x: Any) -> str:
    return str(getattr(x, "name", x))


# ------------------------------------------------------------------------------- position


def evaluate_position(
    judge: Any, path: str | Path, *, n_boot: int = 1000, seed: int = 0
) -> EvalResult:
    """Ask ``judge`` (a :class:`~rewardlab.rewards.pairwise_judge.PairwiseJudge`) every pair
    in both orders; metrics of :func:`.trust.position_bias`. Pairs the judge could not grade in
    either order are counted in ``details["ungraded"]`` and left out."""
    recs = read_records(path)
    probs = [Problem(_prompt_id(q), q, "") for q in (require_str(r, "prompt") for r in recs)]
    chosen = [require_str(r, "chosen") for r in recs]
    rejected = [require_str(r, "rejected") for r in recs]
    ab = np.asarray(judge.prefer(probs, chosen, rejected), dtype=float)
    ba = np.asarray(judge.prefer(probs, rejected, chosen), dtype=float)
    ok = ~(np.isnan(ab) | np.isnan(ba))
    if not ok.any():
        raise DataError(f"{path}: the judge graded no pair in both orders")
    metrics = _est(T.position_bias(ab[ok], ba[ok], n_boot, seed))
    details = {
        "n_pairs": len(recs),
        "ungraded": int((~ok).sum()),
        "note": "a scalar RM (σ(r_first − r_second)) has soft_bias 0 by construction",
        "p_first": {"ab": ab.tolist(), "ba": ba.tolist()},
    }
    return EvalResult("position", _name(judge), str(path), metrics, {}, details)


# ------------------------------------------------------------------------------- contrast


def read_contrast(path: str | Path) -> tuple[list[str], list[str], list[str], list[str]]:
    """(x1, y1, x2, y2) of a contrast-instruction file: rows prompt1, response1, prompt2,
    response2 (y_i the gold response of x_i). Raises DataError naming the line."""
    recs = read_records(path)
    cols = [
        [require_str(r, k) for r in recs] for k in ("prompt1", "response1", "prompt2", "response2")
    ]
    for r, x1, x2 in zip(recs, cols[0], cols[2], strict=True):
        if x1 == x2:
            raise DataError(f"{r.where}: prompt1 and prompt2 are identical (no contrast)")
    return cols[0], cols[1], cols[2], cols[3]


def evaluate_contrast(
    reward: Any, path: str | Path, *, n_boot: int = 1000, seed: int = 0
) -> EvalResult:
    """Contrast-instruction consistency (RMC, :func:`.trust.contrast_consistency`), beside
    the longer-response baseline (prompt-blind: its consistency is 0 by construction)."""
    x1, y1, x2, y2 = read_contrast(path)
    s = score_responses(reward, [*x1, *x1, *x2, *x2], [*y1, *y2, *y2, *y1])
    n = len(x1)
    metrics = _est(
        T.contrast_consistency(s[:n], s[n : 2 * n], s[2 * n : 3 * n], s[3 * n :], n_boot, seed)
    )
    ln = np.array([len(t) for t in [*y1, *y2, *y2, *y1]], dtype=float)
    baseline = _est(
        T.contrast_consistency(ln[:n], ln[n : 2 * n], ln[2 * n : 3 * n], ln[3 * n :], n_boot, seed)
    )
    details = {
        "n_pairs": n,
        "ungraded": int(np.isnan(s).sum()),
        "scores": s.reshape(4, n).T.tolist(),
    }
    return EvalResult("contrast", _name(reward), str(path), metrics, baseline, details)


# ----------------------------------------------------------------------------------- SCIR


def evaluate_scir(
    reward_a: Any, reward_b: Any, path: str | Path, *, n_boot: int = 1000, seed: int = 0
) -> EvalResult:
    """Agreement of two rewards on a pairwise file and the gold precision of the pairs they
    agree on (:func:`.trust.scir_agreement`; the file's chosen side is gold)."""
    recs = read_records(path)
    prompts = [require_str(r, "prompt") for r in recs]
    chosen = [require_str(r, "chosen") for r in recs]
    rejected = [require_str(r, "rejected") for r in recs]
    d = []
    for rw in (reward_a, reward_b):
        both = score_responses(rw, [*prompts, *prompts], [*chosen, *rejected])
        d.append(both[: len(recs)] - both[len(recs) :])
    metrics = _est(T.scir_agreement(d[0], d[1], n_boot, seed))
    details = {
        "n_pairs": len(recs),
        "a": _name(reward_a),
        "b": _name(reward_b),
        "ungraded": {"a": int(np.isnan(d[0]).sum()), "b": int(np.isnan(d[1]).sum())},
        "deltas": {"a": d[0].tolist(), "b": d[1].tolist()},
    }
    name = f"{_name(reward_a)} & {_name(reward_b)}"
    return EvalResult("scir", name, str(path), metrics, {}, details)


# ---------------------------------------------------------------------- testbed variants


def answer_only(steps: Sequence[str]) -> tuple[str, ...] | None:
    """The last answer line alone, or None when the solution has none."""
    answers = [s for s in steps if ANSWER_RE.match(s)]
    return (answers[-1],) if answers else None


def truncated(steps: Sequence[str]) -> tuple[str, ...] | None:
    """The first ⌊k/2⌋ of the k equation lines, then the last answer line; None without an
    answer line or with fewer than 2 equations (then it would equal :func:`answer_only`)."""
    eqs = [s for s in steps if STEP_RE.match(s)]
    ans = answer_only(steps)
    if ans is None or len(eqs) < 2:
        return None
    return (*eqs[: len(eqs) // 2], *ans)


STEP_CONDITIONS = ("math", "words+math", "words")
"""Step ablation conditions (:func:`ablate_steps`): the testbed's bare arithmetic (what the
shipped PRMs were trained on), the same steps with the question's words in front
(:func:`verbalise`), and those steps with the arithmetic stripped (:func:`strip_math`).
:func:`strip_words` of ``words+math`` is ``math`` again, exactly."""

_SENT = re.compile(r"(?<=[.?!])\s+")
MATH_RE = re.compile(r"-?\d+(?:\.\d+)?(?:\s*[-+*/x×÷=]\s*-?\d+(?:\.\d+)?)+")
"""A maths expression: numbers joined by operators or ``=`` (``114 + 78 = 192``)."""


def op_sentences(problem: Problem) -> list[str]:
    """The question's sentence for each operation, in order (sentence 0 states the start)."""
    sents = _SENT.split(problem.question.strip())
    n_ops = len(problem.meta.get("ops", ()))
    if len(sents) < n_ops + 1:
        raise ValueError(f"{problem.id}: {len(sents)} sentences for {n_ops} operations")
    return [s.rstrip(".") for s in sents[1 : n_ops + 1]]


def verbalise(problem: Problem, steps: Sequence[str]) -> tuple[str, ...]:
    """Equation line i gets the question's sentence for operation i in front, ``<sentence>:
    <equation>``; every other line (answer, extra or unparseable lines) is kept as is."""
    sents = op_sentences(problem)
    return tuple(
        f"{sents[i]}: {s.strip()}" if i < len(sents) and STEP_RE.match(s) else s
        for i, s in enumerate(steps)
    )


def strip_words(step: str) -> str:
    """The maths expressions of a step joined by a space; a step without one is kept as is
    (the answer line keeps its words, as in Ma et al.'s ablation).

    >>> strip_words("Then Dev finds 78 more: 114 + 78 = 192")
    '114 + 78 = 192'
    """
    found = MATH_RE.findall(step)
    return " ".join(found) if found else step


NO_WORDS = "..."
"""What :func:`strip_math` leaves of a step that is nothing but maths (the step stays a step,
so its label carries over, and no arithmetic is left in the words-only condition)."""


def strip_math(step: str) -> str:
    """The step's words: every maths expression removed (until none is left), whitespace
    collapsed, ``" :;,"`` trimmed at the ends. A step without an expression is returned as is
    (the answer line keeps its words and number); a step that is nothing but maths becomes
    :data:`NO_WORDS`. Idempotent; the result never contains a :data:`MATH_RE` match.

    >>> strip_math("Then Dev finds 78 more: 114 + 78 = 192"), strip_math("531 - 18 = 413")
    ('Then Dev finds 78 more', '...')
    """
    if not MATH_RE.search(step):
        return step
    rest = step
    while MATH_RE.search(rest):  # removing one expression can join two numbers into another
        rest = MATH_RE.sub(" ", rest)
    rest = re.sub(r"\s+", " ", rest).strip(" :;,")
    return rest or NO_WORDS


def ablate_steps(problem: Problem, steps: Sequence[str], condition: str) -> tuple[str, ...]:
    """The steps under one of the :data:`STEP_CONDITIONS` of Ma et al. 2025 ("What are
    step-level reward models rewarding?"), one output step per input step (so step labels carry
    over): ``words+math`` = :func:`verbalise` (the full steps), ``math`` = :func:`strip_words`
    of those (the words removed: the testbed's bare arithmetic again), ``words`` =
    :func:`strip_math` of those (the arithmetic removed).

    Raises:
        ValueError: an unknown condition, or a question with fewer sentences than operations.
    """
    if condition not in STEP_CONDITIONS:
        raise ValueError(f"unknown step condition {condition!r}; expected one of {STEP_CONDITIONS}")
    full = verbalise(problem, steps)
    if condition == "words+math":
        return full
    fn = strip_words if condition == "math" else strip_math
    return tuple(fn(s) for s in full)


# --------------------------------------------------------------------------- pool scoring


def _cand(problem: Problem, steps: Sequence[str]) -> Candidate:
    """A candidate of ``problem`` made of these step lines."""
    return Candidate(problem.id, "\n".join(steps), tuple(steps), None, segmentation="lines")


def _score(
    reward: Any,
    problems: Sequence[Problem],
    cands: Sequence[Candidate],
    with_steps: bool = False,
    batch: int = 256,
) -> tuple[np.ndarray, list[tuple[float, ...]]]:
    """Values (NaN = ungraded) and per-step scores (``()`` without) of every candidate, from
    ``score`` (``score_steps`` when ``with_steps``)."""
    vals: list[float] = []
    steps: list[tuple[float, ...]] = []
    fn = reward.score_steps if with_steps else reward.score
    for start in range(0, len(cands), batch):
        p, c = problems[start : start + batch], cands[start : start + batch]
        scores = fn(p, c)
        vals.extend(values(scores).tolist())
        steps.extend(tuple(float(v) for v in s.steps) for s in scores)
    return np.asarray(vals, dtype=float), steps


def _distinct(
    problems: Sequence[Problem], pool: Sequence[Sequence[Candidate]]
) -> list[tuple[int, Candidate]]:
    """(problem index, candidate) for each distinct solution text of each problem."""
    out = []
    for i, cands in enumerate(pool):
        seen: set[str] = set()
        for c in cands:
            if c.text not in seen:
                seen.add(c.text)
                out.append((i, c))
    return out


def evaluate_bon_bias(
    reward: Any,
    problems: Sequence[Problem],
    pool: Sequence[Sequence[Candidate]],
    *,
    source: str = "",
    n_boot: int = 1000,
    seed: int = 0,
) -> EvalResult:
    """BoN-bias checks (Zhang et al. 2025, "Lessons of developing PRMs") on an ``arith`` pool.

    Every distinct candidate that is right by its process (checker: no error, right answer) is
    scored complete and as :func:`answer_only` and :func:`truncated`; ``answer_only/*`` and
    ``truncated/*`` are :func:`.trust.shortcut_preference` (problems resampled). With
    ``score_steps``, every wrong candidate's step scores give ``steps/*``
    (:func:`.trust.min_at_last_step`).
    """
    items = _distinct(problems, pool)
    rights = [
        (i, c) for i, c in items if _first_error(problems[i], c) == -1 and _is_right(problems[i], c)
    ]
    if not rights:
        raise DataError(f"{source or 'pool'}: no candidate right by its process to cut short")
    metrics: dict[str, Estimate] = {}
    counts: dict[str, Any] = {"right_candidates": len(rights)}
    full_vals, _ = _score(reward, [problems[i] for i, _ in rights], [c for _, c in rights])
    for kind, fn in (("answer_only", answer_only), ("truncated", truncated)):
        rows: list[tuple[int, tuple[str, ...]]] = []
        for k, (_, c) in enumerate(rights):
            cut = fn(c.steps)
            if cut is not None:
                rows.append((k, cut))
        counts[kind] = len(rows)
        if not rows:
            continue
        probs = [problems[rights[k][0]] for k, _ in rows]
        short, _ = _score(
            reward, probs, [_cand(p, s) for p, (_, s) in zip(probs, rows, strict=True)]
        )
        full = full_vals[[k for k, _ in rows]]
        groups = np.array([rights[k][0] for k, _ in rows])
        metrics.update(_est(T.shortcut_preference(full, short, groups, n_boot, seed), f"{kind}/"))
    if hasattr(reward, "score_steps"):
        wrongs = [(i, c) for i, c in items if _first_error(problems[i], c) >= 0]
        if wrongs:
            _, steps = _score(
                reward, [problems[i] for i, _ in wrongs], [c for _, c in wrongs], with_steps=True
            )
            errs = [_first_error(problems[i], c) for i, c in wrongs]
            try:
                stats = T.min_at_last_step(
                    steps, errs, np.array([i for i, _ in wrongs]), n_boot, seed
                )
                metrics.update(_est(stats, "steps/"))
            except ValueError as e:
                counts["steps_skipped"] = str(e)
    return EvalResult("bon_bias", _name(reward), source, metrics, {}, counts)


def _first_error(problem: Problem, c: Candidate) -> int:
    return check_steps(problem, "\n".join(c.steps)).first_error


def _is_right(problem: Problem, c: Candidate) -> bool:
    return check_steps(problem, "\n".join(c.steps)).correct


def evaluate_step_ablation(
    reward: Any,
    problems: Sequence[Problem],
    pool: Sequence[Sequence[Candidate]],
    *,
    source: str = "",
    n_boot: int = 300,
    seed: int = 0,
) -> EvalResult:
    """Step ablations of Ma et al. 2025 ("What are step-level reward models rewarding?") on
    an ``arith`` pool, for a PRM with ``score_steps``.

    Every distinct candidate is scored in the three :data:`STEP_CONDITIONS` (one step each for
    each original step, so the exact labels carry over: step i is good iff steps 0..i are all
    correct). Metrics: ``auroc/<condition>`` (:func:`.trust.step_auroc`) over all steps,
    ``auroc_worded/<condition>`` over the equation steps that :func:`verbalise` changed (the
    answer line and unparseable lines are the same in every condition) and, against ``math``,
    ``shift/<condition>/spearman`` and ``shift/<condition>/mean_abs_diff``
    (:func:`.trust.score_shift`); problems are resampled.
    """
    if not hasattr(reward, "score_steps"):
        raise TypeError(f"{_name(reward)} has no score_steps: step ablations need a PRM")
    items = _distinct(problems, pool)
    probs = [problems[i] for i, _ in items]
    variants = {"math": [tuple(c.steps) for _, c in items]}
    for cond in STEP_CONDITIONS[1:]:
        variants[cond] = [
            ablate_steps(p, c.steps, cond) for p, (_, c) in zip(probs, items, strict=True)
        ]
    back = [ablate_steps(p, c.steps, "math") for p, (_, c) in zip(probs, items, strict=True)]
    exact_back = sum(
        b == tuple(s.strip() for s in m) for b, m in zip(back, variants["math"], strict=True)
    )
    labels = np.concatenate(
        [
            np.asarray(step_labels(p, m), dtype=bool)
            for p, m in zip(probs, variants["math"], strict=True)
        ]
    )
    worded = np.concatenate(
        [
            np.array([a != b for a, b in zip(m, w, strict=True)], dtype=bool)
            for m, w in zip(variants["math"], variants["words+math"], strict=True)
        ]
    )
    groups = np.concatenate(
        [np.full(len(m), i) for (i, _), m in zip(items, variants["math"], strict=True)]
    )
    flat: dict[str, np.ndarray] = {}
    ungraded: dict[str, int] = {}
    for cond in STEP_CONDITIONS:
        cands = [_cand(p, s) for p, s in zip(probs, variants[cond], strict=True)]
        _, steps = _score(reward, probs, cands, with_steps=True)
        rows = []
        for s, m in zip(steps, variants["math"], strict=True):
            rows.append(np.asarray(s, dtype=float) if len(s) == len(m) else np.full(len(m), np.nan))
        flat[cond] = np.concatenate(rows)
        ungraded[cond] = int(np.isnan(flat[cond]).sum())
    metrics: dict[str, Estimate] = {}
    for cond in STEP_CONDITIONS:
        metrics[f"auroc/{cond}"] = Estimate(*T.step_auroc(flat[cond], labels, groups, n_boot, seed))
        metrics[f"auroc_worded/{cond}"] = Estimate(
            *T.step_auroc(flat[cond][worded], labels[worded], groups[worded], n_boot, seed)
        )
    for cond in STEP_CONDITIONS[1:]:
        metrics.update(
            _est(T.score_shift(flat["math"], flat[cond], groups, n_boot, seed), f"shift/{cond}/")
        )
    details = {
        "candidates": len(items),
        "steps": int(labels.size),
        "good_steps": int(labels.sum()),
        "worded_steps": int(worded.sum()),
        "ungraded_steps": ungraded,
        "strip_words_recovers_math": f"{exact_back}/{len(items)}",
        "example": {c: list(variants[c][0]) for c in STEP_CONDITIONS} if items else {},
    }
    return EvalResult("step_ablation", _name(reward), source, metrics, {}, details)


# ---------------------------------------------------------------------- alignment ceiling


def pool_correct(problems: Sequence[Problem], pool: Sequence[Sequence[Candidate]]) -> np.ndarray:
    """Final-answer correctness [P, n] by the testbed's checker (pools cut to the smallest n)."""
    n = min(len(c) for c in pool)
    return np.array(
        [
            [check_steps(p, c.text).correct for c in cands[:n]]
            for p, cands in zip(problems, pool, strict=True)
        ],
        dtype=float,
    )


def pair_wins(scores: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per problem: (right-over-wrong pairs the scores order strictly right, all such pairs).

    A tie, or a pair with an ungraded (NaN) side, counts as wrong (RewardBench's rule).

    >>> pair_wins(np.array([[3.0, 1.0, 2.0]]), np.array([[1.0, 0.0, 0.0]]))
    (array([2.]), array([2.]))
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(correct, dtype=bool)
    good = np.where(np.isnan(s), -np.inf, s)
    bad = np.where(np.isnan(s), np.inf, s)  # an ungraded wrong side: the pair is lost
    wins = (good[:, :, None] > bad[:, None, :]) & y[:, :, None] & ~y[:, None, :]
    pairs = y.sum(1) * (~y).sum(1)
    return wins.sum((1, 2)).astype(float), pairs.astype(float)


def evaluate_ceiling(
    rewards: Mapping[str, Any],
    problems: Sequence[Problem],
    pool: Sequence[Sequence[Candidate]],
    *,
    n: int | None = None,
    source: str = "",
    n_boot: int = 1000,
    seed: int = 0,
    progress: Any = None,
    cache_dir: str | Path | None = None,
) -> EvalResult:
    """The alignment-ceiling diagnostic on an ``arith`` pool, where both sides are exact.

    For each reward: ``<name>/accuracy`` (right-over-wrong pairs of the same problem ordered
    strictly right, :func:`pair_wins`) and ``<name>/bon_gain`` = best-of-N accuracy − pass@1
    (exact order statistics, ties share credit: :func:`.overopt.bon_gold`; N = ``n``, default
    the pool size). ``rank/spearman`` and ``rank/kendall``: :func:`.trust.rank_correlation_ci`
    across the rewards (problems resampled). ``details["table"]`` lists each reward's numbers.
    With ``cache_dir``, each reward's score matrix is saved there (``<name>.npy``, keyed by a
    fingerprint of the pool's texts) and reused, so a re-run scores only what is missing.
    """
    if len(rewards) < 3:
        raise ValueError(f"the ceiling diagnostic ranks >= 3 rewards, got {len(rewards)}")
    correct = pool_correct(problems, pool)
    size = correct.shape[1]
    big_n = size if n is None else n
    if not 1 <= big_n <= size:
        raise ValueError(f"N must be in 1..{size} (the pool size), got {big_n}")
    flat_p = [p for p in problems for _ in range(size)]
    flat_c = [c for cands in pool for c in cands[:size]]
    num, den, gain, bon = [], [], [], []
    ungraded: dict[str, int] = {}
    for name, reward in rewards.items():
        vals = _cached_scores(reward, flat_p, flat_c, (len(problems), size), name, cache_dir)
        ungraded[name] = int(np.isnan(vals).sum())
        w, d = pair_wins(vals, correct)
        b = bon_gold(vals, correct, [big_n])[:, 0]
        num.append(w)
        den.append(d)
        bon.append(b)
        gain.append(b - correct.mean(1))
        if progress is not None:
            progress(name)
    a_num, a_den, g = np.stack(num, 1), np.stack(den, 1), np.stack(gain, 1)
    names = list(rewards)
    metrics: dict[str, Estimate] = {}
    acc = T.ratio_stats(
        dict(zip(names, a_num.T, strict=True)), dict(zip(names, a_den.T, strict=True)), n_boot, seed
    )
    gains = T.mean_stats(dict(zip(names, g.T, strict=True)), n_boot, seed)
    bons = T.mean_stats(dict(zip(names, np.stack(bon, 1).T, strict=True)), n_boot, seed)
    for k in names:
        metrics[f"{k}/accuracy"] = Estimate(*acc[k])
        metrics[f"{k}/bon_gain"] = Estimate(*gains[k])
    metrics.update(_est(T.rank_correlation_ci(a_num, a_den, g, n_boot, seed), "rank/"))
    pass1 = T.mean_stats({"pass@1": correct.mean(1)}, n_boot, seed)
    details = {
        "n_problems": len(problems),
        "pool_size": size,
        "N": big_n,
        "pass@1": pass1["pass@1"][0],
        "ungraded": ungraded,
        "table": [
            {"reward": k, "accuracy": acc[k][0], "bon@N": bons[k][0], "bon_gain": gains[k][0]}
            for k in names
        ],
    }
    return EvalResult("ceiling", ",".join(names), source, metrics, {}, details)


def _cached_scores(
    reward: Any,
    problems: Sequence[Problem],
    cands: Sequence[Candidate],
    shape: tuple[int, int],
    name: str,
    cache_dir: str | Path | None,
) -> np.ndarray:
    """``reward``'s values [P, n], read from / written to ``cache_dir`` when given."""
    if cache_dir is None:
        return values(reward.score(problems, cands)).reshape(shape)
    key = hashlib.sha256(
        "\0".join(f"{p.id}\0{c.text}" for p, c in zip(problems, cands, strict=True)).encode()
    ).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)
    path = Path(cache_dir) / f"{safe}-{key}.npy"
    if path.is_file():
        cached: np.ndarray = np.load(path)
        if cached.shape == shape:
            return cached
    vals = values(reward.score(problems, cands)).reshape(shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vals)
    tmp.replace(path)
    return vals


def read_arith_pool(path: str | Path) -> tuple[list[Problem], list[list[Candidate]]]:
    """An ``arith`` pool in the generic pool-import format (``docs/pool_import.md``): every
    problem needs its testbed ``meta`` (``ops``, ``states``), steps are lines."""
    from rewardlab.tasks.arith import extract_answer
    from rewardlab.tasks.pool_import import import_pool

    problems, pool = import_pool(
        path, extract_answer=extract_answer, task="arith", segmentation="lines"
    )
    for p in problems:
        if "states" not in p.meta or "ops" not in p.meta:
            raise DataError(f"{path}: problem {p.id} has no arith meta (ops, states)")
    if not problems or not any(pool):
        raise DataError(f"{path}: no candidates")
    return problems, pool
