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


def _default_like_rows() -> list[dict[str, Any]]:
    """The default run's strategy set: every aggregation of a PRM and an implicit PRM."""
    finals = {"pass": 0.9, "maj": 0.6, "bon[logprob]": 0.45, "bon[orm]": 0.5, "wmaj[orm]": 0.62}
    for agg in ("last", "min", "prod", "mean"):
        finals |= {f"bon[prm:{agg}]": 0.5, f"wmaj[prm:{agg}]": 0.55 + 0.01 * len(agg)}
    finals |= {f"bon[implicit-prm:{a}]": 0.42 for a in ("last", "min", "sum")}
    finals["bon[implicit-prm:mean]"] = 0.47
    return _rows(finals)


def _lines(ax: Any) -> dict[str, Any]:
    return {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}


def test_every_strategy_has_its_own_colour_in_every_panel() -> None:
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt

    from rewardlab.report.plots import scaling_figure

    fig = scaling_figure(_default_like_rows(), "t")
    try:
        seen: dict[str, str] = {}
        for ax in fig.axes:
            lines = _lines(ax)
            colours = [mcolors.to_hex(ln.get_color()) for ln in lines.values()]
            styled = [
                (c, ln.get_linestyle()) for c, ln in zip(colours, lines.values(), strict=True)
            ]
            assert len(set(styled)) == len(styled), lines.keys()  # maj and wmaj[prm:prod] differ
            for name, c in zip(lines, colours, strict=True):
                assert seen.setdefault(name, c) == c  # one colour per strategy in every panel
        greys = [
            n for n, c in seen.items() if max(mcolors.to_rgb(c)) - min(mcolors.to_rgb(c)) < 0.1
        ]
        assert sorted(greys) == ["maj", "pass (oracle ceiling)"]  # grey: majority (oracle black)
    finally:
        plt.close(fig)


def test_n_is_marked_on_the_flops_axis() -> None:
    import matplotlib.pyplot as plt

    from rewardlab.report.plots import scaling_figure

    fig = scaling_figure(_rows({"pass": 0.9, "maj": 0.6, "bon[orm]": 0.7}), "t")
    try:
        ax = fig.axes[0]
        assert ax.get_xlabel().startswith("FLOPs per problem")
        top = ax.child_axes
        assert len(top) == 1 and top[0].get_xlabel().startswith("N (candidates per problem")
        assert [t.get_text() for t in top[0].get_xticklabels()] == ["1", "2", "4"]
        assert list(top[0].get_xticks()) == [1e9, 2e9, 4e9]  # majority's FLOPs at N
        assert ax.get_ylabel().startswith("accuracy")
    finally:
        plt.close(fig)


def test_without_flops_the_axis_is_n_with_plain_ticks() -> None:
    import matplotlib.pyplot as plt

    from rewardlab.report.plots import scaling_figure

    rows = [{**r, "flops": 0.0} for r in _rows({"pass": 0.9, "maj": 0.6})]
    fig = scaling_figure(rows, "t")
    try:
        ax = fig.axes[0]
        fig.canvas.draw()
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4"]
        assert ax.get_xlabel().startswith("N: candidates per problem")
    finally:
        plt.close(fig)


def test_difficulty_plot_explains_itself_and_keeps_the_overview_choice() -> None:
    import matplotlib.pyplot as plt

    from rewardlab.report.plots import DIFFICULTY_MEANING, chosen_overview, difficulty_figure

    rows = _default_like_rows()
    # in bin "2" another implicit-prm aggregation would win; the panel must not switch
    for r in rows:
        if r["strategy"] == "bon[implicit-prm:last]" and r["difficulty"] == "2":
            r["accuracy"] = 0.99
    chosen = chosen_overview(rows)
    assert "bon[implicit-prm:mean]" in chosen and "bon[implicit-prm:last]" not in chosen
    fig = difficulty_figure(rows, DIFFICULTY_MEANING["arith"])
    assert fig is not None
    try:
        assert "number of operations" in fig._suptitle.get_text()
        panels = [ax for ax in fig.axes if ax.get_title().startswith("difficulty")]
        assert [ax.get_title() for ax in panels] == ["difficulty 1", "difficulty 2"]
        for ax in panels:
            assert set(_lines(ax)) == {
                n if n != "pass" else "pass (oracle ceiling)" for n in chosen
            }
        assert panels[0].get_ylabel().startswith("accuracy")
    finally:
        plt.close(fig)


def test_markdown_table_leaves_budgets_a_strategy_did_not_run_empty() -> None:
    from rewardlab.report.scaling import markdown_table

    def row(name: str, n: int) -> dict[str, object]:
        return {
            "strategy": name,
            "difficulty": "all",
            "n": n,
            "accuracy": 0.5,
            "ci_low": 0.4,
            "ci_high": 0.6,
        }

    table = markdown_table([row("maj", 1), row("maj", 8), row("beam[prm:4]", 1)])
    assert table.splitlines()[-1] == "| beam[prm:4] | 0.500 [0.40, 0.60] | — |"
