"""Benchmark: PRLCoder line labels on every shipped code problem, and sandbox batching.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_prlcoder.py [--subset 96]
        [--mutants-per-line 0] [--chunk 64]

1. Labels: ``run_prlcoder`` on all bundled code problems (every one-line mutant of each
   reference solution unless ``--mutants-per-line`` caps it), batched ``--chunk`` programs per
   sandbox call: mutants, killed %, per operator, step labels per second (wall clock of the
   whole run, mutant generation included).
2. Batching, same run, same programs: the first ``--subset`` mutant programs judged (a) one
   program per ``CodeReward.score`` call (one sandboxed judge run each, nothing shared), (b) in
   batches of 16 and (c) in one batch of all of them (``CodeReward`` on a pre-isolated
   ``ZygotePool`` of one worker per CPU). The verdicts of all three must agree; programs/s each.

Writes benchmarks/results/prlcoder.json and prlcoder.md. Not a test.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from _machine import MachineProbe, machine_line

from rewardlab.label.mutation import mutants
from rewardlab.label.prlcoder import PRLCoderConfig, reference_program, run_prlcoder
from rewardlab.rewards.code import CodeReward
from rewardlab.sandbox import Limits, SandboxConfig, detect, resolve_level
from rewardlab.tasks.code import bundled
from rewardlab.types import Candidate, Problem, Score

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _reward() -> CodeReward:
    cfg = SandboxConfig(limits=Limits(wall_s=20.0, cpu_s=20, memory_mb=512))
    return CodeReward(config=cfg, test_timeout_s=2.0, mode="full")


def _judge(problems: list[Problem], programs: list[str], batch: int) -> tuple[list[Score], float]:
    reward = _reward()
    cands = [Candidate(p.id, t, (t,), None) for p, t in zip(problems, programs, strict=True)]
    t0 = time.perf_counter()
    out: list[Score] = []
    for s in range(0, len(cands), batch):
        out += reward.score(problems[s : s + batch], cands[s : s + batch])
    return out, time.perf_counter() - t0


def batching(subset: int) -> dict[str, Any]:
    problems, programs = [], []
    for p in bundled():
        for m in mutants(reference_program(p)):
            problems.append(p)
            programs.append(m.program)
    problems, programs = problems[:subset], programs[:subset]
    rows = {}
    verdicts = {}
    for name, batch in (("one per call", 1), ("batches of 16", 16), ("one batch", subset)):
        scores, secs = _judge(problems, programs, batch)
        verdicts[name] = [s.value for s in scores]
        rows[name] = {
            "programs": len(programs),
            "seconds": round(secs, 2),
            "programs_per_s": round(len(programs) / secs, 2),
        }
    base = rows["one per call"]["programs_per_s"]
    for r in rows.values():
        r["speedup"] = round(r["programs_per_s"] / base, 2)
    agree = len({tuple(v) for v in verdicts.values()}) == 1
    return {"rows": rows, "verdicts_agree": agree}


def markdown(res: dict[str, Any]) -> str:
    s = res["labels"]
    kf = s["killed_fraction"]
    lines = [
        "# PRLCoder line labels on the shipped code problems",
        "",
        f"{s['problems_labelled']} of {s['problems']} problems; mutants per line: "
        f"{s['config']['mutants_per_line'] or 'all'}; {s['config']['chunk']} programs per "
        f"sandbox call; sandbox level `{res['level']}`.",
        "",
        "| mutants | killed | survived | ungraded | killed % | records | step labels | "
        "negative | wall s | step labels/s | mutants judged/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {s['mutants']} | {s['killed']} | {s['survived']} | {s['ungraded']} | "
        f"{100 * kf:.1f} | {s['records_kept']} | {s['steps_labelled']} | "
        f"{s['negative_steps']} | {s['seconds']} | {s['labels_per_s']} | "
        f"{(s['mutants'] + s['problems']) / s['seconds']:.2f} |",
        "",
        "| operator | mutants | killed | killed % |",
        "|---|---|---|---|",
    ]
    for op, row in s["per_operator"].items():
        f = row["killed_fraction"]
        lines.append(f"| {op} | {row['mutants']} | {row['killed']} | {100 * f:.1f} |")
    b = res["batching"]
    lines += [
        "",
        f"## Sandbox batching (the first {next(iter(b['rows'].values()))['programs']} mutants, "
        "same programs)",
        "",
        "| how | seconds | programs/s | speed-up |",
        "|---|---|---|---|",
    ]
    for name, r in b["rows"].items():
        lines.append(f"| {name} | {r['seconds']} | {r['programs_per_s']} | {r['speedup']}x |")
    lines += [
        "",
        f"Verdicts identical across the three: {b['verdicts_agree']}.",
        "",
        "Surviving mutants by problem (mutated line, as written):",
        "",
    ]
    lines += [
        f"- `{pid}`: " + "; ".join(f"`{t}`" for t in texts)
        for pid, texts in res["survivors"].items()
    ]
    lines += ["", machine_line(res["machine"]), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subset", type=int, default=96)
    ap.add_argument("--mutants-per-line", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=64)
    args = ap.parse_args()
    probe = MachineProbe()
    level = resolve_level(SandboxConfig(), detect(SandboxConfig().python))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = PRLCoderConfig(mutants_per_line=args.mutants_per_line or None, chunk=args.chunk)
        summary = run_prlcoder(cfg, Path(tmp) / "run")
        rows = [
            json.loads(x) for x in (Path(tmp) / "run" / "labels.jsonl").read_text().splitlines()
        ]
    survivors: dict[str, list[str]] = {}
    for r in rows:
        if r["info"].get("survived"):
            survivors.setdefault(r["problem"]["id"], []).append(r["info"]["mutated"].strip())
    res = {
        "labels": summary,
        "level": level,
        "batching": batching(args.subset),
        "survivors": survivors,
    }
    res["machine"] = probe.record(sandbox_level=level)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "prlcoder.json").write_text(json.dumps(res, indent=2) + "\n")
    md = markdown(res)
    (RESULTS / "prlcoder.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
