"""Checkpoints written by every trainer load through ``load_reward(dir)`` and conform."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from rewardlab.rewards.base import check_reward  # noqa: E402
from rewardlab.rewards.learned import MANIFEST, Manifest, load_learned_reward  # noqa: E402
from rewardlab.rewards.registry import load_reward  # noqa: E402
from rewardlab.tasks import arith  # noqa: E402
from rewardlab.train.process import (  # noqa: E402
    RMTrainConfig,
    train_implicit,
    train_orm,
    train_ovm,
    train_prm,
)
from rewardlab.types import Candidate, Problem  # noqa: E402
from tinymodels import TinyLlamaSpec, build_tiny_llama  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny"), TinyLlamaSpec(train_steps=0))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Outcome rows (gold = 1, off-by-one answer = 0) and the matching stepwise rows."""
    root = tmp_path_factory.mktemp("data")
    outcome, stepwise = [], []
    for i, p in enumerate(arith.generate(8, seed=5, n_ops=(1, 3))):
        steps = arith.gold_steps(p)
        ok = i % 2 == 0
        if not ok:
            steps[-1] = f"The answer is {int(p.answer) + 1}."
        outcome.append({"prompt": p.question, "completions": steps, "label": ok})
        labels = [True] * (len(steps) - 1) + [ok]
        stepwise.append({"prompt": p.question, "completions": steps, "labels": labels})
    (root / "o.jsonl").write_text("".join(json.dumps(r) + "\n" for r in outcome))
    (root / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stepwise))
    return root / "o.jsonl", root / "s.jsonl"


def _pool() -> tuple[list[Problem], list[Candidate]]:
    probs = arith.generate(3, seed=11, n_ops=(2, 3))
    cands = [Candidate(p.id, "", tuple(arith.gold_steps(p)), p.answer) for p in probs]
    return probs, cands


TRAINERS = {
    "orm": (train_orm, 0, "orm", "ORM"),
    "prm": (train_prm, 1, "prm-classifier", "ClassifierPRM"),
    "prm-tag": (train_prm, 1, "prm-tag", "TagPRM"),
    "ovm": (train_ovm, 0, "ovm", "OVM"),
    "implicit": (train_implicit, 0, "implicit-prm", "ImplicitPRM"),
}


@pytest.mark.parametrize("objective", list(TRAINERS))
def test_saved_checkpoint_loads_through_load_reward(
    tiny: Path, data: tuple[Path, Path], tmp_path: Path, objective: str
) -> None:
    fn, which, recipe, cls = TRAINERS[objective]
    out = tmp_path / f"rm_{objective}"
    cfg = RMTrainConfig(
        data=str(data[which]),
        backbone=str(tiny),
        out=str(out),
        steps=2,
        batch_size=4,
        warmup_steps=1,
        log_every=1,
        cpu=True,
        head="tag" if objective == "prm-tag" else "classifier",
    )
    result = fn(cfg)
    man = json.loads((out / MANIFEST).read_text())
    assert man["recipe"] == recipe and man["params"] > 0
    reward = load_reward(str(out), device="cpu")
    assert type(reward).__name__ == cls
    assert reward.name == out.name and reward.params == result.manifest.params
    problems, cands = _pool()
    check_reward(reward, problems, cands)
    if hasattr(reward, "score_steps"):
        scores = reward.score_steps(problems, cands)
        assert [len(s.steps) for s in scores] == [len(c.steps) for c in cands]
    named = load_reward(str(out), name="mine", device="cpu", aggregate="min")
    assert named.name == "mine"


def test_cli_train_writes_checkpoint_log_plot_and_report(
    tiny: Path, data: tuple[Path, Path], tmp_path: Path
) -> None:
    from rewardlab.cli.train_rm import OBJECTIVES, objective_fn, train

    assert set(OBJECTIVES) >= {"orm", "prm", "ovm", "implicit-prm"}  # named as the rewards
    assert objective_fn("implicit") is objective_fn("implicit-prm")  # the old name still works
    out = tmp_path / "cli_orm"
    train(
        objective="orm",
        data=data[0],
        out=out,
        backbone=tiny,
        steps=2,
        lr=1e-3,
        batch_size=4,
        seed=0,
        head="classifier",
        beta=0.05,
        separator="\\n",
        name="my-orm",
        threads=1,
    )
    for f in (
        MANIFEST,
        "model.safetensors",
        "tokenizer.json",
        "train_log.jsonl",
        "loss.png",
        "report.md",
    ):
        assert (out / f).is_file(), f
    assert json.loads((out / MANIFEST).read_text())["name"] == "my-orm"
    assert load_reward(str(out), device="cpu").name == "my-orm"
    with pytest.raises(Exception, match="did you mean 'prm'"):
        objective_fn("pmr")


def test_manifest_validates_and_foreign_loaders_are_dispatched(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown recipe"):
        Manifest(recipe="nope")
    with pytest.raises(ValueError, match="good_token"):
        Manifest(recipe="prm-tag")
    with pytest.raises(ValueError, match="unknown keys"):
        Manifest.from_dict({"recipe": "orm", "sparator": "\n"})
    (tmp_path / MANIFEST).write_text(json.dumps({"kind": "other", "loader": "pathlib:Path"}))
    got: Any = load_learned_reward(tmp_path)
    assert got == tmp_path  # the checkpoint's own loader was called with the directory


SHIPPED = (("orm", "ORM"), ("prm", "ClassifierPRM"), ("implicit-prm", "ImplicitPRM"))


@pytest.mark.parametrize(("name", "cls"), SHIPPED)
def test_shipped_default_models_load_and_conform(name: str, cls: str) -> None:
    """The shipped ORM, PRM and implicit PRM (whose reference is the shipped tiny policy)
    load by registry name with a weights fingerprint and conform to the Reward contract."""
    problems, cands = _pool()
    reward = load_reward(name, device="cpu")
    assert reward.name == name and type(reward).__name__ == cls and reward.params > 0
    assert len(reward.fingerprint) == 16
    check_reward(reward, problems, cands)


def test_retrained_weights_get_a_new_fingerprint_and_never_reuse_cached_scores(
    tiny: Path, data: tuple[Path, Path], tmp_path: Path
) -> None:
    from rewardlab.search.pool import reward_store_label, score_pool
    from rewardlab.store import SampleStore

    out = tmp_path / "orm"

    def train(seed: int) -> Any:
        cfg = RMTrainConfig(
            data=str(data[0]),
            backbone=str(tiny),
            out=str(out),
            steps=2,
            batch_size=4,
            warmup_steps=1,
            lr=1e-2,
            seed=seed,
            cpu=True,
        )
        train_orm(cfg)
        return load_reward(str(out), name="orm", device="cpu")

    first = train(0)
    assert len(first.fingerprint) == 16
    assert load_reward(str(out), name="orm", device="cpu").fingerprint == first.fingerprint
    problems, cands = _pool()
    pool = [[c] for c in cands]
    keys = [f"req-{p.id}" for p in problems]
    store = SampleStore(tmp_path / "s.sqlite")
    old = [row[0].value for row in score_pool(first, problems, pool, keys, store)]
    second = train(1)
    assert second.fingerprint != first.fingerprint
    assert reward_store_label(second) != reward_store_label(first)
    assert reward_store_label(second, step=True).endswith("#steps")
    new = [row[0].value for row in score_pool(second, problems, pool, keys, store)]
    fresh = [s.value for s in second.score(problems, cands)]
    assert new == pytest.approx(fresh) and new != pytest.approx(old)
