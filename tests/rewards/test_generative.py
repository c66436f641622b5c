"""Generative verifiers: P(Yes) from log-probabilities by hand, V-sample means, the ledger and
the per-candidate verification tokens, step scores, the meta-RM filter, any-backend parsing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardlab.compute import Ledger
from rewardlab.policies.hf import HFPolicy
from rewardlab.policies.hf_scoring import continuation_logprobs, next_token_probs
from rewardlab.policies.registry import load_policy
from rewardlab.rewards.base import check_reward
from rewardlab.rewards.generative import (
    GenerativeVerifier,
    Judgment,
    ProbeFormat,
    VerifierFormat,
    _combine,
)
from rewardlab.rewards.judges import YesNoFormat
from rewardlab.rewards.logprob import MeanLogprobReward
from rewardlab.rewards.recompute import RecomputeFormat, load_recompute, plan
from rewardlab.steps import split_lines
from rewardlab.tasks import arith
from rewardlab.types import Candidate, Completion, Problem, Sampling


def cand(problem: Problem, text: str, index: int = 0) -> Candidate:
    return Candidate(problem.id, text, split_lines(text), arith.extract_answer(text), index=index)


@pytest.fixture(scope="module")
def problems() -> list[Problem]:
    return arith.generate(n=3, seed=5, n_ops=(2, 3))


@pytest.fixture(scope="module")
def pool(problems: list[Problem]) -> tuple[list[Problem], list[Candidate]]:
    """Gold solutions and corrupted ones (a wrong result in the first step)."""
    ps, cs = [], []
    for p in problems:
        gold = arith.gold_steps(p)
        lhs, rhs = gold[0].rsplit("=", 1)
        bad = [f"{lhs}= {int(rhs) + 3}", *gold[1:]]
        for k, lines in enumerate((gold, bad)):
            ps.append(p)
            cs.append(cand(p, "\n".join(lines), k))
    return ps, cs


@pytest.fixture(scope="module")
def tiny_hf(tiny_llama_dir: Path) -> HFPolicy:
    return HFPolicy.from_dir(tiny_llama_dir, device="cpu")


# -- the scoring call ----------------------------------------------------------------------


def _hand_next_probs(policy: HFPolicy, prefix: str, option: str) -> float:
    ids = policy._encode(prefix)
    full = policy._encode(prefix + option)
    assert full[: len(ids)] == ids
    with torch.no_grad():
        logits = policy.model(torch.tensor([ids])).logits[0, -1]
    return float(torch.softmax(logits.double(), -1)[full[len(ids)]])


def test_next_token_probs_equal_a_hand_softmax(tiny_hf: HFPolicy) -> None:
    prefixes = ["Question: 2 + 3?\nAnswer:\n", "Is 4 + 4 = 8 right? A much longer prefix here:"]
    got = next_token_probs(tiny_hf, prefixes, (" Yes", " No"), batch_size=2)
    for i, prefix in enumerate(prefixes):  # batched with padding == one at a time, by hand
        for j, option in enumerate((" Yes", " No")):
            assert got.probs[i, j] == pytest.approx(_hand_next_probs(tiny_hf, prefix, option))
        assert got.scored_tokens[i] == len(tiny_hf._encode(prefix))


def test_continuation_logprobs_equal_a_hand_log_softmax(tiny_hf: HFPolicy) -> None:
    prefix, cont = "Question: 7 - 2?\nAnswer:\n", "7 - 2 = 5\n"
    (got,) = continuation_logprobs(tiny_hf, [prefix], [cont])
    head, full = tiny_hf._encode(prefix), tiny_hf._encode(prefix + cont)
    with torch.no_grad():
        logp = torch.log_softmax(tiny_hf.model(torch.tensor([full])).logits[0].double(), -1)
    hand = [float(logp[t - 1, full[t]]) for t in range(len(head), len(full))]
    assert got == pytest.approx(hand, abs=1e-5)


def test_p_yes_verdict_is_the_yes_probability_after_the_cue(
    tiny_hf: HFPolicy, pool: tuple[list[Problem], list[Candidate]]
) -> None:
    ps, cs = pool
    fmt = YesNoFormat()
    sampling = Sampling(temperature=0.0, max_new_tokens=12)
    for mode in ("p_yes", "p_yes_norm"):
        verifier = GenerativeVerifier(tiny_hf, fmt, sampling=sampling, verdict=mode)  # type: ignore[arg-type]
        scores = verifier.score(ps[:2], cs[:2])
        for p, c, s in zip(ps[:2], cs[:2], scores, strict=True):
            prompt = fmt.prompt(p, c)
            chain = tiny_hf.sample([prompt], 1, sampling)[0][0].text
            prefix = prompt + chain.rstrip() + fmt.verdict_cue
            yes = _hand_next_probs(tiny_hf, prefix, " Yes")
            no = _hand_next_probs(tiny_hf, prefix, " No")
            want = yes if mode == "p_yes" else yes / (yes + no)
            assert s.value == pytest.approx(want, rel=1e-6)
            assert s.info["verify_scored_tokens"] == len(tiny_hf._encode(prefix))


# -- the verifier --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> HFPolicy:
    policy = load_policy("tiny", device="cpu")
    assert isinstance(policy, HFPolicy)
    return policy


def test_recompute_judges_steps_and_passes_conformance(
    tiny: HFPolicy, pool: tuple[list[Problem], list[Candidate]]
) -> None:
    ps, cs = pool
    verifier = GenerativeVerifier(tiny, RecomputeFormat(tiny.format_prompt), name="recompute")
    check_reward(verifier, ps, cs)
    scores = verifier.score_steps(ps, cs)
    for c, s in zip(cs, scores, strict=True):
        assert len(s.steps) == len(c.steps)
    # the corrupted first step is a wrong result: the tiny policy recomputes it
    bad = [s for c, s in zip(cs, scores, strict=True) if c.index == 1]
    assert all(s.steps[0] == 0.0 and s.value == 0.0 for s in bad), [s.steps for s in bad]


def test_v_sample_means_are_deterministic_for_a_seed(
    tiny: HFPolicy, pool: tuple[list[Problem], list[Candidate]]
) -> None:
    ps, cs = pool

    def verifier(seed: int) -> GenerativeVerifier:
        fmt = RecomputeFormat(tiny.format_prompt)
        sampling = Sampling(temperature=1.5, max_new_tokens=6, seed=seed)
        return GenerativeVerifier(tiny, fmt, n_verifications=4, sampling=sampling)

    first = verifier(3).score(ps, cs)
    assert verifier(3).score(ps, cs) == first
    for s in first:
        assert s.value is not None and s.value * 4 == pytest.approx(round(s.value * 4))
        assert len(s.info["verdicts"]) == 4 and s.info["V"] == 4
        assert s.value == pytest.approx(np.mean([v for v in s.info["verdicts"] if v is not None]))


def test_every_verification_token_is_in_the_ledger_and_the_score(
    tiny_llama_dir: Path, pool: tuple[list[Problem], list[Candidate]]
) -> None:
    ps, cs = pool
    policy_ledger, verifier_ledger = Ledger(), Ledger()
    policy = HFPolicy.from_dir(tiny_llama_dir, device="cpu", ledger=policy_ledger, name="pol")
    sampling = Sampling(temperature=1.0, max_new_tokens=10, seed=1)
    verifier = GenerativeVerifier(
        policy, YesNoFormat(), n_verifications=2, sampling=sampling, ledger=verifier_ledger
    )
    scores = verifier.score(ps, cs)
    cost = verifier_ledger.totals(verifier.name)
    assert cost.prompt_tokens == sum(s.info["verify_prompt_tokens"] for s in scores)
    assert cost.generated_tokens == sum(s.info["verify_generated_tokens"] for s in scores)
    assert cost.flops == pytest.approx(2 * policy.params * cost.tokens)
    # the policy's own ledger saw exactly the same tokens (nothing uncounted, nothing extra)
    own = policy_ledger.totals("pol")
    assert (own.prompt_tokens, own.generated_tokens) == (cost.prompt_tokens, cost.generated_tokens)
    prompts = [YesNoFormat().prompt(p, c) for p, c in zip(ps, cs, strict=True)]
    assert cost.prompt_tokens == 2 * sum(len(policy._encode(q)) for q in prompts)
    assert verifier.last_tokens == [
        (s.info["verify_prompt_tokens"], s.info["verify_generated_tokens"]) for s in scores
    ]


def test_score_steps_exists_only_when_the_format_judges_steps(tiny: HFPolicy) -> None:
    outcome = GenerativeVerifier(tiny, YesNoFormat())
    steps = GenerativeVerifier(tiny, RecomputeFormat(tiny.format_prompt))
    assert not hasattr(outcome, "score_steps")
    assert callable(steps.score_steps)
    assert isinstance(YesNoFormat(), VerifierFormat)
    assert isinstance(RecomputeFormat(), ProbeFormat)


def test_the_fingerprint_separates_settings(tiny: HFPolicy) -> None:
    fmt = RecomputeFormat(tiny.format_prompt)
    a = GenerativeVerifier(tiny, fmt, n_verifications=1)
    b = GenerativeVerifier(tiny, fmt, n_verifications=2)
    c = GenerativeVerifier(tiny, fmt, n_verifications=1)
    assert a.fingerprint == c.fingerprint != b.fingerprint


def test_meta_rm_keeps_the_top_judgments(
    tiny_hf: HFPolicy, pool: tuple[list[Problem], list[Candidate]]
) -> None:
    ps, cs = pool
    sampling = Sampling(temperature=1.0, max_new_tokens=8, seed=2)

    class EveryChainReads:  # a format that reads every chain: verdict = its index parity
        name, stop, judges_steps = "every", (), False

        def prompt(self, problem: Problem, candidate: Candidate) -> str:
            return YesNoFormat().prompt(problem, candidate)

        def parse(self, chain: str, candidate: Candidate) -> Judgment:
            return Judgment(float(len(chain) % 2))

    fmt = EveryChainReads()
    plain = GenerativeVerifier(tiny_hf, fmt, n_verifications=4, sampling=sampling)
    meta = GenerativeVerifier(
        tiny_hf,
        fmt,
        n_verifications=4,
        sampling=sampling,
        meta_reward=MeanLogprobReward(),
        k_meta=2,
    )
    prompts = [fmt.prompt(p, c) for p, c in zip(ps[:2], cs[:2], strict=True)]
    rows = tiny_hf.sample(prompts, 4, sampling)
    for row, s_all, s_meta in zip(
        rows, plain.score(ps[:2], cs[:2]), meta.score(ps[:2], cs[:2]), strict=True
    ):
        means = [float(np.mean(c.logprobs)) for c in row]
        top = sorted(sorted(range(4), key=lambda i: -means[i])[:2])
        assert s_all.info["verdicts"] == [float(len(c.text) % 2) for c in row]
        assert s_meta.info["verdicts"] == [float(len(row[i].text) % 2) for i in top]
    assert plain.fingerprint != meta.fingerprint


class RulePolicy:
    """A policy without a model: it writes the verdict the candidate's arithmetic deserves.

    Shows that parsed verdicts need only ``sample`` / ``extend`` (any backend), and that the
    probability verdicts refuse such a backend clearly.
    """

    name = "rules"
    params = 0

    def format_prompt(self, question: str) -> str:
        return question

    def _answer(self, prompt: str) -> Completion:
        lines = [ln for ln in prompt.splitlines() if "=" in ln and "(Yes/No)" not in ln]
        ok = all(arith.STEP_RE.match(ln) and _valid(ln) for ln in lines)
        return Completion("Verdict: " + ("Yes" if ok else "No"), len(prompt.split()), 2)

    def sample(self, prompts: Sequence[str], n: int, params: Sampling) -> list[list[Completion]]:
        return [[self._answer(p) for _ in range(n)] for p in prompts]

    def extend(
        self, prefixes: Sequence[str], params: Sampling, stop: Sequence[str]
    ) -> list[Completion]:
        return [self._answer(p) for p in prefixes]


def _valid(line: str) -> bool:
    m = arith.STEP_RE.match(line)
    assert m is not None
    return arith.apply_op(int(m.group(1)), m.group(2), int(m.group(3))) == int(m.group(4))


def test_parsed_verdicts_work_with_any_backend(pool: tuple[list[Problem], list[Candidate]]) -> None:
    ps, cs = pool
    ledger = Ledger()
    verifier = GenerativeVerifier(RulePolicy(), YesNoFormat(), n_verifications=2, ledger=ledger)
    check_reward(verifier, ps, cs)
    values = [s.value for s in verifier.score(ps, cs)]
    assert values == [1.0 if c.index == 0 else 0.0 for c in cs]
    # check_reward scores twice, then once more: 3 calls x V=2 chains x 2 tokens
    assert ledger.totals(verifier.name).generated_tokens == 3 * 2 * 2 * len(cs)
    with pytest.raises(TypeError, match="needs an HF policy"):
        GenerativeVerifier(RulePolicy(), YesNoFormat(), verdict="p_yes")


# -- combining judgments and the recompute rules -------------------------------------------


def test_combine_means_readable_chains_and_never_guesses() -> None:
    c = Candidate("p", "a\nb", ("a", "b"), None)
    js = [Judgment(1.0, (1.0, None)), Judgment(None, (), "junk"), Judgment(0.0, (0.0, 0.0))]
    s = _combine(js, c)
    assert s.value == 0.5 and s.steps == (0.5, 0.0) and s.info["n_read"] == 2
    none = _combine([Judgment(None, (), "no verdict here")], c)
    assert none.value is None and "no verdict here" in none.info["reason"]


def test_recompute_rules_on_hand_made_outputs() -> None:
    text = "12 + 5 = 17\n17 * 2 = 35\nso\nThe answer is 35."
    c = Candidate("p", text, tuple(text.split("\n")), "35")
    assert [s.kind for s in plan(c)] == ["equation", "equation", "other", "answer"]
    fmt = RecomputeFormat()
    j = fmt.parse_probes([" 17\n", " 34\n"], c)
    assert j.verdict == 0.0 and j.steps == (1.0, 0.0, None, 1.0)
    assert fmt.parse_probes([" 17", " 35"], c).verdict == 1.0
    unread = fmt.parse_probes([" x", " y"], c)
    assert unread.steps == (None, None, None, 1.0) and "no number" in unread.reason
    prose = Candidate("p", "hello", ("hello",), None)
    assert fmt.probes(Problem("p", "q?", "1"), prose) == []
    assert fmt.parse_probes([], prose).verdict is None


def test_registry_loads_recompute_with_v() -> None:
    from rewardlab.rewards.registry import load_reward

    verifier = load_reward("recompute:V=2")
    assert verifier.name == "recompute-V2" and verifier.n_verifications == 2
    assert isinstance(load_recompute(), GenerativeVerifier)


def test_a_direct_verifier_reads_p_yes_right_after_the_prompt(
    tiny_hf: HFPolicy, pool: tuple[list[Problem], list[Candidate]]
) -> None:
    from rewardlab.rewards.judges import DirectYesNoFormat

    ps, cs = pool
    fmt = DirectYesNoFormat()
    verifier = GenerativeVerifier(
        tiny_hf, fmt, sampling=Sampling(temperature=0.0, max_new_tokens=3), verdict="p_yes"
    )
    for p, c, s in zip(ps[:2], cs[:2], verifier.score(ps[:2], cs[:2]), strict=True):
        assert s.value == pytest.approx(_hand_next_probs(tiny_hf, fmt.prompt(p, c), "Yes"))


def test_a_score_does_not_depend_on_the_batch_and_shared_probes_run_once(
    tiny: HFPolicy, problems: list[Problem]
) -> None:
    p = problems[0]
    gold = arith.gold_steps(p)
    lhs, rhs = gold[-2].rsplit("=", 1)
    twin = [*gold[:-2], f"{lhs}= {int(rhs) + 1}", gold[-1]]  # shares every probe but the last
    a, b = cand(p, "\n".join(gold), 0), cand(p, "\n".join(twin), 1)
    ledger = Ledger()
    sampling = Sampling(temperature=1.5, max_new_tokens=6, seed=9)
    fmt = RecomputeFormat(tiny.format_prompt)
    verifier = GenerativeVerifier(tiny, fmt, n_verifications=2, sampling=sampling, ledger=ledger)
    together = verifier.score([p, p], [a, b])
    spent = ledger.totals(verifier.name)
    assert verifier.score([p], [b])[0] == together[1]
    assert verifier.score([p], [a])[0] == together[0]
    shared = len(fmt.probes(p, a)) - 1
    assert shared >= 1
    per_candidate = sum(s.info["verify_prompt_tokens"] for s in together)
    assert spent.prompt_tokens < per_candidate  # the shared probes were generated once


class ChattyPolicy(RulePolicy):
    """Writes a check that runs out before its verdict; asked to finish, it says Yes."""

    def sample(self, prompts: Sequence[str], n: int, params: Sampling) -> list[list[Completion]]:
        return [[Completion("I checked each step and", 3, 5) for _ in range(n)] for _ in prompts]

    def extend(
        self, prefixes: Sequence[str], params: Sampling, stop: Sequence[str]
    ) -> list[Completion]:
        assert params.max_new_tokens == YesNoFormat().finish_tokens
        return [Completion(" Yes" if p.endswith("Verdict:") else " ?", 7, 1) for p in prefixes]


def test_a_chain_without_a_verdict_is_finished_and_charged(
    pool: tuple[list[Problem], list[Candidate]],
) -> None:
    ps, cs = pool
    ledger = Ledger()
    verifier = GenerativeVerifier(ChattyPolicy(), YesNoFormat(), n_verifications=2, ledger=ledger)
    scores = verifier.score(ps, cs)
    assert all(s.value == 1.0 for s in scores)
    assert all(s.info["verify_generated_tokens"] == 2 * (5 + 1) for s in scores)
    assert all(s.info["verify_prompt_tokens"] == 2 * (3 + 7) for s in scores)
    # equal unfinished chains of one candidate share one finishing call
    assert ledger.totals(verifier.name).generated_tokens == len(cs) * (2 * 5 + 1)
    plain = GenerativeVerifier(ChattyPolicy(), YesNoFormat(finish_cue=""))
    assert all(s.value is None and "no Yes/No" in s.info["reason"] for s in plain.score(ps, cs))
