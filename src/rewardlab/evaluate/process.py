"""Step-level evaluation in ProcessBench's format and metric (Zheng et al. 2024, "ProcessBench:
identifying process errors in mathematical reasoning").

An item is a problem, its solution's steps and ``label`` = the index of the first wrong step,
or -1 when every step is right. A predictor gives one score per step (high = good); its
predicted first error is the first step whose score is below a threshold (-1 if none).

- **ProcessBench F1**: ``acc_error`` = share of erroneous items (``label != -1``) whose predicted
  first error equals the label; ``acc_correct`` = share of error-free items predicted -1;
  ``F1 = 2 * acc_error * acc_correct / (acc_error + acc_correct)`` (as QwenLM/ProcessBench's
  evaluation scripts, there in percent, here as fractions).
- **Threshold**: chosen to maximise F1 on a seeded dev split (stratified by erroneous / correct)
  and reported with the test-split metrics at that threshold; never tuned on the test split.
  Candidates are the midpoints between consecutive distinct step scores (plus one threshold
  that flags nothing and one that flags everything); ties go to the middle candidate.
- **Step AUROC** (ours; ProcessBench defines none): over steps up to and including each item's
  first error: steps before it are positives, the first error the negative; every step of an
  error-free item is a positive. Steps after the first error are left out: their truth is
  "after an error", not a verdict on the step itself. Ties count one half (Mann-Whitney).
- **ECE**: on the same steps, scores read as P(step good), ``bins`` equal-width bins on [0, 1]
  (default 10; the last bin includes 1.0): ``sum_b n_b / N * |mean label_b - mean score_b|``.
  Undefined (NaN) when a score lies outside [0, 1].

AUROC and ECE are computed on the test split, like the threshold metrics.

>>> s = processbench_f1([-1, 2, 0], [-1, 2, 1])
>>> s.acc_error, s.acc_correct, round(s.f1, 4)
(0.5, 1.0, 0.6667)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

StepScores = Sequence[Sequence[float]]


@dataclass(frozen=True)
class ProcessItem:
    """One solution with its true first error (``label``, -1 if none)."""

    id: str
    problem: str
    steps: tuple[str, ...]
    label: int
    final_answer_correct: bool | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError(f"item {self.id}: no steps")
        if not -1 <= self.label < len(self.steps):
            raise ValueError(
                f"item {self.id}: label {self.label} outside -1..{len(self.steps) - 1}"
            )


_PB_FIELDS = ("id", "problem", "steps", "label", "final_answer_correct")


def load_processbench(path: str | Path) -> list[ProcessItem]:
    """A ProcessBench split file as published (one JSON list of records), read as is.

    Raises:
        ValueError: not UTF-8, not JSON, nested too deeply, not a list, or a record without
            the fields ``id``, ``problem``, ``steps``, ``label`` (the message names the file).
    """
    records = _read_json(path)
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of ProcessBench records")
    for n, r in enumerate(records):
        missing = [
            k for k in ("id", "problem", "steps", "label") if not isinstance(r, dict) or k not in r
        ]
        if missing:
            raise ValueError(f"{path}: record {n} lacks {missing}")
    return [
        ProcessItem(
            id=str(r["id"]),
            problem=r["problem"],
            steps=tuple(r["steps"]),
            label=int(r["label"]),
            final_answer_correct=r.get("final_answer_correct"),
            meta={k: v for k, v in r.items() if k not in _PB_FIELDS},
        )
        for r in records
    ]


def _read_json(path: str | Path) -> Any:
    """A JSON file; errors name the file (bad UTF-8, bad JSON, nesting too deep)."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply to read") from None


