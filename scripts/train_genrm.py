"""Make the shipped testbed generative verifiers: ``assets/genrm_arith`` (GenRM-FT, ``--format
check``) and ``assets/genprm_arith`` (the code-checked GenPRM, ``--format code``).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_genrm.py [--format check|code]
        [--work runs/genrm] [--problems 1600] [--n 4] [--heldout 160] [--heldout-n 8] [--steps 1500]
        [--lr 1e-3] [--batch-size 16] [--threads 2] [--stage all|sample|chains|train|eval|install]

Stages (each resumes: pools through ``WORK/pool.sqlite``, every later stage's output is
reused when its file exists with the same settings; fixed seeds throughout):

a. **Pools.** The shipped tiny policy samples ``--n`` candidates per problem (T = 1.0, top-p 1,
   160 new tokens, as ``rewardlab scale`` does) on ``--problems`` training problems from seed
   1000 and ``--heldout`` x ``--heldout-n`` held-out problems from seed 2000 (the shipped RMs'
   splits). The default scale run uses seed 0; the script checks that no problem id or
   question of the training or held-out set is one of those 240 (or of each other).
b. **Chains** (``rewardlab.rewards.genrm_arith.build_chain``, from the exact step truth): one
   row per distinct (problem, candidate text) of the training pool, right and wrong, plus
   synthetic negatives made from the policy's right candidates: a wrong final answer line
   (the shipped RMs miss these, docs/reward_models.md) and a wrong value in one step. Rows
   are balanced to about half ``V:Y``.
c. **Training**: the tiny policy's causal LM, fine-tuned on prompt + chain with the loss on
   the chain tokens only, through ``rewardlab.train.loop.fit`` (AdamW, warm-up, cosine).
d. **Evaluation** on the held-out pool, greedy chains (V = 1): step judgments against the
   truth (ProcessBench F1 on the first error, step accuracy), verdict accuracy / AUROC,
   best-of-n and weighted majority by the verdict against majority vote and pass@n.
e. **Install** into ``src/rewardlab/assets/genrm_arith`` (weights, tokenizer, rewardlab.json,
   train_log.jsonl, report.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "src" / "rewardlab" / "assets"
# --format: (asset directory, reward name, module with FORMAT_NAME and the loader, loader)
FORMATS = {
    "check": ("genrm_arith", "genrm", "rewardlab.rewards.genrm_arith", "load_genrm"),
    "code": ("genprm_arith", "genprm", "rewardlab.rewards.genprm_arith", "load_genprm"),
}
TINY = ROOT / "src" / "rewardlab" / "assets" / "tiny_policy"
TRAIN_SEED, HELDOUT_SEED, SYNTH_SEED = 1000, 2000, 3000
MAX_POSITIONS = 1024  # RoPE: positions are computed, so raising the limit changes no weight
SHIP_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json")
SHIP_FILES += ("tokenizer_config.json", "special_tokens_map.json")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- a. pools


def problems_for(seed: int, n: int) -> list[Any]:
    from rewardlab.tasks import arith

    probs = arith.generate(n, seed=seed, n_ops=(1, 8))
    return sorted(probs, key=lambda p: int(p.meta["difficulty"]))  # similar lengths per chunk


def check_disjoint(train: list[Any], heldout: list[Any]) -> dict[str, int]:
    """Raise if any training or held-out problem is a default-run problem or in both splits."""
    from rewardlab.tasks import arith

    default = arith.generate(240, seed=0, n_ops=(1, 8))
    sets = {
        "default": ({p.id for p in default}, {p.question for p in default}),
        "train": ({p.id for p in train}, {p.question for p in train}),
        "heldout": ({p.id for p in heldout}, {p.question for p in heldout}),
    }
    for a, b in (("train", "default"), ("heldout", "default"), ("train", "heldout")):
        ids, qs = sets[a][0] & sets[b][0], sets[a][1] & sets[b][1]
        if ids or qs:
            raise SystemExit(f"{a} and {b} problems overlap: {len(ids)} ids, {len(qs)} questions")
    return {k: len(v[0]) for k, v in sets.items()}


def sample(work: Path, probs: list[Any], n: int, seed: int, threads: int) -> list[list[Any]]:
    """``n`` candidates per problem from the tiny policy, through the store (resumable)."""
    from rewardlab.policies.registry import load_policy
    from rewardlab.search.pool import PoolSpec, sample_pool
    from rewardlab.store import SampleStore
    from rewardlab.tasks.arith import ArithTask
    from rewardlab.types import Sampling

    policy = load_policy("tiny", device="cpu")
    spec = PoolSpec(n, Sampling(1.0, 1.0, 160, seed), chunk_problems=16)
    t0 = time.monotonic()

    def progress(done: int, total: int) -> None:
        if done % 160 == 0 or done == total:
            log(f"  seed {seed}: sampled {done}/{total} problems ({time.monotonic() - t0:.0f} s)")

    store = SampleStore(work / "pool.sqlite")
    return sample_pool(probs, ArithTask(), policy, spec, store, progress)


# ------------------------------------------------------------------------------ b. chains


def _distinct(probs: list[Any], pool: list[list[Any]]) -> list[tuple[Any, str]]:
    """One (problem, text) per distinct candidate text of each problem, in pool order."""
    out, seen = [], set()
    for p, row in zip(probs, pool, strict=True):
        for c in row:
            if (p.id, c.text) not in seen:
                seen.add((p.id, c.text))
                out.append((p, c.text))
    return out


def corrupt_answer(rng: random.Random, text: str) -> str | None:
    """The text with its final answer line's number changed (None: no answer line)."""
    from rewardlab.tasks.arith import ANSWER_RE

    lines = text.split("\n")
    for i in range(len(lines) - 1, -1, -1):
        if (m := ANSWER_RE.match(lines[i])) is not None:
            n = int(m.group(1))
            wrong = n + rng.choice([-10, -2, -1, 1, 2, 10, 100, rng.randint(-50, 50) or 3])
            lines[i] = f"The answer is {wrong}."
            return "\n".join(lines)
    return None


