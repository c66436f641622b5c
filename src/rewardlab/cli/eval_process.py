"""``rewardlab eval process``: step-level evaluation in ProcessBench's format and metric."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

HELP = (
    "Score every step of a ProcessBench file (or a labels.jsonl from `rewardlab label`) with a "
    "step reward or precomputed scores; predict each solution's first error (first step scored "
    "below a threshold chosen on a seeded dev split) and report ProcessBench's accuracies and "
    "F1 on the test split, step AUROC and ECE. Writes OUT/process_eval.{json,md}, "
    "predictions.jsonl, threshold_f1.png and reliability.png."
)


def process(
    data: Annotated[
        Path, typer.Option(help="ProcessBench .json (as published) or stepwise .jsonl.")
    ],
    out: Annotated[Path, typer.Option(help="Output directory.")],
    scores: Annotated[
        Path | None, typer.Option(help="Step scores: JSONL {id, scores} or JSON.")
    ] = None,
    reward: Annotated[
        str | None, typer.Option(help="A step reward (registry name or checkpoint).")
    ] = None,
    dev_fraction: Annotated[
        float, typer.Option(min=0.0, max=0.95, help="Share of items for dev.")
    ] = 0.3,
    seed: Annotated[int, typer.Option(help="Seed of the dev/test split.")] = 0,
    bins: Annotated[int, typer.Option(min=1, help="ECE bins (equal width on [0, 1]).")] = 10,
    fixed_threshold: Annotated[
        float, typer.Option(help="Also report the metric at this threshold.")
    ] = 0.5,
    batch_size: Annotated[int, typer.Option(min=1, help="Items per score_steps call.")] = 32,
) -> None:
    from rewardlab.evaluate.process import evaluate_process, load_process_data

    if (scores is None) == (reward is None):
        raise typer.BadParameter("give exactly one of --scores and --reward")
    items = load_process_data(data)
    skipped: dict[str, int] = {}
    if scores is not None:
        step_scores = scores_from_file(scores, [i.id for i in items])
        source = str(scores)
    else:
        assert reward is not None
        from rewardlab.rewards.registry import load_reward

        step_scores, skipped = scores_from_reward(load_reward(reward), items, batch_size)
        source = reward
    keep = [i for i, s in enumerate(step_scores) if s is not None]
    if not keep:
        raise typer.BadParameter(f"no item could be scored ({_reasons(skipped)})")
    labels = [items[i].label for i in keep]
    kept_scores = [list(step_scores[i] or ()) for i in keep]
    report = evaluate_process(
        labels,
        kept_scores,
        dev_fraction=dev_fraction,
        seed=seed,
        bins=bins,
        fixed_threshold=fixed_threshold,
    )
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "data": str(data),
        "predictor": source,
        "items": len(items),
        "unscored": len(items) - len(keep),
        "unscored_reasons": skipped,
        "split": {"dev_fraction": dev_fraction, "seed": seed},
        **report.as_dict(),
    }
    (out / "process_eval.json").write_text(json.dumps(result, indent=2) + "\n")
    write_predictions(
        out / "predictions.jsonl", [items[i] for i in keep], kept_scores, report.threshold
    )
    (out / "process_eval.md").write_text(markdown(result))
    plot_threshold_curve(report.dev_curve, report.threshold, out / "threshold_f1.png")
    plot_reliability(report.calibration, out / "reliability.png")
    typer.echo(markdown(result))


def scores_from_file(path: Path, ids: Sequence[str]) -> list[list[float] | None]:
    """Step scores by item id: JSONL ``{"id", "scores"}``, a JSON ``{id: scores}`` object, or a
    JSON list of score lists in item order. Items without scores get None."""
    text = path.read_text()
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        found: dict[str, Any] = {str(r["id"]): r["scores"] for r in rows}
    else:
        obj = json.loads(text)
        if isinstance(obj, list):
            if len(obj) != len(ids):
                raise typer.BadParameter(f"{path}: {len(obj)} score lists for {len(ids)} items")
            found = dict(zip(ids, obj, strict=True))
        else:
            found = {str(k): v for k, v in obj.items()}
    return [None if found.get(i) is None else [float(x) for x in found[i]] for i in ids]


def scores_from_reward(
    rew: Any, items: Sequence[Any], batch_size: int
) -> tuple[list[list[float] | None], dict[str, int]]:
    """Per-step scores from a step reward's ``score_steps`` (or, for a reward without one, from
    ``score``, whose ``Score.steps`` must then hold one value per step, as the exact checker's
    do); None (with a counted reason) where it could not grade an item or gave a number of step
    scores other than the item's steps."""
    score = getattr(rew, "score_steps", None) or getattr(rew, "score", None)
    if not callable(score):
        raise typer.BadParameter(f"reward {rew!r} has neither score_steps nor score")
    pairs = [_as_pair(item) for item in items]
    out: list[list[float] | None] = []
    reasons: dict[str, int] = {}
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        got = score([p for p, _ in chunk], [c for _, c in chunk])
        for (_, cand), s in zip(chunk, got, strict=True):
            reason = ""
            if s.value is None and not s.steps:
                reason = str(s.info.get("reason", "ungraded"))
            elif len(s.steps) != len(cand.steps):
                reason = "step count mismatch"
            if reason:
                reasons[reason] = reasons.get(reason, 0) + 1
                out.append(None)
            else:
                out.append([float(x) for x in s.steps])
    return out, reasons


