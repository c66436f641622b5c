"""Published reward-model recipes on tiny look-alikes (tests/rewards/lookalikes.py): each
recipe's scores equal a hand-written forward of the model card's own procedure, read at the
card's positions, from ONE forward pass per batch; padding and batching change nothing; a
missing token or head is a clear error."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import lookalikes
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewardlab.rewards.base import StepReward, check_reward
from rewardlab.rewards.registry import check_reward as check_spec
from rewardlab.rewards.registry import is_learned, load_reward, split_specs
from rewardlab.types import Candidate, Problem

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"
STEPS = [
    ("Tom starts with 3 apples.", "He buys 4 more, so 3 + 4 = 7.", "The answer is 7."),
    ("3 + 4 = 8.", "The answer is 8."),
    ("Add them: 3 + 4 = 7.",),
]


def _pairs(steps: Any = STEPS, sep: str = "\n") -> tuple[list[Problem], list[Candidate]]:
    problems = [Problem("p", QUESTION, "7", "t") for _ in steps]
    cands = [Candidate("p", sep.join(s), tuple(s), None, index=i) for i, s in enumerate(steps)]
    return problems, cands


def _forward_calls(module: Any) -> list[int]:
    calls: list[int] = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


# ------------------------------------------------------------------------- Qwen2.5-Math-PRM


@pytest.fixture(scope="module")
def qwen(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    return lookalikes.qwen_prm(tmp_path_factory.mktemp("qwen"))


def _qwen_card(model: Any, tok: Any, question: str, steps: tuple[str, ...]) -> np.ndarray:
    """Qwen2.5-Math-PRM's model card: chat with <extra_0> after each step, one pass, P(class
    1) wherever input_ids == the separator id."""
    messages = [
        {"role": "system", "content": "Please reason step by step, and put your final "
         "answer within \\boxed{}."},
        {"role": "user", "content": question},
        {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"},
    ]  # fmt: skip
    conv = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    ids = torch.tensor([tok.encode(conv)])
    sep = tok.encode("<extra_0>")[0]
    with torch.no_grad():
        probs = model(ids).softmax(-1)[0]
    return probs[ids[0] == sep][:, 1].numpy()


def test_qwen_prm_reads_p_class_1_at_every_separator_in_one_pass(qwen: Any) -> None:
    path, model, tok = qwen
    reward = load_reward(f"qwen-prm:path={path},batch_size=8", device="cpu")
    calls = _forward_calls(reward.backbone)
    problems, cands = _pairs()
    got = reward.score_steps(problems, cands)
    assert len(calls) == 1  # three candidates, one batch, one forward pass
    for s, c in zip(got, cands, strict=True):
        want = _qwen_card(model, tok, QUESTION, c.steps)
        assert len(want) == len(c.steps)
        np.testing.assert_allclose(s.steps, want, rtol=1e-5, atol=1e-6)
        assert s.value == pytest.approx(want[-1], rel=1e-5)  # aggregate "last"
    assert len({round(v, 6) for s in got for v in s.steps}) > 3  # a random head, not constant


def test_qwen_prm_is_the_same_alone_and_in_a_padded_batch(qwen: Any) -> None:
    path, _, _ = qwen
    problems, cands = _pairs()
    batched = load_reward(f"qwen-prm:path={path},batch_size=3", device="cpu")
    alone = load_reward(f"qwen-prm:path={path},batch_size=1", device="cpu")
    for a, b in zip(batched.score_steps(problems, cands), alone.score_steps(problems, cands),
                    strict=True):  # fmt: skip
        np.testing.assert_allclose(a.steps, b.steps, rtol=1e-5, atol=1e-6)
    check_reward(batched, problems, cands)
    assert isinstance(batched, StepReward)


def test_qwen_prm_reads_a_step_containing_the_separator_once(qwen: Any) -> None:
    path, _, _ = qwen
    reward = load_reward(f"qwen-prm:path={path}", device="cpu")
    steps = [("I write <extra_0> here.", "The answer is 7.")]
    problems, cands = _pairs(steps)
    assert len(reward.score_steps(problems, cands)[0].steps) == 2  # the card's mask reads 3


def test_qwen_prm_without_its_separator_or_head_is_refused(qwen: Any, tmp_path: Path) -> None:
    from transformers import AutoTokenizer, Qwen2Config, Qwen2Model

    path, _, _ = qwen
    no_sep = tmp_path / "no-sep"
    Qwen2Model(Qwen2Config.from_pretrained(path)).save_pretrained(no_sep)
    tok = AutoTokenizer.from_pretrained(lookalikes.build_tiny_llama(tmp_path / "b",
                                        lookalikes.TinyLlamaSpec(train_steps=0)))  # fmt: skip
    tok.save_pretrained(no_sep)
    with pytest.raises(ValueError, match=r"step separator '<extra_0>' into \d+ tokens"):
        load_reward(f"qwen-prm:path={no_sep}", device="cpu")
    no_head = tmp_path / "no-head"
    Qwen2Model(Qwen2Config.from_pretrained(path)).save_pretrained(no_head)
    AutoTokenizer.from_pretrained(path).save_pretrained(no_head)
    with pytest.raises(ValueError, match=r"no 'score\.\*' tensors"):
        load_reward(f"qwen-prm:path={no_head}", device="cpu")


def test_specs_are_checked_without_loading(qwen: Any, tmp_path: Path) -> None:
    path, _, _ = qwen
    assert check_spec(f"qwen-prm:path={path}") == ("qwen-prm", f"qwen-prm:path={path}")
    assert is_learned(f"armorm:path={path}")
    with pytest.raises(ValueError, match="needs path=DIR"):
        check_spec("math-shepherd")
    with pytest.raises(ValueError, match="not a local model directory"):
        check_spec(f"seqcls-rm:path={tmp_path / 'nowhere'}")
    with pytest.raises(ValueError, match="needs ref=DIR"):
        check_spec(f"eurus-prm:path={path}")


# ----------------------------------------------------------------------------- Math-Shepherd


@pytest.fixture(scope="module")
def shepherd(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    return lookalikes.math_shepherd(tmp_path_factory.mktemp("shepherd"))


def _shepherd_card(model: Any, tok: Any, question: str, steps: tuple[str, ...]) -> np.ndarray:
    """math-shepherd-mistral-7b-prm's card: f"{q} {output}" with " ки" after each step and
    "\\n" between, encode with BOS, softmax over encode("+ -")[1:] at input_id == tag."""
    good_bad = tok.encode("+ -")[1:]
    tag = tok.encode("ки")[-1]
    output = "\n".join(f"{s} ки" for s in steps)
    ids = torch.tensor([tok.encode(f"{question} {output}")])
    with torch.no_grad():
        logits = model(ids).logits[:, :, good_bad]
    return logits.softmax(-1)[:, :, 0][ids == tag].numpy()


def test_math_shepherd_reads_p_plus_at_every_tag_in_one_pass(shepherd: Any) -> None:
    path, model, tok = shepherd
    assert tok.encode("x")[0] == tok.bos_token_id  # the look-alike prepends a BOS, as Mistral
    reward = load_reward(f"math-shepherd:path={path}", device="cpu")
    calls = _forward_calls(reward.model)
    problems, cands = _pairs()
    got = reward.score_steps(problems, cands)
    assert len(calls) == 1
    for s, c in zip(got, cands, strict=True):
        want = _shepherd_card(model, tok, QUESTION, c.steps)
        assert len(want) == len(c.steps)
        np.testing.assert_allclose(s.steps, want, rtol=1e-5, atol=1e-6)
    alone = load_reward(f"math-shepherd:path={path},batch_size=1", device="cpu")
    for a, b in zip(got, alone.score_steps(problems, cands), strict=True):
        np.testing.assert_allclose(a.steps, b.steps, rtol=1e-5, atol=1e-6)


def test_math_shepherd_numbers_steps_when_asked(shepherd: Any) -> None:
    path, model, tok = shepherd
    reward = load_reward(f"math-shepherd:path={path},number_steps=true", device="cpu")
    problems, cands = _pairs(STEPS[:1])
    numbered = tuple(f"Step {k}: {s}" for k, s in enumerate(STEPS[0], 1))
    want = _shepherd_card(model, tok, QUESTION, numbered)
    np.testing.assert_allclose(reward.score_steps(problems, cands)[0].steps, want, rtol=1e-5)


def test_math_shepherd_with_labels_that_are_not_one_token_is_refused(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    path, _, _ = lookalikes.math_shepherd(tmp_path)
    tok = AutoTokenizer.from_pretrained(path)
    from rewardlab.rewards.presets.math_shepherd import MathShepherdPRM

    with pytest.raises(ValueError, match="not one each"):
        MathShepherdPRM(model=None, tokenizer=tok, good="+good", bad="-bad")


# ------------------------------------------------------------------- Skywork-Reward (seq-cls)


@pytest.fixture(scope="module")
def sky(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    return lookalikes.skywork(tmp_path_factory.mktemp("sky"))


def _skywork_card(model: Any, tok: Any, question: str, response: str) -> float:
    """Skywork-Reward-V2's card: chat template text, a duplicate BOS removed, tokenize,
    ``logits[0][0]`` of the sequence classifier."""
    conv = [{"role": "user", "content": question}, {"role": "assistant", "content": response}]
    text = tok.apply_chat_template(conv, tokenize=False)
    if tok.bos_token is not None and text.startswith(tok.bos_token):
        text = text[len(tok.bos_token) :]
    inputs = tok(text, return_tensors="pt")
    assert int((inputs["input_ids"][0] == tok.bos_token_id).sum()) == 1
    with torch.no_grad():
        return float(model(**inputs).logits[0][0])


@pytest.mark.parametrize("template_bos", [True, False])
def test_seqcls_rm_reads_the_scalar_head_at_the_last_token(
    sky: Any, template_bos: bool, tmp_path: Path
) -> None:
    """One BOS either way: the template's (Llama-3) or, when the template has none, the
    tokenizer's own, as the card's strip-then-tokenize gives."""
    path, model, tok = sky
    if not template_bos:
        tok = copy.deepcopy(tok)
        tok.chat_template = lookalikes.LLAMA3_TEMPLATE.replace("bos_token + ", "")
        model.save_pretrained(tmp_path / "m")
        tok.save_pretrained(tmp_path / "m")
        path = tmp_path / "m"
    reward = load_reward(f"seqcls-rm:path={path}", device="cpu")
    calls = _forward_calls(reward.model.model)
    problems, cands = _pairs()
    got = reward.score(problems, cands)
    assert len(calls) == 1
    want = [_skywork_card(model, tok, QUESTION, c.text) for c in cands]
    np.testing.assert_allclose([s.value for s in got], want, rtol=1e-5, atol=1e-6)
    assert len(set(np.round(want, 6))) == 3
    assert not hasattr(reward, "score_steps")  # an outcome reward, never taken for a PRM
    check_reward(reward, problems, cands)


def test_seqcls_rm_refuses_a_model_with_two_labels(sky: Any, tmp_path: Path) -> None:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    path, _, _ = sky
    cfg = LlamaConfig.from_pretrained(path)
    cfg.num_labels = 2
    LlamaForSequenceClassification(cfg).save_pretrained(tmp_path / "two")
    AutoTokenizer.from_pretrained(path).save_pretrained(tmp_path / "two")
    with pytest.raises(ValueError, match="no 1-output 'score' head"):
        load_reward(f"seqcls-rm:path={tmp_path / 'two'}", device="cpu")


# ------------------------------------------------------------------------------------ ArmoRM


@pytest.fixture(scope="module")
def armo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    return lookalikes.armorm(tmp_path_factory.mktemp("armo"))


def _armorm_card(model: Any, tok: Any, question: str, response: str) -> tuple[float, Any, Any]:
    """ArmoRM's modeling_custom.py forward, written out: chat ids, last token -> regression,
    gate at the LAST occurrence of the eot/assistant-header pattern, score = sum(g * r T)."""
    conv = [{"role": "user", "content": question}, {"role": "assistant", "content": response}]
    ids = tok.apply_chat_template(conv, tokenize=True, return_dict=False)
    ids = list(ids["input_ids"] if isinstance(ids, dict) else ids)
    pattern = tok.encode(lookalikes_pattern(), add_special_tokens=False)
    gate_at = max(j for j in range(len(ids)) if ids[j : j + len(pattern)] == pattern)
    with torch.no_grad():
        hidden = model.model(torch.tensor([ids])).last_hidden_state[0]
        rewards = model.regression_layer(hidden[-1])
        x = hidden[gate_at]
        for i, layer in enumerate(model.gating.layers):
            x = layer(x)
            if i < len(model.gating.layers) - 1:
                x = torch.relu(x)
        gates = torch.softmax(x / 10, -1) * model.gating.logit_scale[0]
        score = torch.sum(gates * (rewards @ model.reward_transform_matrix))
    return float(score), rewards.numpy(), gates.numpy()


def lookalikes_pattern() -> str:
    from rewardlab.rewards.presets.outcome import ARMORM_GATING_PATTERN

    return ARMORM_GATING_PATTERN


def test_armorm_gates_its_objectives_as_its_modeling_code_does(armo: Any) -> None:
    path, model, tok = armo
    assert not torch.equal(model.reward_transform_matrix, torch.eye(3))
    reward = load_reward(f"armorm:path={path}", device="cpu")
    calls = _forward_calls(reward.backbone)
    problems, cands = _pairs()
    got = reward.score(problems, cands)
    assert len(calls) == 1
    for s, c in zip(got, cands, strict=True):
        score, rewards, gates = _armorm_card(model, tok, QUESTION, c.text)
        assert s.value == pytest.approx(score, rel=1e-5, abs=1e-6)
        np.testing.assert_allclose(list(s.info["objectives"].values()), rewards, rtol=1e-5)
        np.testing.assert_allclose(list(s.info["gating"].values()), gates, rtol=1e-5)
        assert sum(s.info["gating"].values()) == pytest.approx(1.7, rel=1e-5)
    assert list(got[0].info["objectives"]) == ["obj0", "obj1", "obj2"]
    alone = load_reward(f"armorm:path={path},batch_size=1", device="cpu")
    np.testing.assert_allclose(
        [s.value for s in alone.score(problems, cands)], [s.value for s in got], rtol=1e-5
    )


def test_armorm_without_the_gating_pattern_or_its_head_is_refused(
    armo: Any, tmp_path: Path
) -> None:
    path, _, _ = armo
    reward = load_reward(f"armorm:path={path},gating_pattern=<|eot_id|>nowhere", device="cpu")
    with pytest.raises(ValueError, match="gating pattern"):
        reward.score(*_pairs(STEPS[:1]))
    from transformers import AutoTokenizer, LlamaConfig, LlamaModel

    LlamaModel(LlamaConfig.from_pretrained(path)).save_pretrained(tmp_path / "bare")
    AutoTokenizer.from_pretrained(path).save_pretrained(tmp_path / "bare")
    with pytest.raises(ValueError, match=r"no 'regression_layer\.\*' tensors"):
        load_reward(f"armorm:path={tmp_path / 'bare'}", device="cpu")


# --------------------------------------------------------------------------------- EurusPRM


@pytest.fixture(scope="module")
def eurus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ...]:
    return lookalikes.eurus(tmp_path_factory.mktemp("eurus"))


def _eurus_card(
    model: Any, ref: Any, tok: Any, question: str, steps: tuple[str, ...], coef: float
) -> np.ndarray:
    """EurusPRM-Stage2's card, line by line: prefix renderings for step_last_tokens, label
    mask from the first, shifted log-probs of both models, cumsum, gather."""

    def chat(k: int) -> list[dict[str, str]]:
        return [
            {"role": "user", "content": question},
            {"role": "assistant", "content": "\n\n".join(steps[:k])},
        ]

    ids = torch.tensor([tok.encode(tok.apply_chat_template(chat(len(steps)), tokenize=False),
                                   add_special_tokens=False)])  # fmt: skip
    last = []
    for k in range(len(steps) + 1):
        conv = tok.apply_chat_template(chat(k), tokenize=False, add_generation_prompt=False)
        conv = conv.strip()
        if k != 0 and k != len(steps):
            conv += "\n\n"
        last.append(len(tok.encode(conv, add_special_tokens=False)) - 2)
    mask = torch.tensor([[0] * last[0] + [1] * (ids.shape[-1] - last[0])])

    def logps(m: Any) -> Any:
        with torch.no_grad():
            logits = m(input_ids=ids).logits[:, :-1]
        return torch.gather(logits.log_softmax(-1), 2, ids[:, 1:, None])[..., 0]

    reward = (coef * (logps(model) - logps(ref)) * mask[:, 1:]).cumsum(-1)
    return reward.gather(-1, torch.tensor([last[1:]]))[0].numpy()


def test_eurus_prm_gives_the_cards_q_values_from_one_pass_of_each_model(eurus: Any) -> None:
    pi, ref, model, ref_model, tok = eurus
    reward = load_reward(f"eurus-prm:path={pi},ref={ref},beta=0.005", device="cpu")
    calls, ref_calls = _forward_calls(reward.model), _forward_calls(reward.ref)
    problems, cands = _pairs()
    got = reward.score_steps(problems, cands)
    assert len(calls) == len(ref_calls) == 1
    for s, c in zip(got, cands, strict=True):
        want = _eurus_card(model, ref_model, tok, QUESTION, c.steps, 0.005)
        assert len(want) == len(c.steps)
        np.testing.assert_allclose(s.steps, want, rtol=1e-4, atol=1e-7)
        assert s.value == pytest.approx(want[-1], rel=1e-4)
        assert s.info["q"] == pytest.approx(list(want), rel=1e-4)
    assert all(abs(v) > 1e-6 for s in got for v in s.steps)  # pi and pi_ref differ


def test_eurus_prm_step_rewards_are_the_differences_and_batching_changes_nothing(
    eurus: Any,
) -> None:
    pi, ref, _, _, _ = eurus
    problems, cands = _pairs()
    q = load_reward(f"eurus-prm:path={pi},ref={ref}", device="cpu").score_steps(problems, cands)
    r = load_reward(
        f"eurus-prm:path={pi},ref={ref},step_values=reward,aggregate=sum,batch_size=1",
        device="cpu",
    ).score_steps(problems, cands)
    for a, b in zip(q, r, strict=True):
        np.testing.assert_allclose(np.cumsum(b.steps), a.steps, rtol=1e-4, atol=1e-9)
        assert b.value == pytest.approx(a.value, rel=1e-4)  # sum of rewards = q_n


def test_eurus_prm_refuses_a_reference_with_a_smaller_vocabulary(
    eurus: Any, tmp_path: Path
) -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    pi, _, _, _, _ = eurus
    cfg = Qwen2Config.from_pretrained(pi)
    cfg.vocab_size, cfg.pad_token_id = 100, None
    Qwen2ForCausalLM(cfg).save_pretrained(tmp_path / "small")
    with pytest.raises(ValueError, match="share one tokenizer"):
        load_reward(f"eurus-prm:path={pi},ref={tmp_path / 'small'}", device="cpu")


def test_published_configs_keep_their_auto_map_yet_no_remote_code_runs(qwen: Any) -> None:
    path, _, _ = qwen
    assert "auto_map" in json.loads((path / "config.json").read_text())
    assert not list(path.glob("*.py"))
    assert load_reward(f"qwen-prm:path={path}", device="cpu").head[0].in_features == 32


_names = st.sampled_from(["logprob", "prm", "qwen-prm", "eurus-prm", "runs/ckpt_dir"])
_keys = st.sampled_from(["path", "ref", "dtype", "batch_size", "q", "name"])
_values = st.sampled_from(["/models/a-b", "bfloat16", "8", "0.8", "runs/x.y", "true"])
_args = st.lists(st.tuples(_keys, _values), max_size=3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_names, _args), min_size=1, max_size=4))
def test_split_specs_keeps_each_specs_own_arguments(specs: list[Any]) -> None:
    texts = [n + (":" + ",".join(f"{k}={v}" for k, v in a) if a else "") for n, a in specs]
    assert split_specs(",".join(texts)) == tuple(texts)


def test_scale_cli_passes_a_spec_with_arguments_whole() -> None:
    assert split_specs("logprob, qwen-prm:path=/m/p,dtype=bfloat16 ,prm") == (
        "logprob",
        "qwen-prm:path=/m/p,dtype=bfloat16",
        "prm",
    )


def test_scale_scores_a_pool_with_a_published_prm_and_a_seqcls_rm(
    qwen: Any, sky: Any, tmp_path: Path
) -> None:
    """End to end through ``rewardlab scale``: the PRM enters as a process reward (steps
    stored, every aggregation a strategy), the seq-cls RM as an outcome reward."""
    from rewardlab.pipelines.scale_job import ScaleConfig, run_scale
    from rewardlab.store import SampleStore

    specs = (f"qwen-prm:path={qwen[0]},batch_size=4", f"seqcls-rm:path={sky[0]}")
    cfg = ScaleConfig.quick(
        problems=3, n_max=2, difficulty=(2, 3), rewards=specs, n_boot=20, n_resamples=10,
        device="cpu",
    )  # fmt: skip
    result = run_scale(cfg, tmp_path / "run")
    names = set(result["summary"]["strategies"])
    assert "bon[qwen-prm:min]" in names and "bon[seqcls-rm]" in names, names
    labels = SampleStore(tmp_path / "run" / "pool.sqlite").rewards()
    assert any(lab.startswith("qwen-prm@") and lab.endswith("#steps") for lab in labels)
    assert any(lab.startswith("seqcls-rm@") and "#" not in lab for lab in labels), labels


def test_bfloat16_weights_score_close_to_float32(qwen: Any, armo: Any, eurus: Any) -> None:
    """The dtype path (heads cast with the backbone; ArmoRM's heads and Eurus's log-ratios in
    float32) runs and stays near the float32 scores."""
    pi, ref = eurus[0], eurus[1]
    problems, cands = _pairs()
    for spec, tol in [
        (f"qwen-prm:path={qwen[0]}", 0.05),
        (f"armorm:path={armo[0]}", 0.05),
        (f"eurus-prm:path={pi},ref={ref},beta=1", 0.5),
    ]:
        full = load_reward(spec, device="cpu").score(problems, cands)
        half = load_reward(f"{spec},dtype=bfloat16", device="cpu").score(problems, cands)
        for a, b in zip(full, half, strict=True):
            assert b.value is not None and b.value == pytest.approx(a.value, abs=tol), spec