def corrupt_value(rng: random.Random, text: str) -> str | None:
    """The text with the result of one equation line changed (None: no equation line)."""
    from rewardlab.tasks.arith import STEP_RE

    lines = text.split("\n")
    idx = [i for i, line in enumerate(lines) if STEP_RE.match(line)]
    if not idx:
        return None
    i = rng.choice(idx)
    m = STEP_RE.match(lines[i])
    assert m is not None
    c = int(m.group(4))
    delta = rng.choice([-10, -1, 1, 10, rng.choice([-100, 100, -2, 2, 20, -20])])
    lines[i] = f"{m.group(1)} {m.group(2)} {m.group(3)} = {c + delta}"
    return "\n".join(lines)


def corrupt_op(rng: random.Random, problem: Any, text: str) -> str | None:
    """The text with one equation line doing another operation than the question's (the
    neighbouring step's operation, or a random one), later lines continuing correctly from the
    wrong value as a policy would (None: no equation line the question has an operation for,
    or the replacement does not divide)."""
    from rewardlab.tasks.arith import STEP_RE, apply_op

    ops = problem.meta["ops"]
    lines = text.split("\n")
    idx = [i for i, line in enumerate(lines) if i < len(ops) and STEP_RE.match(line)]
    if not idx:
        return None
    k = rng.choice(idx)
    m = STEP_RE.match(lines[k])
    assert m is not None
    a = int(m.group(1))
    choices = [(o[1], int(o[2])) for j, o in enumerate(ops) if j in (k - 1, k + 1)]
    choices += [(rng.choice("+-*/"), rng.choice([int(o[2]) for o in ops]))]
    op, b = rng.choice(choices)
    if (op, b) == (ops[k][1], int(ops[k][2])) or (value := apply_op(a, op, b)) is None:
        return None
    out = [*lines[:k], f"{a} {op} {b} = {value}"]
    for j in range(k + 1, len(ops)):
        nxt = apply_op(value, ops[j][1], int(ops[j][2]))
        if nxt is None:
            break
        out.append(f"{value} {ops[j][1]} {int(ops[j][2])} = {nxt}")
        value = nxt
    return "\n".join([*out, f"The answer is {value}."])


