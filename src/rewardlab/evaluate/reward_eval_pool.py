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
