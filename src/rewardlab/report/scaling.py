"""Write a scaling run's files: curves.csv, summary.json, report.md, scaling*.png."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardlab.pipelines.scale_job import dump_json, iter_rows_csv
from rewardlab.report.plots import plot_by_difficulty, plot_scaling

READING_GUIDE = """\
How to read it: each line is one strategy; x is the compute spent per problem (policy FLOPs
for k samples, plus the verifier's FLOPs for a learned reward), y the expected accuracy when k
candidates are drawn from the pool; bands are 95% bootstrap CIs over problems. The dashed
`pass` line is the oracle (pass@k: some candidate is right) — the ceiling any verifier could
reach with the same samples. A strategy above another at the same x buys more accuracy per FLOP.
"""


def markdown_table(rows: Sequence[dict[str, Any]], difficulty: str = "all") -> str:
    """Accuracy [CI] per strategy (rows) and budget n (columns)."""
    sel = [r for r in rows if str(r["difficulty"]) == difficulty]
    ns = sorted({r["n"] for r in sel})
    names = list(dict.fromkeys(r["strategy"] for r in sel))
    out = ["| strategy | " + " | ".join(f"n={n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
    for name in names:
        cells = {r["n"]: r for r in sel if r["strategy"] == name}
        out.append(
            f"| {name} | "
            + " | ".join(
                f"{cells[n]['accuracy']:.3f} [{cells[n]['ci_low']:.2f}, {cells[n]['ci_high']:.2f}]"
                for n in ns
            )
            + " |"
        )
    return "\n".join(out)


def flops_line(rows: Sequence[dict[str, Any]]) -> str:
    sel = {r["n"]: r["flops"] for r in rows if r["difficulty"] == "all" and r["strategy"] == "maj"}
    return ", ".join(f"n={n}: {f:.3g}" for n, f in sorted(sel.items()))


def write_report(result: dict[str, Any], out: Path, title: str) -> dict[str, Path]:
    """Write every file of a scaling run into ``out``; returns their paths by kind."""
    rows, summary = result["rows"], result["summary"]
    paths = {
        "csv": out / "curves.csv",
        "summary": out / "summary.json",
        "report": out / "report.md",
        "plot": out / "scaling.png",
    }
    tmp = paths["csv"].with_suffix(".csv.tmp")
    tmp.write_text("\n".join(iter_rows_csv(rows)) + "\n")
    tmp.replace(paths["csv"])
    dump_json(paths["summary"], summary)
    plot_scaling(rows, paths["plot"], title)
    by_diff = plot_by_difficulty(rows, out / "scaling_by_difficulty.png")
    bins = sorted({str(r["difficulty"]) for r in rows} - {"all"}, key=lambda b: (len(b), b))
    parts = [
        f"# {title}",
        "",
        f"Policy `{summary['policy']}` ({summary['policy_params']:,} parameters), "
        f"{summary['problems']} problems, N_max = {summary['n_max']}, seed "
        f"{summary['config']['seed']}, wall time {summary['wall_seconds']} s.",
        "",
        "![accuracy vs compute](scaling.png)",
        "",
        READING_GUIDE,
        "## Accuracy by budget (all problems), 95% bootstrap CI",
        "",
        markdown_table(rows),
        "",
        f"Policy FLOPs per problem (majority vote, no verifier): {flops_line(rows)}.",
        "",
    ]
    for name, why in summary.get("skipped_rewards", {}).items():
        parts += [f"- reward `{name}` skipped: {why}.", ""]
    if summary.get("imported_label_disagreements") is not None:
        parts += [
            f"- imported `is_correct` labels that Math-Verify disagrees with: "
            f"{summary['imported_label_disagreements']} (listed in label_disagreements.json).",
            "",
        ]
    if by_diff is not None:
        parts += ["## By difficulty", "", "![per difficulty](scaling_by_difficulty.png)", ""]
        for b in bins:
            parts += [f"### difficulty {b}", "", markdown_table(rows, b), ""]
        paths["plot_by_difficulty"] = by_diff
    paths["report"].write_text("\n".join(parts))
    return paths
