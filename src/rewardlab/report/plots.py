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


#: Line colours: matplotlib's tab10 and tab20 without their greys (grey is majority vote's),
#: so no two strategies of one figure share a colour up to 18 lines; past that the line
#: style changes too.
PALETTE: tuple[str, ...] = (
    *(f"C{i}" for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)),
    *("#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2"),
    *("#dbdb8d", "#9edae5"),
)
MAJORITY_COLOR = "0.45"
STYLES = ("-", "--", ":", "-.")


def line_styles(names: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``name -> (colour, line style)`` for every strategy, fixed for a whole report (the same
    strategy looks the same in every panel): the oracle black dashed, majority grey, the others
    distinct colours in name order."""
    out: dict[str, tuple[str, str]] = {}
    others = sorted(n for n in set(names) if not n.startswith(ORACLE) and n != MAJORITY)
    for i, name in enumerate(others):
        out[name] = (PALETTE[i % len(PALETTE)], STYLES[(i // len(PALETTE)) % len(STYLES)])
    for name in names:
        if name.startswith(ORACLE):
            out[name] = ("k", "--")
    out[MAJORITY] = (MAJORITY_COLOR, "-")
    return out


def n_ticks(rows: Sequence[dict[str, Any]], difficulty: str = "all") -> list[tuple[float, int]]:
    """``(x, N)`` where the policy-only budget N sits on the FLOPs axis: majority vote's
    FLOPs at each N (no verifier), else the oracle's."""
    for name in (MAJORITY, ORACLE):
        pts = {
            int(r["n"]): float(r["flops"])
            for r in rows
            if r["strategy"] == name and str(r["difficulty"]) == difficulty
        }
        if pts:
            return [(x, n) for n, x in sorted(pts.items()) if x > 0]
    return []


def _draw(
    ax: Any,
    series: dict[str, list[dict[str, Any]]],
    title: str,
    xk: str,
    styles: dict[str, tuple[str, str]],
) -> None:
    for name, pts in sorted(series.items(), key=lambda kv: (kv[0].startswith(ORACLE), kv[0])):
        x = [p[xk] for p in pts]
        y = [p["accuracy"] for p in pts]
        lo = [p["ci_low"] for p in pts]
        hi = [p["ci_high"] for p in pts]
        color, style = styles.get(name, ("C0", "-"))
        if name.startswith(ORACLE):
            ax.plot(x, y, color=color, ls=style, lw=1.5, label=f"{name} (oracle ceiling)")
            continue
        ax.plot(x, y, marker="o", ms=3, lw=1.5, color=color, ls=style, label=name)
        ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)


def _x_axis(ax: Any, rows: Sequence[dict[str, Any]], xk: str, difficulty: str, small: bool) -> None:
    """Log x; against FLOPs a second axis on top marks N (candidates per problem), against n
    the ticks are the budgets themselves (1, 2, 4, ...), never ``10^0, 2x10^0``."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    size = 7 if small else 9
    if xk == "n":
        ns = sorted({int(r["n"]) for r in rows})
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(ns))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([str(n) for n in ns])
        ax.set_xlabel("N: candidates per problem (no token counts, so no FLOPs)", fontsize=size)
        return
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # 2x10^9 3x10^9 ... overlap in small panels
    ax.tick_params(axis="x", labelsize=size)
    ax.set_xlabel("FLOPs per problem (policy + verifier)", fontsize=size)
    ticks = n_ticks(rows, difficulty)
    if ticks:
        top = ax.secondary_xaxis("top")
        top.xaxis.set_major_locator(FixedLocator([x for x, _ in ticks]))
        top.xaxis.set_minor_locator(NullLocator())
        top.set_xticks([x for x, _ in ticks], [str(n) for _, n in ticks], fontsize=size - 1)
        top.set_xlabel("N (candidates per problem; policy FLOPs only)", fontsize=size - 1)


def reward_of(strategy: str) -> str | None:
    """The reward a strategy uses (``bon[prm:min]`` -> ``prm``); None for ``pass`` / ``maj``."""
    if "[" not in strategy:
        return None
    return strategy.split("[", 1)[1].rstrip("]").split(":", 1)[0]


def series_reward(name: str, pts: Sequence[dict[str, Any]]) -> str | None:
    """The reward of a series: its rows' ``reward`` column without the aggregation (online
    strategies name their reward by spec, ``beam[oracle-prm:q=0.9:4]``, while the column holds
    the reward's name, ``oracle-prm-q0.9``), else parsed from the strategy name."""
    column = str(pts[0].get("reward", "")) if pts else ""
    if column and column != "-":
        return column.split(":", 1)[0]
    return reward_of(name)