def load_stepwise(path: str | Path) -> list[ProcessItem]:
    """TRL stepwise JSONL (``prompt``, ``completions``, ``labels``), e.g. ``rewardlab label``'s
    ``labels.jsonl``. The label is the record's ``first_error`` when present, else the first
    False (or < 0.5) label. Records with ``"kept": false`` are skipped."""
    from rewardlab.tasks.jsonl import read_jsonl, require

    items = []
    for n, r in read_jsonl(path):
        require(r, ("prompt", "completions", "labels"), f"{path}:{n + 1}")
        if r.get("kept", True) is False:
            continue
        label = r.get("first_error")
        if label is None:
            label = next((i for i, y in enumerate(r["labels"]) if float(y) < 0.5), -1)
        meta = {k: v for k, v in r.items() if k not in ("prompt", "completions", "labels")}
        items.append(
            ProcessItem(
                str(r.get("id", n)), r["prompt"], tuple(r["completions"]), int(label), meta=meta
            )
        )
    return items


def load_process_data(path: str | Path) -> list[ProcessItem]:
    """``.json`` → ProcessBench; ``.jsonl`` → TRL stepwise."""
    suffix = Path(path).suffix
    if suffix == ".json":
        return load_processbench(path)
    if suffix == ".jsonl":
        return load_stepwise(path)
    raise ValueError(f"{path}: expected a ProcessBench .json or a stepwise .jsonl file")


# ------------------------------------------------------------------------------- metrics


def predicted_first_error(scores: Sequence[float], threshold: float) -> int:
    """First step whose score is below ``threshold``, -1 if none.

    >>> predicted_first_error([0.9, 0.4, 0.1], 0.5), predicted_first_error([0.9], 0.5)
    (1, -1)
    """
    return next((i for i, s in enumerate(scores) if s < threshold), -1)


@dataclass(frozen=True)
class ProcessBenchScore:
    """ProcessBench's accuracies (fractions; NaN for an empty subset) and their harmonic mean."""

    acc_error: float
    acc_correct: float
    f1: float
    n_error: int
    n_correct: int


def harmonic_mean(a: float, b: float) -> float:
    """``2ab / (a + b)``; 0 when both are 0, NaN when either is NaN."""
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def processbench_f1(labels: Sequence[int], preds: Sequence[int]) -> ProcessBenchScore:
    """ProcessBench's metric from true and predicted first errors."""
    y, p = np.asarray(labels), np.asarray(preds)
    if y.shape != p.shape:
        raise ValueError(f"{y.size} labels for {p.size} predictions")
    err, ok = y != -1, y == -1
    acc_e = float(np.mean(p[err] == y[err])) if err.any() else math.nan
    acc_c = float(np.mean(p[ok] == -1)) if ok.any() else math.nan
    return ProcessBenchScore(
        acc_e, acc_c, harmonic_mean(acc_e, acc_c), int(err.sum()), int(ok.sum())
    )


