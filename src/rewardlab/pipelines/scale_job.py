"""The ``rewardlab scale`` job: sample once, score once, then accuracy vs compute for everything.

>>> cfg = ScaleConfig(problems=8, n_max=4)   # doctest: +SKIP
>>> result = run_scale(cfg, Path("runs/demo"))  # doctest: +SKIP

The pool and every score live in ``<out>/pool.sqlite``: re-running the same command (or
``--resume``) reuses them and only computes what is missing; a new strategy costs no model call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.evaluate.estimators import default_ks
from rewardlab.pipelines.scaling import (
    VerifierCost,
    build_arrays,
    scaling_rows,
    token_arrays,
)
from rewardlab.search.offline import Strategy, parse_strategy
from rewardlab.search.pool import PoolSpec, fingerprint_of, sample_pool, score_pool
from rewardlab.store import SampleStore, request_key
from rewardlab.types import Candidate, Problem, Sampling, Score

ProgressFactory = Callable[[str, int], AbstractContextManager[Callable[[int, int], None]]]


@dataclass(frozen=True)
class ScaleConfig:
    """Everything that defines a scaling run (saved in ``summary.json``)."""

    task: str = "arith"
    policy: str = "tiny"
    problems: int = 240
    n_max: int = 64
    difficulty: tuple[int, int] = (1, 8)
    rewards: tuple[str, ...] = ()  # empty: the task's defaults (see default_rewards)
    strategies: tuple[str, ...] = ()  # empty: pass, maj, and bon/wmaj for every reward
    seed: int = 0
    temperature: float = 1.0
    max_new_tokens: int = 160
    chunk_problems: int = 4
    n_resamples: int = 200
    n_boot: int = 1000
    pool_file: str | None = None
    policy_params: int | None = None  # for imported pools: FLOPs = 2 * params * tokens
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n_max < 1 or self.problems < 1:
            raise ValueError("n_max and problems must be >= 1")

    @property
    def rewards_used(self) -> tuple[str, ...]:
        """``rewards``, or when empty :func:`default_rewards` for this run's task."""
        return self.rewards or default_rewards(self.task, self.pool_file)

    @classmethod
    def quick(cls, **overrides: Any) -> ScaleConfig:
        """A smoke-test run (under a minute on 2 cores)."""
        base = {"problems": 16, "n_max": 8, "difficulty": (1, 4), "n_resamples": 50, "n_boot": 200}
        return cls(**{**base, **overrides})


#: The shipped testbed reward models (trained on arith problems only; see
#: docs/reward_models.md): an ORM, a classifier PRM and an implicit PRM.
TESTBED_RMS: tuple[str, ...] = ("orm", "prm", "implicit-prm")


def default_rewards(task: str, pool_file: str | None = None) -> tuple[str, ...]:
    """The rewards a run scores when none are named: the policy's mean log-probability, plus
    the shipped testbed reward models when sampling the ``arith`` testbed (they were trained on
    it; on GSM8K, MATH-500 or an imported pool they would be out of their domain)."""
    return ("logprob", *TESTBED_RMS) if task == "arith" and not pool_file else ("logprob",)


def default_strategies(
    rewards: Sequence[str],
    step_rewards: Sequence[str],
    signed: Sequence[str] = (),
    unbounded_steps: Sequence[str] = (),
) -> list[Strategy]:
    """pass@k (oracle), majority, and best-of-N + weighted majority for every reward.

    Weighted majority needs scores >= 0, so outcome rewards in ``signed`` (e.g.
    log-probabilities) get best-of-N only. Process rewards get every aggregation: step
    probabilities in [0, 1] with last / min / prod / mean (best-of-N and weighted majority);
    step rewards outside [0, 1] (``unbounded_steps``, e.g. an implicit PRM's log-ratios, where
    a product means nothing) with last / min / mean / sum, best-of-N only.
    """
    specs = ["pass", "maj"]
    for r in rewards:
        specs += [f"bon:{r}"] + ([] if r in signed else [f"wmaj:{r}"])
    for r in step_rewards:
        if r in unbounded_steps:
            specs += [f"bon:{r}:{agg}" for agg in ("last", "min", "mean", "sum")]
        else:
            for agg in ("last", "min", "prod", "mean"):
                specs += [f"bon:{r}:{agg}", f"wmaj:{r}:{agg}"]
    return [parse_strategy(s) for s in specs]


def _null_progress(_: str, __: int) -> AbstractContextManager[Callable[[int, int], None]]:
    return nullcontext(lambda done, total: None)