def build_rows(
    probs: list[Any],
    pool: list[list[Any]],
    seed: int,
    fmt: str = "check",
    synthetic: list[Any] = (),  # type: ignore[assignment]
) -> tuple[list[dict], dict]:
    """Training rows {prompt, chain, kind, verdict}: every distinct policy candidate, plus
    synthetic answer-line and value negatives from the right ones (and, for ``code``, wrong-
    operation negatives, the gold solution, and for each ``synthetic`` problem its gold solution
    and one corrupted copy; a ``code`` row is one step's probe and its line, each distinct probe
    once); for ``check`` then balanced to ~half Y by
    repeating the right candidates' rows (never dropping a wrong one). A ``code`` chain holds
    no verdict (the sandbox judges), so its rows are not balanced."""
    from rewardlab.rewards.genprm_arith import code_for_steps, step_probes
    from rewardlab.rewards.genrm_arith import build_chain, chain_truth, verify_prompt
    from rewardlab.steps import split_lines
    from rewardlab.tasks.arith import gold_solution

    seen: set[str] = set()

    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []

    def add(p: Any, text: str, kind: str) -> None:
        truth = chain_truth(p, text)
        if fmt == "code":  # one row per step probe, each distinct probe once
            lines = split_lines(text)
            for probe, code in zip(step_probes(p, lines), code_for_steps(p, lines), strict=True):
                if probe not in seen:
                    seen.add(probe)
                    rows.append(
                        {
                            "prompt": probe,
                            "chain": code + "\n",
                            "kind": kind,
                            "verdict": truth.verdict,
                            "first_error": truth.first_error,
                        }
                    )
            return
        rows.append(
            {
                "prompt": verify_prompt(p, split_lines(text)),
                "chain": build_chain(p, text),
                "kind": kind,
                "verdict": truth.verdict,
                "first_error": truth.first_error,
            }
        )

    for p, text in _distinct(probs, pool):
        add(p, text, "policy")
        if chain_truth(p, text).verdict == 1.0:
            if rng.random() < 0.5 and (bad := corrupt_answer(rng, text)) is not None:
                add(p, bad, "answer-line")
            if rng.random() < 0.5 and (bad := corrupt_value(rng, text)) is not None:
                add(p, bad, "value")
        if fmt == "code" and rng.random() < 0.5 and (bad := corrupt_op(rng, p, text)):
            add(p, bad, "operation")
    if fmt == "code":
        for p in probs:
            add(p, gold_solution(p), "gold")
        for p in synthetic:  # more questions to copy from: gold and one realistic mistake
            gold = gold_solution(p)
            add(p, gold, "gold")
            maker = rng.choice([corrupt_value, corrupt_answer, None, None])
            bad = corrupt_op(rng, p, gold) if maker is None else maker(rng, gold)
            if bad:
                add(p, bad, "synthetic-" + ("operation" if maker is None else maker.__name__[8:]))
    n_yes = sum(r["verdict"] == 1.0 for r in rows)
    n_no = len(rows) - n_yes
    yes_rows = [r for r in rows if r["verdict"] == 1.0]
    extra = [yes_rows[i % len(yes_rows)] for i in range(max(0, n_no - n_yes))] if yes_rows else []
    if fmt == "code":
        extra = []
    rows += extra
    rng.shuffle(rows)
    stats = {
        "rows": len(rows),
        "repeated_right_rows": len(extra),
        "by_kind": dict(Counter(r["kind"] for r in rows)),
        "yes_rate": float(np.mean([r["verdict"] for r in rows])),
    }
    if fmt == "check":
        stats["first_error_is_answer_line"] = sum(
            r["verdict"] == 0.0 and r["chain"].rstrip().split("\n")[-2].split(":", 1)[1][:1] == "="
            for r in rows
            if r["first_error"] >= 0
        )
    return rows, stats


# ------------------------------------------------------------------------------- c. train


def encode_rows(rows: list[dict], tokenizer: Any) -> list[tuple[list[int], int]]:
    """(prompt + chain + eos ids, prompt length) per row; the prompt is encoded exactly as the
    ``hf`` policy encodes a prompt at verification time."""
    out = []
    for r in rows:
        prompt = list(tokenizer(r["prompt"])["input_ids"])
        chain = list(tokenizer(r["chain"], add_special_tokens=False)["input_ids"])
        out.append((prompt + chain + [tokenizer.eos_token_id], len(prompt)))
    return out


