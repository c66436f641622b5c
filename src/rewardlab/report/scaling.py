"""Write a scaling run's files: curves.csv, summary.json, report.md, scaling*.png."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardlab.pipelines.scale_job import dump_json, iter_rows_csv
from rewardlab.report.plots import DIFFICULTY_MEANING, plot_by_difficulty, plot_scaling, x_key

READING_GUIDE = """\
How to read it: each line is one strategy; x is the compute spent per problem (policy FLOPs
for N samples, plus the verifier's FLOPs for a learned reward; the top axis marks N, the
candidates per problem, where the policy alone spends that much), y the expected accuracy when
N candidates are drawn from the pool; bands are 95% bootstrap CIs over problems. The dashed
`pass` line is the oracle (pass@N: some candidate is right) — the ceiling any verifier could
reach with the same samples. A strategy above another at the same x buys more accuracy per FLOP.
"""

READING_GUIDE_N = """\
How to read it: each line is one strategy; x is N, the number of candidates per problem drawn
from the imported pool (it carries no token counts, so compute cannot be given in FLOPs), y the
expected accuracy when N candidates are drawn; bands are 95% bootstrap CIs over problems. The
dashed `pass` line is the oracle (pass@N: some candidate is right) — the ceiling any verifier
could reach with the same samples. A strategy above another at the same N picks better.
"""


def difficulty_meaning(config: dict[str, Any]) -> str:
    """What a difficulty bin means for this run's task (shown on the difficulty plot)."""
    if not config.get("pool_file") and config.get("task") == "arith":
        return DIFFICULTY_MEANING["arith"]
    return "difficulty = the data's own difficulty field (MATH: level 1-5)"


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
                if n in cells
                else "—"  # not run at this budget (online strategies stop at --online-n-max)
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
    tmp = paths["csv"].with_suffix(f".csv.{os.getpid()}.tmp")
    tmp.write_text("\n".join(iter_rows_csv(rows)) + "\n")
    tmp.replace(paths["csv"])
    dump_json(paths["summary"], summary)
    plot_scaling(rows, paths["plot"], title)
    meaning = difficulty_meaning(summary["config"])
    by_diff = plot_by_difficulty(rows, out / "scaling_by_difficulty.png", meaning)
    sessions = summary.get("sessions", 1)
    wall = f"wall time {summary['wall_seconds']} s" + (
        f" over {sessions} sessions (this one {summary['this_session_seconds']} s; per stage "
        "in timings.json)"
        if sessions > 1
        else ""
    )
    bins = sorted({str(r["difficulty"]) for r in rows} - {"all"}, key=lambda b: (len(b), b))
    parts = [
        f"# {title}",
        "",
        f"Policy `{summary['policy']}` ({summary['policy_params']:,} parameters), "
        f"{summary['problems']} problems, N_max = {summary['n_max']}, seed "
        f"{summary['config']['seed']}, {wall}.",
        "",
        "![accuracy vs compute](scaling.png)",
        "",
        READING_GUIDE if x_key(rows) == "flops" else READING_GUIDE_N,
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
        parts += [
            "## By difficulty",
            "",
            f"Bins by {meaning.removeprefix('difficulty = ')}.",
            "",
            "![per difficulty](scaling_by_difficulty.png)",
            "",
        ]
        for b in bins:
            parts += [f"### difficulty {b}", "", markdown_table(rows, b), ""]
        paths["plot_by_difficulty"] = by_diff
    parts += [
        "## Files",
        "",
        "`curves.csv` (every point above), `picks.jsonl` (per problem, strategy and N: the "
        "chosen candidate and answer), `pool.jsonl` / `pool.parquet` (every candidate with its "
        "scores), `timings.json` (wall time per stage of every session), `settings.json`.",
        "",
    ]
    paths["report"].write_text("\n".join(parts))
    return paths
