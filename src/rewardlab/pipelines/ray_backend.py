"""rewardlab's jobs on a Ray cluster: ``--backend ray`` (optional extra ``ray``).

Two kinds of model work leave the driver (the process that owns the store):

- **Policy calls** -- sampling a pool (``rewardlab sample``, the sampling stage of ``scale``
  and ``verify``) and Monte-Carlo rollouts (``rewardlab label``) -- go to a
  :class:`RayPolicyPool`: ``actors`` Ray actors, each loading one replica of the policy
  (``load_policy(spec)``) once for the whole job. The driver plans every call exactly as the
  local path does (:func:`rewardlab.search.pool.chunk_calls`; the rollout estimator's calls),
  the actors run them side by side, and the driver builds and stores the candidates. Same
  calls, same seeds, same batches: the samples are those of a local run.
  :func:`sample_pool_ray` claims the sampling chunks under the local path's leases
  (``sample_work``), writes each chunk in one transaction as its calls come back, and so
  resumes like the local path.
- **Reward scoring** (``scale``, ``verify``) goes through Ray Data: the pool is cut into the
  same chunks as the local path (:func:`rewardlab.search.pool.score_chunks`) and scored under
  the same work leases (:func:`rewardlab.search.pool.score_work`); one row per chunk,
  ``map_batches`` with an actor pool in which every actor loads its own replica of the reward
  once (``load_reward(spec)``) and scores a chunk exactly as the local path does
  (:func:`rewardlab.search.pool.score_inputs`, ``batch_size`` inputs per call). Results stream
  back to the driver, which writes each chunk to the store in one transaction as it arrives.

Either way a job killed mid-way keeps every chunk written and the rerun computes only the
rest, and a Ray job and local workers sharing a store never compute a chunk twice. Policy
calls use long-lived actors rather than Ray Data because labelling issues many small rounds
of calls (a binary search is one round per step it probes), and a Ray Data pipeline starts
its actors -- and loads a replica in each -- anew for every dataset.

The driver must run on the host of the store (SQLite); the actors may run anywhere in the
cluster, provided rewardlab and the models' weights are installed there (see docs/cluster.md).
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rewardlab.search.pool import (
    PolicyCall,
    Progress,
    input_groups,
    reward_store_label,
    score_chunks,
    score_inputs,
    score_work,
)
from rewardlab.store import Store
from rewardlab.types import Candidate, Completion, Problem, Score

INSTALL_HINT = "the ray backend needs Ray: pip install 'rewardlab[ray]' (ray>=2.9)"


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide to run on Ray (policy replicas and reward replicas alike).

    Attributes:
        address: a running cluster (``ray://host:10001``, ``host:6379`` or ``auto``); None
            starts a local Ray instance for the job and stops it afterwards.
        actors: model replicas, one per actor (the actor pool's size).
        cpus_per_actor: CPUs Ray reserves per actor.
        gpus_per_actor: GPUs Ray reserves per actor (0: CPU scoring).
        num_cpus: CPUs of a local instance (None: all of this machine's).
        load_kwargs: keyword arguments of ``load_reward`` / ``load_policy`` in each actor
            (e.g. ``device``).
    """

    address: str | None = None
    actors: int = 2
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    num_cpus: int | None = None
    load_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.actors < 1:
            raise ValueError(f"ray actors must be >= 1, got {self.actors}")
        if self.cpus_per_actor <= 0 or self.gpus_per_actor < 0:
            raise ValueError(
                f"cpus_per_actor must be > 0 and gpus_per_actor >= 0, got "
                f"{self.cpus_per_actor}, {self.gpus_per_actor}"
            )
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ValueError(f"num_cpus must be >= 1, got {self.num_cpus}")


RayScoring = RayConfig  # the name of the scoring-only first version


