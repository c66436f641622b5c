"""Pool evaluations of reward models: best-of-N overoptimisation and STARC distance.

Same schema as :mod:`.reward_eval` (:class:`~.reward_eval.EvalResult`, 95% CIs over prompts).
A pool file has rows ``prompt``, ``responses`` (a list) and, for ``overopt``, ``gold`` (a list
of numbers, one per response); a pairwise file also works (``n = 2``: chosen, rejected; gold
1/0). The math is in :mod:`.overopt`.

>>> result = evaluate_overopt({"bt": rm}, "pool.jsonl")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.evaluate import rm_metrics as M
from rewardlab.evaluate.bootstrap import bootstrap_ci
from rewardlab.evaluate.overopt import bon_gold, fit_gao_bon, kl_bon, starc_distance
from rewardlab.evaluate.reward_eval import Estimate, EvalResult, score_responses
from rewardlab.train.pref_io import DataError, read_records, require_str, require_str_list


def read_pool(
    path: str | Path, need_gold: bool = True
) -> tuple[list[str], list[list[str]], np.ndarray | None]:
    """(prompts, responses [P][n], gold [P, n] or None) of a pool file; every row is cut to the
    smallest pool size n (a pairwise file gives n = 2: chosen, rejected; gold 1/0)."""
    recs = read_records(path)
    prompts = [require_str(r, "prompt") for r in recs]
    if recs and "responses" not in recs[0].data and "chosen" in recs[0].data:
        resp = [[require_str(r, "chosen"), require_str(r, "rejected")] for r in recs]
        return prompts, resp, np.tile([1.0, 0.0], (len(recs), 1))
    resp = [require_str_list(r, "responses") for r in recs]
    n = min(len(x) for x in resp)
    resp = [x[:n] for x in resp]
    if not need_gold and "gold" not in recs[0].data:
        return prompts, resp, None
    gold = []
    for r in recs:
        g = r.data.get("gold")
        if not isinstance(g, list) or len(g) < n:
            raise DataError(f"{r.where}: 'gold' must be a list of >= {n} numbers")
        gold.append([float(v) for v in g[:n]])
    return prompts, resp, np.array(gold)


def _pool_scores(reward: Any, prompts: Sequence[str], resp: Sequence[Sequence[str]]) -> np.ndarray:
    flat = score_responses(
        reward,
        [p for p, r in zip(prompts, resp, strict=True) for _ in r],
        [t for r in resp for t in r],
    )
    return flat.reshape(len(prompts), -1)


def evaluate_overopt(
    proxies: Mapping[str, Any],
    path: str | Path,
    *,
    gold: Any | None = None,
    ns: Sequence[int] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> EvalResult:
    """Gold reward of best-of-N by each proxy as N grows (and KL_BoN), with the oracle (BoN by
    gold) and the longer-response proxy as baseline. ``gold`` (a Reward) replaces the file's
    ``gold`` column where given."""
    prompts, resp, g = read_pool(path, need_gold=gold is None)
    if gold is not None:
        g = _pool_scores(gold, prompts, resp)
    assert g is not None
    n = g.shape[1]
    ns = list(ns) if ns is not None else [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k <= n]
    metrics: dict[str, Estimate] = {}
    curves: dict[str, dict[str, Any]] = {}

    def add(name: str, proxy: np.ndarray, target: dict[str, Estimate]) -> None:
        mean, lo, hi = bootstrap_ci(bon_gold(proxy, g, ns), n_boot=n_boot, rng=seed)
        for j, k in enumerate(ns):
            target[f"{name}/N={k}"] = Estimate(
                float(mean[j]), float(lo[j]), float(hi[j]), len(prompts)
            )
        alpha, beta = fit_gao_bon(kl_bon(np.array(ns)), mean) if len(ns) > 2 else (0.0, 0.0)
        curves[name] = {
            "gold": mean.tolist(),
            "low": lo.tolist(),
            "high": hi.tolist(),
            "alpha": alpha,
            "beta": beta,
        }

    for name, reward in proxies.items():
        add(name, _pool_scores(reward, prompts, resp), metrics)
    baseline: dict[str, Estimate] = {}
    add("longer", np.array([[len(t) for t in r] for r in resp], dtype=float), baseline)
    add("oracle", g, baseline)
    details = {
        "ns": ns,
        "kl_bon": kl_bon(np.array(ns)).tolist(),
        "curves": curves,
        "pool_size": n,
        "n_prompts": len(prompts),
    }
    return EvalResult("overopt", ",".join(proxies), str(path), metrics, baseline, details)


def evaluate_distance(
    reward_a: Any, reward_b: Any, path: str | Path, *, n_boot: int = 1000, seed: int = 0
) -> EvalResult:
    """STARC distance (per-prompt canonicalised, normalised, L2; in [0, 1]) between two rewards
    on the same candidates, with Pearson/Spearman; CIs resample prompts."""
    prompts, resp, _ = read_pool(path, need_gold=False)
    a, b = (
        _pool_scores(reward_a, prompts, resp).ravel(),
        _pool_scores(reward_b, prompts, resp).ravel(),
    )
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("STARC needs every candidate graded by both rewards")
    groups = np.repeat(np.arange(len(prompts)), len(resp[0]))
    lengths = np.array([len(t) for r in resp for t in r], dtype=float)
    boots = min(n_boot, 300)
    metrics = {
        "starc": Estimate(
            *M.grouped_stat_ci(
                lambda i: starc_distance(a[i], b[i], groups[i]), groups, boots, rng=seed
            ),
            a.size,
        ),
        "pearson": Estimate(
            *M.grouped_stat_ci(lambda i: M.pearson(a[i], b[i]), groups, boots, rng=seed), a.size
        ),
        "spearman": Estimate(
            *M.grouped_stat_ci(lambda i: M.spearman(a[i], b[i]), groups, boots, rng=seed), a.size
        ),
    }
    baseline = {}
    for k, r in (("a", a), ("b", b)):

        def to_length(i: np.ndarray, r: np.ndarray = r) -> float:
            return starc_distance(r[i], lengths[i], groups[i])

        t = M.grouped_stat_ci(to_length, groups, boots, rng=seed)
        baseline[f"starc_to_length/{k}"] = Estimate(*t, a.size)
    name = f"{getattr(reward_a, 'name', 'a')} vs {getattr(reward_b, 'name', 'b')}"
    return EvalResult(
        "distance",
        name,
        str(path),
        metrics,
        baseline,
        {"n_prompts": len(prompts), "pool_size": len(resp[0])},
    )


# ------------------------------------------------------------------------------ selection


def read_selection_pool(
    path: str | Path,
) -> tuple[list[str], list[list[str]], np.ndarray, list[list[str | None]] | None]:
    """(prompts, responses [P][N], correct bool [P, N], answers [P][N] or None) of a labelled
    pool file: rows ``{"prompt", "responses": [...], "correct": [bool, ...], "answers"?:
    [str | null, ...]}``. Every row must hold the same N (the estimators need a rectangle)."""
    recs = read_records(path)
    if not recs:
        raise DataError(f"{path}: no rows")
    prompts = [require_str(r, "prompt") for r in recs]
    resp = [require_str_list(r, "responses") for r in recs]
    n = len(resp[0])
    correct, answers = [], []
    for r, x in zip(recs, resp, strict=True):
        if len(x) != n:
            raise DataError(f"{r.where}: {len(x)} responses; every row needs the same N = {n}")
        ok = r.data.get("correct")
        if not isinstance(ok, list) or len(ok) != n or not all(isinstance(v, bool) for v in ok):
            raise DataError(f"{r.where}: 'correct' must be a list of {n} booleans")
        correct.append(ok)
        a = r.data.get("answers")
        if a is not None:
            if not isinstance(a, list) or len(a) != n:
                raise DataError(f"{r.where}: 'answers' must be a list of {n} strings or nulls")
            if not all(v is None or isinstance(v, str) for v in a):
                raise DataError(f"{r.where}: 'answers' must hold strings or nulls")
            answers.append(list(a))
    if answers and len(answers) != len(recs):
        raise DataError(f"{path}: 'answers' is given on some rows only")
    return prompts, resp, np.array(correct, dtype=bool), answers or None


def answer_classes(answers: Sequence[Sequence[str | None]], same: Any | None = None) -> np.ndarray:
    """int [P, N]: equal ids for equivalent answers within a row (numbered by first
    appearance), -1 for no answer. ``same(a, b)`` decides equivalence (default: equal strings);
    each answer is compared with one representative per class."""
    out = np.full((len(answers), max((len(r) for r in answers), default=0)), -1, dtype=np.int64)
    for i, row in enumerate(answers):
        reps: list[str] = []
        for j, a in enumerate(row):
            if a is None:
                continue
            for cls, rep in enumerate(reps):
                if a == rep or (same is not None and same(a, rep)):
                    out[i, j] = cls
                    break
            else:
                reps.append(a)
                out[i, j] = len(reps) - 1
    return out


def vote_weights(scores: np.ndarray, how: str = "sigmoid") -> np.ndarray:
    """Non-negative vote weights from reward scores: ``sigmoid`` (a logit ORM's P(correct)),
    ``raw`` (scores already in [0, 1]: checked) or ``rank`` (1..N within each row)."""
    s = np.asarray(scores, dtype=float)
    if how == "sigmoid":
        out: np.ndarray = 1.0 / (1.0 + np.exp(-s))
        return out
    if how == "raw":
        if (s[~np.isnan(s)] < 0).any():
            raise ValueError("vote weights 'raw' need scores >= 0; use 'sigmoid' or 'rank'")
        return s
    if how == "rank":
        return np.argsort(np.argsort(np.nan_to_num(s, nan=-np.inf), axis=1), axis=1) + 1.0
    raise ValueError(f"unknown vote weights {how!r}: sigmoid | raw | rank")


def evaluate_selection(
    reward: Any,
    path: str | Path,
    *,
    weights: str = "sigmoid",
    n_boot: int = 1000,
    seed: int = 0,
    scores: np.ndarray | None = None,
) -> EvalResult:
    """Answer selection from a labelled pool of N responses per problem, by a reward model.

    Metrics (all at k = N, with 95% percentile-bootstrap CIs resampling problems, one set of
    draws for every column so the differences are paired): ``best_of_n`` (the reward's argmax),
    ``weighted_majority`` (votes weighted by :func:`vote_weights`), ``auroc`` of the scores
    against correctness over all responses (CI resampling problems), and the differences
    ``diff/best_of_n-majority`` and ``diff/weighted_majority-majority``. Baselines (no reward):
    ``majority`` (self-consistency), ``random_at_1`` (the mean correctness) and ``pass_at_n``
    (the oracle's ceiling). Estimators: :mod:`rewardlab.evaluate.estimators` (exact
    expectations over ties). Answers are the file's ``answers`` or, when absent, extracted by
    Math-Verify (:class:`rewardlab.tasks.math_check.MathTask`) and grouped by equivalence.
    ``scores`` [P, N] replaces the reward's scores (``reward`` then only names the result).
    """
    from rewardlab.evaluate.estimators import (
        bon_at_k,
        majority_at_k,
        pass_at_k,
        weighted_majority_at_k,
    )
    from rewardlab.evaluate.trust import step_auroc

    prompts, resp, correct, answers = read_selection_pool(path)
    p, n = correct.shape
    task = None
    if answers is None:
        from rewardlab.tasks.math_check import MathTask

        task = MathTask()
        answers = [[task.extract_answer(t) for t in row] for row in resp]
    ids = answer_classes(answers, task.same_answer if task is not None else None)
    s = _pool_scores(reward, prompts, resp) if scores is None else np.asarray(scores, float)
    if s.shape != (p, n):
        raise ValueError(f"scores must be [{p}, {n}], got {s.shape}")
    w = vote_weights(s, weights)
    cols = {
        "best_of_n": bon_at_k(s, correct, [n])[:, 0],
        "weighted_majority": weighted_majority_at_k(ids, w, correct, [n], rng=seed)[:, 0],
        "majority": majority_at_k(ids, correct, [n], rng=seed)[:, 0],
        "random_at_1": pass_at_k(correct, [1])[:, 0],
        "pass_at_n": pass_at_k(correct, [n])[:, 0],
    }
    cols["diff/best_of_n-majority"] = cols["best_of_n"] - cols["majority"]
    cols["diff/weighted_majority-majority"] = cols["weighted_majority"] - cols["majority"]
    names = list(cols)
    mean, lo, hi = bootstrap_ci(np.stack([cols[k] for k in names], 1), n_boot=n_boot, rng=seed)
    est = {k: Estimate(float(mean[j]), float(lo[j]), float(hi[j]), p) for j, k in enumerate(names)}
    groups = np.repeat(np.arange(p), n)
    au = step_auroc(s.ravel(), correct.ravel(), groups, n_boot, seed)
    metrics = {k: est[k] for k in ("best_of_n", "weighted_majority")}
    metrics["auroc"] = Estimate(float(au[0]), float(au[1]), float(au[2]), int(au[3]))
    metrics.update({k: v for k, v in est.items() if k.startswith("diff/")})
    baseline = {k: est[k] for k in ("majority", "random_at_1", "pass_at_n")}
    details = {
        "pool_size": n,
        "n_problems": p,
        "vote_weights": weights,
        "answers": "file" if task is None else "extracted (Math-Verify)",
        "no_answer_fraction": float((ids < 0).mean()),
        "scores": s.tolist(),
    }
    name = str(getattr(reward, "name", reward))
    return EvalResult("select", name, str(path), metrics, baseline, details)
