"""Jobs on a stored run: ``rewardlab verify`` (a verifier over a pool) and the solve-vs-verify
study behind ``rewardlab scale --solve-verify``.

Both read a run directory written by ``rewardlab scale`` (``summary.json`` for its settings,
``pool.sqlite`` for the pool) and score through the store (:func:`score_pool`), so a killed
job resumes where it stopped and a verifier already run by ``rewardlab scale --rewards`` (same
name and fingerprint) costs nothing again.

>>> result = run_verify(Path("runs/default"), "recompute")          # doctest: +SKIP
>>> study = run_solve_verify(Path("runs/default"), "recompute:V=8")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.evaluate.estimators import (
    bon_at_k,
    default_ks,
    majority_at_k,
    pass_at_k,
    weighted_majority_at_k,
)
from rewardlab.evaluate.process import auroc, predicted_first_error, processbench_f1
from rewardlab.evaluate.solve_verify import (
    compute_flops,
    compute_units,
    frontier,
    genrm_accuracy,
    matching_multiple,
    measure_lambda,
    sc_accuracy,
    scaling_laws,
)
from rewardlab.pipelines.progress import ProgressFactory
from rewardlab.pipelines.ray_backend import RayConfig, ray_session, score_pool_ray
from rewardlab.pipelines.scale_job import (
    ScaleConfig,
    _load_imported,
    _load_sampled,
    _Loaded,
    dump_json,
)
from rewardlab.pipelines.scaling import answer_ids
from rewardlab.search.pool import fingerprint_of, score_pool
from rewardlab.store import Store, run_store
from rewardlab.types import Candidate, Score


def _null_progress(_: str, __: int) -> AbstractContextManager[Callable[[int, int], None]]:
    return nullcontext(lambda done, total: None)


VERIFY_KEYS = ("verify_prompt_tokens", "verify_generated_tokens", "verify_scored_tokens")


def load_run(
    run_dir: Path,
    progress: ProgressFactory = _null_progress,
    store: str | None = None,
    ray: RayConfig | None = None,
) -> tuple[ScaleConfig, _Loaded, Store]:
    """A scale run's settings, pool and store (samples only what its store lacks; with
    ``ray``, on a Ray actor pool of policy replicas, inside :func:`ray_session`). ``store``
    names the run's store when it is not the one the run recorded (:func:`run_store`).

    Raises FileNotFoundError naming what the directory lacks.
    """
    summary = run_dir / "summary.json"
    if not summary.is_file():
        raise FileNotFoundError(
            f"{run_dir} has no summary.json: give a run directory written by `rewardlab scale`"
        )
    saved = json.loads(summary.read_text())["config"]
    saved["difficulty"] = tuple(saved["difficulty"])
    saved["rewards"] = tuple(saved["rewards"])
    saved["strategies"] = tuple(saved["strategies"])
    cfg = ScaleConfig(**saved)
    db = run_store(run_dir, store)
    loaded = _load_imported(cfg, db) if cfg.pool_file else _load_sampled(cfg, db, progress, ray)
    return cfg, loaded, db


def score_with(
    reward: Any,
    loaded: _Loaded,
    store: Store,
    progress: ProgressFactory = _null_progress,
    ray: RayConfig | None = None,
    spec: str | None = None,
) -> list[list[Score]]:
    """Scores of ``reward`` on the run's pool, through the store (as ``rewardlab scale``: a
    reward with ``score_steps`` is stored as a process reward). With ``ray`` (inside
    :func:`ray_session`) the scoring runs on a Ray Data actor pool, each actor loading its
    own replica from ``spec`` (required then); the scores are the same."""
    is_step = callable(getattr(reward, "score_steps", None))
    with progress(f"verifying with {reward.name}", 1) as update:
        if ray is None:
            return score_pool(
                reward,
                loaded.problems,
                loaded.pool,
                loaded.keys,
                store,
                step=is_step,
                progress=update,
            )
        if spec is None:
            raise ValueError("scoring on Ray needs the reward's spec (each actor loads it)")
        return score_pool_ray(
            reward,
            spec,
            loaded.problems,
            loaded.pool,
            loaded.keys,
            store,
            ray,
            step=is_step,
            progress=update,
        )


def verification_record(c: Candidate, s: Score) -> dict[str, Any]:
    """One JSONL line: the candidate, its truth and what the verifier said."""
    return {
        "problem_id": c.problem_id,
        "index": c.index,
        "answer": c.answer,
        "correct": bool(c.meta.get("correct", False)),
        "first_error": c.meta.get("first_error"),
        "value": s.value,
        "steps": list(s.steps),
        "verdicts": list(s.info.get("verdicts", [])),
        "reason": s.info.get("reason", ""),
        **{k: int(s.info.get(k, 0)) for k in VERIFY_KEYS},
    }


def _tokens(s: Score) -> int:
    return sum(int(s.info.get(k, 0)) for k in VERIFY_KEYS)


def _nan_if_none(x: float | None) -> float:
    return math.nan if x is None else float(x)


def verify_summary(
    loaded: _Loaded, scores: Sequence[Sequence[Score]], reward: Any, threshold: float = 0.5
) -> dict[str, Any]:
    """What a verifier does on the pool: discrimination, selection at N, step F1, cost."""
    pool = loaded.pool
    p, n = len(pool), len(pool[0])
    correct = np.array([[bool(c.meta.get("correct")) for c in row] for row in pool])
    values = np.array([[_nan_if_none(s.value) for s in row] for row in scores])
    ids = answer_ids(loaded.task, pool)
    graded = ~np.isnan(values)
    tok = np.array(
        [[sum(int(s.info.get(k, 0)) for k in VERIFY_KEYS) for s in row] for row in scores]
    )
    gen = np.array([[int(s.info.get("verify_generated_tokens", 0)) for s in row] for row in scores])
    sol_all = np.array([[c.prompt_tokens + c.generated_tokens for c in row] for row in pool])
    sol_gen = np.array([[c.generated_tokens for c in row] for row in pool])
    v = int(getattr(reward, "n_verifications", 1))
    params = int(getattr(reward, "params", 0))
    ks = [1, n]
    out: dict[str, Any] = {
        "verifier": reward.name,
        "fingerprint": fingerprint_of(reward),
        "params": params,
        "V": v,
        "problems": p,
        "candidates": int(p * n),
        "graded_fraction": float(graded.mean()),
        "auroc": auroc(correct[graded].astype(float), values[graded]),
        "mean_score_correct": float(np.nanmean(np.where(correct, values, np.nan)))
        if correct.any()
        else math.nan,
        "mean_score_wrong": float(np.nanmean(np.where(~correct, values, np.nan)))
        if (~correct).any()
        else math.nan,
        "accuracy_at_n": {
            "n": n,
            "pass@1": float(pass_at_k(correct, ks)[:, 0].mean()),
            "pass@n": float(pass_at_k(correct, ks)[:, 1].mean()),
            "maj@n": float(majority_at_k(ids, correct, ks)[:, 1].mean()),
            "bon@n": float(bon_at_k(values, correct, ks)[:, 1].mean()),
            "wmaj@n": float(
                weighted_majority_at_k(ids, np.clip(values, 0, None), correct, ks)[:, 1].mean()
            )
            if np.nanmin(values, initial=0.0) >= 0
            else None,
        },
        "tokens_per_candidate": float(tok.mean()),
        "verifier_flops_per_candidate": float(2.0 * params * tok.mean()),
        "policy_flops_per_candidate": float(2.0 * loaded.policy_params * sol_all.mean()),
        "lambda_all_tokens": float(tok.mean() / v / sol_all.mean()) if sol_all.mean() else None,
        "lambda_generated": float(gen.mean() / v / sol_gen.mean()) if sol_gen.mean() else None,
    }
    labels, preds = [], []
    for row, srow in zip(pool, scores, strict=True):
        for c, s in zip(row, srow, strict=True):
            if "first_error" in c.meta and s.steps:
                labels.append(int(c.meta["first_error"]))
                preds.append(predicted_first_error(s.steps, threshold))
    if labels:
        pb = processbench_f1(labels, preds)
        out["steps"] = {
            "threshold": threshold,
            "items": len(labels),
            "acc_error": pb.acc_error,
            "acc_correct": pb.acc_correct,
            "f1": pb.f1,
        }
    return out


def run_verify(
    run_dir: Path,
    spec: str,
    out: Path | None = None,
    progress: ProgressFactory = _null_progress,
    reward: Any = None,
    store: str | None = None,
    ray: RayConfig | None = None,
) -> dict[str, Any]:
    """Score a run's pool with the verifier ``spec``; write ``verify.jsonl`` + ``verify.json``.

    ``out`` defaults to ``<run_dir>/verify-<name>``; ``reward`` (an already-built verifier)
    overrides ``spec``; ``store`` names the run's store (default: the one it recorded, else
    its ``pool.sqlite``). ``ray`` runs what the pool lacks of its samples on a Ray actor pool of
    policy replicas and the verifier on a Ray Data actor pool of verifier replicas (each
    loading ``spec``), in one Ray session; the outputs are the same. Returns ``{"summary",
    "scores", "loaded"}``.
    """
    from rewardlab.rewards.registry import load_reward

    if ray is not None and reward is not None:
        raise ValueError("ray needs the verifier as a spec (each actor loads it), not a reward")
    with ray_session(ray) if ray is not None else nullcontext():
        _, loaded, store_ = load_run(run_dir, progress, store, ray)
        verifier = reward if reward is not None else load_reward(spec)
        scores = score_with(verifier, loaded, store_, progress, ray, spec)
    target = out or run_dir / f"verify-{verifier.name}"
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f"verify.jsonl.{os.getpid()}.tmp"
    with tmp.open("w") as f:
        for row, srow in zip(loaded.pool, scores, strict=True):
            for c, s in zip(row, srow, strict=True):
                f.write(json.dumps(verification_record(c, s), default=str) + "\n")
    tmp.replace(target / "verify.jsonl")
    summary = {"run": str(run_dir), "spec": spec, **verify_summary(loaded, scores, verifier)}
    dump_json(target / "verify.json", summary)
    return {"summary": summary, "scores": scores, "loaded": loaded, "out": target}


# -- solve vs verify -----------------------------------------------------------------------


def verdict_array(scores: Sequence[Sequence[Score]], v: int) -> np.ndarray:
    """float [P, N, v]: each chain's verdict (NaN = unread or absent)."""
    p, n = len(scores), len(scores[0]) if scores else 0
    out = np.full((p, n, v), np.nan)
    for i, row in enumerate(scores):
        for j, s in enumerate(row):
            for k, x in enumerate(list(s.info.get("verdicts", []))[:v]):
                if x is not None:
                    out[i, j, k] = float(x)
    return out


