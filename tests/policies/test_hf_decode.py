"""The ``hf`` backend's own decode loop and prefix reuse: same results as ``generate``, with
and without the cache, bounded memory, honest ledger, prompt limits."""

from __future__ import annotations

import pytest
import torch

from rewardlab.compute import Ledger
from rewardlab.policies.hf import HFPolicy, PromptTooLongError
from rewardlab.policies.hf_decode import StopRule, decode_rows
from rewardlab.policies.hf_sampling import row_generators, row_seeds, truncate_at_stop
from rewardlab.types import Sampling

QUESTIONS = ("What is 12 + 7?", "What is 3 * 4 - 5?", "What is 81 - 9 + 2?")
SETTINGS = (
    Sampling(temperature=1.0, max_new_tokens=24, seed=3),
    Sampling(temperature=1.7, top_p=0.9, max_new_tokens=16, seed=2),
    Sampling(temperature=0.0, max_new_tokens=16),
)


def variant(policy: HFPolicy, **kwargs: object) -> HFPolicy:
    return HFPolicy(policy.model, policy.tokenizer, name=policy.name, **kwargs)  # type: ignore[arg-type]


def prompts(policy: HFPolicy) -> list[str]:
    return [policy.format_prompt(q) for q in QUESTIONS]


def same(a: list, b: list) -> None:  # type: ignore[type-arg]
    """Completions equal in text, counts and finish; logprobs equal up to float noise."""
    assert [(c.text, c.generated_tokens, c.prompt_tokens, c.finish_reason) for c in a] == [
        (c.text, c.generated_tokens, c.prompt_tokens, c.finish_reason) for c in b
    ]
    for x, y in zip(a, b, strict=True):
        assert x.logprobs == pytest.approx(y.logprobs, abs=1e-4)


@pytest.mark.parametrize("params", SETTINGS)
def test_loop_decoder_equals_generate(tiny_policy: HFPolicy, params: Sampling) -> None:
    loop = variant(tiny_policy, decoder="loop", prefix_cache_mb=0)
    gen = variant(tiny_policy, decoder="generate")
    assert loop.decoder == "loop" and gen.decoder == "generate"
    ps = prompts(tiny_policy)
    sampled = [c for row in loop.sample(ps, 4, params) for c in row]
    same(sampled, [c for row in gen.sample(ps, 4, params) for c in row])
    if params.temperature > 0:
        assert {c.finish_reason for c in sampled} == {"stop", "length"}  # both endings seen
    prefixes = [p + line for p in ps for line in ("", "12 + 7 = ")] * 2
    same(loop.extend(prefixes, params, ["\n"]), gen.extend(prefixes, params, ["\n"]))
    two = ["=", "\n"]
    same(loop.extend(prefixes, params, two), gen.extend(prefixes, params, two))


def test_a_stop_the_table_misses_is_still_cut_exactly(tiny_policy: HFPolicy) -> None:
    """With an all-zero token table no row is checked during decoding; the check after the
    loop still cuts every row at the token that completed the stop string."""
    policy = variant(tiny_policy, prefix_cache_mb=0)
    params = Sampling(temperature=1.0, max_new_tokens=20, seed=11)
    texts = [p + "12 + 7 = " for p in prompts(policy)] * 3
    expected = policy.extend(texts, params, ["\n"])
    assert any(c.text.endswith("\n") for c in expected)
    ids = [policy._encode(t) for t in texts]

    def hit(prompt: list[int], gen: list[int]) -> bool:
        return truncate_at_stop(policy._continuation(prompt, gen), ["\n"])[1]

    vocab = policy.model.get_output_embeddings().weight.shape[0]
    table = torch.zeros(vocab, dtype=torch.int8)
    table[policy.tokenizer.eos_token_id] = 1
    gens = row_generators(row_seeds(texts, params.seed), policy.device)
    decoded = decode_rows(policy.model, ids, gens, params, StopRule(table, hit), pad_id=1)
    assert [len(t) for t in decoded.tokens] == [c.generated_tokens for c in expected]
    assert decoded.reasons == [c.finish_reason for c in expected]


def step_chain(policy: HFPolicy, steps: int, width: int) -> list[str]:
    """``steps`` rounds of extend on ``width`` copies of each prompt, each round's prefixes
    being the last round's plus their new line (as beam search does)."""
    params = Sampling(temperature=1.0, max_new_tokens=20, seed=5)
    prefixes = [p for p in prompts(policy) for _ in range(width)]
    for _ in range(steps):
        done = policy.extend(prefixes, params, ["\n"])
        prefixes = [a + c.text for a, c in zip(prefixes, done, strict=True)]
    return prefixes


def test_prefix_cache_gives_identical_results(tiny_policy: HFPolicy) -> None:
    without = variant(tiny_policy, prefix_cache_mb=0, max_batch_size=5)
    cached = variant(tiny_policy, prefix_cache_mb=64, max_batch_size=5)
    assert step_chain(cached, 4, 4) == step_chain(without, 4, 4)
    assert without.prefix_cache.stats.lookups == 0
    assert cached.prefix_cache.stats.served_tokens > 0
    assert cached.reuse.prompt_tokens == without.reuse.prompt_tokens  # logical: unchanged
    # most of each prefix came from the cache: computed < half of what no cache computes
    assert 2 * cached.reuse.computed_prompt_tokens < without.reuse.computed_prompt_tokens


