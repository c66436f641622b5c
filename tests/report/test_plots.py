"""Scaling plots: which strategy belongs to which reward, the overview, the split figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rewardlab.report.plots import overview, plot_by_difficulty, plot_scaling, reward_of


def _rows(finals: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    for name, final in finals.items():
        for n in (1, 2, 4):
            acc = 0.4 + (final - 0.4) * (n - 1) / 3
            for diff in ("all", "1", "2"):
                rows.append(
                    {
                        "strategy": name,
                        "difficulty": diff,
                        "n": n,
                        "flops": 1e9 * n,
                        "accuracy": acc,
                        "ci_low": acc - 0.05,
                        "ci_high": acc + 0.05,
                    }
                )
    return rows


def test_reward_of_reads_the_reward_out_of_a_strategy_name() -> None:
    assert reward_of("pass") is None and reward_of("maj") is None
    assert reward_of("bon[logprob]") == "logprob"
    assert reward_of("wmaj[prm:min]") == "prm"
    assert reward_of("bon[implicit-prm:sum]") == "implicit-prm"


def test_overview_keeps_oracle_majority_and_each_rewards_best_final_strategy() -> None:
    finals = {
        "pass": 0.9,
        "maj": 0.6,
        "bon[orm]": 0.3,
        "wmaj[orm]": 0.62,
        "bon[prm:last]": 0.5,
        "bon[prm:min]": 0.55,
        "wmaj[prm:min]": 0.55,  # tie with bon[prm:min]: the first by name stays
    }
    from rewardlab.report.plots import _series

    picked = overview(_series(_rows(finals), "all"))
    assert set(picked) == {"pass", "maj", "wmaj[orm]", "bon[prm:min]"}


def test_many_strategies_split_into_panels_per_reward(tmp_path: Path) -> None:
    finals = {"pass": 0.9, "maj": 0.6}
    finals |= {f"bon[r{i}:{a}]": 0.5 for i in range(3) for a in ("last", "min", "mean")}
    rows = _rows(finals)
    one = plot_scaling(_rows({"pass": 0.9, "maj": 0.6}), tmp_path / "one.png", "t")
    many = plot_scaling(rows, tmp_path / "many.png", "t")
    by_diff = plot_by_difficulty(rows, tmp_path / "diff.png")
    assert by_diff is not None
    from PIL import Image

    w1, h1 = Image.open(one).size
    w2, h2 = Image.open(many).size
    assert h2 > 1.5 * h1 and w2 > w1  # overview + 3 reward panels: 2 columns x 2 rows
    assert Image.open(by_diff).format == "PNG"
