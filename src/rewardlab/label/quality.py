"""How good are automatic labels? First-error quality against the testbed's exact truth, as a
function of the rollouts spent.

For a labeler run with ``k`` rollouts per estimate on samples whose true first errors are known,
a row holds the rollouts spent per sample (cached ones included: the method's cost) and
:func:`first_error_quality` of its first-error estimates (on the
samples it kept; consensus keeps fewer). :func:`sweep` runs every labeler at every ``k``;
:func:`quality_markdown` and :func:`plot_quality` present the rows. matplotlib is imported inside
the plotting function only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.evaluate.process import (
    ProcessBenchScore,
    harmonic_mean,
    json_ready,
    processbench_f1,
)
from rewardlab.label.base import Labeler, Progress, StepLabels
from rewardlab.types import Candidate, Problem


@dataclass(frozen=True)
class FirstErrorQuality:
    """How well predicted first errors match true ones.

    ``precision`` = exact hits / samples flagged with an error (pred != -1); ``recall`` = exact
    hits / samples with a true error; a hit is ``pred == truth != -1``. ``accuracy`` is the share
    of samples whose prediction equals the truth (-1 included); ``processbench`` the F1 above.
    """

    n: int
    n_error: int
    n_flagged: int
    hits: int
    precision: float
    recall: float
    f1: float
    accuracy: float
    processbench: ProcessBenchScore


def first_error_quality(truth: Sequence[int], preds: Sequence[int]) -> FirstErrorQuality:
    """First-error precision / recall / F1, accuracy and ProcessBench F1 against the truth.

    >>> q = first_error_quality([-1, 1, 2, 0], [-1, 1, -1, 1])
    >>> q.precision, q.recall, q.accuracy
    (0.5, 0.3333333333333333, 0.5)
    """
    y, p = np.asarray(truth), np.asarray(preds)
    if y.shape != p.shape:
        raise ValueError(f"{y.size} truths for {p.size} predictions")
    hits = int(np.sum((p == y) & (y != -1)))
    flagged, errors = int(np.sum(p != -1)), int(np.sum(y != -1))
    precision = hits / flagged if flagged else math.nan
    recall = hits / errors if errors else math.nan
    return FirstErrorQuality(
        n=int(y.size),
        n_error=errors,
        n_flagged=flagged,
        hits=hits,
        precision=precision,
        recall=recall,
        f1=harmonic_mean(precision, recall),
        accuracy=float(np.mean(p == y)) if y.size else math.nan,
        processbench=processbench_f1(y.tolist(), p.tolist()),
    )


@dataclass(frozen=True)
class QualityRow:
    """One labeler at one ``k``: its cost and its first-error quality against the truth."""

    labeler: str
    k: int
    samples: int
    kept: int
    rollouts: int
    generated_tokens: int
    quality: FirstErrorQuality

    @property
    def rollouts_per_sample(self) -> float:
        return self.rollouts / self.samples if self.samples else 0.0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = json_ready(
            {**asdict(self), "rollouts_per_sample": self.rollouts_per_sample}
        )
        return out


def quality_row(
    records: Sequence[StepLabels], truth: Sequence[int], k: int, name: str | None = None
) -> QualityRow:
    """Cost of all records; quality on the kept ones (``truth[i]`` belongs to ``records[i]``).
    ``name`` defaults to the records' labeler."""
    if len(records) != len(truth):
        raise ValueError(f"{len(records)} records for {len(truth)} truths")
    kept = [i for i, r in enumerate(records) if r.kept]
    return QualityRow(
        labeler=name or (records[0].labeler if records else "?"),
        k=k,
        samples=len(records),
        kept=len(kept),
        rollouts=sum(r.rollouts for r in records),
        generated_tokens=sum(r.generated_tokens for r in records),
        quality=first_error_quality(
            [truth[i] for i in kept], [records[i].first_error for i in kept]
        ),
    )


def sweep(
    builders: Mapping[str, Callable[[int], Labeler]],
    ks: Sequence[int],
    problems: Sequence[Problem],
    samples: Sequence[Candidate],
    truth: Sequence[int],
    progress: Progress | None = None,
) -> list[QualityRow]:
    """Every labeler (built by ``builders[name](k)``) at every ``k``, scored against ``truth``.

    ``progress(done, total)`` counts (labeler, k) runs. Rollouts are shared through the
    labelers' estimator (its store), so larger ``k`` reuses the rollouts of smaller ones.
    """
    rows = []
    total = len(builders) * len(ks)
    for name, build in builders.items():
        for k in ks:
            records = build(k).label(problems, samples)
            rows.append(quality_row(records, truth, k, name))
            if progress is not None:
                progress(len(rows), total)
    return rows


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or x != x else f"{x:.{digits}f}"


def quality_markdown(rows: Sequence[QualityRow]) -> str:
    """A markdown table: one line per labeler and k."""
    lines = [
        "| labeler | k | rollouts / sample | kept | first-error precision | recall | F1 | "
        "exact accuracy | ProcessBench F1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        q = r.quality
        lines.append(
            f"| {r.labeler} | {r.k} | {r.rollouts_per_sample:.1f} | {r.kept}/{r.samples} | "
            f"{_fmt(q.precision)} | {_fmt(q.recall)} | {_fmt(q.f1)} | {_fmt(q.accuracy)} | "
            f"{_fmt(q.processbench.f1)} |"
        )
    return "\n".join(lines) + "\n"


def plot_quality(rows: Sequence[QualityRow], path: Path, title: str = "") -> Path:
    """First-error F1 and ProcessBench F1 against rollouts per sample (log x), one line per
    labeler, each point marked with its k. Labelers with no rollouts are horizontal lines."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    series: dict[str, list[QualityRow]] = {}
    for r in rows:
        series.setdefault(r.labeler, []).append(r)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    metrics: list[tuple[str, Callable[[FirstErrorQuality], float]]] = [
        ("first-error F1", lambda q: q.f1),
        ("ProcessBench F1", lambda q: q.processbench.f1),
    ]
    for ax, (label, metric) in zip(axes, metrics, strict=True):
        drawn = False
        for i, (name, pts) in enumerate(sorted(series.items())):
            pts = sorted(pts, key=lambda r: r.rollouts_per_sample)
            color = f"C{i % 10}"
            if all(p.rollouts == 0 for p in pts):
                ax.axhline(metric(pts[0].quality), color=color, ls="--", lw=1, label=name)
                continue
            pts = [p for p in pts if metric(p.quality) == metric(p.quality)]  # drop NaN
            x = [p.rollouts_per_sample for p in pts]
            y = [metric(p.quality) for p in pts]
            ax.plot(x, y, "-o", ms=4, color=color, label=name)
            drawn = drawn or bool(pts)
            for p, xi, yi in zip(pts, x, y, strict=True):
                ax.annotate(
                    f"k={p.k}", (xi, yi), fontsize=6, xytext=(3, 3), textcoords="offset points"
                )
        if drawn:
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("rollouts per sample")
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("against the testbed's exact first error")
    axes[0].set_ylim(0, 1.02)
    axes[1].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
