"""Write an :class:`~.reward_eval.EvalResult` for machines and people: JSON, markdown, PNGs.

Every metric appears as ``value [low, high]`` (95% bootstrap interval) with its count, and the
longer-response baseline of the same metric beside it where the evaluation has one.
matplotlib (Agg) is imported inside the plotting functions only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.evaluate.reward_eval import Estimate, EvalResult

BASELINE_LABEL = {
    "pairwise": "pick the longer response",
    "bon": "pick the longest response",
    "one_to_many": "rank by length",
    "overopt": "best-of-N by length / by gold (oracle)",
    "distance": "STARC distance to response length",
    "select": "no reward: majority vote, random pick, oracle",
}


def _fmt(e: Estimate | None) -> str:
    if e is None:
        return ""
    return f"{e.value:.3f} [{e.low:.3f}, {e.high:.3f}]"


def markdown(result: EvalResult) -> str:
    """A markdown report: header, one metrics table (reward beside baseline), notes."""
    lines = [f"# {result.task}: {result.reward}", "", f"data: `{result.data}`", ""]
    if result.task == "overopt":
        lines += _overopt_table(result)
    else:
        base = BASELINE_LABEL.get(result.task, "baseline")
        lines += [f"| metric | reward (95% CI) | n | {base} (95% CI) |", "|---|---|---|---|"]
        for k, e in result.metrics.items():
            lines.append(f"| {k} | {_fmt(e)} | {e.n} | {_fmt(result.baseline.get(k))} |")
        extra = [k for k in result.baseline if k not in result.metrics]
        for k in extra:
            e = result.baseline[k]
            lines.append(f"| {k} |  | {e.n} | {_fmt(e)} |")
    notes = {
        k: v
        for k, v in result.details.items()
        if isinstance(v, int | float | str) or k in ("section_weights", "ns", "kl_bon")
    }
    if notes:
        lines += ["", "| detail | value |", "|---|---|"]
        lines += [
            f"| {k} | {json.dumps(v) if not isinstance(v, str) else v} |" for k, v in notes.items()
        ]
    return "\n".join(lines) + "\n"


def _overopt_table(result: EvalResult) -> list[str]:
    ns = result.details["ns"]
    kl = result.details["kl_bon"]
    names = list(dict.fromkeys(k.split("/N=")[0] for k in [*result.metrics, *result.baseline]))
    head = "| N | KL_BoN | " + " | ".join(names) + " |"
    rows = [head, "|" + "---|" * (len(names) + 2)]
    for k, d in zip(ns, kl, strict=True):
        cells = [
            _fmt(result.metrics.get(f"{n}/N={k}") or result.baseline.get(f"{n}/N={k}"))
            for n in names
        ]
        rows.append(f"| {k} | {d:.3f} | " + " | ".join(cells) + " |")
    rows.append("")
    rows.append(
        "Gold reward of the proxy's best-of-N (95% CI over prompts); fit "
        "gold(d) − gold(0) = d·(α − β·d), d = √KL_BoN:"
    )
    rows += [
        f"- {n}: α = {c['alpha']:.3f}, β = {c['beta']:.3f}"
        for n, c in result.details["curves"].items()
    ]
    return rows


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_metrics(result: EvalResult, path: Path, prefix: str = "subset/") -> Path | None:
    """Bars of the metrics named ``prefix*`` (reward beside baseline) with CI whiskers."""
    keys = [k for k in result.metrics if k.startswith(prefix)] or [
        k for k in result.metrics if "/" not in k
    ]
    if not keys:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(keys) + 2), 4))
    x = np.arange(len(keys))
    for off, src, label in (
        (-0.2, result.metrics, result.reward),
        (0.2, result.baseline, BASELINE_LABEL.get(result.task, "baseline")),
    ):
        es = [src.get(k) for k in keys]
        if not any(es):
            continue
        v = [e.value if e else np.nan for e in es]
        err = [
            [e.value - e.low if e else 0 for e in es],
            [e.high - e.value if e else 0 for e in es],
        ]
        ax.bar(x + off, v, width=0.4, yerr=err, capsize=3, label=label)
    ax.set_xticks(x, [k.removeprefix(prefix) for k in keys], rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{result.task}: {result.reward}")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_overopt(result: EvalResult, path: Path) -> Path:
    """Gold reward of best-of-N against KL_BoN, one line per proxy, CI bands, oracle dashed."""
    plt = _plt()
    kl = np.array(result.details["kl_bon"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, c in result.details["curves"].items():
        style = {"oracle": "k--", "longer": ":"}.get(name, "-o")
        ax.plot(kl, c["gold"], style, ms=3, label=name)
        if name not in ("oracle",):
            ax.fill_between(kl, c["low"], c["high"], alpha=0.15, lw=0)
    ax.set_xlabel("KL_BoN = log N − (N−1)/N (nats)")
    ax.set_ylabel("gold reward of best-of-N")
    ax.set_title(f"overoptimisation: {result.reward}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    top = ax.secondary_xaxis("top", functions=(lambda v: v, lambda v: v))
    top.set_xticks(kl, [str(n) for n in result.details["ns"]])
    top.set_xlabel("N")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_result(
    result: EvalResult, out_dir: str | Path, stem: str | None = None
) -> dict[str, Path]:
    """``<stem>.json`` (everything), ``<stem>.md`` and the evaluation's PNG(s) in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or result.task
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md"}
    paths["json"].write_text(json.dumps(result.as_dict(), indent=1, default=float))
    paths["md"].write_text(markdown(result))
    if result.task == "overopt":
        paths["png"] = plot_overopt(result, out / f"{stem}.png")
    else:
        png = plot_metrics(
            result,
            out / f"{stem}.png",
            "section/" if any(k.startswith("section/") for k in result.metrics) else "subset/",
        )
        if png is not None:
            paths["png"] = png
    cal = result.details.get("calibration")
    if cal:
        from rewardlab.evaluate.calibration import reliability_diagram

        y = np.array(cal["labels"])
        paths["reliability"] = reliability_diagram(
            {k: (np.array(v), y) for k, v in cal["probs"].items()},
            out / f"{stem}_reliability.png",
            cal["n_bins"],
            f"reliability: {result.reward}",
        )
    return paths
