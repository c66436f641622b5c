"""Plots for people: accuracy against compute, overall and per difficulty.

matplotlib is used with the non-interactive Agg backend, chosen inside the functions (never at
import time), so importing this module changes no global state.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

ORACLE = "pass"
MAJORITY = "maj"
MAX_LINES = 8  # strategies per panel before plot_scaling splits the figure by reward


def _curve_key(row: dict[str, Any]) -> str:
    return str(row["strategy"])  # names already carry the reward, e.g. bon[prm:last]


def _series(rows: Sequence[dict[str, Any]], difficulty: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if str(r["difficulty"]) == difficulty:
            out.setdefault(_curve_key(r), []).append(r)
    for pts in out.values():
        pts.sort(key=lambda r: r["n"])
    return out


def x_key(rows: Sequence[dict[str, Any]]) -> str:
    """Plot against FLOPs when they are known, else against samples per problem (n)."""
    return "flops" if any(r["flops"] > 0 for r in rows) else "n"


def _draw(ax: Any, series: dict[str, list[dict[str, Any]]], title: str, xk: str = "flops") -> None:
    import itertools

    colors = itertools.cycle([f"C{i}" for i in range(10)])
    for name, pts in sorted(series.items(), key=lambda kv: (kv[0].startswith(ORACLE), kv[0])):
        x = [p[xk] for p in pts]
        y = [p["accuracy"] for p in pts]
        lo = [p["ci_low"] for p in pts]
        hi = [p["ci_high"] for p in pts]
        if name.startswith(ORACLE):
            ax.plot(x, y, "k--", lw=1.5, label=f"{name} (oracle ceiling)")
            continue
        color = "0.45" if name == MAJORITY else next(colors)  # majority: grey everywhere
        ax.plot(x, y, "-o", ms=3, lw=1.5, color=color, label=name)
        ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)


def reward_of(strategy: str) -> str | None:
    """The reward a strategy uses (``bon[prm:min]`` -> ``prm``); None for ``pass`` / ``maj``."""
    if "[" not in strategy:
        return None
    return strategy.split("[", 1)[1].rstrip("]").split(":", 1)[0]


def overview(series: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The oracle, majority vote and, per reward, its strategy with the best accuracy at the
    largest n (ties: the first by name): one line per idea instead of one per variant."""
    keep = {k: v for k, v in series.items() if reward_of(k) is None}
    best: dict[str, tuple[float, str]] = {}
    for name, pts in sorted(series.items()):
        reward = reward_of(name)
        if reward is None or not pts:
            continue
        final = float(pts[-1]["accuracy"])
        if reward not in best or final > best[reward][0]:
            best[reward] = (final, name)
    keep.update({name: series[name] for _, name in best.values()})
    return keep


def plot_scaling(rows: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Accuracy vs FLOPs per problem (log x), 95% CI bands, the oracle dashed.

    Up to :data:`MAX_LINES` strategies share one panel. With more, the figure gets one panel
    per reward (its strategies beside the oracle and majority vote) after an overview panel
    holding each reward's best strategy at the largest n, so no panel is a tangle of lines.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    xk = x_key(rows)
    series = _series(rows, "all")
    rewards = sorted({r for r in map(reward_of, series) if r is not None})
    if len(series) <= MAX_LINES or len(rewards) < 2:
        panels = [(title, series)]
    else:
        base = {k: v for k, v in series.items() if reward_of(k) is None}
        panels = [(f"{title}: best per reward", overview(series))]
        for reward in rewards:
            mine = {k: v for k, v in series.items() if reward_of(k) == reward}
            panels.append((f"reward {reward}", {**base, **mine}))
    cols = 1 if len(panels) == 1 else 2
    nrows = (len(panels) + cols - 1) // cols
    size = (8, 5.5) if cols == 1 else (13, 4.6 * nrows)
    fig, axes = plt.subplots(nrows, cols, figsize=size, squeeze=False)
    for ax, (name, part) in zip(axes.flat, panels, strict=False):
        _draw(ax, part, name, xk)
        ax.set_xlabel(
            "FLOPs per problem (policy + verifier)"
            if xk == "flops"
            else "candidates per problem (n; no token counts, so no FLOPs)"
        )
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=7, loc="upper left", ncol=2 if len(part) > 6 else 1)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_by_difficulty(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """One panel per difficulty bin (None when the task has no bins); with more than
    :data:`MAX_LINES` strategies each panel shows the :func:`overview` lines only."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    bins = sorted({str(r["difficulty"]) for r in rows} - {"all"}, key=lambda b: (len(b), b))
    if not bins:
        return None
    cols = min(4, len(bins))
    nrows = (len(bins) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.3 * nrows), squeeze=False)
    xk = x_key(rows)
    for ax, b in zip(axes.flat, bins, strict=False):
        part = _series(rows, b)
        _draw(ax, overview(part) if len(part) > MAX_LINES else part, f"difficulty {b}", xk)
        ax.set_xlabel("FLOPs per problem" if xk == "flops" else "n", fontsize=8)
    for ax in list(axes.flat)[len(bins) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
