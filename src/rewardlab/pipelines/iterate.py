"""The ``rewardlab iterate`` job: expert iteration (ReST-EM / SuperHF) with any rewardlab reward.

Each round r = 1..R (ReST-EM, Singh et al. 2024 "Beyond Human Data"; SuperHF, Mukobi et al.
2023, papers.md §29):

1. **Generate**: K samples (temperature T) per training problem from the current policy.
2. **Score and select**: the reward scores every sample; per problem the best of K is kept
   (ties: the earlier sample) if its reward is at least ``min_reward`` (ReST-EM keeps only
   samples with a positive binary reward: ``min_reward=1`` with the exact checker).
3. **Improve**: fine-tune on the kept (prompt, completion) pairs for ``steps`` optimiser steps,
   either from the base policy (ReST-EM: every round restarts from the base, so errors do not
   compound) or continuing from the current policy (SuperHF), optionally with SuperHF's KL
   penalty to the base policy (``kl_coef``; :mod:`rewardlab.train.sft`).
4. **Evaluate**: greedy accuracy on held-out problems, with a 95% bootstrap CI over problems,
   and the solutions' step statistics (:mod:`rewardlab.evaluate.rl_metrics`).

Resumable per round: round r's directory holds ``samples.jsonl``, ``model/`` and ``round.json``
(written last); a finished round is never redone, an unfinished one restarts. Round 0 is the
base policy's evaluation. ``rounds.jsonl`` (one row per round) is rewritten from the rounds'
``round.json`` files at the end of every round.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.evaluate.bootstrap import bootstrap_ci
from rewardlab.steps import segment
from rewardlab.types import Candidate, Problem

Progress = Callable[[str, int, int], None]
"""(what, done, total) — called as work advances."""


@dataclass(frozen=True)
class IterateConfig:
    """Everything a run depends on (saved as ``settings.json``; a resumed run must match)."""

    policy: str
    reward: str = "exact"
    task: str = "arith"
    problems: int = 64
    held_out: int = 100
    n_ops: tuple[int, int] = (2, 5)
    k: int = 8
    rounds: int = 3
    steps: int = 40
    lr: float = 1e-4
    batch_size: int = 8
    min_reward: float | None = None
    from_base: bool = False
    kl_coef: float = 0.0
    temperature: float = 1.0
    max_new_tokens: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("problems", "held_out", "k", "rounds", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.kl_coef < 0:
            raise ValueError(f"kl_coef must be >= 0, got {self.kl_coef}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 (sampling), got {self.temperature}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


def best_of_k(values: np.ndarray, min_reward: float | None) -> np.ndarray:
    """Index of the best sample per problem (rows of ``values``, [P, K]; NaN = ungraded, never
    chosen), or −1 where no sample is graded or the best is below ``min_reward``.

    >>> best_of_k(np.array([[0.1, 0.9, 0.9], [np.nan, np.nan, np.nan], [0.2, 0.1, 0.0]]), 0.5)
    array([ 1, -1, -1])
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2:
        raise ValueError(f"values must be [P, K], got shape {v.shape}")
    filled = np.where(np.isnan(v), -np.inf, v)
    idx = filled.argmax(axis=1)
    best = filled[np.arange(v.shape[0]), idx]
    ok = np.isfinite(best)
    if min_reward is not None:
        ok &= best >= min_reward
    return np.where(ok, idx, -1)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def check_settings(out: Path, cfg: IterateConfig) -> None:
    """Write ``settings.json``, or check that a resumed run was started with the same ones."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "settings.json"
    now = json.loads(json.dumps(asdict(cfg)))
    if path.is_file():
        before = json.loads(path.read_text())
        if before != now:
            diff = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
            raise ValueError(
                f"{out} holds a run with other settings ({', '.join(diff)}); "
                "use another --out or the same settings"
            )
    else:
        _write_json(path, now)


class Evaluator:
    """Greedy held-out accuracy and step statistics of a model."""

    def __init__(self, task: Any, problems: Sequence[Problem], max_new_tokens: int) -> None:
        self.task = task
        self.problems = list(problems)
        self.max_new_tokens = max_new_tokens

    def __call__(self, model: Any, tokenizer: Any) -> dict[str, Any]:
        from rewardlab.policies.hf_batch import generate_texts
        from rewardlab.policies.prompts import plain_prompt

        texts = generate_texts(
            model, tokenizer, [plain_prompt(p.question) for p in self.problems], self.max_new_tokens
        )
        correct = np.array(
            [
                self.task.is_correct(p, self.task.extract_answer(t))
                for p, t in zip(self.problems, texts, strict=True)
            ],
            dtype=float,
        )
        mean, low, high = bootstrap_ci(correct[:, None])
        row: dict[str, Any] = {
            "accuracy": float(mean[0]),
            "accuracy_low": float(low[0]),
            "accuracy_high": float(high[0]),
            "lines": float(np.mean([len(segment(t, "lines")) for t in texts])),
        }
        if getattr(self.task, "name", "") == "arith":
            from rewardlab.evaluate.rl_metrics import solution_stats, summarise

            stats = summarise(
                [solution_stats(p, t) for p, t in zip(self.problems, texts, strict=True)]
            )
            row.update(steps=stats["steps"], empty=stats["empty"])
        return row


def _candidates(
    task: Any, problems: Sequence[Problem], texts: Sequence[str], k: int
) -> list[Candidate]:
    return [
        Candidate(
            problem_id=problems[i // k].id,
            text=t,
            steps=tuple(segment(t, "lines")),
            answer=task.extract_answer(t),
            index=i % k,
        )
        for i, t in enumerate(texts)
    ]


def run_round(
    r: int,
    out: Path,
    cfg: IterateConfig,
    task: Any,
    train: Sequence[Problem],
    reward: Any,
    evaluate: Evaluator,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Round ``r`` >= 1 from the policy saved by round ``r - 1`` (round 0: the base)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewardlab.policies.hf_batch import generate_texts
    from rewardlab.policies.prompts import plain_prompt
    from rewardlab.rewards.base import values
    from rewardlab.train import sft
    from rewardlab.train.loop import LoopConfig, fit

    rdir = out / f"round{r}"
    if rdir.exists():
        shutil.rmtree(rdir)  # an unfinished round restarts from its beginning
    rdir.mkdir(parents=True)
    t0 = time.monotonic()
    current = cfg.policy if r == 1 else str(out / f"round{r - 1}" / "model")
    tok = AutoTokenizer.from_pretrained(current)
    model = AutoModelForCausalLM.from_pretrained(current)
    prompts = [plain_prompt(p.question) for p in train for _ in range(cfg.k)]
    if progress:
        progress(f"round {r}: sampling", 0, len(prompts))
    texts = generate_texts(
        model,
        tok,
        prompts,
        cfg.max_new_tokens,
        temperature=cfg.temperature,
        seed=cfg.seed + 7919 * r,
    )
    cands = _candidates(task, train, texts, cfg.k)
    probs = [p for p in train for _ in range(cfg.k)]
    if progress:
        progress(f"round {r}: scoring", 0, len(cands))
    vals = values(reward.score(probs, cands)).reshape(len(train), cfg.k)
    correct = np.array(
        [task.is_correct(p, c.answer) for p, c in zip(probs, cands, strict=True)], dtype=float
    ).reshape(len(train), cfg.k)
    pick = best_of_k(vals, cfg.min_reward)
    with (rdir / "samples.jsonl").open("w") as fh:
        for i, c in enumerate(cands):
            rec = {
                "problem_id": c.problem_id,
                "index": c.index,
                "text": c.text,
                "reward": None if np.isnan(vals.flat[i]) else float(vals.flat[i]),
                "correct": bool(correct.flat[i]),
                "kept": bool(pick[i // cfg.k] == c.index),
            }
            fh.write(json.dumps(rec) + "\n")
    kept = [
        (train[j], cands[j * cfg.k + int(pick[j])].text) for j in range(len(train)) if pick[j] >= 0
    ]
    row: dict[str, Any] = {
        "round": r,
        "sample_accuracy": float(correct.mean()),
        "sample_reward": float(np.nanmean(vals)) if np.isfinite(vals).any() else None,
        "ungraded": int(np.isnan(vals).sum()),
        "kept": len(kept),
        "kept_accuracy": float(
            np.mean([correct[j, pick[j]] for j in range(len(train)) if pick[j] >= 0])
        )
        if kept
        else None,
        "kept_reward": float(np.mean([vals[j, pick[j]] for j in range(len(train)) if pick[j] >= 0]))
        if kept
        else None,
    }
    if not kept:
        raise RuntimeError(
            f"round {r}: no sample reached min_reward={cfg.min_reward}; nothing to fine-tune on"
        )
    start = cfg.policy if cfg.from_base else current
    student = AutoModelForCausalLM.from_pretrained(start)
    ref: Any = None
    if cfg.kl_coef > 0:
        ref = AutoModelForCausalLM.from_pretrained(cfg.policy)
        ref.eval()
    examples = sft.encode_examples(
        tok, [plain_prompt(p.question) for p, _ in kept], [t for _, t in kept]
    )
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    data = sft.batches(examples, cfg.batch_size, pad, seed=cfg.seed + r)
    loop = LoopConfig(
        steps=cfg.steps,
        lr=cfg.lr,
        warmup_steps=min(5, cfg.steps),
        schedule="constant",
        log_every=max(1, cfg.steps // 4),
        seed=cfg.seed + r,
        cpu=not torch.cuda.is_available(),
    )

    def tick(done: int, total: int) -> None:
        if progress:
            progress(f"round {r}: fine-tuning", done, total)

    history = fit(
        student,
        data,
        lambda m, b: sft.sft_kl_loss(m, ref, b, cfg.kl_coef),
        loop,
        log_path=rdir / "train_log.jsonl",
        progress=tick,
    )
    student.save_pretrained(rdir / "model")
    tok.save_pretrained(rdir / "model")
    if progress:
        progress(f"round {r}: evaluating", 0, len(evaluate.problems))
    row.update(evaluate(student, tok))
    row["final_ce"] = history[-1].get("ce") if history else None
    row["final_kl"] = history[-1].get("kl") if history else None
    row["minutes"] = round((time.monotonic() - t0) / 60, 3)
    _write_json(rdir / "round.json", row)
    return row


def collect_rounds(out: Path) -> list[dict[str, Any]]:
    """The finished rounds' rows, in order (round 0 = the base policy's evaluation)."""
    rows = []
    for path in sorted(out.glob("round*/round.json"), key=lambda p: int(p.parent.name[5:])):
        rows.append(json.loads(path.read_text()))
    return rows


def iterate(
    cfg: IterateConfig, out: str | Path, progress: Progress | None = None
) -> list[dict[str, Any]]:
    """Run (or resume) every round; returns the rows of ``rounds.jsonl``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewardlab.rewards.registry import load_reward
    from rewardlab.tasks.registry import load_task

    out = Path(out)
    if not Path(cfg.policy).is_dir():
        raise FileNotFoundError(f"policy {cfg.policy} is not a model directory")
    check_settings(out, cfg)
    task, problems = load_task(
        cfg.task, cfg.problems + cfg.held_out, seed=cfg.seed, n_ops=cfg.n_ops
    )
    if len(problems) < cfg.problems + cfg.held_out:
        raise ValueError(
            f"task {cfg.task} has {len(problems)} problems; {cfg.problems} + {cfg.held_out} asked"
        )
    train, held = problems[: cfg.problems], problems[cfg.problems : cfg.problems + cfg.held_out]
    evaluate = Evaluator(task, held, cfg.max_new_tokens)
    base = out / "round0"
    if not (base / "round.json").is_file():
        base.mkdir(parents=True, exist_ok=True)
        if progress:
            progress("round 0: evaluating the base policy", 0, len(held))
        row = {
            "round": 0,
            **evaluate(
                AutoModelForCausalLM.from_pretrained(cfg.policy),
                AutoTokenizer.from_pretrained(cfg.policy),
            ),
        }
        _write_json(base / "round.json", row)
    reward = None
    for r in range(1, cfg.rounds + 1):
        if (out / f"round{r}" / "round.json").is_file():
            continue
        if reward is None:
            reward = load_reward(cfg.reward)
        run_round(r, out, cfg, task, train, reward, evaluate, progress)
        rows = collect_rounds(out)
        with (out / "rounds.jsonl.tmp").open("w") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
        (out / "rounds.jsonl.tmp").replace(out / "rounds.jsonl")
    rows = collect_rounds(out)
    with (out / "rounds.jsonl").open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return rows
