"""The ``hf`` policy backend on a tiny Llama: determinism, counts, logprobs, stops, templates."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from rewardlab.compute import Ledger
from rewardlab.policies.base import Policy
from rewardlab.policies.hf import HFPolicy, truncate_at_stop
from rewardlab.policies.prompts import plain_prompt
from rewardlab.types import Sampling

QUESTIONS = ("What is 12 + 7?", "What is 3 * 4 - 5?", "What is 81 - 9 + 2?")
T1 = Sampling(temperature=1.0, max_new_tokens=24, seed=3)
CHAT = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def prompts(policy: HFPolicy) -> list[str]:
    return [policy.format_prompt(q) for q in QUESTIONS]


def texts(rows: list[list]) -> list[list[str]]:
    return [[c.text for c in row] for row in rows]


def with_options(policy: HFPolicy, **kwargs: object) -> HFPolicy:
    """The same model and tokenizer under other constructor options."""
    return HFPolicy(policy.model, policy.tokenizer, name=policy.name, **kwargs)  # type: ignore[arg-type]


def test_is_a_policy(tiny_policy: HFPolicy, tiny_llama_dir: Path) -> None:
    assert isinstance(tiny_policy, Policy)
    assert tiny_policy.name == tiny_llama_dir.name
    assert tiny_policy.params == sum(p.numel() for p in tiny_policy.model.parameters()) > 0


def test_shapes_prompts_times_n(tiny_policy: HFPolicy) -> None:
    rows = tiny_policy.sample(prompts(tiny_policy), 4, T1)
    assert [len(r) for r in rows] == [4, 4, 4]
    assert len(tiny_policy.extend(prompts(tiny_policy)[:2], T1, ["\n"])) == 2
    assert tiny_policy.sample([], 3, T1) == []


def test_same_seed_same_output(tiny_policy: HFPolicy) -> None:
    first = tiny_policy.sample(prompts(tiny_policy), 3, T1)
    again = tiny_policy.sample(prompts(tiny_policy), 3, T1)
    assert first == again  # texts, counts and logprobs
    assert len({c.text for row in first for c in row}) > 3  # and the samples do vary


def test_different_seeds_differ(tiny_policy: HFPolicy) -> None:
    a = tiny_policy.sample(prompts(tiny_policy), 3, T1)
    b = tiny_policy.sample(prompts(tiny_policy), 3, Sampling(temperature=1.0, max_new_tokens=24))
    assert texts(a) != texts(b)


def test_independent_of_batch_size_order_and_n(tiny_policy: HFPolicy) -> None:
    ps = prompts(tiny_policy)
    full = texts(tiny_policy.sample(ps, 4, T1))
    one_row_batches = texts(with_options(tiny_policy, max_batch_size=1).sample(ps, 4, T1))
    assert one_row_batches == full
    assert texts(tiny_policy.sample(ps[::-1], 4, T1)) == full[::-1]
    assert texts(tiny_policy.sample(ps[1:2], 2, T1)) == [full[1][:2]]


def test_duplicate_prompts_get_distinct_streams(tiny_policy: HFPolicy) -> None:
    p = prompts(tiny_policy)[0]
    repeated = [g.completion.text for g in tiny_policy.generate([p] * 6, T1)]
    assert len(set(repeated)) > 1
    assert [c.text for c in tiny_policy.sample([p], 6, T1)[0]] == repeated


def test_greedy_is_temperature_zero_and_seed_free(tiny_policy: HFPolicy) -> None:
    greedy = [Sampling(temperature=0.0, max_new_tokens=24, seed=s) for s in (0, 1)]
    a, b = (tiny_policy.sample(prompts(tiny_policy), 3, g) for g in greedy)
    assert a == b
    assert all(len({c.text for c in row}) == 1 for row in a)
    generated = tiny_policy.generate(prompts(tiny_policy), greedy[0])
    assert all(lp == 0.0 for g in generated for lp in g.sampling_logprobs)


def test_token_counts_match_tokenisation(tiny_policy: HFPolicy) -> None:
    tok = tiny_policy.tokenizer
    params = Sampling(temperature=1.0, max_new_tokens=12, seed=5)
    eos = tok.eos_token_id
    rows = prompts(tiny_policy) * 4
    generated = tiny_policy.generate(rows, params)
    assert {g.completion.finish_reason for g in generated} == {"stop", "length"}
    for text, g in zip(rows, generated, strict=True):
        c = g.completion
        assert c.prompt_tokens == len(tok(text)["input_ids"])
        assert c.generated_tokens == len(g.token_ids) >= 1
        assert tok.decode(list(g.token_ids), skip_special_tokens=True) == c.text
        assert eos not in g.token_ids[:-1]  # nothing counted after eos
        if c.finish_reason == "length":
            assert c.generated_tokens == params.max_new_tokens
        else:
            assert g.token_ids[-1] == eos


def test_logprobs_are_the_models(tiny_policy: HFPolicy) -> None:
    """Raw logprobs match a teacher-forced forward pass; sampling ones include temperature."""
    p = prompts(tiny_policy)[1]
    hot = Sampling(temperature=1.7, top_p=0.9, max_new_tokens=16, seed=2)
    g = tiny_policy.generate([p], hot)[0]
    c = g.completion
    assert c.logprobs is not None and len(c.logprobs) == c.generated_tokens
    assert len(g.sampling_logprobs) == c.generated_tokens
    assert all(lp <= 0 and math.isfinite(lp) for lp in c.logprobs + g.sampling_logprobs)
    prompt_ids = tiny_policy.tokenizer(p)["input_ids"]
    ids = torch.tensor([prompt_ids + list(g.token_ids)])
    with torch.no_grad():
        logits = tiny_policy.model(ids).logits[0, len(prompt_ids) - 1 : -1]
    expected = torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(g.token_ids)[:, None])
    assert torch.allclose(torch.tensor(c.logprobs), expected[:, 0], atol=1e-4)
    assert c.logprobs != g.sampling_logprobs


def test_untempered_sampling_logprobs_equal_model_logprobs(tiny_policy: HFPolicy) -> None:
    g = tiny_policy.generate(prompts(tiny_policy)[:1], T1)[0]
    assert g.completion.logprobs == pytest.approx(g.sampling_logprobs, abs=1e-5)


def test_extend_stops_after_first_newline(tiny_policy: HFPolicy) -> None:
    ps = prompts(tiny_policy)
    prefixes = [p + line for p in ps for line in ("", "12 + 7 = ")] * 3
    params = Sampling(temperature=1.0, max_new_tokens=20, seed=11)
    done = tiny_policy.extend(prefixes, params, ["\n"])
    assert sum(c.text.endswith("\n") for c in done) >= 3  # the stop is really exercised
    for c in done:
        assert "\n" not in c.text[:-1]
        if c.text.endswith("\n"):
            assert c.finish_reason == "stop"
        elif c.finish_reason == "length":
            assert c.generated_tokens == params.max_new_tokens
        assert c.logprobs is not None and len(c.logprobs) == c.generated_tokens


def test_extend_with_several_stops_cuts_at_the_earliest(tiny_policy: HFPolicy) -> None:
    prefixes = prompts(tiny_policy) * 4
    done = tiny_policy.extend(prefixes, Sampling(max_new_tokens=20, seed=4), ["=", "\n"])
    for c in done:
        cut = [i for i in (c.text.find("="), c.text.find("\n")) if i >= 0]
        if cut:
            assert len(c.text) == min(cut) + 1


def test_truncate_at_stop() -> None:
    assert truncate_at_stop("a = 1\nb\n", ["\n"]) == ("a = 1\n", True)
    assert truncate_at_stop("x. y\n\n", ["\n\n", ". "]) == ("x. ", True)
    assert truncate_at_stop("no stop", ["\n"]) == ("no stop", False)
    assert truncate_at_stop("abc", [""]) == ("abc", False)


def test_plain_prompt_without_chat_template(tiny_policy: HFPolicy) -> None:
    assert tiny_policy.chat_template is None
    assert tiny_policy.format_prompt("What is 1 + 1?") == plain_prompt("What is 1 + 1?")


def test_chat_template_from_directory(tiny_llama_dir: Path, tmp_path: Path) -> None:
    chat_dir = tmp_path / "chat"
    shutil.copytree(tiny_llama_dir, chat_dir)
    tok = HFPolicy.from_dir(tiny_llama_dir, device="cpu").tokenizer
    tok.chat_template = CHAT
    tok.save_pretrained(chat_dir)
    policy = HFPolicy.from_dir(chat_dir, device="cpu", name="chat", system_prompt="Be brief.")
    assert policy.chat_template == CHAT
    assert policy.format_prompt("2 + 2?") == "<|system|>Be brief.\n<|user|>2 + 2?\n<|assistant|>"
    assert with_options(policy, use_chat_template=False).format_prompt("2 + 2?") == plain_prompt(
        "2 + 2?"
    )
    [[c]] = policy.sample([policy.format_prompt("2 + 2?")], 1, T1)
    assert c.prompt_tokens == len(policy.tokenizer(policy.format_prompt("2 + 2?"))["input_ids"])


def test_ledger_records_every_call(tiny_policy: HFPolicy) -> None:
    ledger = Ledger()
    policy = with_options(tiny_policy, ledger=ledger)
    rows = policy.sample(prompts(policy), 2, T1)
    done = policy.extend(prompts(policy), T1, ["\n"])
    cost = ledger.totals(policy.name)
    flat = [c for row in rows for c in row] + done
    assert cost.calls == 2
    assert cost.prompt_tokens == sum(c.prompt_tokens for c in flat)
    assert cost.generated_tokens == sum(c.generated_tokens for c in flat)
    # FLOPs count the prompt tokens actually computed (identical prompts once, cache hits not)
    computed = policy.reuse.computed_prompt_tokens
    assert 0 < computed < cost.prompt_tokens
    assert cost.flops == 2.0 * policy.params * (computed + cost.generated_tokens)
    # without reuse (the generate decoder) every prompt token is computed
    plain = with_options(tiny_policy, ledger=Ledger(), decoder="generate")
    plain.sample(prompts(plain), 2, T1)
    assert plain.ledger is not None
    assert (
        plain.ledger.totals(plain.name).flops
        == 2.0 * plain.params * plain.ledger.totals(plain.name).tokens
    )


def test_rejects_bad_arguments(tiny_policy: HFPolicy) -> None:
    with pytest.raises(ValueError, match="n must be"):
        tiny_policy.sample(["x"], 0, T1)
    with pytest.raises(ValueError, match="max_batch_size"):
        with_options(tiny_policy, max_batch_size=0)


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="allow_download"):
        HFPolicy.from_dir(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="allow_download"):
        HFPolicy.from_dir("some-org/some-model")  # a hub id is never fetched by default
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"config\.json.*weights.*tokenizer"):
        HFPolicy.from_dir(tmp_path / "empty")


def test_missing_weights_named(tiny_llama_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="weights") as err:
        HFPolicy.from_dir(broken)
    assert "config.json" not in str(err.value)