def test_prefix_cache_memory_is_bounded(tiny_policy: HFPolicy) -> None:
    per_token = 2 * 2 * 2 * 16 * 4  # layers x (k, v) x heads x head_dim x float32 bytes
    budget_tokens = 150
    tiny = variant(tiny_policy, prefix_cache_mb=budget_tokens * per_token / 2**20)
    reference = step_chain(variant(tiny_policy, prefix_cache_mb=0), 4, 4)
    assert step_chain(tiny, 4, 4) == reference
    cache = tiny.prefix_cache
    assert 0 < cache.nbytes <= cache.max_bytes
    assert cache.tokens <= budget_tokens
    assert cache.stats.evicted_tokens > 0 and cache.stats.served_tokens > 0


def test_identical_prompts_are_computed_once(tiny_policy: HFPolicy) -> None:
    ledger = Ledger()
    policy = variant(tiny_policy, prefix_cache_mb=0, ledger=ledger)
    p = prompts(policy)[0]
    [row] = policy.sample([p], 6, SETTINGS[0])
    cost = ledger.totals(policy.name)
    length = row[0].prompt_tokens
    assert cost.prompt_tokens == 6 * length  # logical: every row's prompt
    assert policy.reuse.computed_prompt_tokens == length  # computed: once
    assert cost.flops == 2.0 * policy.params * (length + cost.generated_tokens)


def test_ledger_flops_count_what_was_computed(tiny_policy: HFPolicy) -> None:
    ledger = Ledger()
    policy = variant(tiny_policy, ledger=ledger)
    step_chain(policy, 3, 2)
    cost = ledger.totals(policy.name)
    computed = policy.reuse.computed_prompt_tokens
    assert cost.calls == 3
    assert cost.prompt_tokens == policy.reuse.prompt_tokens > computed > 0
    assert cost.flops == 2.0 * policy.params * (computed + cost.generated_tokens)


def test_prompt_too_long_names_row_and_lengths(tiny_policy: HFPolicy) -> None:
    policy = variant(tiny_policy, max_prompt_tokens=20)
    ok, long = prompts(policy)[0], prompts(policy)[1] + " and 1 + 1" * 20
    n = len(policy.tokenizer(long)["input_ids"])
    with pytest.raises(PromptTooLongError, match=rf"prompt 1 has {n} tokens.*at most 20") as err:
        policy.sample([ok, long], 2, SETTINGS[0])
    assert (err.value.row, err.value.tokens, err.value.limit) == (1, n, 20)
    assert isinstance(err.value, ValueError)


def test_default_limit_is_positions_minus_new_tokens(tiny_policy: HFPolicy) -> None:
    positions = tiny_policy.model.config.max_position_embeddings
    assert tiny_policy.prompt_limit(24) == positions - 24
    assert variant(tiny_policy, max_prompt_tokens=10).prompt_limit(24) == 10
    with pytest.raises(ValueError, match="leaves no room"):
        tiny_policy.prompt_limit(positions)
    too_long = "1 + 1 " * positions
    with pytest.raises(PromptTooLongError, match="positions minus max_new_tokens"):
        tiny_policy.extend([too_long], SETTINGS[0], ["\n"])


def test_huge_prompt_is_refused_before_tokenizing(tiny_policy: HFPolicy) -> None:
    policy = variant(tiny_policy)
    huge = "7" * 5_000_000
    calls = []
    original = policy._encode
    policy._encode = lambda text: calls.append(len(text)) or original(text)  # type: ignore[method-assign]
    with pytest.raises(PromptTooLongError, match="at least"):
        policy.sample([huge], 1, SETTINGS[0])
    assert calls == []


def test_truncate_keeps_the_last_tokens(tiny_policy: HFPolicy) -> None:
    limit = 12
    policy = variant(tiny_policy, max_prompt_tokens=limit, truncate=True)
    text = prompts(policy)[2]
    ids = policy.tokenizer(text)["input_ids"]
    assert len(ids) > limit
    [[c]] = policy.sample([text], 1, SETTINGS[2])
    assert c.prompt_tokens == limit
    tail = policy.tokenizer.decode(ids[-limit:])
    [[direct]] = variant(tiny_policy).sample([tail], 1, SETTINGS[2])
    assert c.text == direct.text
    # a text far over the limit is cut by characters first, with the same kind of result
    [[huge]] = policy.sample(["9 " * 200_000 + text], 1, SETTINGS[2])
    assert huge.prompt_tokens == limit and huge.text == c.text


def test_bad_options_are_refused(tiny_policy: HFPolicy) -> None:
    with pytest.raises(ValueError, match="decoder"):
        variant(tiny_policy, decoder="vllm")
    with pytest.raises(ValueError, match="prefix_cache_mb"):
        variant(tiny_policy, prefix_cache_mb=-1)
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        variant(tiny_policy, max_prompt_tokens=0)


def test_empty_prompt_is_a_clear_error(tiny_policy: HFPolicy) -> None:
    if tiny_policy.tokenizer("")["input_ids"]:
        pytest.skip("this tokenizer adds tokens to an empty text")
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        tiny_policy.extend(["Question: 1 + 1?", ""], SETTINGS[0], ["\n"])


def test_sample_reuses_prompts_across_calls(tiny_policy: HFPolicy) -> None:
    cached = variant(tiny_policy, prefix_cache_mb=16)
    ps = prompts(cached)
    first = cached.sample(ps, 2, SETTINGS[0])
    computed = cached.reuse.computed_prompt_tokens
    assert computed == sum(len(cached.tokenizer(p)["input_ids"]) for p in ps)
    again = cached.sample(ps, 2, SETTINGS[0])
    assert [c.text for row in again for c in row] == [c.text for row in first for c in row]
    assert cached.reuse.computed_prompt_tokens - computed == len(ps)  # only each last token
