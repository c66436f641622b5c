"""``rewardlab eval process``: step-level evaluation in ProcessBench's format and metric."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from rewardlab.cli.runtime import THREADS_HELP

HELP = (
    "Score every step of a ProcessBench file (or a labels.jsonl from `rewardlab label`) with a "
    "step reward or precomputed scores; predict each solution's first error (first step scored "
    "below a threshold chosen on a seeded dev split) and report ProcessBench's accuracies and "
    "F1 on the test split, step AUROC and ECE. Always says how many items were scored, and "
    "refuses to report metrics when more than --max-unscored of them could not be (e.g. longer "
    "than the model's context). Any local transformers PRM/RM directory without a "
    "rewardlab.json is scored by naming its --recipe. Writes OUT/process_eval.{json,md}, "
    "predictions.jsonl, threshold_f1.png and reliability.png.\n\n"
    "Example: rewardlab eval process --data ../shared/data/processbench/gsm8k.json "
    "--reward /models/Qwen2.5-Math-PRM-7B --recipe qwen-prm --trust-remote-code "
    "--dtype bfloat16 --out runs/pb"
)


def process(
    data: Annotated[
        Path,
        typer.Option(
            help='ProcessBench .json as published: a list of {"id", "problem", "steps": '
            '[...], "label": first wrong step or -1}; or stepwise .jsonl, one '
            '{"prompt", "completions": [...], "labels": [true, false]} per line.'
        ),
    ],
    out: Annotated[Path, typer.Option(help="Output directory.")],
    scores: Annotated[
        Path | None,
        typer.Option(
            help='Precomputed step scores: JSONL {"id": "gsm8k-0", "scores": [0.9, 0.2]} per '
            "line, a JSON {id: scores} object, or a JSON list of score lists in item order."
        ),
    ] = None,
    reward: Annotated[
        str | None,
        typer.Option(
            help="A step reward: registry name, rewardlab checkpoint, or (with --recipe) any "
            "transformers model directory."
        ),
    ] = None,
    recipe: Annotated[
        str | None,
        typer.Option(
            help="How to score a model directory without rewardlab.json: qwen-prm, "
            "math-shepherd, seq-cls (an ORM: every prefix scored), or prm-classifier | "
            "prm-tag | ovm | orm with --separator / --template."
        ),
    ] = None,
    trust_remote_code: Annotated[
        bool, typer.Option(help="Allow a model directory's own modeling code (--recipe).")
    ] = False,
    dtype: Annotated[
        str, typer.Option(help="Weights dtype for --recipe: float32 | bfloat16 | float16.")
    ] = "float32",
    separator: Annotated[
        str | None, typer.Option(help="--recipe: step separator token (overrides the preset).")
    ] = None,
    template: Annotated[
        str | None, typer.Option(help="--recipe: prompt template with {question}.")
    ] = None,
    max_unscored: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Refuse to report metrics when more than this share of items is unscored.",
        ),
    ] = 0.05,
    device: Annotated[
        str | None, typer.Option(help="Reward device (cpu, cuda).", show_default="auto")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help=THREADS_HELP, show_default=False)
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
    from rewardlab.cli.errors import Failure, usage_errors
    from rewardlab.cli.runtime import apply_threads
    from rewardlab.evaluate.process import evaluate_process, load_process_data

    with usage_errors():
        if (scores is None) == (reward is None):
            raise ValueError("give exactly one of --scores and --reward")
        if not data.is_file():
            raise FileNotFoundError(f"--data {data} does not exist")
        if scores is not None and not scores.is_file():
            raise FileNotFoundError(f"--scores {scores} does not exist")
        if reward is not None:
            check_reward_option(reward, recipe, trust_remote_code, dtype)
        items = load_process_data(data)
        if not items:
            raise ValueError(f"{data} holds no items")
    skipped: dict[str, int] = {}
    if scores is not None:
        step_scores = scores_from_file(scores, [i.id for i in items])
        source = str(scores)
    else:
        assert reward is not None
        apply_threads(threads)
        rew = load_reward_option(
            reward, recipe, trust_remote_code, dtype, device, separator, template
        )
        step_scores, skipped = scores_from_reward(rew, items, batch_size)
        source = reward if recipe is None else f"{reward} ({recipe})"
    keep = [i for i, s in enumerate(step_scores) if s is not None]
    unscored = len(items) - len(keep)
    typer.echo(
        f"scored {len(keep)} of {len(items)} items"
        + (f" ({unscored} unscored: {_reasons(skipped)})" if unscored else ""),
        err=True,
    )
    if not keep:
        raise Failure(f"no item could be scored ({_reasons(skipped)})")
    if unscored > max_unscored * len(items):
        raise Failure(
            f"refusing to report metrics: {unscored} of {len(items)} items "
            f"({100 * unscored / len(items):.0f}%) are unscored ({_reasons(skipped)}), more "
            f"than --max-unscored {max_unscored:g}; metrics on the rest would not describe "
            "this data. Use a model with a longer context, or raise --max-unscored knowingly."
        )
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
        "scored": len(keep),
        "unscored": len(items) - len(keep),
        "max_unscored": max_unscored,
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


def check_reward_option(
    reward: str, recipe: str | None, trust_remote_code: bool, dtype: str
) -> None:
    """Check ``--reward`` (and ``--recipe``, ``--dtype``) without loading a model."""
    from rewardlab.rewards.learned import DTYPES, check_hf_dir

    if dtype not in DTYPES:
        raise ValueError(f"unknown --dtype {dtype!r}; choose one of {list(DTYPES)}")
    if recipe is not None:
        check_hf_dir(reward, recipe, trust_remote_code)
        return
    from rewardlab.rewards.registry import check_reward

    check_reward(reward)


def load_reward_option(
    reward: str,
    recipe: str | None,
    trust_remote_code: bool,
    dtype: str,
    device: str | None,
    separator: str | None,
    template: str | None,
) -> Any:
    """The reward ``--reward`` names: with ``--recipe`` a plain model directory."""
    if recipe is None:
        from rewardlab.rewards.registry import is_learned, load_reward

        return load_reward(reward, **({"device": device} if device and is_learned(reward) else {}))
    import codecs

    from rewardlab.rewards.learned import load_hf_reward

    return load_hf_reward(
        reward,
        recipe,
        trust_remote_code=trust_remote_code,
        dtype=dtype,
        device=device,
        separator=None if separator is None else codecs.decode(separator, "unicode_escape"),
        template=template,
    )


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
    if getattr(rew, "score_steps", None) is None and getattr(rew, "read", None) is not None:
        score = _prefix_scorer(rew)  # an outcome model (ORM): score every prefix
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
                reason = _reason_kind(reason)
                reasons[reason] = reasons.get(reason, 0) + 1
                out.append(None)
            else:
                out.append([float(x) for x in s.steps])
    return out, reasons


def _prefix_scorer(rew: Any) -> Any:
    """Step scores of an outcome reward: the score of each prefix (steps 1..t) as step t's."""
    from dataclasses import replace

    from rewardlab.types import Score

    def score(problems: Sequence[Any], cands: Sequence[Any]) -> list[Any]:
        flat_p, flat_c, owner = [], [], []
        for i, (p, c) in enumerate(zip(problems, cands, strict=True)):
            for t in range(1, len(c.steps) + 1):
                flat_p.append(p)
                flat_c.append(replace(c, steps=tuple(c.steps[:t])))
                owner.append(i)
        got = rew.score(flat_p, flat_c)
        per: list[list[Any]] = [[] for _ in cands]
        for i, s in zip(owner, got, strict=True):
            per[i].append(s)
        out = []
        for row in per:
            bad = next((s for s in row if s.value is None), None)
            if bad is not None or not row:
                out.append(bad or Score.ungraded("no steps"))
            else:
                out.append(Score(float(row[-1].value), steps=tuple(float(s.value) for s in row)))
        return out

    return score


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


def _reason_kind(reason: str) -> str:
    """One reason per kind: ``"1075 tokens, more than the model's 512"`` -> ``"longer than
    the model's 512 tokens"`` (so 361 long items are one line, not 200 lengths)."""
    import re

    m = re.fullmatch(r"\d+ tokens, more than the model's (\d+)", reason)
    return f"longer than the model's {m.group(1)} tokens" if m else reason


def _reasons(skipped: dict[str, int], most: int = 3) -> str:
    top = sorted(skipped.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{n} x {r}" for r, n in top[:most]) or "no scores"
    rest = sum(n for _, n in top[most:])
    return text + (f", {rest} for other reasons" if rest else "")


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
        f"Data `{r['data']}`: {r['items']} items, scored {r['items'] - r['unscored']}, "
        f"unscored {r['unscored']}; dev {r['n_dev']} / "
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