def make_batches(encoded: list[tuple[list[int], int]], batch_size: int, pad: int, seed: int):
    """Length-bucketed, right-padded batches (input_ids, attention_mask, labels), shuffled."""
    import torch

    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    batches = []
    for start in range(0, len(order), batch_size):
        members = [encoded[i] for i in order[start : start + batch_size]]
        width = max(len(s) for s, _ in members)
        ids = torch.full((len(members), width), pad, dtype=torch.long)
        attn = torch.zeros((len(members), width), dtype=torch.long)
        labels = torch.full((len(members), width), -100, dtype=torch.long)
        for j, (s, n_prompt) in enumerate(members):
            ids[j, : len(s)] = torch.tensor(s)
            attn[j, : len(s)] = 1
            labels[j, n_prompt : len(s)] = torch.tensor(s[n_prompt:])
        batches.append({"input_ids": ids, "attention_mask": attn, "labels": labels})
    random.Random(seed).shuffle(batches)
    return batches


def chain_loss(model: Any, batch: Any) -> tuple[Any, dict[str, float]]:
    """Next-token cross-entropy on the chain tokens (the prompt is masked out)."""
    out = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
    )
    return out.loss, {}


def train(work: Path, rows: list[dict], args: argparse.Namespace) -> Path:
    """Fine-tune the tiny policy on the chains; a finished run with these settings is reused."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from rewardlab.train.loop import LoopConfig, fit

    out = work / args.model_name
    settings = {
        "steps": args.steps,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "seed": 0,
        "init": str(args.init) if args.init else "tiny_policy",
        "rows": len(rows),
        "data": hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16],
    }
    done = out / "training.json"
    if done.is_file() and json.loads(done.read_text()).get("settings") == settings:
        log(f"  reusing the finished model in {out}")
        return out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tokenizer = AutoTokenizer.from_pretrained(str(TINY), local_files_only=True)
    init = Path(args.init) if args.init else TINY
    model = LlamaForCausalLM.from_pretrained(str(init), local_files_only=True)
    model.config.max_position_embeddings = MAX_POSITIONS
    encoded = encode_rows(rows, tokenizer)
    lengths = [len(s) for s, _ in encoded]
    log(f"  {len(encoded)} rows, tokens mean {np.mean(lengths):.0f} max {max(lengths)}")
    batches = make_batches(encoded, args.batch_size, tokenizer.pad_token_id, seed=0)
    cfg = LoopConfig(
        steps=args.steps,
        lr=args.lr,
        weight_decay=0.01,
        warmup_steps=min(50, args.steps // 10),
        schedule="cosine",
        log_every=25,
        seed=0,
        cpu=True,
    )
    t0 = time.monotonic()

    def on_log(rec: dict[str, Any]) -> None:
        log(f"  step {rec['step']}/{args.steps} loss {rec['loss']:.4f} ({rec['seconds']:.0f} s)")
        if rec["step"] % 100 == 0:  # a usable snapshot while the run goes on
            model.save_pretrained(out / "latest", safe_serialization=True)
            tokenizer.save_pretrained(out / "latest")

    torch.manual_seed(0)
    history = fit(model, batches, chain_loss, cfg, log_path=out / "train_log.jsonl", on_log=on_log)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    record = {
        "settings": settings,
        "minutes": round((time.monotonic() - t0) / 60, 1),
        "final_loss": history[-1]["loss"],
        "tokens_per_row": float(np.mean(lengths)),
        "epochs": args.steps * args.batch_size / len(rows),
    }
    done.write_text(json.dumps(record, indent=2) + "\n")
    return out


# -------------------------------------------------------------------------------- d. eval


def score_distinct(model_dir: Path, probs: list[Any], pool: list[list[Any]], args: Any) -> list:
    """Greedy verifier scores for every candidate (each distinct text verified once),
    cached in ``WORK/eval_scores.jsonl`` so an interrupted evaluation resumes."""
    import importlib

    from rewardlab.types import Score

    cache_file = model_dir / "eval_scores.jsonl"
    cache: dict[str, dict[str, Any]] = {}
    if cache_file.is_file():
        for line in cache_file.read_text().splitlines():
            rec = json.loads(line)
            cache[rec["key"]] = rec
    _, _, module, loader = FORMATS[args.format]
    verifier = getattr(importlib.import_module(module), loader)(model_dir, device="cpu")
    todo = [(p, c) for p, row in zip(probs, pool, strict=True) for c in row]
    todo = list({(p.id, c.text): (p, c) for p, c in todo}.values())
    todo = [(p, c) for p, c in todo if f"{p.id}\x00{c.text}" not in cache]
    t0, chunk = time.monotonic(), 64
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        scores = verifier.score([p for p, _ in part], [c for _, c in part])
        with cache_file.open("a") as fh:
            for (p, c), s, tok in zip(part, scores, verifier.last_tokens, strict=True):
                rec = {
                    "key": f"{p.id}\x00{c.text}",
                    "value": s.value,
                    "steps": list(s.steps),
                    "reason": s.info.get("reason", ""),
                    "prompt_tokens": tok[0],
                    "generated_tokens": tok[1],
                }
                cache[rec["key"]] = rec
                fh.write(json.dumps(rec) + "\n")
        log(f"  verified {start + len(part)}/{len(todo)} ({time.monotonic() - t0:.0f} s)")
    out = []
    for p, row in zip(probs, pool, strict=True):
        recs = [cache[f"{p.id}\x00{c.text}"] for c in row]
        out.append(
            [
                Score(r["value"], tuple(r["steps"]), {"reason": r["reason"]})
                if r["value"] is not None
                else Score.ungraded(r["reason"])
                for r in recs
            ]
        )
    return out


def evaluate(model_dir: Path, probs: list[Any], pool: list[list[Any]], args: Any) -> dict:
    """Held-out metrics of the greedy verifier (see the module docstring, stage d)."""
    from rewardlab.evaluate.estimators import bon_at_k, majority_at_k, weighted_majority_at_k
    from rewardlab.evaluate.process import auroc, evaluate_process
    from rewardlab.rewards.genrm_arith import chain_truth

    t0 = time.monotonic()
    scores = score_distinct(model_dir, probs, pool, args)
    seconds = time.monotonic() - t0
    recs = [json.loads(x) for x in (model_dir / "eval_scores.jsonl").read_text().splitlines() if x]
    correct = np.array([[bool(c.meta["correct"]) for c in row] for row in pool])
    verdict = np.array([[np.nan if s.value is None else s.value for s in r] for r in scores])
    first_err, step_scores, chain_v, step_acc = [], [], [], []
    exact_fe = 0
    for p, row, srow in zip(probs, pool, scores, strict=True):
        for c, s in zip(row, srow, strict=True):
            truth = chain_truth(p, c.text)
            chain_v.append((truth.verdict, np.nan if s.value is None else s.value))
            if s.value is None or not truth.steps:
                continue
            first_err.append(truth.first_error)
            step_scores.append(list(s.steps))
            step_acc += [float(a == (b >= 0.5)) for a, b in zip(truth.steps, s.steps, strict=True)]
            pred_fe = next((i for i, v in enumerate(s.steps) if v < 0.5), -1)
            exact_fe += int(pred_fe == truth.first_error)
    rep = evaluate_process(first_err, step_scores, dev_fraction=0.3, seed=0)
    graded = ~np.isnan(verdict.reshape(-1))
    y, v = correct.reshape(-1), verdict.reshape(-1)
    answers = [[c.answer for c in row] for row in pool]
    vocab = {a: i for i, a in enumerate(sorted({a for r in answers for a in r if a is not None}))}
    ids = np.array([[-1 if a is None else vocab[a] for a in r] for r in answers])
    n = correct.shape[1]
    cv = np.array(chain_v)
    res = {
        "candidates": int(correct.size),
        "distinct_verified": len(recs),
        "problems": len(probs),
        "n": n,
        "ungraded": int((~graded).sum()),
        "processbench_f1@0.5": rep.test_at_fixed.f1,
        "processbench_f1@tuned": rep.test.f1,
        "processbench_f1_all_items@0.5": evaluate_process(
            first_err, step_scores, dev_fraction=0.0
        ).test.f1,
        "first_error_exact": exact_fe / max(1, len(first_err)),
        "step_accuracy": float(np.mean(step_acc)),
        "verdict_accuracy_vs_outcome": float(((v[graded] >= 0.5) == y[graded]).mean()),
        "verdict_auroc_vs_outcome": auroc(y[graded].astype(float), v[graded]),
        "verdict_accuracy_vs_process_truth": float(
            ((cv[graded, 1] >= 0.5) == (cv[graded, 0] >= 0.5)).mean()
        ),
        "verdict_precision": float(y[graded][v[graded] >= 0.5].mean()),
        "verdict_recall": float((v[graded][y[graded]] >= 0.5).mean()),
        "pass@1": float(correct.mean()),
        "pass@n": float(correct.any(axis=1).mean()),
        "majority@n": float(majority_at_k(ids, correct, [n]).mean()),
        "bon@n[genrm]": float(bon_at_k(verdict, correct, [n]).mean()),
        "wmaj@n[genrm]": float(weighted_majority_at_k(ids, verdict, correct, [n]).mean()),
        "verify_seconds": round(seconds, 1),
        "verify_prompt_tokens_mean": float(np.mean([r["prompt_tokens"] for r in recs])),
        "verify_generated_tokens_mean": float(np.mean([r["generated_tokens"] for r in recs])),
        "solution_generated_tokens_mean": float(
            np.mean([c.generated_tokens for row in pool for c in row])
        ),
    }
    for k in (1, 2, 4):
        res[f"bon@{k}[genrm]"] = float(bon_at_k(verdict, correct, [k]).mean())
        res[f"majority@{k}"] = float(majority_at_k(ids, correct, [k]).mean())
    return res


# ----------------------------------------------------------------------------- e. install


def install(model_dir: Path, evaluation: dict, stats: dict, args: Any) -> Path:
    """Copy the verifier into its asset directory (``assets/genrm_arith`` or, for ``code``,
    ``assets/genprm_arith``) with its manifest, log and report."""
    import importlib

    asset_dir, name, module, loader = FORMATS[args.format]
    asset = ASSETS / asset_dir
    if asset.exists():
        shutil.rmtree(asset)
    asset.mkdir(parents=True)
    for f in SHIP_FILES:
        if (model_dir / f).is_file():
            shutil.copy2(model_dir / f, asset / f)
    phases = lineage(model_dir)
    with (asset / "train_log.jsonl").open("w") as fh:
        for k, (d, t) in enumerate(phases, start=1):
            fh.write(json.dumps({"phase": k, "model": d.name, **t}) + "\n")
            log_file = d / "train_log.jsonl"
            fh.write(log_file.read_text() if log_file.is_file() else "")
    training = json.loads((model_dir / "training.json").read_text())
    training["phases"] = [{"model": d.name, **t} for d, t in phases]
    manifest = {
        "loader": f"{module}:{loader}",
        "name": name,
        "format": importlib.import_module(module).FORMAT_NAME,
        "backbone": "../tiny_policy",
        "training": {**training, "data": stats, "script": "scripts/train_genrm.py"},
    }
    (asset / "rewardlab.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (asset / "report.md").write_text(report_md(evaluation, stats, training, args))
    size = sum(f.stat().st_size for f in asset.iterdir())
    log(f"installed {asset} ({size / 1e6:.1f} MB)")
    return asset


def table(e: dict) -> str:
    """The held-out metrics as a markdown table."""
    n = e["n"]
    rows = [
        ("ProcessBench F1 (first error; threshold 0.5)", f"{e['processbench_f1@0.5']:.3f}"),
        ("ProcessBench F1 (threshold tuned on a dev split)", f"{e['processbench_f1@tuned']:.3f}"),
        ("ProcessBench F1, all items at 0.5", f"{e['processbench_f1_all_items@0.5']:.3f}"),
        ("first error exactly right", f"{e['first_error_exact']:.3f}"),
        ("step judgments right", f"{e['step_accuracy']:.3f}"),
        ("verdict accuracy vs the outcome", f"{e['verdict_accuracy_vs_outcome']:.3f}"),
        ("verdict AUROC vs the outcome", f"{e['verdict_auroc_vs_outcome']:.3f}"),
        ("verdict precision / recall", f"{e['verdict_precision']:.3f} / {e['verdict_recall']:.3f}"),
        ("chains without a readable verdict", f"{e['ungraded']} of {e['candidates']}"),
        (f"best-of-{n} by the verdict", f"{e['bon@n[genrm]']:.3f}"),
        (f"weighted majority of {n} by the verdict", f"{e['wmaj@n[genrm]']:.3f}"),
        (f"majority of {n}", f"{e['majority@n']:.3f}"),
        (f"pass@1 / pass@{n}", f"{e['pass@1']:.3f} / {e['pass@n']:.3f}"),
        (
            "verification tokens per candidate (prompt + chain)",
            f"{e['verify_prompt_tokens_mean']:.0f} + {e['verify_generated_tokens_mean']:.0f}",
        ),
        ("solution tokens per candidate", f"{e['solution_generated_tokens_mean']:.0f}"),
    ]
    return "| metric | value |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)


def lineage(model_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The training phases that made ``model_dir``, first first: each phase's directory and
    ``training.json``, following ``settings.init`` back to the tiny policy."""
    out: list[tuple[Path, dict[str, Any]]] = []
    d: Path | None = model_dir
    while d is not None and (d / "training.json").is_file():
        t = json.loads((d / "training.json").read_text())
        out.append((d, t))
        init = t["settings"].get("init", "tiny_policy")
        d = None if init == "tiny_policy" else Path(init)
    return out[::-1]


