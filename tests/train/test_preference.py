"""Preference objectives: each loss by hand on a 2-pair batch, BT learns separable data, the
trainer runs every objective on a tiny backbone, checkpoints load as Rewards, data errors name
their file and line, and the eval CLI runs end to end on controlled-truth files."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rewardlab.rewards.base import check_reward  # noqa: E402
from rewardlab.train import preference as P  # noqa: E402
from rewardlab.train.loop import LoopConfig, fit  # noqa: E402
from rewardlab.train.pref_io import DataError, read_pairs, read_ratings  # noqa: E402
from rewardlab.types import Candidate, Problem  # noqa: E402


def sp(x: float) -> float:
    """softplus, = −log σ(−x)."""
    return math.log1p(math.exp(x))


R_C = torch.tensor([1.0, 0.0])
R_R = torch.tensor([0.0, 2.0])  # Δ = [1, −2]


def test_losses_by_hand_on_two_pairs() -> None:
    bt = (sp(-1) + sp(2)) / 2  # 0.3133 and 2.1269
    assert float(P.bt_loss(R_C, R_R)) == pytest.approx(bt, abs=1e-6)
    m = torch.tensor([0.5, 1.0])  # Δ − m = [0.5, −3]
    assert float(P.bt_margin_loss(R_C, R_R, m)) == pytest.approx((sp(-0.5) + sp(3)) / 2, abs=1e-6)
    # centering: ((1 + 0)² + (0 + 2)²) / 2 = 2.5
    assert float(P.centering_penalty(R_C, R_R)) == pytest.approx(2.5)
    assert float(P.centered_bt_loss(R_C, R_R, 0.01)) == pytest.approx(bt + 0.025, abs=1e-6)
    s = torch.tensor([2.0, 1.0])
    assert float(P.scaled_bt_loss(R_C, R_R, s)) == pytest.approx((2 * sp(-1) + sp(2)) / 2, 1e-6)
    # regression: ((1 − 0.5)² + (0 − 2)²) / 2 = 2.125
    assert float(P.regression_loss(R_C, torch.tensor([0.5, 2.0]))) == pytest.approx(2.125)
    ls = (0.9 * sp(-1) + 0.1 * sp(1) + 0.9 * sp(2) + 0.1 * sp(-2)) / 2
    assert float(P.label_smoothing_loss(R_C, R_R, 0.1)) == pytest.approx(ls, abs=1e-6)
    assert float(P.label_smoothing_loss(R_C, R_R, 0.0)) == pytest.approx(bt, abs=1e-6)


def test_noise_robust_strength_flip_and_margin_by_hand() -> None:
    diffs = np.array([[1.0, -3.0, -0.2], [3.0, -1.0, 0.0]])  # two members, three pairs
    mean, std = P.preference_strength(diffs)
    assert mean.tolist() == [2.0, -2.0, -0.1] and std.tolist() == pytest.approx([1.0, 1.0, 0.1])
    flip, margin = P.noise_robust_plan(mean, std, flip_z=1.0)
    assert flip.tolist() == [False, True, False]  # −2 < −1·1; −0.1 is not < −0.1
    assert margin.tolist() == pytest.approx([2.0, 2.0, -0.1])
    loss = P.bt_margin_loss(R_C, R_R, torch.tensor([2.0, 2.0]))  # the adaptive-margin loss
    assert float(loss) == pytest.approx((sp(1) + sp(4)) / 2, abs=1e-6)


def test_config_and_objective_registry() -> None:
    assert set(P.PREFERENCE_OBJECTIVES) == {
        "bt",
        "bt-margin",
        "centered",
        "scaled-bt",
        "regression",
        "helpsteer2",
        "label-smoothing",
        "noise-robust",
        "prdp",
        "gpm",
        "vpl",
        "ctrl-u",
        "dpo",
        "t-reg",
    }
    with pytest.raises(ValueError, match="unknown objective"):
        P.PreferenceConfig(objective="ppo")
    with pytest.raises(ValueError, match="unknown head"):
        P.PreferenceConfig(head="mlp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="noise_members"):
        P.PreferenceConfig(objective="noise-robust", noise_members=1)


class _Linear(torch.nn.Module):
    """A reward 'model' on feature vectors passed as input_ids (the mask is ignored)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(d, 1)

    def forward(self, input_ids: Any, attention_mask: Any) -> Any:
        return self.lin(input_ids)[:, 0]


