"""Write a ``rewardlab iterate`` result: ``report.md`` (a table per round) and ``progress.png``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _f(x: Any, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def rounds_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """One markdown row per round: held-out accuracy [95% CI], samples, kept winners."""
    head = (
        "| round | held-out acc [95% CI] | steps/solution | empty steps | sample acc "
        "| sample reward | kept | kept acc | kept reward | minutes |\n"
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in rows:
        acc = f"{r['accuracy']:.3f} [{r['accuracy_low']:.3f}, {r['accuracy_high']:.3f}]"
        cells = [
            str(r["round"]),
            acc,
            _f(r.get("steps"), 2),
            _f(r.get("empty"), 2),
            *(_f(r.get(k)) for k in ("sample_accuracy", "sample_reward", "kept")),
            *(_f(r.get(k)) for k in ("kept_accuracy", "kept_reward")),
            _f(r.get("minutes"), 2),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def write_report(
    out: str | Path, rows: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]
) -> dict[str, Path]:
    """``report.md`` and ``progress.png`` in ``out``; returns their paths."""
    out = Path(out)
    md = out / "report.md"
    how = (
        "from the base policy each round (ReST-EM)"
        if settings.get("from_base")
        else ("continuing from the previous round's policy (SuperHF)")
    )
    kl = settings.get("kl_coef") or 0
    text = (
        "# rewardlab iterate\n\n"
        f"Expert iteration on `{settings.get('task')}` with policy `{settings.get('policy')}`: "
        f"{settings.get('k')} samples per problem on {settings.get('problems')} training problems "
        f"(T = {settings.get('temperature')}), best of K by `{settings.get('reward')}`"
        + (f" kept if ≥ {settings['min_reward']}" if settings.get("min_reward") is not None else "")
        + f", {settings.get('steps')} fine-tuning steps per round {how}"
        + (f", KL penalty {kl} to the base policy" if kl else "")
        + f". Held-out: {settings.get('held_out')} problems, greedy; "
        "95% bootstrap CI over problems. "
        "Round 0 is the base policy. The sample columns of round r describe the K samples drawn "
        "from round r−1's policy that round r selected from; *kept* = problems whose best "
        "sample was kept.\n\n" + rounds_table(rows)
    )
    md.write_text(text)
    png = out / "progress.png"
    plot_rounds(rows, png)
    return {"report": md, "plot": png}


def plot_rounds(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Held-out accuracy (95% CI) per round and the sampled accuracy of each round's policy."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    x = [r["round"] for r in rows]
    acc = [r["accuracy"] for r in rows]
    lo = [r["accuracy"] - r["accuracy_low"] for r in rows]
    hi = [r["accuracy_high"] - r["accuracy"] for r in rows]
    ax.errorbar(x, acc, yerr=[lo, hi], marker="o", capsize=3, label="held-out accuracy (greedy)")
    # round r's samples come from round r-1's policy: plot them there
    sx = [r["round"] - 1 for r in rows if r.get("sample_accuracy") is not None]
    sy = [r["sample_accuracy"] for r in rows if r.get("sample_accuracy") is not None]
    if sx:
        ax.plot(
            sx, sy, marker="s", linestyle="--", label="sampled accuracy on training problems (T)"
        )
    ax.set_xlabel("round")
    ax.set_ylabel("accuracy")
    ax.set_xticks(x)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
