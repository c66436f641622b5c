"""The ``rewardlab tune`` job: fit a compute-optimal selector from a scale run's directory.

Input: a run written by ``rewardlab scale`` (``pool.sqlite`` + ``summary.json``), optionally
``online.jsonl`` (per-problem results of online strategies, one row per (strategy, n, problem);
see :func:`read_online`), and optionally extra pools sampled here at other temperatures / top-p
(the "Bag of Tricks" sweep, Liu et al. 2024): each (pool, strategy) pair is one config.

Steps (Snell et al. 2024 §3-5; formulas in :mod:`rewardlab.search.compute_optimal`):

1. Rebuild the base pool and its scores from the store (no model call), sample / score the
   extra pools (through the store: resumable, nothing computed twice).
2. Per-problem expected accuracy of every offline selector at every budget N (its ``curve``)
   and its cost (N x the problem's mean per-candidate FLOPs, policy + verifier, as
   ``rewardlab scale`` counts them); online rows as they are (0/1 and their own FLOPs).
3. Difficulty bins: oracle (pass@1 of the base pool, 5 quantile bins) and predicted (the
   verifier's mean final score over the base pool's samples).
4. Per binning, 2-fold cross-validated choices and the efficiency multiple over best-of-N with
   a bootstrap CI, per bin, on the hard half (pass@1 below the median) and overall.
5. The selector saved for ``solve``: fitted on all problems with the predicted bins.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.evaluate.estimators import default_ks
from rewardlab.pipelines.scaling import build_arrays, token_arrays
from rewardlab.search.compute_optimal import (
    FittedSelector,
    LevelResult,
    Table,
    cross_validated_choices,
    evaluate_groups,
    fit_selector,
    oracle_difficulty,
    predicted_difficulty,
    quantile_bins,
    two_folds,
)
from rewardlab.search.offline import PoolArrays, Selector, parse_strategy
from rewardlab.search.pool import PoolSpec, sample_pool, score_pool
from rewardlab.store import Store, recorded_store, request_key, run_store
from rewardlab.types import Candidate, Problem, Sampling, Score

ProgressFactory = Callable[[str, int], AbstractContextManager[Callable[[int, int], None]]]
ONLINE_FILE = "online.jsonl"
SELECTOR_FILE = "selector.json"
_VARIANT = re.compile(r"^(?P<strategy>.+?)\{T=(?P<t>[0-9.eE+-]+),top_p=(?P<p>[0-9.eE+-]+)\}$")


def _null_progress(_: str, __: int) -> AbstractContextManager[Callable[[int, int], None]]:
    return nullcontext(lambda done, total: None)


def config_name(strategy: str, sampling: Sampling | None = None) -> str:
    """A config's name: the strategy, plus ``{T=..,top_p=..}`` for a non-base pool.

    >>> config_name("bon[prm:last]", Sampling(0.7, 0.9))
    'bon[prm:last]{T=0.7,top_p=0.9}'
    >>> parse_config("bon[prm:last]{T=0.7,top_p=0.9}")
    ('bon[prm:last]', 0.7, 0.9)
    """
    if sampling is None:
        return strategy
    return f"{strategy}{{T={sampling.temperature:g},top_p={sampling.top_p:g}}}"


def parse_config(name: str) -> tuple[str, float | None, float | None]:
    """(strategy, temperature, top_p) of a config name; None, None for the base pool."""
    m = _VARIANT.match(name)
    if m is None:
        return name, None, None
    return m["strategy"], float(m["t"]), float(m["p"])


@dataclass(frozen=True)
class TuneConfig:
    """What ``rewardlab tune`` does with a run (saved in ``tune.json``).

    ``verifier``: the reward whose mean final score predicts difficulty (default: the run's
    first process reward other than log-probabilities, else its first outcome reward);
    ``reference``: the best-of-N config the multiple is measured against (default
    ``wmaj[<verifier>:last]``, Snell's "best-of-N weighted", or ``wmaj[<verifier>]`` for an
    outcome reward; ``bon[...]`` where the verifier's scores can be negative); ``strategies``:
    offline strategies to consider (default: every selector of the run, pass@k excluded);
    ``mix_verifiers``: also consider configs that read another reward than ``verifier`` (by
    default only the verifier's configs and majority vote compete, as in Snell et al.: one PRM,
    several ways to spend it; mixing lets a cheaper or free reward win on cost alone);
    ``use_online``: read ``online.jsonl`` when present (False: offline configs only);
    ``temperatures`` / ``top_ps``: extra pools, one per combination other than the run's own.
    """

    run: Path
    verifier: str | None = None
    reference: str | None = None
    strategies: tuple[str, ...] = ()
    temperatures: tuple[float, ...] = ()
    top_ps: tuple[float, ...] = ()
    match: str = "flops"
    mix_verifiers: bool = False
    use_online: bool = True
    n_bins: int = 5
    probe_n: int = 4
    n_boot: int = 1000
    n_resamples: int = 200
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunPool:
    """One pool of the run's problems: its sampling, arrays and token counts [P, N]."""

    sampling: Sampling
    base: bool
    arrays: PoolArrays
    prompt_tokens: np.ndarray
    generated_tokens: np.ndarray


@dataclass
class LoadedRun:
    """A scale run read back from its directory."""

    summary: dict[str, Any]
    task: Any
    problems: list[Problem]
    policy: str
    policy_params: int
    sampling: Sampling
    n: int
    reward_params: dict[str, int]
    store: Store
    run: Path | None = None


def load_run(run: Path) -> LoadedRun:
    """Read ``summary.json`` and open the store of a sampled scale run (the one it recorded,
    else its ``pool.sqlite``)."""
    from rewardlab.tasks.registry import load_task

    summary_path, store_path = run / "summary.json", run / "pool.sqlite"
    needed = (summary_path,) if recorded_store(run) else (summary_path, store_path)
    for path in needed:
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: is {run} a `rewardlab scale` run?")
    summary = json.loads(summary_path.read_text())
    cfg = summary["config"]
    if cfg.get("pool_file"):
        raise ValueError(
            f"{run} scored an imported pool ({cfg['pool_file']}): tune needs a sampled run "
            "(it resamples problems from the task and, for the sweep, from the policy)"
        )
    task, problems = load_task(
        cfg["task"], cfg["problems"], seed=cfg["seed"], n_ops=tuple(cfg["difficulty"])
    )
    # the scale job's order: equal difficulties side by side
    problems = sorted(problems, key=lambda p: str(p.meta.get("difficulty", "")))
    sampling = Sampling(cfg["temperature"], 1.0, cfg["max_new_tokens"], cfg["seed"])
    params = {k: int(v["params"]) for k, v in summary.get("rewards", {}).items()}
    return LoadedRun(
        summary=summary,
        task=task,
        problems=problems,
        policy=str(summary["policy"]),
        policy_params=int(summary["policy_params"]),
        sampling=sampling,
        n=int(summary["n_max"]),
        reward_params=params,
        store=run_store(run),
        run=run,
    )


def _stored_label(summary: Mapping[str, Any], name: str) -> str:
    fp = summary.get("rewards", {}).get(name, {}).get("fingerprint", "")
    return f"{name}@{fp}" if fp else name


def _stored_scores(
    loaded: LoadedRun, keys: Sequence[str], pool: Sequence[Sequence[Candidate]]
) -> tuple[dict[str, list[list[Score]]], dict[str, list[list[Score]]]]:
    """(outcome, step) scores of every reward of the run, read from the store."""
    labels = set(loaded.store.rewards())
    outcome: dict[str, list[list[Score]]] = {}
    steps: dict[str, list[list[Score]]] = {}
    for name in loaded.summary.get("rewards", {}):
        label = _stored_label(loaded.summary, name)
        is_step = f"{label}#steps" in labels
        stored_as = f"{label}#steps" if is_step else label
        rows = []
        for key, row in zip(keys, pool, strict=True):
            got = loaded.store.scores(stored_as, [(key, c.index) for c in row])
            if any(s is None for s in got):
                raise ValueError(
                    f"reward {name!r} has no stored score for some candidates of the pool: "
                    f"re-run `rewardlab scale --resume {loaded.run}`"
                )
            rows.append([s for s in got if s is not None])
        (steps if is_step else outcome)[name] = rows
    return outcome, steps


def base_pool(loaded: LoadedRun) -> RunPool:
    """The run's own pool and scores, from the store (no model call)."""
    keys = [request_key(p, loaded.policy, loaded.sampling) for p in loaded.problems]
    pool = [loaded.store.candidates(k, loaded.n) for k in keys]
    short = [p.id for p, row in zip(loaded.problems, pool, strict=True) if len(row) < loaded.n]
    if short:
        raise ValueError(
            f"{len(short)} problems have fewer than {loaded.n} stored candidates "
            f"(e.g. {short[0]}): re-run `rewardlab scale --resume {loaded.run}`"
        )
    outcome, steps = _stored_scores(loaded, keys, pool)
    arrays = build_arrays(loaded.problems, pool, loaded.task, outcome, steps)
    prompt, gen = token_arrays(pool)
    return RunPool(loaded.sampling, True, arrays, prompt, gen)


def sweep_pools(
    loaded: LoadedRun,
    temperatures: Sequence[float],
    top_ps: Sequence[float],
    progress: ProgressFactory = _null_progress,
) -> list[RunPool]:
    """Extra pools at every (temperature, top-p) other than the run's own, sampled and scored
    through the run's store with the run's policy and rewards (resumable)."""
    from rewardlab.policies.registry import load_policy
    from rewardlab.rewards.registry import load_reward

    temps = list(temperatures) or [loaded.sampling.temperature]
    tops = list(top_ps) or [loaded.sampling.top_p]
    variants = [
        Sampling(t, p, loaded.sampling.max_new_tokens, loaded.sampling.seed)
        for t in temps
        for p in tops
        if (t, p) != (loaded.sampling.temperature, loaded.sampling.top_p)
    ]
    if not variants:
        return []
    cfg = loaded.summary["config"]
    policy = load_policy(cfg["policy"])
    if policy.name != loaded.policy:
        raise ValueError(f"policy {cfg['policy']!r} loads as {policy.name!r}, not the run's")
    rewards = [load_reward(spec) for spec in loaded.summary["rewards_used"]]
    rewards = [r for r in rewards if r.name in loaded.summary.get("rewards", {})]
    out = []
    for sampling in variants:
        spec = PoolSpec(loaded.n, sampling, int(cfg.get("chunk_problems", 4)))
        label = f"T={sampling.temperature:g} top_p={sampling.top_p:g}"
        with progress(f"sampling {label}", len(loaded.problems)) as update:
            pool = sample_pool(
                loaded.problems, loaded.task, policy, spec, loaded.store, progress=update
            )
        keys = [request_key(p, loaded.policy, sampling) for p in loaded.problems]
        outcome: dict[str, list[list[Score]]] = {}
        steps: dict[str, list[list[Score]]] = {}
        for reward in rewards:
            is_step = callable(getattr(reward, "score_steps", None))
            with progress(f"scoring {label} with {reward.name}", 1) as update:
                scores = score_pool(
                    reward, loaded.problems, pool, keys, loaded.store, step=is_step,
                    progress=update,
                )  # fmt: skip
            (steps if is_step else outcome)[reward.name] = scores
        arrays = build_arrays(loaded.problems, pool, loaded.task, outcome, steps)
        prompt, gen = token_arrays(pool)
        out.append(RunPool(sampling, False, arrays, prompt, gen))
    return out


# ----------------------------------------------------------------------------- online rows

_ONLINE_FIELDS: dict[str, tuple[type, ...]] = {
    "strategy": (str,),
    "n": (int,),
    "problem_id": (str,),
    "correct": (bool,),
    "policy_tokens": (int,),
    "verifier_tokens": (int,),
    "flops": (int, float),
}


@dataclass(frozen=True)
class OnlineResults:
    """Per (strategy, n, problem): mean correctness and mean FLOPs over the rows (seeds)."""

    acc: dict[tuple[str, int, str], float]
    flops: dict[tuple[str, int, str], float]

    @property
    def strategies(self) -> list[str]:
        return sorted({s for s, _, _ in self.acc})

    @property
    def budgets(self) -> list[int]:
        return sorted({n for _, n, _ in self.acc})


def read_online(path: Path, problem_ids: Sequence[str]) -> OnlineResults:
    """Read ``online.jsonl``: one JSON object per line with ``strategy`` (str), ``n`` (int >= 1),
    ``problem_id`` (one of the run's), ``correct`` (bool), ``answer`` (str or null),
    ``policy_tokens`` / ``verifier_tokens`` (int >= 0) and ``flops`` (> 0). Several rows of one
    (strategy, n, problem), e.g. seeds, are averaged. Anything else raises ValueError naming the
    file and 1-based line; blank lines are skipped."""
    known = set(problem_ids)
    sums: dict[tuple[str, int, str], list[float]] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected an object, got {type(row).__name__}")
        for name, kinds in _ONLINE_FIELDS.items():
            if name not in row:
                raise ValueError(f"{where}: missing field {name!r}")
            value = row[name]
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise ValueError(
                    f"{where}: field {name!r} has {value!r}, expected {kinds[0].__name__}"
                )
        if "answer" not in row or not (row["answer"] is None or isinstance(row["answer"], str)):
            raise ValueError(f"{where}: field 'answer' must be a string or null")
        if row["n"] < 1 or row["policy_tokens"] < 0 or row["verifier_tokens"] < 0:
            raise ValueError(f"{where}: n must be >= 1 and token counts >= 0")
        if not (math.isfinite(row["flops"]) and row["flops"] > 0):
            raise ValueError(f"{where}: flops must be finite and > 0, got {row['flops']!r}")
        if row["problem_id"] not in known:
            raise ValueError(f"{where}: problem {row['problem_id']!r} is not in the run")
        if not row["strategy"].strip():
            raise ValueError(f"{where}: empty strategy name")
        key = (row["strategy"], int(row["n"]), row["problem_id"])
        acc = sums.setdefault(key, [0.0, 0.0, 0.0])
        acc[0] += float(row["correct"])
        acc[1] += float(row["flops"])
        acc[2] += 1
    return OnlineResults(
        acc={k: v[0] / v[2] for k, v in sums.items()},
        flops={k: v[1] / v[2] for k, v in sums.items()},
    )


def online_specs(summary: Mapping[str, Any]) -> dict[str, str]:
    """The run's online strategy specs by strategy name (options included: a name drops them)."""
    from rewardlab.search.online import is_online, parse_online

    out: dict[str, str] = {}
    for spec in summary.get("config", {}).get("strategies", []) or []:
        if is_online(spec):
            out[parse_online(spec)[0].name] = spec
    return out


def online_reward_names(specs: Mapping[str, str], known: Sequence[str]) -> dict[str, str]:
    """The name of the reward each online strategy reads (``oracle-prm:q=0.8`` ->
    ``oracle-prm-q0.8``); a spec that is not a known name is loaded once to learn its name."""
    from rewardlab.rewards.registry import load_reward
    from rewardlab.search.online import parse_online

    names: dict[str, str] = {}
    out: dict[str, str] = {}
    for name, spec in specs.items():
        reward_spec = parse_online(spec)[1]
        if reward_spec not in names:
            names[reward_spec] = (
                reward_spec if reward_spec in known else str(load_reward(reward_spec).name)
            )
        out[name] = names[reward_spec]
    return out


def subset(table: Table, keep: np.ndarray) -> Table:
    """The table on the problems ``keep`` (indices)."""
    ids = tuple(table.problem_ids[i] for i in keep) if table.problem_ids else ()
    return Table(table.configs, table.budgets, table.acc[:, keep], table.cost[:, keep], ids)


# ------------------------------------------------------------------------------ the table


def candidate_flops(pool: RunPool, policy_params: int, verifier_params: int) -> np.ndarray:
    """Mean FLOPs per candidate of each problem [P]: policy ``2 N (prompt + generated)`` plus,
    for a learned verifier, ``2 N_v`` per token it reads (prompt + solution), as ``scale``."""
    tokens = (pool.prompt_tokens + pool.generated_tokens).astype(float)
    return np.asarray((2.0 * (policy_params + verifier_params) * tokens).mean(axis=1))


_READS = re.compile(r"\[([^:\]]+)")


def reads(config: str) -> str:
    """The reward a config name reads (``bon[prm:last]`` -> ``prm``); ``""`` for none.

    >>> reads("beam[prm:4]"), reads("maj"), reads("wmaj[orm]{T=0.7,top_p=1}")
    ('prm', '', 'orm')
    """
    m = _READS.search(parse_config(config)[0])
    return m.group(1) if m else ""


def offline_strategies(
    summary: Mapping[str, Any], names: Sequence[str], verifier: str | None = None
) -> list[Selector]:
    """The selectors to consider: ``names`` or every selector of the run (pass@k has no
    ``choose``: it needs the answer key, so it is never a config); with ``verifier``, only
    those that read it or no reward (majority vote)."""
    from rewardlab.search.online import KINDS

    chosen = list(names) or list(summary.get("strategies", []))
    out: list[Selector] = []
    for spec in chosen:
        if re.split(r"[\[:]", spec, maxsplit=1)[0].strip() in KINDS:
            continue  # an online strategy: its results come from online.jsonl
        s = parse_strategy(spec)
        if not isinstance(s, Selector):
            if names:
                raise ValueError(f"strategy {spec!r} needs the answer key: not a selectable config")
            continue
        if verifier is None or reads(s.name) in ("", verifier):
            out.append(s)
    if not out:
        raise ValueError("no selectable strategy in the run (need bon/wmaj/maj)")
    return out


def build_table(
    loaded: LoadedRun,
    pools: Sequence[RunPool],
    strategies: Sequence[Selector],
    online: OnlineResults | None,
    n_resamples: int = 200,
    seed: int = 0,
    verifier: str | None = None,
    online_reads: Mapping[str, str] | None = None,
) -> Table:
    """Accuracy and FLOPs of every config on every problem at every budget (NaN = not run).

    ``online_reads`` maps an online strategy's name to the name of the reward it reads (its
    name holds the reward's spec, e.g. ``beam[oracle-prm:q=0.8:4]``); others fall back to
    :func:`reads`."""
    ks = default_ks(loaded.n)
    budgets = sorted(set(ks) | set(online.budgets if online else []))
    col = {b: j for j, b in enumerate(budgets)}
    p = len(loaded.problems)
    configs: list[str] = []
    accs: list[np.ndarray] = []
    costs: list[np.ndarray] = []
    for pool in pools:
        for s in strategies:
            reward = str(getattr(s, "reward", "") or "")
            if reward and reward not in {*pool.arrays.scores, *pool.arrays.step_scores}:
                raise ValueError(f"strategy {s.name} reads reward {reward!r}, not in the run")
            curve = s.curve(pool.arrays, ks, seed, n_resamples)  # [P, K]
            per = candidate_flops(pool, loaded.policy_params, loaded.reward_params.get(reward, 0))
            acc = np.full((p, len(budgets)), np.nan)
            cost = np.full((p, len(budgets)), np.nan)
            for j, k in enumerate(ks):
                acc[:, col[k]] = curve[:, j]
                cost[:, col[k]] = k * per
            configs.append(config_name(s.name, None if pool.base else pool.sampling))
            accs.append(acc)
            costs.append(cost)
    if online is not None:
        index = {pr.id: i for i, pr in enumerate(loaded.problems)}
        for name in online.strategies:
            reward = (online_reads or {}).get(name, reads(name))
            if verifier is not None and reward not in ("", verifier):
                continue
            if name in configs:
                raise ValueError(f"online strategy {name!r} has the name of an offline config")
            acc = np.full((p, len(budgets)), np.nan)
            cost = np.full((p, len(budgets)), np.nan)
            for (strat, n, pid), a in online.acc.items():
                if strat == name:
                    acc[index[pid], col[n]] = a
                    cost[index[pid], col[n]] = online.flops[(strat, n, pid)]
            configs.append(name)
            accs.append(acc)
            costs.append(cost)
    if loaded.policy_params <= 0:
        raise ValueError("the run's policy has 0 parameters: FLOPs are unknown")
    return Table(
        tuple(configs),
        tuple(budgets),
        np.stack(accs),
        np.stack(costs),
        tuple(pr.id for pr in loaded.problems),
    )


# --------------------------------------------------------------------------------- the job


def default_verifier(arrays: PoolArrays) -> str:
    """The run's first process reward other than log-probabilities, else first outcome one."""
    for name in [*arrays.step_scores, *arrays.scores]:
        if name != "logprob":
            return name
    raise ValueError("the run has no verifier (only log-probabilities): name one with --verifier")


def default_reference(arrays: PoolArrays, verifier: str) -> str:
    """Snell et al.'s baseline, best-of-N weighted: ``wmaj[verifier(:last)]``; plain best-of-N
    ``bon[...]`` where the verifier has negative scores (not usable as vote weights)."""
    is_step = verifier in arrays.step_scores
    scores = arrays.step_values(verifier) if is_step else arrays.scores[verifier]
    kind = "bon" if np.nanmin(scores, initial=0.0) < 0 else "wmaj"
    return f"{kind}[{verifier}:last]" if is_step else f"{kind}[{verifier}]"


def final_scores(arrays: PoolArrays, verifier: str) -> np.ndarray:
    """The verifier's final score per sample [P, N] (``last`` step of a process reward)."""
    return arrays.reward(verifier, "last" if verifier in arrays.step_scores else None)


def groups_of(
    bins: np.ndarray, prefix: str, n_bins: int, hard: np.ndarray | None
) -> dict[str, np.ndarray]:
    """``all``, ``hard half`` (when given) and one group per bin (1 = easiest)."""
    out = {"all": np.arange(bins.size)}
    if hard is not None:
        out["hard half"] = np.flatnonzero(hard)
    for j in range(n_bins):
        out[f"{prefix} bin {j + 1}"] = np.flatnonzero(bins == j)
    return out


def run_tune(
    cfg: TuneConfig, progress: ProgressFactory = _null_progress
) -> tuple[dict[str, Any], FittedSelector]:
    """Fit, cross-validate and report (see the module doc); returns (result, selector)."""
    if cfg.match not in ("flops", "n"):
        raise ValueError(f"match must be 'flops' or 'n', got {cfg.match!r}")
    t0 = time.monotonic()
    loaded = load_run(cfg.run)
    base = base_pool(loaded)
    pools = [base, *sweep_pools(loaded, cfg.temperatures, cfg.top_ps, progress)]
    verifier = cfg.verifier or default_verifier(base.arrays)
    if verifier not in {*base.arrays.scores, *base.arrays.step_scores}:
        known = [*base.arrays.scores, *base.arrays.step_scores]
        raise ValueError(f"verifier {verifier!r} is not a reward of the run (has {known})")
    only = None if cfg.mix_verifiers else verifier
    strategies = offline_strategies(loaded.summary, cfg.strategies, only)
    online_path = cfg.run / ONLINE_FILE
    ids = [p.id for p in loaded.problems]
    online = read_online(online_path, ids) if online_path.exists() and cfg.use_online else None
    specs = online_specs(loaded.summary)
    known = [*base.arrays.scores, *base.arrays.step_scores]
    reads_map = online_reward_names(specs, known) if online else {}
    table = build_table(
        loaded, pools, strategies, online, cfg.n_resamples, cfg.seed, only, reads_map
    )
    keep = np.arange(len(ids))
    if online is not None:
        # online strategies may have run on the first K problems only: compare on those
        ran = [{pid for s_, _, pid in online.acc if s_ == c} for c in table.configs]
        covered = set.intersection(*[r for r in ran if r]) if any(ran) else set(ids)
        keep = np.array([i for i, pid in enumerate(ids) if pid in covered], dtype=np.intp)
        if keep.size < 4:
            raise ValueError(f"online results cover only {keep.size} problems: too few to tune")
        table = subset(table, keep)
    reference = cfg.reference or default_reference(base.arrays, verifier)
    ref = table.config_index(reference)

    pass1 = oracle_difficulty(base.arrays.correct)[keep]
    predicted = predicted_difficulty(final_scores(base.arrays, verifier))[keep]
    bins_oracle, thr_oracle = quantile_bins(pass1, cfg.n_bins)
    bins_pred, thr_pred = quantile_bins(predicted, cfg.n_bins)
    hard = quantile_bins(pass1, 2)[0] == 1
    match: Any = cfg.match

    results: list[dict[str, Any]] = []
    choices_by: dict[str, np.ndarray] = {}
    for binning, bins in (("oracle", bins_oracle), ("predicted", bins_pred)):
        folds = two_folds(bins, cfg.seed)
        choices = cross_validated_choices(table, bins, folds, ref, match)
        choices_by[binning] = choices
        rows = evaluate_groups(
            table, choices, ref, groups_of(bins, binning, cfg.n_bins, hard), cfg.n_boot, cfg.seed
        )
        results += [{"binning": binning, **asdict(r)} for r in rows]

    selector = fit_selector(
        table,
        bins_pred,
        thr_pred.tolist(),
        ref,
        verifier=verifier,
        probe_n=cfg.probe_n,
        match=match,
        meta={
            "run": str(cfg.run),
            "task": loaded.summary["config"]["task"],
            "policy": loaded.summary["config"]["policy"],
            "policy_params": loaded.policy_params,
            "sampling": asdict(loaded.sampling),
            "rewards_used": loaded.summary["rewards_used"],
            "reward_params": loaded.reward_params,
            "online_specs": specs,
            "online_engine": {
                k: loaded.summary["config"].get(k)
                for k in ("step_tokens", "temperature", "seed")
                if k in loaded.summary["config"]
            },
        },
    )
    result = {
        "config": {**asdict(cfg), "run": str(cfg.run)},
        "run_summary": {
            k: loaded.summary[k] for k in ("policy", "policy_params", "problems", "n_max")
        },
        "reference": reference,
        "verifier": verifier,
        "match": cfg.match,
        "configs": list(table.configs),
        "problems_used": int(keep.size),
        "budgets": list(table.budgets),
        "pools": [asdict(p.sampling) | {"base": p.base} for p in pools],
        "online": None
        if online is None
        else {"file": str(online_path), "strategies": online.strategies},
        "bins": {
            "oracle_thresholds_pass1": thr_oracle.tolist(),
            "predicted_thresholds_score": thr_pred.tolist(),
            "oracle_vs_predicted_same_bin": float(np.mean(bins_oracle == bins_pred)),
            "spearman_pass1_vs_predicted": _spearman(pass1, predicted),
        },
        "results": results,
        "headline": headline(results),
        "wall_seconds": round(time.monotonic() - t0, 2),
    }
    return result, selector


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when one side is constant."""

    def ranks(x: np.ndarray) -> np.ndarray:
        _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
        upper = np.cumsum(counts)
        return np.asarray((upper - (counts - 1) / 2.0)[inv])

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def headline(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The efficiency multiple per level, overall and on the hard half, per binning."""
    out: dict[str, Any] = {}
    for binning in ("oracle", "predicted"):
        for group in ("all", "hard half"):
            rows = [r for r in results if r["binning"] == binning and r["group"] == group]
            out[f"{binning} / {group}"] = {
                str(r["level"]): {
                    "multiple": r["multiple"],
                    "censored": r["censored"],
                    "ci": [r["ci_low"], r["ci_high"]],
                }
                for r in rows
            }
    return out


def level_results(result: Mapping[str, Any]) -> list[LevelResult]:
    """The result rows back as :class:`LevelResult` (for reports)."""
    return [
        LevelResult(**{k: v for k, v in r.items() if k != "binning"}) for r in result["results"]
    ]


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file, then rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(path)


def load_selector(path: Path) -> FittedSelector:
    """A selector saved by ``rewardlab tune`` (``selector.json``)."""
    if path.is_dir():
        path = path / SELECTOR_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `rewardlab tune --run RUN` first")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e.msg})") from None
    return FittedSelector.from_json(data)
