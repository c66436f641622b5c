"""Write the solve-vs-verify study and the ``rewardlab verify`` report.

Files: ``solve_verify.csv`` (every SC / GenRM point), ``solve_verify_frontier.csv``,
``solve_verify.json``, ``solve_verify.md`` and ``solve_verify.png`` (accuracy against compute
in units of one solution: SC, every GenRM curve at fixed V, the compute-optimal frontier);
``verify.md`` beside ``verify.jsonl`` / ``verify.json``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardlab.pipelines.scale_job import dump_json
from rewardlab.pipelines.solve_verify import SV_COLUMNS

FRONTIER_COLUMNS = ("budget", "s", "v", "cost", "genrm", "sc_s", "sc")


def _csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    lines = [",".join(columns)]
    for r in rows:
        lines.append(
            ",".join(f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c]) for c in columns)
        )
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def plot_solve_verify(study: dict[str, Any], path: Path) -> Path:
    """SC and GenRM (one line per V) against C, the frontier bold; log x."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    rows = study["rows"]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    sc = [r for r in rows if r["method"] == "sc"]
    ax.plot([r["C"] for r in sc], [r["accuracy"] for r in sc], "k-o", label="self-consistency")
    ax.fill_between(
        [r["C"] for r in sc],
        [r["ci_low"] for r in sc],
        [r["ci_high"] for r in sc],
        color="k",
        alpha=0.1,
    )
    for v in sorted({r["V"] for r in rows if r["method"] == "genrm"}):
        g = [r for r in rows if r["method"] == "genrm" and r["V"] == v]
        ax.plot(
            [r["C"] for r in g], [r["accuracy"] for r in g], "-", alpha=0.6, label=f"GenRM V={v}"
        )
    fr = study["frontier"]
    ax.step(
        [q["budget"] for q in fr],
        [q["genrm"] for q in fr],
        where="post",
        color="crimson",
        lw=2.5,
        label="GenRM frontier",
    )
    ax.set_xscale("log")
    ax.set_xlabel(f"compute C = S(1 + λV), units of one solution (λ = {study['lambda']:.3g})")
    ax.set_ylabel("accuracy")
    ax.set_title(f"solve vs verify — {study['verifier']} on {study['problems']} problems")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def solve_verify_markdown(study: dict[str, Any], command: str = "") -> str:
    """The study as a markdown page (frontier table, matching multiple, fits)."""
    m = study["matching"]
    parts = [
        f"# Solve vs verify: `{study['verifier']}`",
        "",
        f"Run `{study['run']}`: {study['problems']} problems, N = {study['n']} solutions, "
        f"V_max = {study['V_max']} verifications each.",
        "",
        f"λ = {study['lambda']:.3g} (FLOPs of one verification / FLOPs of one solution; "
        f"token ratio {study['lambda_tokens']:.3g} counting every token read and written, "
        f"{_fmt(study['lambda_generated'])} counting generated tokens only, the paper's T_V/T_S). "
        f"FLOPs per solution {study['flops_per_solution']:.3g}, per verification "
        f"{study['flops_per_verification']:.3g}.",
        "",
        "![solve vs verify](solve_verify.png)",
        "",
        "## The compute-optimal frontier",
        "",
        "| budget C | GenRM S | GenRM V | GenRM cost | GenRM acc | SC S | SC acc |",
        "|---|---|---|---|---|---|---|",
    ]
    for q in study["frontier"]:
        parts.append(
            f"| {q['budget']:.3g} | {q['s']} | {q['v']} | {q['cost']:.3g} | {q['genrm']:.3f} "
            f"| {q['sc_s']} | {_fmt(q['sc'])} |"
        )
    multiple = m["multiple"]
    parts += [
        "",
        f"Self-consistency peaks at {m['sc_peak']:.3f} (first at C = {m['sc_budget']:.3g}). "
        + (
            f"GenRM first reaches that accuracy at C = {m['genrm_budget']:.3g}, "
            f"**{multiple:.2f}× the compute**"
            if multiple is not None
            else "GenRM never reaches that accuracy on this pool (at any measured budget)"
        )
        + "; its frontier first beats SC at the same budget "
        + (f"at C = {m['crossover']:.3g}." if m["crossover"] is not None else "nowhere measured.")
        + " (Singhi et al. 2025 report that GenRM first matches SC at up to 8× the compute.)",
        "",
        "## Optimal S and V against C (power-law fits, 95% bootstrap CI over problems)",
        "",
    ]
    laws = study["laws"]
    if not laws:
        parts.append("The optimum never moves along S or V on this grid: nothing to fit.")
    for key, law in laws.items():
        parts.append(
            f"- {key}_opt ∝ C^{law['exponent']:.2f} [{_fmt(law['ci_low'], 2)}, "
            f"{_fmt(law['ci_high'], 2)}] ({law['points']} budgets)"
        )
    parts += [
        "",
        "The paper's fit (Llama-3.1-8B GenRM-FT on MATH, as its summary reports): "
        "S_opt ∝ C^0.57, V_opt ∝ C^0.39.",
        "",
    ]
    if command:
        parts += ["Made with:", "", f"    {command}", ""]
    return "\n".join(parts)


