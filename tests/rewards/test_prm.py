"""Step format round trip; every scoring recipe reads one pass exactly as the prefixes alone."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rewardlab.rewards.base import check_reward  # noqa: E402
from rewardlab.rewards.implicit import ImplicitPRM, token_logprobs  # noqa: E402
from rewardlab.rewards.orm import ORM  # noqa: E402
from rewardlab.rewards.prm import (  # noqa: E402
    OVM,
    ClassifierPRM,
    TagPRM,
    aggregate,
    score_one_pass,
    score_per_prefix,
)
from rewardlab.rewards.step_format import StepFormat, ensure_separator, pad_right  # noqa: E402
from rewardlab.tasks import arith  # noqa: E402
from rewardlab.types import Candidate, Problem  # noqa: E402
from tinymodels import TinyLlamaSpec, build_tiny_llama  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny"), TinyLlamaSpec(train_steps=0))


@pytest.fixture(scope="module")
def tok(tiny: Path) -> Any:
    return transformers.AutoTokenizer.from_pretrained(tiny, local_files_only=True)


def _load(tiny: Path, auto: str, seed: int = 0, **kw: Any) -> Any:
    torch.manual_seed(seed)
    cls = getattr(transformers, auto)
    return cls.from_pretrained(tiny, local_files_only=True, **kw).eval()


def _pool() -> tuple[list[Problem], list[Candidate]]:
    """Gold, wrong-at-step-1 and no-step candidates of different lengths."""
    probs = arith.generate(4, seed=7, n_ops=(1, 4))
    problems, cands = [], []
    for i, p in enumerate(probs):
        steps = arith.gold_steps(p)
        if i % 2:
            steps[0] = steps[0].rsplit("=", 1)[0] + "= 123"
        problems.append(p)
        cands.append(Candidate(p.id, "\n".join(steps), tuple(steps), p.answer, index=i))
    problems.append(probs[0])
    cands.append(Candidate(probs[0].id, "", (), None, index=9))
    return problems, cands


def _recipes(tiny: Path, tok: Any) -> list[Any]:
    causal = _load(tiny, "AutoModelForCausalLM")
    ref = _load(tiny, "AutoModelForCausalLM")
    with torch.no_grad():  # a different pi_ref, so implicit rewards are not all zero
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return [
        TagPRM(causal, tok, batch_size=2),
        ClassifierPRM(_load(tiny, "AutoModelForTokenClassification", num_labels=2), tok),
        OVM(_load(tiny, "AutoModelForTokenClassification", 1, num_labels=1), tok, batch_size=3),
        ImplicitPRM(causal, ref, tok, beta=0.5),
    ]


# ------------------------------------------------------------------------------ step format


@pytest.mark.parametrize("separator", ["\n", "<step>"])
def test_step_format_round_trip(tok: Any, separator: str) -> None:
    tok = transformers.AutoTokenizer.from_pretrained(tok.name_or_path, local_files_only=True)
    fmt = StepFormat(separator=separator)
    assert ensure_separator(tok, fmt) == (separator == "<step>")  # only the new token is added
    p = arith.generate(1, seed=3, n_ops=(3, 3))[0]
    steps = (*arith.gold_steps(p), "a step\nwith the separator inside")
    enc = fmt.encode(tok, p.question, steps)
    sep = fmt.separator_id(tok)
    assert len(enc.boundaries) == len(steps)
    assert all(enc.ids[b] == sep for b in enc.boundaries)
    assert enc.boundaries[-1] == len(enc.ids) - 1
    assert fmt.decode_steps(tok, enc) == steps
    prompt = tok(fmt.template.format(question=p.question))["input_ids"]
    assert list(enc.ids[: enc.prompt_len]) == prompt
    for t in range(len(steps)):  # a prefix's encoding is a prefix of the whole
        alone = fmt.encode(tok, p.question, steps[: t + 1])
        assert enc.prefix(t) == alone and enc.ids[: len(alone.ids)] == alone.ids


def test_separator_must_be_one_token(tok: Any) -> None:
    with pytest.raises(ValueError, match="not one"):
        StepFormat(separator="<never-a-token>").separator_id(tok)
    with pytest.raises(ValueError, match="question"):
        StepFormat(template="no field")


def test_aggregate_by_hand() -> None:
    assert aggregate([0.9, 0.5, 0.8], "last") == 0.8
    assert aggregate([0.9, 0.5, 0.8], "min") == 0.5
    assert aggregate([0.9, 0.5, 0.8], "prod") == pytest.approx(0.36)
    assert aggregate([0.9, 0.5, 0.7], "mean") == pytest.approx(0.7)
    assert aggregate([1.0, -2.0], "sum") == -1.0
    with pytest.raises(ValueError, match="unknown"):
        aggregate([1.0], "median")


# ------------------------------------------------------------------------- one pass vs prefix


def test_one_pass_equals_per_prefix_for_every_recipe(tiny: Path, tok: Any) -> None:
    problems, cands = _pool()
    for reward in _recipes(tiny, tok):
        fast = score_one_pass(reward, problems, cands)
        slow = score_per_prefix(reward, problems, cands)
        assert fast[-1].value is None and fast[-1].info["reason"] == "no steps"
        for f, s, c in zip(fast[:-1], slow[:-1], cands, strict=False):
            assert len(f.steps) == len(c.steps)
            assert f.steps == pytest.approx(s.steps, abs=1e-5), type(reward).__name__
        assert len({round(v, 6) for f in fast[:-1] for v in f.steps}) > 3  # not constant


def test_every_recipe_conforms(tiny: Path, tok: Any) -> None:
    problems, cands = _pool()
    orm = ORM(_load(tiny, "AutoModelForSequenceClassification", num_labels=1), tok)
    for reward in [*_recipes(tiny, tok), orm]:
        check_reward(reward, problems, cands)
        assert reward.params > 0
    for reward in _recipes(tiny, tok):
        scores = reward.score_steps(problems, cands)
        assert all(s.value == aggregate(s.steps, reward.aggregate) for s in scores[:-1])


def test_tag_and_classifier_read_probabilities(tiny: Path, tok: Any) -> None:
    problems, cands = _pool()
    for reward in _recipes(tiny, tok)[:2]:
        values = [v for s in reward.score_steps(problems, cands)[:-1] for v in s.steps]
        assert all(0.0 < v < 1.0 for v in values)


def test_tag_prm_is_softmax_over_good_and_bad(tiny: Path, tok: Any) -> None:
    problems, cands = _pool()
    model = _load(tiny, "AutoModelForCausalLM")
    prm = TagPRM(model, tok)
    enc = prm.fmt.encode(tok, problems[0].question, cands[0].steps)
    with torch.no_grad():
        logits = model(torch.tensor([enc.ids])).logits[0]
    good, bad = tok("+")["input_ids"][0], tok("-")["input_ids"][0]
    want = [float(torch.sigmoid(logits[b, good] - logits[b, bad])) for b in enc.boundaries]
    assert prm.score_steps(problems[:1], cands[:1])[0].steps == pytest.approx(want, abs=1e-6)


def test_implicit_steps_sum_to_the_sequence_log_ratio(tiny: Path, tok: Any) -> None:
    problems, cands = _pool()
    reward = _recipes(tiny, tok)[-1]
    enc = reward.fmt.encode(tok, problems[1].question, cands[1].steps)
    ids, mask = pad_right([enc], 0)
    with torch.no_grad():
        ratio = token_logprobs(reward.model, ids, mask) - token_logprobs(reward.ref, ids, mask)
    want = reward.beta * float(ratio[0, enc.prompt_len :].sum())
    got = reward.score(problems[1:2], cands[1:2])[0]
    assert got.value == pytest.approx(want, abs=1e-4) and reward.aggregate == "sum"
    same = ImplicitPRM(reward.model, reward.model, tok)
    assert all(v == 0.0 for v in same.score(problems[:1], cands[:1])[0].steps)


def test_orm_reads_the_final_separator_in_any_batch(tiny: Path, tok: Any) -> None:
    problems, cands = _pool()
    model = _load(tiny, "AutoModelForSequenceClassification", num_labels=1)
    batched = ORM(model, tok).score(problems, cands)
    alone = [
        ORM(model, tok, batch_size=1).score([p], [c])[0]
        for p, c in zip(problems, cands, strict=True)
    ]
    assert [s.value for s in batched[:-1]] == pytest.approx([s.value for s in alone[:-1]])
    enc = StepFormat().encode(tok, problems[0].question, cands[0].steps)
    with torch.no_grad():
        z = model(torch.tensor([enc.ids])).logits[0, 0]
    assert batched[0].value == pytest.approx(1 / (1 + math.exp(-float(z))), abs=1e-6)


def test_too_long_candidates_are_ungraded(tiny: Path, tok: Any) -> None:
    problems, cands = _pool()
    long = Candidate(cands[0].problem_id, "", ("1 + 1 = 2",) * 400, "2")
    reward = _recipes(tiny, tok)[1]
    s = reward.score([problems[0]], [long])[0]
    assert s.value is None and "more than the model's" in s.info["reason"]