def test_bt_learns_separable_synthetic_preferences() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.tensor([1.5, -2.0, 0.5, 1.0])
    x = torch.randn(640, 2, 4, generator=gen)  # pairs of items
    better = (x @ w).argmax(dim=1)  # the truly better item of each pair is "chosen"
    chosen = x[torch.arange(640), better]
    rejected = x[torch.arange(640), 1 - better]
    batches: list[Mapping[str, Any]] = [
        {
            "input_ids": torch.cat([chosen[i : i + 32], rejected[i : i + 32]]),
            "attention_mask": torch.ones(64, 1),
        }
        for i in range(0, 512, 32)
    ]
    model = _Linear(4)
    cfg = P.PreferenceConfig(objective="bt")
    fit(
        model,
        batches,
        P.pairwise_loss_fn(P.PREFERENCE_OBJECTIVES["bt"].pair_loss, cfg),
        LoopConfig(steps=150, lr=5e-2, warmup_steps=5, log_every=50, cpu=True),
    )
    with torch.no_grad():
        acc = (model(chosen[512:], None) > model(rejected[512:], None)).float().mean()
    assert float(acc) >= 0.97


# ------------------------------------------------------------------ tiny backbone end to end


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rewardlab.train.tiny_policy import TinyPolicyConfig, build_model, build_tokenizer

    cfg = TinyPolicyConfig(
        hidden_size=16,
        layers=1,
        heads=2,
        intermediate_size=32,
        vocab_size=300,
        tokenizer_corpus=300,
    )
    out = tmp_path_factory.mktemp("backbone")
    build_model(cfg, build_tokenizer(cfg, out)).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from rewardlab.label.pref_sets import PrefSetSpec, build_sets, write_sets

    spec = PrefSetSpec(problems=24, n_ops=(1, 3), pairs_per_problem=4, noise=0.2)
    return write_sets(build_sets(spec), tmp_path_factory.mktemp("sets"))


def _cfg(objective: str, head: str = "seqcls") -> P.PreferenceConfig:
    return P.PreferenceConfig(
        objective=objective,
        head=head,  # type: ignore[arg-type]
        loop=LoopConfig(steps=2, lr=1e-3, warmup_steps=1, log_every=1, cpu=True),
        batch_size=4,
        max_length=96,
        noise_members=2,
        noise_steps=2,
    )


@pytest.mark.parametrize("objective", sorted(P.PREFERENCE_OBJECTIVES))
def test_every_objective_trains_on_a_tiny_backbone(
    objective: str, backbone: Path, sets: dict[str, Path]
) -> None:
    from rewardlab.train.pref_trainer import train_preference_model

    pairs = read_pairs(sets["train_pairs"])
    if objective == "vpl":  # two users, alternating rows
        pairs = [replace(r, extra={**r.extra, "user": i % 2}) for i, r in enumerate(pairs)]
    trained = train_preference_model(
        backbone, _cfg(objective), pairs, read_ratings(sets["train_ratings"])
    )
    stages = [h["stage"] for h in trained.history]
    expected = {
        "helpsteer2": {"regression", "scaled-bt"},
        "noise-robust": {"members", "noise-robust"},
    }.get(objective, {objective})
    assert set(stages) == expected
    assert all(math.isfinite(h["loss"]) for h in trained.history)
    if objective == "noise-robust":
        assert len(trained.info["noise"]["flip_mask"]) == len(read_pairs(sets["train_pairs"]))


def test_missing_data_for_an_objective_is_a_clear_error(
    backbone: Path, sets: dict[str, Path]
) -> None:
    from rewardlab.train.pref_trainer import train_preference_model

    with pytest.raises(ValueError, match="needs rating data"):
        train_preference_model(backbone, _cfg("helpsteer2"), read_pairs(sets["train_pairs"]))


@pytest.mark.parametrize("head", ["seqcls", "value"])
def test_checkpoint_roundtrip_loads_as_a_reward(
    head: str, backbone: Path, sets: dict[str, Path], tmp_path: Path
) -> None:
    from rewardlab.rewards.preference_rm import PreferenceRM
    from rewardlab.rewards.registry import load_reward
    from rewardlab.train.pref_trainer import save_trained, train_preference_model

    cfg = _cfg("bt", head)
    trained = train_preference_model(backbone, cfg, read_pairs(sets["train_pairs"]))
    live = PreferenceRM(trained.model, trained.tokenizer, max_length=96, max_tokens=300)
    path = save_trained(trained, tmp_path / "rm", cfg)
    rm = load_reward(str(path))  # through the registry: rewardlab.json names the loader
    assert isinstance(rm, PreferenceRM) and rm.params == live.params > 0
    probs = [Problem(f"p{i}", f"What is {i} + 1?", str(i + 1)) for i in range(7)]
    cands = [
        Candidate(p.id, "x " * (3 * i + 1) + f"The answer is {i}.", (), None)
        for i, p in enumerate(probs)
    ]
    check_reward(rm, probs, cands)
    a = np.array([s.value for s in rm.score(probs, cands)])
    b = np.array([s.value for s in live.score(probs, cands)])  # other batch budget, same values
    one = np.array([rm.score([p], [c])[0].value for p, c in zip(probs, cands, strict=True)])
    assert np.allclose(a, b, atol=1e-5) and np.allclose(a, one, atol=1e-5)