def write_solve_verify(study: dict[str, Any], out: Path, command: str = "") -> dict[str, Path]:
    """Write every file of the study into ``out``; returns their paths by kind."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": out / "solve_verify.csv",
        "frontier": out / "solve_verify_frontier.csv",
        "json": out / "solve_verify.json",
        "report": out / "solve_verify.md",
        "plot": out / "solve_verify.png",
    }
    _csv(paths["csv"], study["rows"], SV_COLUMNS)
    _csv(paths["frontier"], study["frontier"], FRONTIER_COLUMNS)
    dump_json(paths["json"], study)
    plot_solve_verify(study, paths["plot"])
    paths["report"].write_text(solve_verify_markdown(study, command))
    return paths


def verify_markdown(summary: dict[str, Any], command: str = "") -> str:
    """``rewardlab verify``'s report."""
    acc = summary["accuracy_at_n"]
    parts = [
        f"# Verifier `{summary['verifier']}` on `{summary['run']}`",
        "",
        f"{summary['problems']} problems × {acc['n']} candidates; V = {summary['V']}; "
        f"{summary['graded_fraction']:.1%} of candidates graded.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| AUROC (score vs correct answer) | {_fmt(summary['auroc'])} |",
        f"| mean score, correct / wrong | {_fmt(summary['mean_score_correct'])} / "
        f"{_fmt(summary['mean_score_wrong'])} |",
        f"| pass@1 / pass@{acc['n']} | {_fmt(acc['pass@1'])} / {_fmt(acc['pass@n'])} |",
        f"| majority@{acc['n']} | {_fmt(acc['maj@n'])} |",
        f"| best-of-{acc['n']} by the verifier | {_fmt(acc['bon@n'])} |",
        f"| weighted majority@{acc['n']} | {_fmt(acc['wmaj@n'])} |",
        f"| verification tokens per candidate | {summary['tokens_per_candidate']:.1f} |",
        f"| verifier / policy FLOPs per candidate | {summary['verifier_flops_per_candidate']:.3g}"
        f" / {summary['policy_flops_per_candidate']:.3g} |",
        f"| λ (all tokens / generated only) | {_fmt(summary['lambda_all_tokens'])} / "
        f"{_fmt(summary['lambda_generated'])} |",
    ]
    if "steps" in summary:
        st = summary["steps"]
        parts.append(
            f"| step F1 (ProcessBench-style, threshold {st['threshold']}, {st['items']} items) "
            f"| {_fmt(st['f1'])} (error {_fmt(st['acc_error'])}, correct "
            f"{_fmt(st['acc_correct'])}) |"
        )
    if command:
        parts += ["", "Made with:", "", f"    {command}"]
    return "\n".join(parts) + "\n"