def overview(series: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The oracle, majority vote and, per reward, its strategy with the best accuracy at the
    largest n (ties: the first by name): one line per idea instead of one per variant."""
    keep = {k: v for k, v in series.items() if series_reward(k, v) is None}
    best: dict[str, tuple[float, str]] = {}
    for name, pts in sorted(series.items()):
        reward = series_reward(name, pts)
        if reward is None or not pts:
            continue
        final = float(pts[-1]["accuracy"])
        if reward not in best or final > best[reward][0]:
            best[reward] = (final, name)
    keep.update({name: series[name] for _, name in best.values()})
    return keep


def chosen_overview(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The strategies of the overview, chosen once on all problems (:func:`overview`) and
    used for every difficulty panel too, so both figures show the same lines."""
    return sorted(overview(_series(rows, "all")))


def scaling_figure(rows: Sequence[dict[str, Any]], title: str) -> Any:
    """The figure of :func:`plot_scaling` (returned for inspection; the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    xk = x_key(rows)
    series = _series(rows, "all")
    styles = line_styles(list(series))
    owner = {k: series_reward(k, v) for k, v in series.items()}
    rewards = sorted({r for r in owner.values() if r is not None})
    if len(series) <= MAX_LINES or len(rewards) < 2:
        panels = [(title, series)]
    else:
        base = {k: v for k, v in series.items() if owner[k] is None}
        panels = [(f"{title}: best per reward (at the largest N)", overview(series))]
        for reward in rewards:
            mine = {k: v for k, v in series.items() if owner[k] == reward}
            panels.append((f"reward {reward}: every strategy", {**base, **mine}))
    cols = 1 if len(panels) == 1 else 2
    nrows = (len(panels) + cols - 1) // cols
    size = (8, 5.8) if cols == 1 else (13, 5.0 * nrows)
    fig, axes = plt.subplots(nrows, cols, figsize=size, squeeze=False)
    for ax, (name, part) in zip(axes.flat, panels, strict=False):
        _draw(ax, part, name, xk, styles)
        _x_axis(ax, rows, xk, "all", small=False)
        ax.set_ylabel("accuracy (expected, 95% CI)")
        ax.legend(fontsize=7, loc="lower right", ncol=2 if len(part) > 6 else 1)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_scaling(rows: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Accuracy vs FLOPs per problem (log x, N marked on a top axis), 95% CI bands, the
    oracle dashed.

    Up to :data:`MAX_LINES` strategies share one panel. With more, the figure gets one panel
    per reward (its strategies beside the oracle and majority vote) after an overview panel
    holding each reward's best strategy at the largest n, so no panel is a tangle of lines.
    Each strategy keeps one colour in every panel (:func:`line_styles`).
    """
    import matplotlib.pyplot as plt

    fig = scaling_figure(rows, title)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


DIFFICULTY_MEANING = {
    "arith": "difficulty = number of operations in the problem",
    "math": "difficulty = MATH level (1-5)",
}


def difficulty_figure(
    rows: Sequence[dict[str, Any]], meaning: str = "difficulty bins of the task"
) -> Any | None:
    """The figure of :func:`plot_by_difficulty` (None when the task has no bins)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    bins = sorted({str(r["difficulty"]) for r in rows} - {"all"}, key=lambda b: (len(b), b))
    if not bins:
        return None
    cols = min(4, len(bins))
    nrows = (len(bins) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.5 * nrows + 0.8), squeeze=False)
    xk = x_key(rows)
    everything = _series(rows, "all")
    styles = line_styles(list(everything))
    keep = set(chosen_overview(rows)) if len(everything) > MAX_LINES else set(everything)
    for i, (ax, b) in enumerate(zip(axes.flat, bins, strict=False)):
        part = {k: v for k, v in _series(rows, b).items() if k in keep}
        _draw(ax, part, f"difficulty {b}", xk, styles)
        _x_axis(ax, rows, xk, b, small=True)
        if i % cols == 0:
            ax.set_ylabel("accuracy (expected, 95% CI)", fontsize=8)
    for ax in list(axes.flat)[len(bins) :]:
        ax.axis("off")
    picked = "" if keep == set(everything) else "; lines: each reward's best strategy overall"
    fig.suptitle(f"Accuracy against compute by difficulty ({meaning}{picked})", fontsize=11)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    return fig


def plot_by_difficulty(
    rows: Sequence[dict[str, Any]], path: Path, meaning: str = "difficulty bins of the task"
) -> Path | None:
    """One panel per difficulty bin (None when the task has no bins), titled with what the
    difficulty means (``meaning``, e.g. :data:`DIFFICULTY_MEANING` ``["arith"]``). With more
    than :data:`MAX_LINES` strategies every panel shows the same lines: the overview's choice
    made on all problems (:func:`chosen_overview`), not a choice per bin."""
    import matplotlib.pyplot as plt

    fig = difficulty_figure(rows, meaning)
    if fig is None:
        return None
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
