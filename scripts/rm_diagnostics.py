"""Regenerate the "Trust diagnostics" table of ``docs/preference_rms.md``.

Every diagnostic of :mod:`rewardlab.evaluate.trust_eval` on the ``arith`` testbed, with the
shipped reward models as subjects:

1. a pool: the shipped tiny policy, ``--problems`` held-out problems (seed 2000, the shipped
   RMs' held-out seed; 1..8 operations) x ``--n`` samples at T = 1, through the store (a re-run
   samples nothing; ``rewardlab sample --problems 160 --n 8 --seed 2000`` fills the same
   store keys); written as ``pool.jsonl`` in the generic import format, so that every
   ``rewardlab eval bon-bias|step-ablation|ceiling --pool`` command can be re-run on it;
2. ``pairs.jsonl``: one (right, wrong) pair of the pool per problem that has both (subset =
   number of operations), for position bias, SCIR and the length / subset breakdown;
3. ``contrast.jsonl``: each problem and a twin whose last operand differs by one (a lexically
   near-identical instruction), each with its gold solution, for RMC consistency;
4. the diagnostics; every EvalResult as ``OUT/<diagnostic>-<subject>.json``, the table as
   ``docs/results/rm_diagnostics.{json,md}``.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/rm_diagnostics.py [--problems 160 --n 8]

Scores are cached in OUT (``ceiling_scores/``): an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from rewardlab.evaluate import trust_eval as E  # noqa: E402
from rewardlab.evaluate.reward_eval import EvalResult, evaluate_pairwise  # noqa: E402
from rewardlab.evaluate.reward_report import write_result  # noqa: E402
from rewardlab.tasks import arith  # noqa: E402
from rewardlab.types import Problem  # noqa: E402

SHIPPED = ("prm", "implicit-prm", "orm", "genrm")
DIALS = (0.55, 0.6, 0.7, 0.8, 0.9, 1.0)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sample(out: Path, problems: int, n: int) -> tuple[list[Problem], list[list[Any]]]:
    from rewardlab.policies.registry import load_policy
    from rewardlab.search.pool import PoolSpec, sample_pool
    from rewardlab.store import SampleStore
    from rewardlab.tasks.registry import load_task
    from rewardlab.types import Sampling

    task, probs = load_task("arith", problems, seed=2000, n_ops=(1, 8))
    policy = load_policy("tiny")
    spec = PoolSpec(n, Sampling(1.0, 1.0, 160, 2000))  # as `rewardlab sample --seed 2000`
    pool = sample_pool(probs, task, policy, spec, SampleStore(out / "pool.sqlite"))
    return probs, pool


def write_pool(path: Path, problems: list[Problem], pool: list[list[Any]]) -> None:
    """The generic pool-import format (``docs/pool_import.md``) with the testbed meta."""
    with path.open("w") as fh:
        for p, cands in zip(problems, pool, strict=True):
            rec = {
                "id": p.id,
                "question": p.question,
                "answer": p.answer,
                "task": "arith",
                "meta": dict(p.meta),
                "candidates": [{"text": c.text} for c in cands],
            }
            fh.write(json.dumps(rec) + "\n")


def write_pairs(path: Path, problems: list[Problem], pool: list[list[Any]]) -> int:
    """One (right, wrong) pair per problem that has both; the first of each in pool order."""
    rows = []
    for p, cands in zip(problems, pool, strict=True):
        right = [c.text for c in cands if arith.check_steps(p, c.text).correct]
        wrong = [c.text for c in cands if not arith.check_steps(p, c.text).correct]
        if right and wrong:
            rows.append(
                {
                    "prompt": p.question,
                    "chosen": right[0],
                    "rejected": wrong[0],
                    "subset": f"ops-{p.meta['n_ops']}",
                }
            )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def twin(p: Problem) -> tuple[str, str] | None:
    """(question, gold solution) of ``p`` with its last operand changed by one, or None when
    the last operation is a division (the new operand would not divide)."""
    a, op, b, _ = p.meta["ops"][-1]
    if op == "/":
        return None
    b2 = b + 1 if op != "-" or a - (b + 1) >= 1 else b - 1
    if b2 < 1:
        return None
    sents = E.op_sentences(p)
    last = sents[-1]
    if len(re.findall(rf"\b{b}\b", last)) != 1:
        return None
    new_last = re.sub(rf"\b{b}\b", str(b2), last)
    question = p.question.replace(last, new_last, 1)
    r = arith.apply_op(int(a), op, int(b2))
    if r is None or question == p.question:
        return None
    steps = [*arith.gold_steps(p)[:-2], f"{a} {op} {b2} = {r}", f"The answer is {r}."]
    return question, "\n".join(steps)


def write_contrast(path: Path, problems: list[Problem]) -> int:
    rows = []
    for p in problems:
        t = twin(p)
        if t is not None:
            rows.append(
                {
                    "prompt1": p.question,
                    "response1": arith.gold_solution(p),
                    "prompt2": t[0],
                    "response2": t[1],
                }
            )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def fmt(e: Any) -> str:
    return f"{e.value:.3f} [{e.low:.3f}, {e.high:.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", type=int, default=160)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "rm_diagnostics")
    ap.add_argument("--results", type=Path, default=ROOT / "docs" / "results")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument(
        "--judge-pairs", type=int, default=60, help="pairs for the LM judges and genrm's SCIR"
    )
    ap.add_argument(
        "--ceiling-genrm",
        action="store_true",
        help="rank genrm in the ceiling too (it writes a chain per candidate: slow on a CPU)",
    )
    args = ap.parse_args()
    from _machine import MachineProbe

    from rewardlab.rewards.pairwise_judge import ScalarPairwise, load_judge
    from rewardlab.rewards.registry import load_reward

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    timings: dict[str, float] = {}
    probe = MachineProbe()
    log(f"sampling {args.problems} x {args.n}")
    problems, pool = sample(out, args.problems, args.n)
    write_pool(out / "pool.jsonl", problems, pool)
    n_pairs = write_pairs(out / "pairs.jsonl", problems, pool)
    n_contrast = write_contrast(out / "contrast.jsonl", problems)
    judge_pairs = out / "judge_pairs.jsonl"
    judge_pairs.write_text(
        "".join((out / "pairs.jsonl").read_text().splitlines(keepends=True)[: args.judge_pairs])
    )
    timings["sample"] = time.time() - t0
    results: dict[str, EvalResult] = {}
    rewards = {k: load_reward(k) for k in SHIPPED}
    nb = args.n_boot

    def run(key: str, fn: Any) -> None:
        t = time.time()
        log(key)
        results[key] = fn()
        write_result(results[key], out, key.replace(":", "_").replace("/", "_"))
        timings[key] = time.time() - t

    # length bias + subset breakdown (pairwise), position bias
    for k in ("prm", "implicit-prm", "orm"):
        run(
            f"pairwise/{k}",
            lambda k=k: evaluate_pairwise(rewards[k], out / "pairs.jsonl", n_boot=nb),
        )
    run(
        "position/prm",
        lambda: E.evaluate_position(ScalarPairwise(rewards["prm"]), judge_pairs, n_boot=nb),
    )
    for spec in ("tiny", "smollm2"):
        try:
            judge = load_judge(f"lm:{spec}")
        except (FileNotFoundError, ValueError, TypeError) as e:
            log(f"LM judge {spec} unavailable: {e}")
            continue
        run(f"position/lm:{spec}", lambda j=judge: E.evaluate_position(j, judge_pairs, n_boot=nb))
    # contrast consistency
    for k in ("prm", "implicit-prm", "orm"):
        run(
            f"contrast/{k}",
            lambda k=k: E.evaluate_contrast(rewards[k], out / "contrast.jsonl", n_boot=nb),
        )
    # SCIR: the generative judge vs the implicit reward (both internal RMs of the tiny policy)
    run(
        "scir/genrm&implicit-prm",
        lambda: E.evaluate_scir(rewards["genrm"], rewards["implicit-prm"], judge_pairs, n_boot=nb),
    )
    run(
        "scir/prm&orm",
        lambda: E.evaluate_scir(rewards["prm"], rewards["orm"], out / "pairs.jsonl", n_boot=nb),
    )
    # BoN bias and step ablations
    for k in ("prm", "implicit-prm", "orm"):
        run(f"bon_bias/{k}", lambda k=k: E.evaluate_bon_bias(rewards[k], problems, pool, n_boot=nb))
    for k in ("prm", "implicit-prm"):
        run(
            f"step_ablation/{k}",
            lambda k=k: E.evaluate_step_ablation(rewards[k], problems, pool, n_boot=300),
        )
    # alignment ceiling
    ceiling = {k: rewards[k] for k in SHIPPED if k != "genrm" or args.ceiling_genrm}
    ceiling["logprob"] = load_reward("logprob")
    for q in DIALS:
        ceiling[f"oracle-prm:q={q:g}"] = load_reward(f"oracle-prm:q={q:g}")
    run(
        "ceiling",
        lambda: E.evaluate_ceiling(
            ceiling,
            problems,
            pool,
            source=str(out / "pool.jsonl"),
            n_boot=nb,
            cache_dir=out / "ceiling_scores",
            progress=lambda name: log(f"  scored {name}"),
        ),
    )
    timings["total"] = time.time() - t0
    summary = {
        "machine": probe.record(),
        "settings": {
            "problems": args.problems,
            "n": args.n,
            "pairs": n_pairs,
            "contrast_pairs": n_contrast,
            "judge_pairs": min(args.judge_pairs, n_pairs),
            "n_boot": nb,
        },
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "results": {k: r.as_dict() | {"details": _small(r.details)} for k, r in results.items()},
    }
    args.results.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary, indent=1, default=float).replace(f"{ROOT}/", "")  # repo-relative
    (args.results / "rm_diagnostics.json").write_text(text)
    (args.results / "rm_diagnostics.md").write_text(table(results, summary))
    log(f"done in {timings['total']:.0f}s; wrote {args.results / 'rm_diagnostics.md'}")


def _small(details: Any) -> dict[str, Any]:
    """The details without the per-item arrays (they stay in OUT/<key>.json)."""
    drop = {"scores", "p_first", "deltas", "subsets", "probs", "labels"}
    return {k: v for k, v in dict(details).items() if k not in drop}


def table(results: dict[str, EvalResult], summary: dict[str, Any]) -> str:
    from _machine import machine_line

    s = summary["settings"]
    m = summary["machine"]
    lines = [
        "# Trust diagnostics of the shipped reward models (arith testbed)",
        "",
        f"Pool: the tiny policy on {s['problems']} held-out problems (seed 2000) x {s['n']}; "
        f"{s['pairs']} (right, wrong) pairs, {s['contrast_pairs']} contrast pairs, the first "
        f"{s['judge_pairs']} pairs for the LM judges and SCIR with genrm. 95% bootstrap CIs "
        f"({s['n_boot']} replicates; step ablations 300). Generated by "
        "`scripts/rm_diagnostics.py`.",
        "",
        machine_line(m) + f" Timings (s, one thread): {json.dumps(summary['timings_s'])}",
        "",
        "| diagnostic | subject | metric | value [95% CI] | n |",
        "|---|---|---|---|---|",
    ]
    for key, r in results.items():
        kind, _, subject = key.partition("/")
        subject = subject or "all rewards below"
        for name, e in r.metrics.items():
            if kind == "pairwise" and not (name == "overall" or name.startswith("length_corr")):
                continue
            if kind == "ceiling" and not name.startswith("rank/"):
                continue
            lines.append(f"| {kind} | {subject} | {name} | {fmt(e)} | {e.n} |")
        if kind == "pairwise":
            b = r.baseline["overall"]
            lines.append(f"| {kind} | longer response | overall | {fmt(b)} | {b.n} |")
        if kind == "contrast":
            b = r.baseline["consistency"]
            lines.append(f"| {kind} | longer response | consistency | {fmt(b)} | {b.n} |")
    pw = {k.partition("/")[2]: r for k, r in results.items() if k.startswith("pairwise/")}
    if pw:
        subsets = sorted({k for r in pw.values() for k in r.metrics if k.startswith("subset/")})
        lines += [
            "",
            "Pairwise accuracy per subset (number of operations), 95% CI:",
            "",
            "| subset | n | " + " | ".join(pw) + " | longer response |",
            "|---|---|" + "---|" * (len(pw) + 1),
        ]
        first = next(iter(pw.values()))
        for sub in subsets:
            cells = [fmt(r.metrics[sub]) for r in pw.values()]
            lines.append(
                f"| {sub.removeprefix('subset/')} | {first.metrics[sub].n} | "
                + " | ".join(cells)
                + f" | {fmt(first.baseline[sub])} |"
            )
    c = results.get("ceiling")
    if c is not None:
        lines += [
            "",
            f"Alignment ceiling: pass@1 = {c.details['pass@1']:.3f}, N = {c.details['N']}",
            "",
            "| reward | pairwise accuracy (right over wrong) | best-of-N | gain over pass@1 |",
            "|---|---|---|---|",
        ]
        for row in c.details["table"]:
            lines.append(
                f"| {row['reward']} | {row['accuracy']:.3f} | {row['bon@N']:.3f} | "
                f"{row['bon_gain']:+.3f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
