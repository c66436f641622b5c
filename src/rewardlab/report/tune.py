"""Write a ``rewardlab tune`` result: tune.json, selector.json, tune.md, tune_<binning>.png."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rewardlab.pipelines.tune import SELECTOR_FILE, write_json
from rewardlab.search.compute_optimal import FittedSelector

READING_GUIDE = """\
How to read it: at each level N the compute allowed is what the reference (best-of-N weighted
by the verifier, Snell et al.'s baseline, unless another was named) spends with N samples. In
every difficulty bin, the config (strategy, aggregation, N, sampling) with the best accuracy
within that compute on the OTHER half of the problems is applied (2-fold cross-validation), so
no problem's own labels choose its config. The **efficiency multiple** is the compute the
reference needs to reach the compute-optimal accuracy (its accuracy-vs-FLOPs curve, made
monotone, interpolated in log FLOPs) over the compute the compute-optimal choice spends; `>`
marks a lower bound (the reference never reaches that accuracy within its largest budget: the
value is computed at that budget), `<` an upper bound. 95% CIs: percentile bootstrap over the
group's problems, choices held fixed.
"""


def _fmt_multiple(r: Mapping[str, Any]) -> str:
    m = r["multiple"]
    if m != m:  # NaN
        return "—"
    return f"{r['censored']}{m:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"


def _rows(result: Mapping[str, Any], binning: str, group: str) -> list[Mapping[str, Any]]:
    return [r for r in result["results"] if r["binning"] == binning and r["group"] == group]


def multiples_table(result: Mapping[str, Any], binning: str, groups: Sequence[str]) -> str:
    """Efficiency multiple [CI] per group (rows) and level (columns)."""
    levels = result["budgets"]
    out = [
        "| group | problems | " + " | ".join(f"N={n}" for n in levels) + " |",
        "|---|---|" + "---|" * len(levels),
    ]
    for g in groups:
        rows = {r["level"]: r for r in _rows(result, binning, g)}
        if not rows:
            continue
        size = next(iter(rows.values()))["problems"]
        cells = [_fmt_multiple(rows[n]) if n in rows else "—" for n in levels]
        out.append(f"| {g} | {size} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def accuracy_table(result: Mapping[str, Any], binning: str, group: str) -> str:
    """Reference vs compute-optimal accuracy and FLOPs per level, and what was chosen."""
    out = [
        "| N | reference acc | FLOPs | compute-optimal acc | FLOPs | chosen (problems) |",
        "|---|---|---|---|---|---|",
    ]
    for r in _rows(result, binning, group):
        chosen = ", ".join(
            f"`{k}` ({v})" for k, v in sorted(r["chosen"].items(), key=lambda kv: -kv[1])[:3]
        )
        more = len(r["chosen"]) - 3
        out.append(
            f"| {r['level']} | {r['ref_acc']:.3f} | {r['ref_cost']:.3g} | {r['opt_acc']:.3f} | "
            f"{r['opt_cost']:.3g} | {chosen}{f' +{more} more' if more > 0 else ''} |"
        )
    return "\n".join(out)


def selector_table(selector: FittedSelector) -> str:
    """The saved selector: config@n per predicted bin (rows) and level (columns)."""
    levels = list(selector.budgets)
    bins = sorted({c.bin for c in selector.choices})
    out = [
        "| predicted bin | " + " | ".join(f"N={n}" for n in levels) + " |",
        "|---|" + "---|" * len(levels),
    ]
    for b in bins:
        cells = {c.level: f"`{c.config}@{c.n}`" for c in selector.choices if c.bin == b}
        out.append(f"| {b + 1} | " + " | ".join(cells.get(n, "—") for n in levels) + " |")
    return "\n".join(out)


def plot_tune(result: Mapping[str, Any], binning: str, path: Path) -> Path:
    """Accuracy vs FLOPs per group: the reference and the compute-optimal curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(r["group"] for r in result["results"] if r["binning"] == binning))
    cols = 4
    nrows = (len(groups) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.3 * nrows), squeeze=False)
    for ax, g in zip(axes.ravel(), groups, strict=False):
        rows = _rows(result, binning, g)
        ax.plot(
            [r["ref_cost"] for r in rows], [r["ref_acc"] for r in rows], "o-", label="reference"
        )
        ax.plot(
            [r["opt_cost"] for r in rows],
            [r["opt_acc"] for r in rows],
            "s-",
            label="compute-optimal (CV)",
        )
        ax.set_xscale("log")
        ax.set_title(f"{g} ({rows[0]['problems']} problems)" if rows else g, fontsize=9)
        ax.set_xlabel("FLOPs per problem")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(groups) :]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{result['reference']} vs compute-optimal, {binning} difficulty bins")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_tune_report(
    result: Mapping[str, Any], selector: FittedSelector, out: Path
) -> dict[str, Path]:
    """Write every file of a tune run into ``out`` (the scale run's directory)."""
    paths = {
        "json": out / "tune.json",
        "selector": out / SELECTOR_FILE,
        "report": out / "tune.md",
    }
    write_json(paths["json"], dict(result))
    write_json(paths["selector"], selector.to_json())
    for binning in ("oracle", "predicted"):
        paths[f"plot_{binning}"] = plot_tune(result, binning, out / f"tune_{binning}.png")
    rs = result["run_summary"]
    n_bins = int(result["config"]["n_bins"])

    def bins(binning: str) -> list[str]:
        return [f"{binning} bin {j + 1}" for j in range(n_bins)]

    online = result["online"]
    parts = [
        f"# rewardlab tune — {result['config']['run']}",
        "",
        f"Policy `{rs['policy']}` ({rs['policy_params']:,} parameters), {rs['problems']} "
        f"problems, N_max = {rs['n_max']}. Reference `{result['reference']}`; difficulty "
        f"predicted by `{result['verifier']}`; levels matched by {result['match']}; "
        f"{len(result['configs'])} configs from {len(result['pools'])} pool(s)"
        + (f" plus online strategies {online['strategies']}" if online else "")
        + f"; wall time {result['wall_seconds']} s.",
        "",
        READING_GUIDE,
        "## Efficiency multiple over the reference",
        "",
        "Oracle bins (pass@1 of the pool; needs the answer key):",
        "",
        multiples_table(result, "oracle", ["all", "hard half", *bins("oracle")]),
        "",
        "Predicted bins (the verifier's mean final score; what `rewardlab solve` uses):",
        "",
        multiples_table(result, "predicted", ["all", "hard half", *bins("predicted")]),
        "",
        f"Predicted vs oracle difficulty: Spearman "
        f"{result['bins']['spearman_pass1_vs_predicted']:.2f}, same bin for "
        f"{result['bins']['oracle_vs_predicted_same_bin']:.0%} of problems.",
        "",
        "![oracle bins](tune_oracle.png)",
        "",
        "![predicted bins](tune_predicted.png)",
        "",
        "## Accuracy, all problems (predicted bins, cross-validated)",
        "",
        accuracy_table(result, "predicted", "all"),
        "",
        "## Accuracy, hard half (predicted bins, cross-validated)",
        "",
        accuracy_table(result, "predicted", "hard half"),
        "",
        "## The saved selector (`selector.json`, fitted on all problems)",
        "",
        selector_table(selector),
        "",
        "Configs considered: " + ", ".join(f"`{c}`" for c in result["configs"]) + ".",
        "",
    ]
    paths["report"].write_text("\n".join(parts))
    return paths