def _as_pair(item: Any) -> tuple[Any, Any]:
    """A ProcessItem as the (Problem, Candidate) a reward scores; our labels.jsonl records carry
    the problem (answer, task, meta), ProcessBench items only the question."""
    from rewardlab.types import Candidate, Problem

    meta = item.meta.get("problem")
    if isinstance(meta, dict):
        problem = Problem(
            meta["id"],
            item.problem,
            str(meta["answer"]),
            meta.get("task", ""),
            meta.get("meta", {}),
        )
    else:
        problem = Problem(item.id, item.problem, "", "processbench")
    multiline = any("\n" in s for s in item.steps)
    sep, seg = ("\n\n", "paragraphs") if multiline else ("\n", "lines")
    text = sep.join(item.steps)
    return problem, Candidate(problem.id, text, tuple(item.steps), None, segmentation=seg)


def write_predictions(
    path: Path, items: Sequence[Any], scores: Sequence[Sequence[float]], threshold: float
) -> None:
    from rewardlab.evaluate.process import predicted_first_error

    with path.open("w") as fh:
        for item, s in zip(items, scores, strict=True):
            pred = predicted_first_error(s, threshold)
            fh.write(
                json.dumps(
                    {
                        "id": item.id,
                        "label": item.label,
                        "prediction": pred,
                        "match": pred == item.label,
                        "scores": list(s),
                    }
                )
                + "\n"
            )


def _reasons(skipped: dict[str, int]) -> str:
    return ", ".join(f"{n} x {r}" for r, n in skipped.items()) or "no scores"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def markdown(r: dict[str, Any]) -> str:
    """The result as a markdown page (accuracies in percent, as ProcessBench reports them)."""
    t, f = r["test"], r["test_at_fixed"]
    cal = r["calibration"]
    thr = "–" if r["threshold"] is None else f"{r['threshold']:.4g}"
    auroc = "–" if r["auroc"] is None else f"{r['auroc']:.3f}"
    ece = "– (scores outside [0, 1])" if cal["ece"] is None else f"{cal['ece']:.3f}"
    lines = [
        f"# Step-level evaluation — {r['predictor']}",
        "",
        f"Data `{r['data']}`: {r['items']} items, {r['unscored']} unscored; dev {r['n_dev']} / "
        f"test {r['n_test']} (seed {r['split']['seed']}).",
        "",
        "| threshold | chosen on | error acc | correct acc | F1 |",
        "|---|---|---|---|---|",
        f"| {thr} | dev (F1 {_pct(r['dev_f1'])}) | {_pct(t['acc_error'])} | "
        f"{_pct(t['acc_correct'])} | {_pct(t['f1'])} |",
        f"| {r['fixed_threshold']:.4g} | fixed | {_pct(f['acc_error'])} | "
        f"{_pct(f['acc_correct'])} | {_pct(f['f1'])} |",
        "",
        f"Test split: {t['n_error']} erroneous, {t['n_correct']} correct items; "
        f"{r['n_steps']} steps up to the first error.",
        "",
        f"Step AUROC (before the first error = positive, at it = negative): {auroc}; "
        f"ECE ({len(cal['edges']) - 1} equal-width bins): {ece}.",
        "",
    ]
    return "\n".join(lines)


def plot_threshold_curve(curve: Sequence[Sequence[float]], chosen: float, path: Path) -> None:
    """Dev-split accuracies and F1 against the threshold, the chosen one marked."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    if curve:
        t, acc_e, acc_c, f1 = (list(col) for col in zip(*curve, strict=True))
        ax.plot(t, acc_e, label="error acc", lw=1.2)
        ax.plot(t, acc_c, label="correct acc", lw=1.2)
        ax.plot(t, f1, label="F1", lw=2, color="k")
        ax.axvline(chosen, color="r", ls="--", lw=1, label=f"chosen {chosen:.3g}")
    ax.set_xlabel("threshold (a step is wrong when its score is below)")
    ax.set_ylabel("dev split")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_reliability(cal: Any, path: Path) -> None:
    """Reliability diagram: mean label against mean score per bin (bar width = bin)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    if cal.counts:
        mids = [(a + b) / 2 for a, b in zip(cal.edges[:-1], cal.edges[1:], strict=True)]
        pts = [(m, y) for m, y in zip(mids, cal.mean_label, strict=True) if y is not None]
        ax.bar(
            [m for m, _ in pts],
            [y for _, y in pts],
            width=1 / len(mids),
            alpha=0.6,
            edgecolor="k",
            label="share of good steps",
        )
        ax.set_title(f"ECE {cal.ece:.3f}")
    else:
        ax.set_title("ECE undefined (scores outside [0, 1])")
    ax.set_xlabel("step score")
    ax.set_ylabel("share of good steps")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