@dataclass
class _Loaded:
    task: Any
    problems: list[Problem]
    pool: list[list[Candidate]]
    keys: list[str]
    policy_params: int
    policy_name: str


def _load_sampled(cfg: ScaleConfig, store: SampleStore, progress: ProgressFactory) -> _Loaded:
    from rewardlab.policies.registry import load_policy
    from rewardlab.tasks.registry import load_task

    task, problems = load_task(cfg.task, cfg.problems, seed=cfg.seed, n_ops=cfg.difficulty)
    # equal difficulties side by side: a chunk's samples have similar lengths (less padding)
    problems = sorted(problems, key=lambda p: str(p.meta.get("difficulty", "")))
    policy = load_policy(cfg.policy)
    sampling = Sampling(cfg.temperature, 1.0, cfg.max_new_tokens, cfg.seed)
    spec = PoolSpec(cfg.n_max, sampling, cfg.chunk_problems)
    with progress(f"sampling {len(problems)} problems x {cfg.n_max}", len(problems)) as update:
        pool = sample_pool(problems, task, policy, spec, store, progress=update)
    keys = [request_key(p, policy.name, sampling) for p in problems]
    return _Loaded(task, problems, pool, keys, int(policy.params), policy.name)


def _load_imported(cfg: ScaleConfig, store: SampleStore) -> _Loaded:
    from rewardlab.rewards.math_answer import extract_answer
    from rewardlab.tasks.math_check import MathTask
    from rewardlab.tasks.pool_import import import_pool

    assert cfg.pool_file is not None
    problems, grouped = import_pool(Path(cfg.pool_file), extract_answer=extract_answer)
    n = min(len(r) for r in grouped) if grouped else 0
    if n == 0:
        raise ValueError(f"{cfg.pool_file}: no problem has candidates")
    pool = [list(r[:n]) for r in grouped]
    name = f"imported:{Path(cfg.pool_file).name}"
    keys = [request_key(p, name, Sampling()) for p in problems]
    store.put_many({k: row for k, row in zip(keys, pool, strict=True)})
    return _Loaded(MathTask(), problems, pool, keys, int(cfg.policy_params or 0), name)


def check_imported_labels(loaded: _Loaded) -> list[dict[str, Any]]:
    """Disagreements between imported ``is_correct`` labels and Math-Verify's verdict."""
    from rewardlab.rewards.math_answer import MathVerifyReward
    from rewardlab.tasks.pool_import import label_disagreements

    found = label_disagreements(loaded.problems, loaded.pool, MathVerifyReward().score)
    return [asdict(d) for d in found]


def imported_scores(pool: Sequence[Sequence[Candidate]]) -> dict[str, list[list[Score]]]:
    """Per-candidate scores that came with an imported pool (``meta["scores"]``)."""
    names = sorted({k for row in pool for c in row for k in c.meta.get("scores", {})})
    return {
        name: [
            [
                Score(float(c.meta["scores"][name]))
                if name in c.meta.get("scores", {})
                else Score.ungraded("not in the imported pool")
                for c in row
            ]
            for row in pool
        ]
        for name in names
    }