def test_dpo_implicit_reward_by_hand(backbone: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewardlab.rewards.dpo_implicit import DPOImplicitReward

    tok = AutoTokenizer.from_pretrained(str(backbone))
    model = AutoModelForCausalLM.from_pretrained(str(backbone)).eval()
    same = DPOImplicitReward(model, tok, model, beta=0.5)
    probs = [Problem("a", "1 + 2?", "3"), Problem("b", "4 * 2?", "8")]
    cands = [
        Candidate("a", "1 + 2 = 3", (), "3"),
        Candidate("b", "4 * 2 = 9\nThe answer is 9.", (), "9"),
    ]
    assert [s.value for s in same.score(probs, cands)] == [0.0, 0.0]  # π = π_ref
    free = DPOImplicitReward(model, tok, beta=0.5)
    check_reward(free, probs, cands)
    ids, start = free.encode(probs[0].question, cands[0].text)
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0], dim=-1)
    by_hand = sum(float(logp[t - 1, ids[t]]) for t in range(start, len(ids)))
    assert free.score(probs[:1], cands[:1])[0].value == pytest.approx(0.5 * by_hand, abs=1e-4)


def test_malformed_rows_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": "q", "chosen": "a"}\n'
    )
    with pytest.raises(DataError, match=r"bad\.jsonl:2: missing field 'rejected'"):
        read_pairs(bad)
    bad.write_text('{"prompt": "q", "chosen": "a", "rejected": "b", "margin": "big"}\n')
    with pytest.raises(DataError, match=r":1: field 'margin' must be a finite number"):
        read_pairs(bad)
    bad.write_text("not json\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:1: not valid JSON"):
        read_pairs(bad)
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"prompt": ["q", "q"], "response": ["a", "b"], "rating": [1.0, None]})
    pq.write_table(table, tmp_path / "r.parquet")
    with pytest.raises(DataError, match=r"r\.parquet:2: missing field 'rating'"):
        read_ratings(tmp_path / "r.parquet")


def test_train_and_eval_cli_end_to_end(
    backbone: Path, sets: dict[str, Path], tmp_path: Path
) -> None:
    from rewardlab.cli import eval_rm
    from rewardlab.cli.train_pref import train_preference

    common = dict(backbone=[backbone], steps=2, lr=1e-3, batch_size=4, max_length=96)
    single = train_preference("bt", sets["train_pairs"], tmp_path / "rm", **common)
    ens = train_preference(
        "bt", sets["train_pairs"], tmp_path / "ens", ensemble=2, aggregate="mean-std", **common
    )
    assert json.loads((ens / "rewardlab.json").read_text())["kind"] == "ensemble"
    out = tmp_path / "eval"
    eval_rm.pairwise(str(single), sets["test_pairs"], out, dev=sets["test_pairs"], n_boot=20)
    eval_rm.bon(str(ens), sets["test_bo4"], out, n_boot=20)
    eval_rm.one_to_many(str(single), sets["test_1v9"], out, n_boot=20)
    eval_rm.overopt(f"{single},{ens}", sets["test_pool"], out, n_boot=20)
    eval_rm.distance(
        f"{single},ensemble:min:{ens / 'member-0'},{ens / 'member-1'}",
        sets["test_pool"],
        out,
        n_boot=20,
    )
    for stem in ("pairwise", "bon", "one_to_many", "overopt", "distance"):
        result = json.loads((out / f"{stem}.json").read_text())
        assert result["task"] == stem and result["metrics"]
        assert (out / f"{stem}.md").is_file() and (out / f"{stem}.png").is_file()
    assert (out / "pairwise_reliability.png").is_file()
    assert "pick the longer response" in (out / "pairwise.md").read_text()


def test_policy_pools_feed_the_controlled_truth_sets(backbone: Path, tmp_path: Path) -> None:
    from rewardlab.label.pref_sets import PrefSetSpec, build_sets
    from rewardlab.label.preferences import policy_pools
    from rewardlab.policies.hf import HFPolicy
    from rewardlab.store import SampleStore
    from rewardlab.tasks import arith
    from rewardlab.types import Sampling

    spec = PrefSetSpec(problems=4, n_ops=(1, 2), pairs_per_problem=3)
    problems = arith.generate(spec.problems, seed=spec.seed, n_ops=spec.n_ops)
    policy = HFPolicy.from_dir(backbone, device="cpu")
    store = SampleStore(tmp_path / "pool.sqlite")
    pools = policy_pools(problems, policy, store, n=3, sampling=Sampling(max_new_tokens=8))
    assert [len(p) for p in pools] == [3] * 4
    for p, pool in zip(problems, pools, strict=True):
        for r in pool:  # graded by the testbed, exactly
            assert r.correct == arith.check_steps(p, r.text).correct
    sets = build_sets(spec, pools={p.id: pool for p, pool in zip(problems, pools, strict=True)})
    used = {t for row in sets["test_pool"] for t in row["responses"]}
    assert used <= {r.text for pool in pools for r in pool}
