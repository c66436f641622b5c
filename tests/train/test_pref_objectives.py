"""The further preference objectives: each formula against a hand-worked example, GPM beats BT on
a cyclic (rock-paper-scissors) set, VPL recovers two users with opposite preferences, and every
new checkpoint loads through the registry as a Reward."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rewardlab.rewards.base import check_reward  # noqa: E402
from rewardlab.train import pref_objectives as O  # noqa: E402
from rewardlab.train.loop import LoopConfig  # noqa: E402
from rewardlab.train.pref_io import PairRow  # noqa: E402
from rewardlab.train.preference import PreferenceConfig  # noqa: E402
from rewardlab.types import Candidate, Problem  # noqa: E402


def sp(x: float) -> float:
    """softplus(x) = −log σ(−x)."""
    return math.log1p(math.exp(x))


def t(*x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)


# ------------------------------------------------------------------------------ formulas


def test_gpm_score_and_loss_by_hand() -> None:
    # k = 2 (dim 4): s = (a0·b1 − a1·b0) + (a2·b3 − a3·b2)
    a, b = t(1.0, 2.0, 0.5, -1.0), t(3.0, -1.0, 2.0, 4.0)
    by_hand = (1 * -1 - 2 * 3) + (0.5 * 4 - (-1) * 2)  # −7 + 4 = −3
    assert float(O.gpm_score(a, b)) == pytest.approx(by_hand)
    assert float(O.gpm_score(b, a)) == pytest.approx(-by_hand)  # skew-symmetric
    assert float(O.gpm_score(a, a)) == 0.0  # s(y ≻ y) = 0
    assert O.gpm_rotate(t(1.0, 2.0)).tolist() == [-2.0, 1.0]
    # loss on two pairs, τ = 0.5, margin 0.1: mean of softplus(−(s − m)/τ)
    vc = torch.stack([t(1.0, 0.0), t(0.0, 1.0)])
    vr = torch.stack([t(0.0, 1.0), t(1.0, 0.0)])  # s = [1, −1]
    want = (sp(-(1 - 0.1) / 0.5) + sp(-(-1 - 0.1) / 0.5)) / 2
    assert float(O.gpm_loss(vc, vr, tau=0.5, margin=0.1)) == pytest.approx(want, abs=1e-6)
    with pytest.raises(ValueError, match="even"):
        O.gpm_rotate(t(1.0, 2.0, 3.0))


def test_vpl_elbo_by_hand() -> None:
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]])
    # KL = ½·[(1 + 1 − 1 − 0) + (0 + 2 − 1 − ln 2)] = ½·(2 − ln 2)
    assert float(O.gaussian_kl(mu, logvar)[0]) == pytest.approx(0.5 * (2 - math.log(2)), 1e-6)
    r_c, r_r = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])  # Δ = [1, −2]
    loss, nll, kl = O.vpl_loss(r_c, r_r, mu, logvar, beta=0.1)
    assert float(kl) == pytest.approx(0.5 * (2 - math.log(2)), 1e-6)
    assert float(nll) == pytest.approx((sp(-1) + sp(2)) / 2, abs=1e-6)
    assert float(loss) == pytest.approx(float(nll) + 0.1 * 0.5 * (2 - math.log(2)), abs=1e-6)


def test_ctrl_u_weights_by_hand() -> None:
    d1, d2 = t(1.0, 0.0), t(1.0, 2.0)  # u = [0, 2]
    want = (1.0 * 0.5 * (sp(-1) + sp(-1)) + math.exp(-2) * 0.5 * (sp(0) + sp(-2))) / 2
    assert float(O.ctrl_u_loss(d1, d2)) == pytest.approx(want, abs=1e-6)
    x1, x2 = d1.clone().requires_grad_(), d2.clone().requires_grad_()
    O.ctrl_u_loss(x1, x2).backward()  # the weight is constant: d/dΔ¹ = −w·½·σ(−Δ¹)/B
    assert x1.grad is not None
    assert float(x1.grad[1]) == pytest.approx(-math.exp(-2) * 0.5 * 0.5 / 2, abs=1e-6)


def test_prdp_by_hand() -> None:
    ra, rb = t(1.0, 3.0), t(0.0, 1.0)  # reward differences [1, 2]
    la, lb = t(0.5, 4.0), t(0.0, -1.0)
    # β = 2, no clip: (1 − 2·0.5)² = 0, (2 − 2·5)² = 64 → 32
    assert float(O.prdp_loss(ra, rb, la, lb, beta=2.0)) == pytest.approx(32.0)
    # clip 1: ρ → [0.5, 1] and [0, −1]: (1 − 1)² = 0, (2 − 2·2)² = 4 → 2
    assert float(O.prdp_loss(ra, rb, la, lb, beta=2.0, clip=1.0)) == pytest.approx(2.0)


def test_dpo_and_treg_by_hand() -> None:
    lp_c, lp_r, ref_c, ref_r = t(-2.0), t(-3.0), t(-2.5), t(-2.0)
    # β·[(−2 + 2.5) − (−3 + 2)] = 0.1·1.5
    assert float(O.dpo_loss(lp_c, lp_r, ref_c, ref_r, 0.1)) == pytest.approx(sp(-0.15), 1e-6)
    r_hat = torch.tensor([[0.0, math.log(3.0), 5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # third position is padding
    w = O.treg_weights(r_hat, mask, tau=1.0)  # 2·softmax([0, ln 3]) = [0.5, 1.5], then 0
    assert w[0].tolist() == pytest.approx([0.5, 1.5, 0.0])
    assert float(w.sum()) == pytest.approx(2.0)
    rho_c, rho_r = torch.tensor([[0.2, -0.1, 0.0]]), torch.tensor([[0.3, 0.0, 0.0]])
    w_r = torch.tensor([[1.0, 1.0, 0.0]])
    # Σ w^c ρ^c = 0.5·0.2 + 1.5·(−0.1) = −0.05; Σ w^r ρ^r = 0.3 → −log σ(−0.35)
    assert float(O.treg_regulariser(rho_c, rho_r, w, w_r)) == pytest.approx(sp(0.35), 1e-6)
    # uniform weights reduce the term to DPO on the summed token rewards
    ones = torch.ones(1, 3)
    assert float(O.treg_regulariser(rho_c, rho_r, ones, ones)) == pytest.approx(sp(0.2), 1e-6)


def test_drop_tokens_keeps_first_and_last() -> None:
    from rewardlab.train.pref_extra import drop_tokens

    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
    gen = torch.Generator().manual_seed(0)
    out = drop_tokens(mask, 0.99, gen)
    assert out.tolist() == [[1, 0, 0, 1, 0], [1, 1, 0, 0, 0]]
    assert drop_tokens(mask, 0.0).tolist() == mask.tolist()
    with pytest.raises(ValueError, match="drop probability"):
        drop_tokens(mask, 1.0)


# ------------------------------------------------------------------------------ tiny models


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rewardlab.train.tiny_policy import TinyPolicyConfig, build_model, build_tokenizer

    cfg = TinyPolicyConfig(
        hidden_size=32,
        layers=1,
        heads=2,
        intermediate_size=64,
        vocab_size=300,
        tokenizer_corpus=300,
    )
    out = tmp_path_factory.mktemp("backbone")
    build_model(cfg, build_tokenizer(cfg, out)).save_pretrained(out)
    return out


def _loop(steps: int, lr: float = 3e-3) -> LoopConfig:
    return LoopConfig(steps=steps, lr=lr, warmup_steps=5, log_every=steps, cpu=True)


RPS = ("rock", "paper", "scissors")


def cyclic_pairs(n_prompts: int = 6) -> list[PairRow]:
    """Rock-paper-scissors: paper ≻ rock, scissors ≻ paper, rock ≻ scissors, for every prompt."""
    rows = []
    for i in range(n_prompts):
        prompt = f"Round {i}: which move wins?"
        for winner, loser in (("paper", "rock"), ("scissors", "paper"), ("rock", "scissors")):
            rows.append(PairRow(prompt, winner, loser))
    return rows


def test_gpm_represents_a_cycle_that_bt_cannot(backbone: Path) -> None:
    from rewardlab.rewards.preference_rm import PreferenceRM
    from rewardlab.train.pref_trainer import pair_deltas, train_preference_model

    rows = cyclic_pairs()
    base = PreferenceConfig(loop=_loop(150, 3e-3), batch_size=9, max_length=32)
    bt = train_preference_model(backbone, replace(base, objective="bt"), rows)
    rm = PreferenceRM(bt.model, bt.tokenizer, max_length=32)
    bt_acc = float((pair_deltas(rm, rows) > 0).mean())
    gpm = train_preference_model(backbone, replace(base, objective="gpm", gpm_dim=4), rows)
    from rewardlab.rewards.pref_models import GPMReward

    reward = GPMReward(gpm.model, gpm.tokenizer, max_length=32)
    s = reward.preference_scores(
        [r.prompt for r in rows], [r.chosen for r in rows], [r.rejected for r in rows]
    )
    gpm_acc = float((s > 0).mean())
    # a scalar reward orders the three moves, so it gets at most 2 of each 3-cycle right
    assert bt_acc <= 2 / 3 + 1e-9
    assert gpm_acc == 1.0, f"GPM accuracy {gpm_acc} on the cycle (BT: {bt_acc})"
    p = reward.preference([rows[0].prompt], ["paper"], ["rock"])
    q = reward.preference([rows[0].prompt], ["rock"], ["paper"])
    assert p[0] > 0.5 and p[0] + q[0] == pytest.approx(1.0, abs=1e-5)  # P(a≻b) + P(b≻a) = 1


def two_user_pairs(rows: list[PairRow]) -> list[PairRow]:
    """User ``a`` labels as the gold rule; user ``b`` prefers the opposite of every pair."""
    a = [replace(r, extra={**r.extra, "user": "a"}) for r in rows]
    b = [
        replace(r, chosen=r.rejected, rejected=r.chosen, extra={**r.extra, "user": "b"})
        for r in rows
    ]
    return a + b


@pytest.fixture(scope="module")
def arith_pair_rows() -> dict[str, list[PairRow]]:
    from rewardlab.label.pref_sets import PrefSetSpec, build_sets

    sets = build_sets(PrefSetSpec(problems=30, n_ops=(1, 2), pairs_per_problem=6, noise=0.0))

    def rows(name: str) -> list[PairRow]:
        return [
            PairRow(r["prompt"], r["chosen"], r["rejected"], None, {"kind": r["kind"]})
            for r in sets[name]
        ]

    return {"train": rows("train_pairs"), "test": rows("test_pairs")}


def test_vpl_recovers_two_users_with_opposite_preferences(
    backbone: Path, arith_pair_rows: dict[str, list[PairRow]]
) -> None:
    """Brevity pairs (both answers right or both wrong): user a prefers the shorter response,
    user b the longer one; the held-out pairs are of other problems."""
    from rewardlab.rewards.pref_models import VPLReward
    from rewardlab.rewards.preference_rm import PreferenceRM
    from rewardlab.train.pref_trainer import pair_deltas, train_preference_model

    def brevity(rows: list[PairRow]) -> list[PairRow]:
        return [r for r in rows if r.extra["kind"] == "brevity"]

    train = two_user_pairs(brevity(arith_pair_rows["train"]))
    test = brevity(arith_pair_rows["test"])
    base = PreferenceConfig(loop=_loop(150), batch_size=16, max_length=64)
    vpl = train_preference_model(backbone, replace(base, objective="vpl"), train)
    bt = train_preference_model(backbone, replace(base, objective="bt"), train)

    prompts = [r.prompt for r in test]
    chosen, rejected = [r.chosen for r in test], [r.rejected for r in test]
    found = {}
    for user in ("a", "b"):
        ctx = [(r.prompt, r.chosen, r.rejected) for r in train if r.extra["user"] == user][:8]
        reward = VPLReward(vpl.model, vpl.tokenizer, ctx, max_length=64)
        d = reward.score_pairs(prompts, chosen) - reward.score_pairs(prompts, rejected)
        found[user] = float((d > 0).mean() if user == "a" else (d < 0).mean())
    rm = PreferenceRM(bt.model, bt.tokenizer, max_length=64)
    d_bt = pair_deltas(rm, test)
    bt_a, bt_b = float((d_bt > 0).mean()), float((d_bt < 0).mean())
    assert bt_a + bt_b <= 1.0  # one scalar reward cannot serve both users
    assert min(found.values()) >= 0.75, f"VPL per-user accuracy {found}; BT {bt_a}, {bt_b}"


# ------------------------------------------------------------------------------ checkpoints


def _tiny(objective: str, **kw: object) -> PreferenceConfig:
    return PreferenceConfig(
        objective=objective,
        loop=_loop(3),
        batch_size=4,
        max_length=48,
        vpl_groups=2,
        vpl_context=2,
        vpl_targets=2,
        **kw,  # type: ignore[arg-type]
    )


def _probe() -> tuple[list[Problem], list[Candidate]]:
    probs = [Problem(f"p{i}", f"What is {i} + 1?", str(i + 1)) for i in range(5)]
    cands = [
        Candidate(p.id, "x " * (2 * i + 1) + f"The answer is {i + 1}.", (), str(i + 1))
        for i, p in enumerate(probs)
    ]
    return probs, cands


@pytest.mark.parametrize("objective", ["gpm", "vpl", "ctrl-u", "prdp", "dpo", "t-reg"])
def test_new_objectives_save_and_load_as_rewards(
    objective: str,
    backbone: Path,
    arith_pair_rows: dict[str, list[PairRow]],
    tmp_path: Path,
) -> None:
    from rewardlab.rewards.registry import load_reward
    from rewardlab.train.pref_trainer import save_trained, train_preference_model

    rows = arith_pair_rows["train"][:24]
    rows = [replace(r, margin=1.0) for r in rows]
    if objective == "vpl":
        rows = two_user_pairs(rows)
    cfg = _tiny(objective)
    trained = train_preference_model(backbone, cfg, rows)
    assert trained.history and all(math.isfinite(h["loss"]) for h in trained.history)
    path = save_trained(trained, tmp_path / objective, cfg, name=objective)
    reward = load_reward(str(path), device="cpu")
    assert reward.params > 0
    probs, cands = _probe()
    check_reward(reward, probs, cands)
    one = [reward.score([p], [c])[0].value for p, c in zip(probs, cands, strict=True)]
    assert np.allclose([s.value for s in reward.score(probs, cands)], one, atol=1e-5)


def test_prdp_needs_reward_differences(
    backbone: Path, arith_pair_rows: dict[str, list[PairRow]]
) -> None:
    from rewardlab.train.pref_trainer import train_preference_model

    with pytest.raises(ValueError, match="reward difference"):
        train_preference_model(backbone, _tiny("prdp"), arith_pair_rows["train"][:8])
    with pytest.raises(ValueError, match="'user' column"):
        train_preference_model(backbone, _tiny("vpl"), arith_pair_rows["train"][:8])


def test_dpo_implicit_from_the_registry_spec(backbone: Path) -> None:
    from rewardlab.rewards.dpo_implicit import DPOImplicitReward
    from rewardlab.rewards.registry import check_reward as check_spec
    from rewardlab.rewards.registry import load_reward

    spec = f"dpo-implicit:policy={backbone},ref={backbone},beta=0.5"
    assert "dpo-implicit" in check_spec(spec)
    same = load_reward(spec, device="cpu")
    assert isinstance(same, DPOImplicitReward) and same.beta == 0.5
    probs, cands = _probe()
    assert [s.value for s in same.score(probs, cands)] == [0.0] * 5  # π = π_ref
    free = load_reward(f"dpo-implicit:policy={backbone}", device="cpu")
    assert all(s.value is not None and s.value < 0 for s in free.score(probs, cands))
    with pytest.raises(ValueError, match="needs policy"):
        load_reward("dpo-implicit:beta=0.1")
    with pytest.raises(ValueError, match="not a directory"):
        load_reward(f"dpo-implicit:policy={backbone},ref=/nonexistent")


def test_dpo_training_moves_the_implicit_reward_towards_chosen(
    backbone: Path, arith_pair_rows: dict[str, list[PairRow]], tmp_path: Path
) -> None:
    from rewardlab.rewards.registry import load_reward
    from rewardlab.train.pref_trainer import save_trained, train_preference_model

    rows = arith_pair_rows["train"][:32]
    cfg = replace(_tiny("dpo"), loop=_loop(30, 1e-2), batch_size=8)
    path = save_trained(train_preference_model(backbone, cfg, rows), tmp_path / "dpo", cfg)
    reward = load_reward(str(path), device="cpu")
    d = reward.score_pairs([r.prompt for r in rows], [r.chosen for r in rows]) - (
        reward.score_pairs([r.prompt for r in rows], [r.rejected for r in rows])
    )
    assert float((d > 0).mean()) >= 0.8  # fit on its own training pairs


def test_cli_trains_gpm_and_dpo_and_evaluates_the_dpo_implicit_spec(
    backbone: Path, tmp_path: Path
) -> None:
    import json

    from typer.testing import CliRunner

    from rewardlab.cli.main import app

    rows = [
        {"prompt": f"{i} + 1?", "chosen": f"{i} + 1 = {i + 1}", "rejected": f"{i} + 1 = {i}"}
        for i in range(6)
    ]
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    runner = CliRunner()
    common = ["--data", str(data), "--backbone", str(backbone), "--steps", "2"]
    gpm = runner.invoke(
        app, ["train", "--objective", "gpm", "--out", str(tmp_path / "gpm"), *common]
    )
    assert gpm.exit_code == 0, gpm.output
    assert json.loads((tmp_path / "gpm" / "rewardlab.json").read_text())["kind"] == "gpm"
    dpo = runner.invoke(
        app, ["train", "--objective", "dpo", "--out", str(tmp_path / "dpo"), *common]
    )
    assert dpo.exit_code == 0, dpo.output
    spec = f"dpo-implicit:policy={tmp_path / 'dpo'},ref={backbone},beta=0.1"
    ev = runner.invoke(
        app,
        ["eval", "pairwise", "--reward", spec, "--data", str(data), "--out", str(tmp_path / "ev")],
    )
    assert ev.exit_code == 0, ev.output
    result = json.loads((tmp_path / "ev" / "pairwise.json").read_text())
    assert result["metrics"]["accuracy"]["n"] == 6