def ray_available() -> bool:
    """True when Ray (with Ray Data) can be imported."""
    try:
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def ray_session(cfg: RayConfig) -> Iterator[None]:
    """Connect to ``cfg.address`` (or start a local instance) unless Ray is already up; a
    session started here is shut down on exit."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise RuntimeError(INSTALL_HINT) from None
    started = False
    if not ray.is_initialized():
        local = cfg.address is None
        ray.init(
            address=cfg.address,
            num_cpus=cfg.num_cpus if local else None,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
        started = True
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def check_fits(cfg: RayConfig, actors: int) -> None:
    """A clear error when the cluster cannot hold ``actors`` actors of ``cfg``'s size at once
    (Ray would otherwise wait for resources that never come); inside :func:`ray_session`."""
    import ray

    have: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    for kind, each in (("CPU", cfg.cpus_per_actor), ("GPU", cfg.gpus_per_actor)):
        if each and have.get(kind, 0.0) < actors * each - 1e-9:
            raise RuntimeError(
                f"{actors} Ray actors of {each:g} {kind} each need {actors * each:g} {kind}s; "
                f"the cluster has {have.get(kind, 0.0):g}: lower --ray-actors (or add nodes)"
            )


class _ScoreActor:
    """One reward replica: scores whole chunks, ``batch_size`` inputs per call."""

    def __init__(self, spec: str, step: bool, batch_size: int, kwargs: dict[str, Any]) -> None:
        from rewardlab.rewards.registry import load_reward

        reward = load_reward(spec, **kwargs)
        self.fn: Callable[[Sequence[Problem], Sequence[Candidate]], list[Score]] = (
            reward.score_steps if step else reward.score
        )
        self.label = reward_store_label(reward, step)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = []
        for blob in batch["inputs"]:
            problems, candidates = pickle.loads(blob)
            scores: list[Score] = []
            for start in range(0, len(candidates), self.batch_size):
                stop = start + self.batch_size
                scores += score_inputs(
                    self.fn, problems[start:stop], candidates[start:stop], self.label
                )
            out.append(pickle.dumps(scores))
        labels = np.array([self.label] * len(out), dtype=object)
        return {"chunk": batch["chunk"], "scores": np.array(out, dtype=object), "label": labels}


def score_pool_ray(
    reward: Any,
    spec: str,
    problems: Sequence[Problem],
    pool: Sequence[Sequence[Candidate]],
    keys: Sequence[str],
    store: Store,
    cfg: RayConfig,
    *,
    step: bool = False,
    batch_size: int = 64,
    progress: Progress | None = None,
    poll: float = 0.5,
) -> list[list[Score]]:
    """:func:`rewardlab.search.pool.score_pool` with the model calls on a Ray actor pool.

    ``reward`` is the driver's copy (its store label and ``text_only`` decide what is
    scored); ``spec`` is what each actor passes to ``load_reward`` for its own replica. An
    actor whose replica has another store label (other weights) is an error. Must run inside
    :func:`ray_session`.
    """
    import ray.data

    label = reward_store_label(reward, step)
    text_only = bool(getattr(reward, "text_only", False))
    flat = [(i, c) for i, row in enumerate(pool) for c in row]
    flat_keys = [(keys[i], c.index) for i, c in flat]
    chunks = score_chunks(flat, text_only, batch_size)

    def missing(chunk: list[int]) -> list[int]:
        got = store.scores(label, [flat_keys[j] for j in chunk])
        return [j for j, s in zip(chunk, got, strict=True) if s is None]

    done = sum(s is not None for s in store.scores(label, flat_keys))
    if progress is not None:
        progress(done, len(flat))
    pending = list(range(len(chunks)))
    while True:
        todo = {c: m for c in pending if (m := missing(chunks[c]))}
        if not todo:
            break
        works = {score_work(label, [flat_keys[j] for j in chunks[c]]): c for c in todo}
        with store.holding(list(works)) as got:
            mine = {works[w]: input_groups(flat, todo[works[w]], text_only) for w in got}
            rows = [
                {
                    "chunk": c,
                    "inputs": pickle.dumps(
                        (
                            [problems[flat[g[0]][0]] for g in groups],
                            [flat[g[0]][1] for g in groups],
                        )
                    ),
                }
                for c, groups in sorted(mine.items())
            ]
            if rows:
                check_fits(cfg, min(cfg.actors, len(rows)))
                gpus: dict[str, Any] = (
                    {"num_gpus": cfg.gpus_per_actor} if cfg.gpus_per_actor else {}
                )
                scored = ray.data.from_items(rows).map_batches(
                    _ScoreActor,
                    fn_constructor_args=(spec, step, batch_size, cfg.load_kwargs),
                    batch_size=1,
                    compute=ray.data.ActorPoolStrategy(size=min(cfg.actors, len(rows))),
                    num_cpus=cfg.cpus_per_actor,
                    batch_format="numpy",
                    **gpus,
                )
                for row in scored.iter_rows():
                    if row["label"] != label:
                        raise RuntimeError(
                            f"a Ray actor loaded {spec!r} as {row['label']!r}, the driver as "
                            f"{label!r}: the cluster's weights differ from this machine's"
                        )
                    groups = mine[int(row["chunk"])]
                    new: list[Score] = pickle.loads(row["scores"])
                    store.put_scores(
                        label,
                        [(*flat_keys[j], s) for g, s in zip(groups, new, strict=True) for j in g],
                    )
                    done += sum(len(g) for g in groups)
                    if progress is not None:
                        progress(done, len(flat))
        pending = list(todo)
        if not rows:
            time.sleep(poll)  # every chunk left is another worker's: wait for it or its expiry
    stored = store.scores(label, flat_keys)
    out: list[list[Score]] = [[] for _ in pool]
    for (i, _), s in zip(flat, stored, strict=True):
        assert s is not None
        out[i].append(s)
    return out


# ----------------------------------------------------------------------------- policy calls


class _PolicyActor:
    """One policy replica: runs planned calls (``policy.sample``), one at a time."""

    def __init__(self, spec: str, kwargs: dict[str, Any]) -> None:
        from rewardlab.policies.registry import load_policy

        self.policy = load_policy(spec, **kwargs)

    def name(self) -> str:
        return str(self.policy.name)

    def sample(self, position: int, call: PolicyCall) -> tuple[int, list[list[Completion]]]:
        return position, self.policy.sample(list(call.prompts), call.n, call.sampling)


class RayPolicyPool:
    """A :class:`~rewardlab.search.pool.CallRunner` on ``cfg.actors`` Ray actors, each holding
    one replica of the policy ``spec`` (``load_policy(spec, **cfg.load_kwargs)``).

    The actors start on the first call that has work (a job whose samples are all stored
    starts none) and live until :meth:`close` (or the end of the ``with`` block), so a job
    loads each replica once however many rounds of calls it makes. Calls are handed to idle
    actors as they free up; each result is yielded as it arrives. Every actor's replica must
    report the same ``name`` (``name``, when given: the driver's copy), else it is an error,
    not silently mixed samples. Must be used inside :func:`ray_session`.
    """

    def __init__(self, spec: str, cfg: RayConfig, name: str | None = None) -> None:
        self.spec = spec
        self.cfg = cfg
        self.name = name
        self.calls_run = 0
        self.start_seconds = 0.0  # starting the actors and loading their replicas, last start
        self._actors: list[Any] = []
        self._pool: Any = None

    def __enter__(self) -> RayPolicyPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> Any:
        import ray
        from ray.util import ActorPool

        check_fits(self.cfg, self.cfg.actors)
        started = time.monotonic()
        opts: dict[str, Any] = {"num_cpus": self.cfg.cpus_per_actor}
        if self.cfg.gpus_per_actor:
            opts["num_gpus"] = self.cfg.gpus_per_actor
        actor = ray.remote(**opts)(_PolicyActor)
        self._actors = [
            actor.remote(self.spec, self.cfg.load_kwargs) for _ in range(self.cfg.actors)
        ]
        try:
            names = ray.get([a.name.remote() for a in self._actors])
        except Exception as e:  # the actor's own traceback is in the message
            self.close()
            raise RuntimeError(f"a Ray policy actor failed while loading {self.spec!r}: {e}") from e
        want = self.name if self.name is not None else names[0]
        if any(n != want for n in names):
            self.close()
            raise RuntimeError(
                f"Ray actors loaded {self.spec!r} as {sorted(set(names))}, expected {want!r}: "
                "the cluster's policy differs from this machine's"
            )
        self._pool = ActorPool(self._actors)
        self.start_seconds = time.monotonic() - started
        return self._pool

    def run(self, calls: Sequence[PolicyCall]) -> Iterator[tuple[int, list[list[Completion]]]]:
        """Run ``calls`` on the actors; yield ``(position, completions)`` as each finishes."""
        if not calls:
            return
        pool = self._pool if self._pool is not None else self._start()
        for position, rows in pool.map_unordered(
            lambda a, item: a.sample.remote(*item), list(enumerate(calls))
        ):
            self.calls_run += 1
            yield position, rows

    def close(self) -> None:
        """Stop the actors (their CPUs go back to the cluster); a later call starts new ones."""
        if self._actors:
            import ray

            for a in self._actors:
                ray.kill(a)
        self._actors, self._pool = [], None