def run_scale(
    cfg: ScaleConfig, out: Path, progress: ProgressFactory = _null_progress
) -> dict[str, Any]:
    """Run (or resume) a scaling study into ``out``; returns the summary dict (also written)."""
    from rewardlab.rewards.registry import load_reward

    t0 = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    store = SampleStore(out / "pool.sqlite")
    loaded = _load_imported(cfg, store) if cfg.pool_file else _load_sampled(cfg, store, progress)
    outcome: dict[str, list[list[Score]]] = {}
    steps: dict[str, list[list[Score]]] = {}
    costs: dict[str, VerifierCost] = {}
    prompt_tok, gen_tok = token_arrays(loaded.pool)
    skipped: dict[str, str] = {}
    fingerprints: dict[str, str] = {}
    disagreements: list[dict[str, Any]] | None = None
    if cfg.pool_file:
        outcome.update(imported_scores(loaded.pool))
        disagreements = check_imported_labels(loaded)
        dump_json(out / "label_disagreements.json", disagreements)
    for spec in cfg.rewards_used:
        reward = load_reward(spec)
        fingerprints[reward.name] = fingerprint_of(reward)
        # A reward that can score steps enters as a process reward (every aggregation).
        is_step = callable(getattr(reward, "score_steps", None))
        with progress(f"scoring with {reward.name}", 1) as update:
            scores = score_pool(
                reward,
                loaded.problems,
                loaded.pool,
                loaded.keys,
                store,
                step=is_step,
                progress=update,
            )
        if all(s.value is None for row in scores for s in row):
            reasons = {str(s.info.get("reason")) for row in scores for s in row}
            skipped[reward.name] = "no candidate could be graded: " + ", ".join(sorted(reasons))
            continue
        (steps if is_step else outcome)[reward.name] = scores
        params = int(getattr(reward, "params", 0))
        costs[reward.name] = VerifierCost(
            params,
            verification_tokens(scores, prompt_tok + gen_tok)
            if params
            else np.zeros_like(prompt_tok),
        )
    arrays = build_arrays(loaded.problems, loaded.pool, loaded.task, outcome, steps)
    strategies = (
        [parse_strategy(s) for s in cfg.strategies]
        if cfg.strategies
        else default_strategies(
            list(outcome), list(steps), _signed(arrays), _unbounded_steps(arrays)
        )
    )
    n = arrays.shape[1]
    ks = default_ks(n)
    rows = scaling_rows(
        loaded.problems,
        arrays,
        strategies,
        ks,
        prompt_tokens=prompt_tok,
        generated_tokens=gen_tok,
        policy_params=loaded.policy_params,
        verifier_costs=costs,
        n_resamples=cfg.n_resamples,
        n_boot=cfg.n_boot,
        seed=cfg.seed,
    )
    summary = {
        "config": {**asdict(cfg), "difficulty": list(cfg.difficulty)},
        "rewards_used": list(cfg.rewards_used),
        "policy": loaded.policy_name,
        "policy_params": loaded.policy_params,
        "problems": len(loaded.problems),
        "n_max": n,
        "ks": ks,
        "strategies": [s.name for s in strategies],
        "rewards": {
            k: {"params": v.params, "fingerprint": fingerprints.get(k, "")}
            for k, v in costs.items()
            if k not in skipped
        },
        "skipped_rewards": skipped,
        "imported_label_disagreements": None if disagreements is None else len(disagreements),
        "versions": _versions(),
        "wall_seconds": round(time.monotonic() - t0, 2),
        "accuracy": {
            s.name: {
                str(r["n"]): r["accuracy"]
                for r in rows
                if r["strategy"] == s.name and r["difficulty"] == "all"
            }
            for s in strategies
        },
    }
    return {"summary": summary, "rows": rows, "problems": loaded.problems, "pool": loaded.pool}


VERIFY_TOKEN_KEYS = ("verify_prompt_tokens", "verify_generated_tokens", "verify_scored_tokens")


def verification_tokens(scores: Sequence[Sequence[Score]], default: np.ndarray) -> np.ndarray:
    """Tokens a verifier spent per candidate, int [P, N]: the sum of ``Score.info``'s
    ``verify_*_tokens`` where the reward reports them (generative verifiers: every chain it
    wrote and read), else ``default`` (a classifier reads the prompt and the solution once)."""
    if not any(k in s.info for row in scores for s in row for k in VERIFY_TOKEN_KEYS):
        return default
    return np.array(
        [[sum(int(s.info.get(k, 0)) for k in VERIFY_TOKEN_KEYS) for s in row] for row in scores],
        dtype=np.int64,
    )


def _signed(arrays: Any) -> list[str]:
    """Outcome rewards with a negative score somewhere (not usable as vote weights)."""
    return [n for n, a in arrays.scores.items() if np.nanmin(a, initial=0.0) < 0]


def _unbounded_steps(arrays: Any) -> list[str]:
    """Process rewards with a step score outside [0, 1] (not probabilities)."""
    out = []
    for name in arrays.step_scores:
        vals = arrays.step_values(name)
        vals = vals[~np.isnan(vals)]
        if vals.size and (vals.min() < 0.0 or vals.max() > 1.0):
            out.append(name)
    return out


def _versions() -> dict[str, str]:
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for pkg in ("rewardlab", "torch", "transformers", "numpy", "math-verify"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def iter_rows_csv(rows: Sequence[dict[str, Any]]) -> Iterator[str]:
    from rewardlab.pipelines.scaling import CSV_COLUMNS

    yield ",".join(CSV_COLUMNS)
    for r in rows:
        yield ",".join(f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c]) for c in CSV_COLUMNS)


def with_overrides(cfg: ScaleConfig, **kw: Any) -> ScaleConfig:
    """A copy of ``cfg`` with the non-None overrides applied."""
    return replace(cfg, **{k: v for k, v in kw.items() if v is not None})


def dump_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(path)
