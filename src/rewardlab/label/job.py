"""The ``rewardlab label`` job: sample solutions, label their steps, write TRL stepwise data.

>>> cfg = LabelConfig(method="binary", problems=8, rollouts=4)  # doctest: +SKIP
>>> summary = run_label(cfg, Path("runs/labels"))  # doctest: +SKIP

Everything sampled -- the solutions and every rollout -- lives in ``<out>/pool.sqlite``; a rerun
(or a run killed half way and started again) reuses it and samples only what is missing, so
the labels of an interrupted run equal those of an uninterrupted one. Outputs:
``labels.jsonl`` (kept records, one per line, TRL's ``prompt``/``completions``/``labels`` plus
metadata), ``summary.json`` and ``report.md`` (with quality against the exact truth on tasks
that have it).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rewardlab.label.base import Labeler, StepLabels
from rewardlab.label.binary import BinarySearchLabeler
from rewardlab.label.consensus import ConsensusLabeler
from rewardlab.label.mc import MonteCarloLabeler
from rewardlab.label.progress import ProgressLabeler
from rewardlab.label.quality import QualityRow, quality_markdown, quality_row
from rewardlab.label.rollouts import RolloutEstimator
from rewardlab.label.truth import TruthLabeler
from rewardlab.search.pool import CallRunner
from rewardlab.store import ClaimStats, Store, claim_each, work_digest
from rewardlab.tasks.base import Task
from rewardlab.types import Candidate, Problem, Score

ProgressFactory = Callable[[str, int], AbstractContextManager[Callable[[int, int], None]]]


@dataclass(frozen=True)
class LabelConfig:
    """Everything that defines a labelling run (saved in ``summary.json``).

    ``rollouts`` is k, the rollouts per estimated prefix; ``consensus`` names the two methods a
    ``consensus`` run compares (the first one's labels are kept).
    """

    method: str = "mc"
    task: str = "arith"
    policy: str = "tiny"
    problems: int = 20
    samples_per_problem: int = 4
    rollouts: int = 8
    soft: bool = False
    difficulty: tuple[int, int] = (1, 8)
    temperature: float = 1.0
    max_new_tokens: int = 160
    seed: int = 0
    prover_k: int = 4
    margin: float = 0.5
    consensus: tuple[str, str] = ("mc", "progress")
    truncate: bool = True
    chunk: int = 16
    device: str | None = None

    def __post_init__(self) -> None:
        if self.method not in BUILDERS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {sorted(BUILDERS)}")
        bad = [m for m in self.consensus if m not in BUILDERS or m == "consensus"]
        if len(self.consensus) != 2 or bad:
            raise ValueError(f"consensus needs two base methods, got {self.consensus}")
        if min(self.problems, self.samples_per_problem, self.rollouts, self.chunk) < 1:
            raise ValueError("problems, samples_per_problem, rollouts and chunk must be >= 1")


Builder = Callable[[LabelConfig, RolloutEstimator, Task], Labeler]


def _mc(cfg: LabelConfig, est: RolloutEstimator, task: Task) -> Labeler:
    return MonteCarloLabeler(est, cfg.rollouts, cfg.soft, cfg.truncate, cfg.chunk)


def _binary(cfg: LabelConfig, est: RolloutEstimator, task: Task) -> Labeler:
    return BinarySearchLabeler(est, cfg.rollouts, cfg.chunk)


def _progress(cfg: LabelConfig, est: RolloutEstimator, task: Task) -> Labeler:
    return ProgressLabeler(
        est, cfg.rollouts, cfg.prover_k, None, cfg.margin, cfg.truncate, cfg.chunk
    )


def _truth(cfg: LabelConfig, est: RolloutEstimator, task: Task) -> Labeler:
    return TruthLabeler(task, cfg.truncate)


def _consensus(cfg: LabelConfig, est: RolloutEstimator, task: Task) -> Labeler:
    a, b = (BUILDERS[m](cfg, est, task) for m in cfg.consensus)
    return ConsensusLabeler(a, b)


BUILDERS: dict[str, Builder] = {
    "mc": _mc,
    "binary": _binary,
    "progress": _progress,
    "truth": _truth,
    "consensus": _consensus,
}


def build_labeler(cfg: LabelConfig, estimator: RolloutEstimator) -> Labeler:
    """The labeler ``cfg.method`` names, rolling out through ``estimator``."""
    return BUILDERS[cfg.method](cfg, estimator, estimator.task)


def null_progress(_: str, __: int) -> AbstractContextManager[Callable[[int, int], None]]:
    return nullcontext(lambda done, total: None)


def run_label(
    cfg: LabelConfig,
    out: Path,
    progress: ProgressFactory | None = None,
    store_at: str | None = None,
    runner: CallRunner | None = None,
) -> dict[str, Any]:
    """Sample, label, and write ``labels.jsonl``, ``summary.json`` and ``report.md`` to ``out``.

    ``store_at`` is where samples, rollouts and labels are stored (a ``postgresql://`` URL or
    a SQLite path; default: the one ``out`` recorded, else ``out/pool.sqlite``). ``runner``
    runs the policy calls -- the solutions and every rollout -- elsewhere (a Ray actor pool
    of replicas of ``cfg.policy``: ``rewardlab label --backend ray``); the calls are planned
    here exactly as without it, so the labels are the same.
    """
    from rewardlab.policies.registry import load_policy
    from rewardlab.search.pool import PoolSpec, sample_pool
    from rewardlab.store import request_key, run_store
    from rewardlab.tasks.registry import load_task
    from rewardlab.types import Sampling

    bar = progress or null_progress
    started = time.time()
    out.mkdir(parents=True, exist_ok=True)
    task, problems = load_task(cfg.task, cfg.problems, seed=cfg.seed, n_ops=cfg.difficulty)
    policy = load_policy(cfg.policy, **({"device": cfg.device} if cfg.device else {}))
    store = run_store(out, store_at)
    sampling = Sampling(cfg.temperature, 1.0, cfg.max_new_tokens, cfg.seed)
    with bar(f"sampling {len(problems)} x {cfg.samples_per_problem}", len(problems)) as update:
        pool = sample_pool(
            problems,
            task,
            policy,
            PoolSpec(cfg.samples_per_problem, sampling),
            store,
            update,
            runner,
        )
    pairs = [(p, c) for p, row in zip(problems, pool, strict=True) for c in row if c.steps]
    probs, samples = [p for p, _ in pairs], [c for _, c in pairs]
    labeler = build_labeler(cfg, RolloutEstimator(policy, task, sampling, store, runner=runner))
    keys = [request_key(p, policy.name, sampling) for p in probs]
    with bar(f"labelling ({labeler.name}, k={cfg.rollouts})", len(samples)) as update:
        records, work = label_claimed(
            labeler, probs, samples, keys, store, labels_name(cfg, policy.name), cfg.chunk, update
        )
    try:
        truth: list[int] | None = [r.first_error for r in TruthLabeler(task).label(probs, samples)]
    except ValueError:
        truth = None
    quality = None if truth is None else quality_row(records, truth, cfg.rollouts, labeler.name)
    write_jsonl(out / "labels.jsonl", [r for r in records if r.kept])
    summary = summarize(cfg, records, quality, sum(len(row) for row in pool))
    summary["policy_name"] = policy.name
    summary["this_process"] = {
        "chunks_labelled": work.computed,
        "chunks_found_done": work.found_done,
        "waited_s": round(work.waited_s, 2),
    }
    summary["seconds"] = round(time.time() - started, 2)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = None if quality is None else quality_markdown([quality])
    (out / "report.md").write_text(report_markdown(summary, table))
    return summary


def labels_name(cfg: LabelConfig, policy_name: str) -> str:
    """The store name of a run's label records: the method and every setting labels depend
    on (not the problem count, the device or the worker), digested."""
    identity = {k: v for k, v in asdict(cfg).items() if k not in ("problems", "device")}
    return f"labels:{cfg.method}@" + work_digest([identity, policy_name])


def label_claimed(
    labeler: Labeler,
    problems: Sequence[Problem],
    samples: Sequence[Candidate],
    keys: Sequence[str],
    store: Store,
    name: str,
    chunk: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[StepLabels], ClaimStats]:
    """Label ``samples`` ``chunk`` at a time, each chunk under a work lease, so that
    processes labelling from one store divide the samples between them.

    The chunks are the labeler's own (``chunk`` samples from the start), so the labels equal
    those of one ``labeler.label`` call over everything. Each chunk's records are stored (as
    scores named ``name``, keyed by sample: ``keys[i]`` and the sample's index) in one
    transaction; the records returned are read back from the store, whoever labelled them,
    with ``fresh_rollouts`` counting this process's rollouts only.
    """
    ids = [(k, c.index) for k, c in zip(keys, samples, strict=True)]
    parts = [list(range(s, min(s + chunk, len(samples)))) for s in range(0, len(samples), chunk)]
    fresh: dict[int, int] = {}
    done = 0

    def is_done(part: list[int]) -> bool:
        return all(s is not None for s in store.scores(name, [ids[i] for i in part]))

    def run(part: list[int]) -> None:
        records = labeler.label([problems[i] for i in part], [samples[i] for i in part])
        fresh.update({i: r.fresh_rollouts for i, r in zip(part, records, strict=True)})
        store.put_scores(
            name,
            [
                (*ids[i], Score(None, (), {"record": r.to_record()}))
                for i, r in zip(part, records, strict=True)
            ],
        )

    def tick(part: list[int]) -> None:
        nonlocal done
        done += len(part)
        if progress is not None:
            progress(done, len(samples))

    stats = claim_each(
        store,
        parts,
        lambda part: "label:" + work_digest([name, [ids[i] for i in part]]),
        is_done,
        run,
        on_done=tick,
    )
    out = []
    for i, s in enumerate(store.scores(name, ids)):
        assert s is not None
        record = StepLabels.from_record(s.info["record"])
        out.append(replace(record, fresh_rollouts=fresh.get(i, 0)))
    return out, stats


def write_jsonl(path: Path, records: Sequence[StepLabels]) -> None:
    """Write records atomically (a temp file of this process renamed into place)."""
    tmp = path.with_suffix(f".jsonl.{os.getpid()}.tmp")
    with tmp.open("w") as fh:
        for r in records:
            fh.write(json.dumps(r.to_record(), ensure_ascii=False) + "\n")
    tmp.replace(path)


def summarize(
    cfg: LabelConfig, records: Sequence[StepLabels], quality: QualityRow | None, sampled: int
) -> dict[str, Any]:
    """Counts, cost and (when the truth is known) first-error quality of a labelling run."""
    kept = [r for r in records if r.kept]
    labels = [y for r in kept for y in r.labels]
    hard = [y for y in labels if isinstance(y, bool)]
    return {
        "config": asdict(cfg),
        "labeler": records[0].labeler if records else cfg.method,
        "samples_drawn": sampled,
        "samples_labelled": len(records),
        "samples_kept": len(kept),
        "steps_labelled": len(labels),
        "good_fraction": sum(hard) / len(hard) if hard else None,
        "with_error": sum(r.first_error >= 0 for r in kept),
        "rollouts": sum(r.rollouts for r in records),
        "rollouts_per_sample": sum(r.rollouts for r in records) / max(len(records), 1),
        "fresh_rollouts": sum(r.fresh_rollouts for r in records),
        "prompt_tokens": sum(r.prompt_tokens for r in records),
        "generated_tokens": sum(r.generated_tokens for r in records),
        "quality": None if quality is None else quality.as_dict(),
    }


def report_markdown(summary: dict[str, Any], quality_table: str | None = None) -> str:
    """The run's report for people (``quality_table``: markdown from :func:`quality_markdown`)."""
    cfg = summary["config"]
    lines = [
        f"# rewardlab label — {summary['labeler']}",
        "",
        f"Task `{cfg['task']}`, policy `{cfg['policy']}`, {cfg['problems']} problems x "
        f"{cfg['samples_per_problem']} samples, k = {cfg['rollouts']} rollouts per estimate, "
        f"seed {cfg['seed']}.",
        "",
        "| samples drawn | labelled | kept | steps labelled | with an error | good steps |",
        "|---|---|---|---|---|---|",
        f"| {summary['samples_drawn']} | {summary['samples_labelled']} | "
        f"{summary['samples_kept']} | {summary['steps_labelled']} | {summary['with_error']} | "
        + ("–" if summary["good_fraction"] is None else f"{summary['good_fraction']:.3f}")
        + " |",
        "",
        f"Cost: {summary['rollouts']} rollouts ({summary['rollouts_per_sample']:.1f} per sample; "
        f"{summary['fresh_rollouts']} generated by this run, the rest from the store), "
        f"{summary['generated_tokens']} generated tokens.",
        "",
    ]
    if quality_table:
        lines += ["## Against the exact step truth", "", quality_table]
    lines += [
        "Labels stop at each sample's first bad step (inclusive); `first_error` = -1 means "
        "no step was judged wrong. See docs/process_supervision.md.",
        "",
    ]
    return "\n".join(lines)
