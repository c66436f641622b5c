"""The ``vllm`` backend end to end on a GPU machine with vLLM installed (not run in CI).

    pip install -e '.[vllm]' && python scripts/device/vllm_e2e.py --out runs/vllm_e2e

Checks, each recorded in ``<out>/vllm_e2e.json`` (and printed), the script exiting 1 if one fails:

1. **API.** The installed vLLM's ``SamplingParams`` takes every field the backend fills
   (``vllm_backend.SAMPLING_FIELDS``) and ``EngineArgs`` has ``enable_prefix_caching``.
2. **Greedy vs hf.** The shipped tiny policy (``rewardlab/assets/tiny_policy``, a Llama) on
   vLLM (float32) and on the ``hf`` backend: greedy texts of ``--problems`` testbed prompts,
   the share that are identical (float kernels differ, so a late divergence is possible; the
   share is reported, at least ``--min-same`` required).
3. **Scoring.** ``continuation_logprobs`` (vLLM's ``prompt_logprobs``) against the ``hf``
   backend's forward pass on the same texts: the largest absolute difference (< 1e-3).
4. **Stops and prefix caching.** ``extend`` with ``"\\n"`` keeps the stop string; extending the
   same prefixes again is served from the prefix cache (``num_cached_tokens`` > 0).
5. **``rewardlab scale``.** The same testbed job (``--temperature 0 --n-max 1``) with
   ``--policy vllm:model=...`` and with ``--policy tiny``: accuracy of each and the share of
   problems whose graded answers agree.
6. **``vllm-prm``.** The tiny Qwen2.5-Math-PRM look-alike of the tests (its published
   architecture, ``Qwen2ForProcessRewardModel``, which vLLM implements natively) scored through
   vLLM's pooling engine and through the transformers recipe (``qwen-prm``): the largest
   step-score difference. Recorded as skipped, with vLLM's error, if the installed vLLM cannot
   run a model that small (attention kernels restrict head sizes).

``--model DIR`` runs 2 and 5 on another model directory as well (e.g. SmolLM2 or
Qwen2.5-Math-1.5B-Instruct with ``--task ../shared/data/gsm8k/test.jsonl``).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import random
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # tinymodels.py / rewards/lookalikes.py for check 6
sys.path.insert(0, str(ROOT / "tests" / "rewards"))


def check_api() -> dict[str, Any]:
    import vllm

    from rewardlab.policies.vllm_backend import SAMPLING_FIELDS

    sp = vllm.SamplingParams
    names = set(getattr(sp, "__struct_fields__", ())) or set(inspect.signature(sp).parameters)
    engine = {f.name for f in dataclasses.fields(vllm.EngineArgs)}
    missing = [f for f in SAMPLING_FIELDS if f not in names]
    return {
        "vllm": vllm.__version__,
        "missing_sampling_fields": missing,
        "engine_has_prefix_caching": "enable_prefix_caching" in engine,
        "ok": not missing and "enable_prefix_caching" in engine,
    }


def greedy_vs_hf(
    model_dir: Path, questions: list[str], max_new: int, min_same: float
) -> dict[str, Any]:
    import torch

    from rewardlab.policies.hf import HFPolicy
    from rewardlab.policies.hf_scoring import continuation_logprobs
    from rewardlab.policies.vllm_backend import VLLMConfig, VLLMPolicy
    from rewardlab.types import Sampling

    greedy = Sampling(temperature=0.0, max_new_tokens=max_new, seed=0)
    t0 = time.perf_counter()
    fast = VLLMPolicy(VLLMConfig(str(model_dir), dtype="float32", gpu_memory_utilization=0.3))
    start_s = time.perf_counter() - t0
    ref = HFPolicy.from_dir(model_dir, device="cuda" if torch.cuda.is_available() else "cpu")
    prompts = [fast.format_prompt(q) for q in questions]
    assert prompts == [ref.format_prompt(q) for q in questions], "prompt formats differ"
    t0 = time.perf_counter()
    got = [row[0] for row in fast.sample(prompts, 1, greedy)]
    vllm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    want = [row[0] for row in ref.sample(prompts, 1, greedy)]
    hf_s = time.perf_counter() - t0
    same = sum(g.text == w.text for g, w in zip(got, want, strict=True)) / len(prompts)
    out: dict[str, Any] = {
        "model": str(model_dir),
        "prompts": len(prompts),
        "identical_greedy_texts": same,
        "engine_start_s": round(start_s, 2),
        "vllm_sample_s": round(vllm_s, 3),
        "hf_sample_s": round(hf_s, 3),
        "vllm_tokens": sum(c.generated_tokens for c in got),
        "hf_tokens": sum(c.generated_tokens for c in want),
        "first_difference": next(
            (
                {"vllm": g.text, "hf": w.text}
                for g, w in zip(got, want, strict=True)
                if g.text != w.text
            ),
            None,
        ),
    }
    # scoring: the greedy continuations, read back through prompt_logprobs vs the hf forward
    conts = [w.text for w in want if w.text]
    heads = [p for p, w in zip(prompts, want, strict=True) if w.text]
    a = fast.continuation_logprobs(heads, conts)
    b = continuation_logprobs(ref, heads, conts)
    diffs = [abs(x - y) for u, v in zip(a, b, strict=True) for x, y in zip(u, v, strict=True)]
    lengths_ok = all(len(u) == len(v) for u, v in zip(a, b, strict=True))
    out["logprob_max_abs_diff"] = max(diffs) if diffs else None
    # stops and the prefix cache
    ext = fast.extend(prompts, greedy, ["\n"])
    # each continuation holds at most one newline, at its end, and some stopped there
    kept = all(c.text.count("\n") <= 1 for c in ext)
    kept = kept and all(not c.text.count("\n") or c.text.endswith("\n") for c in ext)
    kept = kept and any(c.text.endswith("\n") for c in ext)
    before = fast.cached_prompt_tokens
    fast.extend(prompts, greedy, ["\n"])
    out["stop_kept"] = kept
    out["prefix_cache_hits_on_repeat"] = fast.cached_prompt_tokens - before
    out["ok"] = (
        same >= min_same
        and lengths_ok
        and (out["logprob_max_abs_diff"] or 0.0) < 1e-3
        and kept
        and out["prefix_cache_hits_on_repeat"] > 0
    )
    del fast
    return out


def scale_pair(
    policy_dir: Path, hf_spec: str, task: str, problems: int, out: Path
) -> dict[str, Any]:
    """One ``rewardlab scale`` job per backend, greedy, and the agreement of their grades."""
    rows: dict[str, dict[str, bool]] = {}
    acc: dict[str, float] = {}
    cli = str(Path(sys.executable).with_name("rewardlab"))
    fast = f"vllm:model={policy_dir},dtype=float32,gpu_memory_utilization=0.3"
    for label, spec in (("vllm", fast), ("hf", hf_spec)):
        name = f"scale_{label}_{policy_dir.name}"
        cmd = [
            cli, "scale", "--name", name, "--runs-dir", str(out), "--task", task,
            "--problems", str(problems), "--n-max", "1", "--temperature", "0",
            "--max-new-tokens", "256", "--strategies", "pass", "--rewards", "logprob",
            "--policy", spec,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env)
        acc[f"{label}_wall_s"] = round(time.perf_counter() - t0, 1)
        pool = [json.loads(x) for x in (out / name / "pool.jsonl").read_text().splitlines() if x]
        rows[label] = {r["problem_id"]: bool(r["correct"]) for r in pool}
        acc[label] = sum(rows[label].values()) / len(rows[label])
    agree = sum(rows["vllm"][p] == rows["hf"][p] for p in rows["hf"]) / len(rows["hf"])
    return {"task": task, "problems": problems, "accuracy": acc, "grade_agreement": agree,
            "ok": agree >= 0.9}  # fmt: skip


def prm_check(work: Path) -> dict[str, Any]:
    import lookalikes
    import numpy as np

    from rewardlab.rewards.registry import load_reward
    from rewardlab.types import Candidate, Problem

    path, _, _ = lookalikes.qwen_prm(work / "qwen_prm")
    steps = [("Tom has 3 apples.", "3 + 4 = 7.", "The answer is 7."), ("3 + 4 = 8.",)]
    problems = [Problem("p", "Tom has 3 apples and buys 4. How many?", "7") for _ in steps]
    cands = [Candidate("p", "\n".join(s), s, None, index=i) for i, s in enumerate(steps)]
    want = load_reward(f"qwen-prm:path={path}", device="cpu").score_steps(problems, cands)
    try:
        reward = load_reward(f"vllm-prm:path={path},dtype=float32,gpu_memory_utilization=0.2")
        got = reward.score_steps(problems, cands)
    except Exception as err:  # recorded: a vLLM that cannot run a 2-head, 16-wide model
        return {"skipped": f"{type(err).__name__}: {err}"[:2000], "ok": True}
    diffs = [abs(a - b) for g, w in zip(got, want, strict=True)
             for a, b in zip(g.steps, w.steps, strict=True)]  # fmt: skip
    same_len = all(len(g.steps) == len(w.steps) for g, w in zip(got, want, strict=True))
    return {
        "encode_kwargs": reward.encode_kwargs,
        "step_max_abs_diff": float(np.max(diffs)) if diffs else None,
        "ok": same_len and bool(diffs) and max(diffs) < 1e-3,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--out", default=str(ROOT / "runs" / "vllm_e2e"))
    ap.add_argument("--problems", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--min-same", type=float, default=0.75)
    ap.add_argument("--model", help="another model directory to compare as well")
    ap.add_argument("--task", default="arith", help="the task of the --model scale job")
    args = ap.parse_args()
    try:
        import vllm  # noqa: F401
    except ImportError:
        print("vLLM is not installed: pip install -e '.[vllm]' on a GPU machine", file=sys.stderr)
        return 2
    from rewardlab.policies.registry import tiny_policy_dir
    from rewardlab.tasks.arith import make_problem

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    questions = [make_problem(rng, 1 + i % 4).question for i in range(args.problems)]
    checks: dict[str, Any] = {}
    steps = [
        ("api", check_api),
        ("greedy_tiny", lambda: greedy_vs_hf(tiny_policy_dir(), questions, args.max_new_tokens,
                                             args.min_same)),
        ("scale_tiny", lambda: scale_pair(tiny_policy_dir(), "tiny", "arith", args.problems, out)),
        ("vllm_prm", lambda: prm_check(out)),
    ]  # fmt: skip
    if args.model:
        model = Path(args.model)
        steps += [
            ("greedy_model", lambda: greedy_vs_hf(model, questions, args.max_new_tokens, 0.0)),
            ("scale_model", lambda: scale_pair(model, str(model), args.task, args.problems, out)),
        ]
    for name, fn in steps:
        t0 = time.perf_counter()
        try:
            checks[name] = fn()
        except Exception as err:
            checks[name] = {"ok": False, "error": f"{type(err).__name__}: {err}",
                            "traceback": traceback.format_exc()[-3000:]}  # fmt: skip
        checks[name]["seconds"] = round(time.perf_counter() - t0, 1)
        print(name, json.dumps(checks[name], default=str)[:1500], flush=True)
    (out / "vllm_e2e.json").write_text(json.dumps(checks, indent=2, default=str) + "\n")
    failed = [k for k, v in checks.items() if not v.get("ok")]
    print("FAILED: " + ", ".join(failed) if failed else "all checks passed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
