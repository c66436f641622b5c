"""One evaluation harness for reward models: five evaluations, one result schema, 95% CIs.

Every evaluation scores a data file with a :class:`~rewardlab.rewards.base.Reward` and returns
an :class:`EvalResult`: ``metrics`` (name -> :class:`Estimate`: value, 95% percentile-bootstrap
interval, n), ``baseline`` (the same metrics for the *pick the longer response* baseline, where
it applies: the score of a response is its length in characters) and ``details``.

================  ====================================================  =====================
evaluation        data rows                                             metrics
================  ====================================================  =====================
pairwise          prompt, chosen, rejected, subset (RewardBench v1);    accuracy, overall,
                  optional language (M-RewardBench)                     section/*, subset/*,
                                                                        length_corr/*, [ece/*],
                                                                        [language/*]
bon               prompt, chosen [list], rejected [list], subset        overall, subset/*
                  (RewardBench v2; optional id, num_correct)
one_to_many       prompt, chosen, rejected [list of M] (RewardMATH)     accuracy, mrr
overopt           prompt, responses [list], gold [list]                 <proxy>/N=<N> (gold)
distance          prompt, responses [list] (or a pairwise file)         starc, pearson, spearman
================  ====================================================  =====================

A ``pairwise`` file may instead be conversational (TRL's message-list pairs, or HH-RLHF as
shipped); see :func:`evaluate_pairwise`. The pool evaluations (``overopt``, ``distance``)
live in :mod:`.reward_eval_pool`.

Rules (see :mod:`.rm_metrics` for the exact ones): ties and ungraded (None) scores never win;
RewardBench sections are example-count-weighted; v2 ties share credit 1/k; RewardMATH ranks a
tie below. A response is scored with ``problem.question = prompt`` and ``candidate.text =
response``; identical (prompt, response) pairs are scored once.

>>> result = evaluate_pairwise(reward, "rewardbench.jsonl")  # doctest: +SKIP
>>> result.metrics["overall"].value  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.evaluate import rm_metrics as M
from rewardlab.evaluate.bootstrap import bootstrap_ci
from rewardlab.evaluate.calibration import (
    ece_ci,
    fit_isotonic,
    fit_temperature,
    pairwise_calibration_data,
    sigmoid,
)
from rewardlab.rewards.base import values
from rewardlab.steps import split_lines
from rewardlab.train.pref_io import (
    DataError,
    parse_pairs,
    read_records,
    require_str,
    require_str_list,
)
from rewardlab.types import Candidate, Problem


@dataclass(frozen=True)
class Estimate:
    """A number with its 95% bootstrap interval and the count it rests on."""

    value: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class EvalResult:
    """The result of any evaluation (JSON-serialisable with :meth:`as_dict`)."""

    task: str
    reward: str
    data: str
    metrics: Mapping[str, Estimate]
    baseline: Mapping[str, Estimate] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _est(t: tuple[float, ...], n: int | None = None) -> Estimate:
    return Estimate(float(t[0]), float(t[1]), float(t[2]), int(t[3] if n is None else n))


def _mean_ci(x: np.ndarray, n_boot: int, seed: int) -> Estimate:
    v = np.asarray(x, dtype=float)
    mean, lo, hi = bootstrap_ci(v[:, None], n_boot=n_boot, rng=seed)
    return Estimate(float(mean[0]), float(lo[0]), float(hi[0]), int(v.size))


def _prompt_id(prompt: str) -> str:
    """A stable id for a prompt (the same in every process)."""
    return "q" + hashlib.sha256(prompt.encode()).hexdigest()[:12]


def score_responses(
    reward: Any, prompts: Sequence[str], responses: Sequence[str], batch_size: int = 256
) -> np.ndarray:
    """Reward values (NaN = ungraded) for (prompt, response) pairs, each distinct pair once."""
    keys: dict[tuple[str, str], int] = {}
    index = [keys.setdefault((p, r), len(keys)) for p, r in zip(prompts, responses, strict=True)]
    uniq = list(keys)
    out = np.full(len(uniq), np.nan)
    for start in range(0, len(uniq), batch_size):
        chunk = uniq[start : start + batch_size]
        probs = [Problem(id=_prompt_id(p), question=p, answer="") for p, _ in chunk]
        cands = [
            Candidate(pr.id, r, split_lines(r), None)
            for pr, (_, r) in zip(probs, chunk, strict=True)
        ]
        out[start : start + len(chunk)] = values(reward.score(probs, cands))
    return out[np.asarray(index, dtype=int)] if index else np.zeros(0)


def _lengths(texts: Sequence[str]) -> np.ndarray:
    return np.array([len(t) for t in texts], dtype=float)


# ----------------------------------------------------------------------------- pairwise (v1)


def _v1_block(
    correct: np.ndarray, subsets: Sequence[str], n_boot: int, seed: int
) -> dict[str, Estimate]:
    out = {"accuracy": _mean_ci(correct, n_boot, seed)}
    for k, v in M.rewardbench_v1(correct, subsets, n_boot=n_boot, rng=seed).items():
        out[k] = _est(v)
    return out


def _languages(recs: Sequence[Any]) -> list[str] | None:
    """Each row's ``language`` when any row has one (``"unknown"`` where a row lacks it), else
    None (M-RewardBench reports accuracy per language)."""
    if not any(r.data.get("language") for r in recs):
        return None
    return [str(r.data.get("language") or "unknown") for r in recs]


def _by_language(
    correct: np.ndarray, languages: Sequence[str], n_boot: int, seed: int
) -> dict[str, Estimate]:
    from rewardlab.evaluate.trust import group_accuracy

    return {
        f"language/{k}": Estimate(*v)
        for k, v in group_accuracy(correct, languages, n_boot, seed).items()
    }


def evaluate_pairwise(
    reward: Any,
    path: str | Path,
    *,
    dev: str | Path | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    n_bins: int = 10,
) -> EvalResult:
    """Pairwise accuracy in RewardBench v1 format, beside the longer-response baseline.

    Rows are read by :func:`~rewardlab.train.pref_io.parse_pairs`, the reader preference
    training uses: explicit-prompt strings, or the conversational form (TRL message lists,
    implicit or explicit prompt, and HH-RLHF dialogues as shipped), detected per row, one form
    per file. A conversational pair is scored in HH markup (``prompt`` = the shared dialogue
    prefix, a response = its final assistant turn(s)), the text preference RMs train on.
    ``details["form"]`` says which form was read.

    With ``dev`` (a pairwise file), a temperature and an isotonic map are fitted on its
    symmetrised pairs and ``ece/raw``, ``ece/temperature``, ``ece/isotonic`` are measured on
    ``path`` (equal-width bins; see :mod:`.calibration`).
    """
    recs = read_records(path)
    rows, form = parse_pairs(recs)
    prompts = [r.prompt for r in rows]
    chosen = [r.chosen for r in rows]
    rejected = [r.rejected for r in rows]
    subsets = [str(r.data.get("subset") or "all") for r in recs]
    s_c = score_responses(reward, prompts, chosen)
    s_r = score_responses(reward, prompts, rejected)
    correct = M.pairwise_correct(s_c, s_r)
    l_c, l_r = _lengths(chosen), _lengths(rejected)
    metrics = _v1_block(correct, subsets, n_boot, seed)
    baseline = _v1_block(M.pairwise_correct(l_c, l_r), subsets, n_boot, seed)
    languages = _languages(recs)
    if languages is not None:
        metrics.update(_by_language(correct, languages, n_boot, seed))
        baseline.update(_by_language(M.pairwise_correct(l_c, l_r), languages, n_boot, seed))
    both_s, both_l = np.concatenate([s_c, s_r]), np.concatenate([l_c, l_r])
    ok = ~np.isnan(both_s)
    pair_of = np.concatenate([np.arange(len(recs))] * 2)[ok]
    sv, lv = both_s[ok], both_l[ok]
    for name, fn in (("spearman", M.spearman), ("pearson", M.pearson)):

        def corr(idx: np.ndarray, f: Any = fn) -> float:
            return float(f(sv[idx], lv[idx]))

        t = M.grouped_stat_ci(corr, pair_of, n_boot=min(n_boot, 300), rng=seed)
        metrics[f"length_corr/{name}"] = Estimate(*t, int(ok.sum()))
    details: dict[str, Any] = {
        "n_pairs": len(recs),
        "form": form,
        "ties": int(np.sum(s_c == s_r)),
        "ungraded": int(np.sum(np.isnan(s_c) | np.isnan(s_r))),
        "section_weights": {
            s: M.EXAMPLE_COUNTS[s] for s in sorted(set(subsets)) if s in M.EXAMPLE_COUNTS
        },
        "scores": {"chosen": s_c.tolist(), "rejected": s_r.tolist()},
        "subsets": subsets,
        **({"languages": languages} if languages is not None else {}),
    }
    if dev is not None:
        cal, cal_details = _calibration(reward, dev, s_c - s_r, n_boot, seed, n_bins)
        metrics.update(cal)
        details["calibration"] = cal_details
    return EvalResult(
        "pairwise", str(getattr(reward, "name", reward)), str(path), metrics, baseline, details
    )


def _calibration(
    reward: Any, dev: str | Path, deltas: np.ndarray, n_boot: int, seed: int, n_bins: int
) -> tuple[dict[str, Estimate], dict[str, Any]]:
    rows, _ = parse_pairs(read_records(dev))
    p = [r.prompt for r in rows]
    d_dev = score_responses(reward, p, [r.chosen for r in rows]) - score_responses(
        reward, p, [r.rejected for r in rows]
    )
    d_dev, d_test = d_dev[~np.isnan(d_dev)], deltas[~np.isnan(deltas)]
    x_dev, y_dev, _ = pairwise_calibration_data(d_dev)
    x, y, groups = pairwise_calibration_data(d_test)
    temp = fit_temperature(x_dev, y_dev)
    iso = fit_isotonic(x_dev, y_dev)
    probs = {"raw": sigmoid(x), "temperature": temp.predict(x), "isotonic": iso.predict(x)}
    out = {
        f"ece/{k}": Estimate(*ece_ci(v, y, groups, n_bins, n_boot, rng=seed), int(d_test.size))
        for k, v in probs.items()
    }
    details = {
        "temperature": temp.temperature,
        "n_dev": int(d_dev.size),
        "n_bins": n_bins,
        "probs": {k: v.tolist() for k, v in probs.items()},
        "labels": y.tolist(),
    }
    return out, details


# ----------------------------------------------------------------------------- best-of-N (v2)


def _v2_block(
    rows: Sequence[np.ndarray],
    subsets: Sequence[str],
    ids: Sequence[str],
    n_correct: Sequence[int],
    n_boot: int,
    seed: int,
) -> dict[str, Estimate]:
    subs = np.asarray(subsets)
    out: dict[str, Estimate] = {}
    gen = np.random.default_rng(seed)
    reps = []
    points = []
    for name in sorted(set(subsets)):
        idx = np.flatnonzero(subs == name)
        if name.lower() == "ties":
            members = [int(i) for i in idx]

            def stat(sel: np.ndarray, members: list[int] = members) -> float:
                chosen = [members[int(i)] for i in sel]
                return M.ties_score(
                    [ids[i] for i in chosen],
                    [rows[i] for i in chosen],
                    [n_correct[i] for i in chosen],
                )

            prompt_of = [ids[i].partition(":")[2] for i in members]  # ref:k, tied:k stay together
            point, rep = M.grouped_replicates(stat, np.asarray(prompt_of), n_boot, rng=gen)
            lo, hi = M.interval(point, rep)[1:]
        else:
            res = M.best_of_n_v2([rows[int(i)] for i in idx])
            rep = M.replicate_means(res, n_boot, gen)
            point, lo, hi = M.interval(res.mean(), rep)
        out[f"subset/{name}"] = Estimate(point, lo, hi, int(idx.size))
        reps.append(rep)
        points.append(point)
    out["overall"] = Estimate(*M.interval(float(np.mean(points)), np.mean(reps, axis=0)), len(rows))
    return out


def evaluate_bon(reward: Any, path: str | Path, *, n_boot: int = 1000, seed: int = 0) -> EvalResult:
    """Best-of-N accuracy in RewardBench v2 format (chosen first; ties share credit)."""
    recs = read_records(path)
    prompts, chosen, rejected, subsets, ids, n_correct = [], [], [], [], [], []
    for r in recs:
        prompts.append(require_str(r, "prompt"))
        chosen.append(require_str_list(r, "chosen"))
        rejected.append(require_str_list(r, "rejected"))
        subsets.append(str(r.data.get("subset") or "all"))
        ids.append(str(r.data.get("id", r.line)))
        n_correct.append(int(r.data.get("num_correct") or len(chosen[-1])))
        if subsets[-1].lower() != "ties" and len(chosen[-1]) != 1:
            raise DataError(f"{r.where}: outside the 'ties' subset a row has exactly 1 chosen")
    flat_p = [p for p, c, rj in zip(prompts, chosen, rejected, strict=True) for _ in c + rj]
    flat_t = [t for c, rj in zip(chosen, rejected, strict=True) for t in c + rj]
    flat_s = score_responses(reward, flat_p, flat_t)
    cuts = np.cumsum([0] + [len(c) + len(rj) for c, rj in zip(chosen, rejected, strict=True)])
    rows = [flat_s[a:b] for a, b in itertools.pairwise(cuts)]
    lens = [_lengths(flat_t[a:b]) for a, b in itertools.pairwise(cuts)]
    metrics = _v2_block(rows, subsets, ids, n_correct, n_boot, seed)
    baseline = _v2_block(lens, subsets, ids, n_correct, n_boot, seed)
    details = {
        "n_rows": len(recs),
        "ungraded": int(np.isnan(flat_s).sum()),
        "tie_rule": "1/k credit when the chosen response ties k-way at the maximum",
        "scores": [r.tolist() for r in rows],
        "subsets": subsets,
    }
    return EvalResult(
        "bon", str(getattr(reward, "name", reward)), str(path), metrics, baseline, details
    )


# ----------------------------------------------------------------------------- one-to-many


def evaluate_one_to_many(
    reward: Any, path: str | Path, *, n_boot: int = 1000, seed: int = 0
) -> EvalResult:
    """RewardMATH accuracy (correct strictly above all wrong) and MRR, beside the baseline."""
    recs = read_records(path)
    prompts = [require_str(r, "prompt") for r in recs]
    good = [require_str_list(r, "chosen")[0] for r in recs]
    bad = [require_str_list(r, "rejected") for r in recs]
    m = {len(b) for b in bad}
    if len(m) != 1:
        raise DataError(f"{path}: every row needs the same number of wrong answers, got {m}")
    n_wrong = m.pop()
    s_good = score_responses(reward, prompts, good)
    s_bad = score_responses(
        reward, [p for p in prompts for _ in range(n_wrong)], [t for b in bad for t in b]
    ).reshape(len(recs), n_wrong)
    l_bad = np.array([[len(t) for t in b] for b in bad], dtype=float)

    def block(c: np.ndarray, w: np.ndarray) -> dict[str, Estimate]:
        acc, rr = M.one_to_many(c, w)
        return {"accuracy": _mean_ci(acc, n_boot, seed), "mrr": _mean_ci(rr, n_boot, seed)}

    k = n_wrong + 1
    details = {
        "n_rows": len(recs),
        "n_wrong": n_wrong,
        "random_accuracy": 1 / k,
        "random_mrr": float(np.mean(1.0 / np.arange(1, k + 1))),
        "ungraded": int(np.isnan(s_good).sum() + np.isnan(s_bad).sum()),
        "scores": {"correct": s_good.tolist(), "wrong": s_bad.tolist()},
    }
    return EvalResult(
        "one_to_many",
        str(getattr(reward, "name", reward)),
        str(path),
        block(s_good, s_bad),
        block(_lengths(good), l_bad),
        details,
    )