def split_dev_test(
    labels: Sequence[int], dev_fraction: float = 0.3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded dev/test split of item indices, stratified by erroneous vs error-free."""
    if not 0.0 <= dev_fraction < 1.0:
        raise ValueError(f"dev_fraction must be in [0, 1), got {dev_fraction}")
    y = np.asarray(labels)
    rng = np.random.default_rng(seed)
    dev: list[int] = []
    for group in (np.flatnonzero(y == -1), np.flatnonzero(y != -1)):
        chosen = rng.permutation(group)[: round(dev_fraction * group.size)]
        dev += chosen.tolist()
    dev_idx = np.array(sorted(dev), dtype=int)
    return dev_idx, np.setdiff1d(np.arange(y.size), dev_idx)


def _match_intervals(labels: Sequence[int], scores: StepScores) -> tuple[np.ndarray, np.ndarray]:
    """Per item, the thresholds t with ``lo < t <= hi`` at which its prediction is right.

    With prefix minima ``m_i = min(s_0..s_i)``, the prediction is the first ``i`` with
    ``m_i < t``: right for an error at ``L`` iff ``m_L < t <= m_{L-1}`` (``m_{-1} = inf``), for
    an error-free item iff ``t <= m_{n-1}``.
    """
    lo, hi = np.empty(len(labels)), np.empty(len(labels))
    for i, (label, s) in enumerate(zip(labels, scores, strict=True)):
        m = np.minimum.accumulate(np.asarray(s, dtype=float))
        if label == -1:
            lo[i], hi[i] = -np.inf, m[-1]
        else:
            lo[i], hi[i] = m[label], (np.inf if label == 0 else m[label - 1])
    return lo, hi


def threshold_candidates(scores: StepScores) -> np.ndarray:
    """Every distinct behaviour: min score (flags nothing), midpoints, just above the max."""
    u = np.unique(np.concatenate([np.asarray(s, dtype=float) for s in scores]))
    if u.size == 0:
        raise ValueError("no step scores")
    return np.concatenate([u[:1], (u[:-1] + u[1:]) / 2, [np.nextafter(u[-1], np.inf)]])


def f1_at_thresholds(
    labels: Sequence[int], scores: StepScores, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(acc_error, acc_correct, f1)`` at every threshold, in O((items + thresholds) log)."""
    lo, hi = _match_intervals(labels, scores)
    y = np.asarray(labels)

    def acc(mask: np.ndarray) -> np.ndarray:
        if not mask.any():
            return np.full(thresholds.size, np.nan)
        a, b = np.sort(lo[mask]), np.sort(hi[mask])
        hits = np.searchsorted(a, thresholds, "left") - np.searchsorted(b, thresholds, "left")
        return np.asarray(hits / mask.sum(), dtype=float)

    acc_e, acc_c = acc(y != -1), acc(y == -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(acc_e + acc_c > 0, 2 * acc_e * acc_c / (acc_e + acc_c), 0.0)
    return acc_e, acc_c, np.where(np.isnan(acc_e) | np.isnan(acc_c), np.nan, f1)


def choose_threshold(labels: Sequence[int], scores: StepScores) -> tuple[float, float]:
    """The threshold maximising ProcessBench F1 on these items (ties: the middle one) and its
    F1. When a class is absent (F1 undefined) the mean of the defined accuracy is maximised."""
    grid = threshold_candidates(scores)
    acc_e, acc_c, f1 = f1_at_thresholds(labels, scores, grid)
    objective = f1 if not np.isnan(f1).all() else np.nan_to_num(acc_e) + np.nan_to_num(acc_c)
    best = np.flatnonzero(objective == np.nanmax(objective))
    pick = int(best[len(best) // 2])
    return float(grid[pick]), float(objective[pick])


def step_targets(labels: Sequence[int], scores: StepScores) -> tuple[np.ndarray, np.ndarray]:
    """Step labels and scores for AUROC / ECE: steps before the first error (1), at it (0)."""
    ys: list[float] = []
    ss: list[float] = []
    for label, s in zip(labels, scores, strict=True):
        upto = len(s) if label == -1 else label + 1
        ys += [1.0] * (upto if label == -1 else label) + ([] if label == -1 else [0.0])
        ss += [float(v) for v in s[:upto]]
    return np.asarray(ys), np.asarray(ss)


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties one half; NaN without both classes.

    >>> auroc(np.array([1, 1, 0, 0]), np.array([0.9, 0.5, 0.5, 0.1]))
    0.875
    """
    y, s = np.asarray(y, dtype=float), np.asarray(s, dtype=float)
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    if pos == 0 or neg == 0:
        return math.nan
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    ranks = (upper - (counts - 1) / 2.0)[inverse]  # average 1-based rank of each value
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


@dataclass(frozen=True)
class Calibration:
    """ECE and its reliability table (equal-width bins on [0, 1])."""

    ece: float
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    mean_score: tuple[float | None, ...]
    mean_label: tuple[float | None, ...]


def calibration(y: np.ndarray, s: np.ndarray, bins: int = 10) -> Calibration:
    """Expected calibration error of scores read as P(good); NaN if any score is outside [0, 1].

    >>> calibration(np.array([1, 0, 1, 1]), np.array([0.9, 0.9, 0.2, 0.2]), bins=2).ece
    0.6
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    y, s = np.asarray(y, dtype=float), np.asarray(s, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    if s.size == 0 or s.min() < 0.0 or s.max() > 1.0:
        return Calibration(math.nan, tuple(edges), (), (), ())
    which = np.minimum((s * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    sum_s = np.bincount(which, weights=s, minlength=bins)
    sum_y = np.bincount(which, weights=y, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_s, mean_y = sum_s / counts, sum_y / counts
    ece = float(np.nansum(counts / s.size * np.abs(mean_y - mean_s)))
    return Calibration(
        round(ece, 12),
        tuple(float(e) for e in edges),
        tuple(int(c) for c in counts),
        tuple(None if c == 0 else float(v) for c, v in zip(counts, mean_s, strict=True)),
        tuple(None if c == 0 else float(v) for c, v in zip(counts, mean_y, strict=True)),
    )


# ------------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class ProcessReport:
    """Everything ``rewardlab eval process`` reports (test-split numbers unless named dev)."""

    n: int
    n_dev: int
    n_test: int
    threshold: float
    dev_f1: float
    test: ProcessBenchScore
    fixed_threshold: float
    test_at_fixed: ProcessBenchScore
    auroc: float
    calibration: Calibration
    n_steps: int
    dev_curve: tuple[tuple[float, ...], ...]  # (threshold, acc_error, acc_correct, f1) rows

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes None)."""
        out: dict[str, Any] = json_ready(asdict(self))
        return out


def json_ready(obj: Any) -> Any:
    """``obj`` with NaN and infinities replaced by None (tuples become lists), for JSON."""
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_ready(v) for v in obj]
    return obj


def evaluate_process(
    labels: Sequence[int],
    scores: StepScores,
    *,
    dev_fraction: float = 0.3,
    seed: int = 0,
    bins: int = 10,
    fixed_threshold: float = 0.5,
    curve_points: int = 200,
) -> ProcessReport:
    """Choose the threshold on a seeded dev split, then score the test split.

    With ``dev_fraction == 0`` there is no dev split: ``fixed_threshold`` is used on all items.
    """
    if len(labels) != len(scores):
        raise ValueError(f"{len(labels)} labels for {len(scores)} score lists")
    for i, (label, s) in enumerate(zip(labels, scores, strict=True)):
        if not s or not -1 <= label < len(s) or any(math.isnan(v) for v in s):
            raise ValueError(f"item {i}: label {label} with {len(s)} step scores (NaN-free)")
    dev, test = split_dev_test(labels, dev_fraction, seed)
    dev_y, dev_s = [labels[i] for i in dev], [scores[i] for i in dev]
    test_y, test_s = [labels[i] for i in test], [scores[i] for i in test]
    dev_curve: tuple[tuple[float, ...], ...] = ()
    threshold, dev_f1 = fixed_threshold, math.nan
    if dev.size:
        threshold, dev_f1 = choose_threshold(dev_y, dev_s)
        grid = threshold_candidates(dev_s)
        curve = np.stack([grid, *f1_at_thresholds(dev_y, dev_s, grid)], axis=1)
        every = max(1, len(curve) // curve_points)
        dev_curve = tuple(tuple(float(x) for x in row) for row in curve[::every])

    def at(t: float) -> ProcessBenchScore:
        return processbench_f1(test_y, [predicted_first_error(s, t) for s in test_s])

    step_y, step_s = step_targets(test_y, test_s)
    return ProcessReport(
        n=len(labels),
        n_dev=int(dev.size),
        n_test=int(test.size),
        threshold=threshold,
        dev_f1=dev_f1,
        test=at(threshold),
        fixed_threshold=fixed_threshold,
        test_at_fixed=at(fixed_threshold),
        auroc=auroc(step_y, step_s),
        calibration=calibration(step_y, step_s, bins),
        n_steps=int(step_y.size),
        dev_curve=dev_curve,
    )