def phases_md(training: dict) -> str:
    rows = [
        "| phase | from | steps | lr | batch | minutes | final loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, p in enumerate(training.get("phases", []), start=1):
        st = p["settings"]
        steps = f"{st['steps']}" + (
            f" of a {st['schedule_steps']}-step schedule" if "schedule_steps" in st else ""
        )
        rows.append(
            f"| {k} ({p['model']}) | {st.get('init', 'tiny_policy')} | {steps} | {st['lr']} | "
            f"{st['batch_size']} | {p['minutes']} | {p['final_loss']:.3f} |"
        )
    return "\n".join(rows)


DATA_CHECK = """Chains written from the exact step truth for every
distinct candidate, right and wrong, plus synthetic negatives from the right ones:"""

DATA_CODE = """One row per distinct step probe (the line before
the step, the question's sentence for it) of every distinct candidate, right and wrong, plus
synthetic wrong-value and wrong-operation copies and the gold solution of every training
problem and of `--synthetic` more problems (seed 3000, also disjoint from the default run and
the held-out set); the target line is written by rule from the question and the candidate's
text (`genprm_arith.code_for_steps`), never from the truth. Rows by kind of candidate:"""

HEAD_CHECK = """# The shipped testbed generative verifier (GenRM-FT)

The shipped tiny policy (3.54M-parameter Llama), fine-tuned to write a verification chain for
an `arith` candidate: one check line per step (the question's operation for that step, the
step re-derived by addition or one-digit multiplication, a mark), stopping at the first wrong
step, then a verdict `V:Y`/`V:N` (format: `rewardlab/rewards/genrm_arith.py`). Loaded by
`load_reward("genrm")` (greedy, V = 1) or `load_reward("genrm:V=4,temperature=1.0")`.
"""

HEAD_CODE = """# The shipped testbed code-checked generative PRM (GenPRM)

The shipped tiny policy (3.54M-parameter Llama), fine-tuned to turn each step of an `arith`
candidate into one line of Python (the value the previous step states, the question's
operation for this step), which the sandbox executes; a step is right when its line
reproduces the number the step states (format: `rewardlab/rewards/genprm_arith.py`). The
model only transcribes; Python does the arithmetic. Loaded by `load_reward("genprm")`
(greedy, V = 1) or `load_reward("genprm:V=4,temperature=1.0")`.
"""


def report_md(evaluation: dict, stats: dict, training: dict, args: Any) -> str:
    e = evaluation
    head = HEAD_CODE if args.format == "code" else HEAD_CHECK
    return f"""{head}
Made with `OMP_NUM_THREADS={args.threads} .venv/bin/python scripts/train_genrm.py --format
{args.format} --problems {args.problems} --n {args.n}` (pools and training rows, seed 0) and
the training phases below{
        " (one phase: `--steps "
        + str(args.steps)
        + " --batch-size "
        + str(args.batch_size)
        + " --lr "
        + str(args.lr)
        + "`)"
        if args.format == "code"
        else ""
    }.

## Training data

Tiny policy samples (T = 1.0) on {args.problems} problems x {args.n} from seed {TRAIN_SEED}
(none is a problem of the default scale run, seed 0, nor of the held-out set, seed
{HELDOUT_SEED}: checked by id and question). {DATA_CODE if args.format == "code" else DATA_CHECK}

```json
{json.dumps(stats, indent=2)}
```

## Training

Fine-tuning phases (each continues from the previous weights with `--init`; AdamW, warm-up
min(50, steps/10), cosine, loss on the chain tokens only, `rewardlab.train.loop.fit`,
{args.threads} CPU thread(s), on a 2-core machine shared with other jobs). `train_log.jsonl`
holds every phase's log, each after a `{{"phase": k}}` record.

{phases_md(training)}

## Held-out evaluation (greedy chains, V = 1)

{e["problems"]} problems x {e["n"]} from seed {HELDOUT_SEED} (the shipped RMs' held-out pool
recipe), {e["distinct_verified"]} distinct candidates verified.

{table(e)}

Shipped classifier PRM on the same recipe of held-out pool: ProcessBench F1 0.424, implicit
PRM 0.557 (docs/reward_models.md).

```json
{json.dumps(e, indent=2)}
```
"""


# ----------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "genrm")
    ap.add_argument("--problems", type=int, default=1600)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument(
        "--synthetic",
        type=int,
        default=4000,
        help="--format code: problems from seed 3000 added as gold + one corrupted solution",
    )
    ap.add_argument("--heldout", type=int, default=160)
    ap.add_argument("--heldout-n", type=int, default=8)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--format",
        default="check",
        choices=tuple(FORMATS),
        help="check: GenRM chains that re-derive each step (genrm); code: a Python line per "
        "step executed in the sandbox (genprm)",
    )
    ap.add_argument("--init", default=None, help="continue from this model (default: tiny policy)")
    ap.add_argument("--model-name", default="model", help="WORK subdirectory of the model")
    ap.add_argument(
        "--eval-model", type=Path, default=None, help="evaluate this model directory instead"
    )
    ap.add_argument("--eval-problems", type=int, default=None, help="first k held-out problems")
    ap.add_argument(
        "--stage", default="all", choices=("all", "sample", "chains", "train", "eval", "install")
    )
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    stages = ("sample", "chains", "train", "eval", "install")
    last = stages.index(args.stage) if args.stage != "all" else len(stages) - 1

    train_p = problems_for(TRAIN_SEED, args.problems)
    held_p = problems_for(HELDOUT_SEED, args.heldout)
    log(f"a. pools; disjoint problem sets: {check_disjoint(train_p, held_p)}")
    held_pool = sample(work, held_p, args.heldout_n, HELDOUT_SEED, args.threads)
    train_pool = sample(work, train_p, args.n, TRAIN_SEED, args.threads)
    if last == 0:
        return {}
    log("b. chains")
    synth = problems_for(SYNTH_SEED, args.synthetic) if args.format == "code" else []
    if synth:
        log(f"  synthetic problems disjoint: {check_disjoint(train_p + synth, held_p)}")
    rows, stats = build_rows(train_p, train_pool, seed=0, fmt=args.format, synthetic=synth)
    tag = "" if args.format == "check" else f"_{args.format}"
    (work / f"chains{tag}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (work / f"chains{tag}_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    log(f"  {json.dumps(stats)}")
    if last == 1:
        return stats
    if args.eval_model is not None:
        model_dir = args.eval_model
    else:
        log("c. train")
        model_dir = train(work, rows, args)
    if last == 2:
        return stats
    log("d. held-out evaluation")
    k = args.eval_problems or len(held_p)
    pick = sorted(set(np.linspace(0, len(held_p) - 1, k).round().astype(int).tolist()))
    evaluation = evaluate(model_dir, [held_p[i] for i in pick], [held_pool[i] for i in pick], args)
    (model_dir / "eval.json").write_text(json.dumps(evaluation, indent=2) + "\n")
    log(json.dumps(evaluation, indent=2))
    if last == 3:
        return evaluation
    install(model_dir, evaluation, stats, args)
    return evaluation


if __name__ == "__main__":
    main()