def _powers(n: int) -> list[int]:
    return default_ks(n)


def run_solve_verify(
    run_dir: Path,
    spec: str,
    progress: ProgressFactory = _null_progress,
    n_resamples: int = 20,
    n_boot: int = 200,
    seed: int = 0,
    reward: Any = None,
) -> dict[str, Any]:
    """Self-consistency vs GenRM at every (S, V) split on the run's pool (see
    :mod:`rewardlab.evaluate.solve_verify`). The verifier ``spec`` is run once with its V
    (= Vmax); smaller V are subsets of its chains. Writes ``verify-<name>/verify.jsonl``.

    Returns the tables (``sc``, ``genrm`` rows), the frontier, the matching multiple, the
    power-law fits, λ (all tokens and generated tokens) and the FLOPs per solution / chain.
    """
    result = run_verify(run_dir, spec, progress=progress, reward=reward)
    loaded, scores = result["loaded"], result["scores"]
    summary = result["summary"]
    vmax = int(summary["V"])
    pool = loaded.pool
    correct = np.array([[bool(c.meta.get("correct")) for c in row] for row in pool])
    ids = answer_ids(loaded.task, pool)
    verdicts = verdict_array(scores, vmax)
    sol_all = np.array([[c.prompt_tokens + c.generated_tokens for c in row] for row in pool])
    sol_gen = np.array([[c.generated_tokens for c in row] for row in pool])
    chain_all = np.array(
        [[sum(int(s.info.get(k, 0)) for k in VERIFY_KEYS) / vmax for s in row] for row in scores]
    )
    chain_gen = np.array(
        [[int(s.info.get("verify_generated_tokens", 0)) / vmax for s in row] for row in scores]
    )
    lam_tokens = measure_lambda(sol_all, chain_all)
    lam_gen = measure_lambda(sol_gen, chain_gen) if sol_gen.mean() > 0 else math.nan
    params = int(summary["params"])
    # C is counted in FLOPs of one solution: λ = FLOPs of a chain / FLOPs of a solution (the
    # token ratio when one model solves and verifies, as in Singhi et al.)
    both = loaded.policy_params > 0 and params > 0
    lam = lam_tokens * params / loaded.policy_params if both else lam_tokens
    n = correct.shape[1]
    s_values = _powers(n)
    v_values = sorted({*_powers(vmax), vmax})
    sc = sc_accuracy(ids, correct, s_values, 100, seed)  # [P, S]
    g = genrm_accuracy(verdicts, correct, s_values, v_values, n_resamples=n_resamples, rng=seed)
    flops_kw = {
        "solution_tokens": float(sol_all.mean()),
        "verification_tokens": float(chain_all.mean()),
        "policy_params": loaded.policy_params,
        "verifier_params": params,
    }
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(seed)
    for i, s in enumerate(s_values):
        mean, lo, hi = _boot(sc[:, i], n_boot, rng)
        rows.append(_row("sc", s, 0, lam, flops_kw, mean, lo, hi))
        for j, v in enumerate(v_values):
            mean, lo, hi = _boot(g[:, i, j], n_boot, rng)
            rows.append(_row("genrm", s, v, lam, flops_kw, mean, lo, hi))
    pts = frontier(s_values, v_values, g.mean(axis=0), sc.mean(axis=0), lam)
    match = matching_multiple(pts)
    laws = scaling_laws(s_values, v_values, g, lam, n_boot=n_boot, rng=seed)
    return {
        "verifier": summary["verifier"],
        "spec": spec,
        "run": str(run_dir),
        "problems": len(pool),
        "n": n,
        "V_max": vmax,
        "lambda": lam,
        "lambda_tokens": lam_tokens,
        "lambda_generated": lam_gen,
        "flops_per_solution": 2.0 * loaded.policy_params * flops_kw["solution_tokens"],
        "flops_per_verification": 2.0 * params * flops_kw["verification_tokens"],
        "rows": rows,
        "frontier": [vars(q) for q in pts],
        "matching": vars(match),
        "laws": {k: vars(v) for k, v in laws.items()},
        "verify_summary": summary,
    }


def _boot(per_problem: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[float, ...]:
    x = np.asarray(per_problem, dtype=float)
    idx = rng.integers(0, x.size, (n_boot, x.size))
    means = x[idx].mean(axis=1)
    return float(x.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _row(
    kind: str,
    s: int,
    v: int,
    lam: float,
    flops_kw: dict[str, Any],
    mean: float,
    lo: float,
    hi: float,
) -> dict[str, Any]:
    return {
        "method": kind,
        "S": s,
        "V": v,
        "C": float(compute_units(s, v, lam)),
        "flops": float(compute_flops(s, v, **flops_kw)),
        "accuracy": mean,
        "ci_low": lo,
        "ci_high": hi,
    }


SV_COLUMNS = ("method", "S", "V", "C", "flops", "accuracy", "ci_low", "ci_high")
