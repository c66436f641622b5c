"""``eval pairwise`` on conversational pairs: HH-RLHF as shipped and TRL's message-list forms
read through the one parser preference training uses (``pref_io.parse_pairs`` ->
``pref_chat``), auto-detected per row, with a clear error for a mixed or malformed file."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rewardlab.cli.main import app
from rewardlab.evaluate.reward_eval import evaluate_pairwise
from rewardlab.train.pref_chat import read_chat_pairs, write_chat_pairs
from rewardlab.train.pref_io import DataError
from rewardlab.types import Candidate, Problem, Score

ASSETS = Path(__file__).resolve().parents[1] / "assets"
HH = ASSETS / "hh_rlhf_harmless_excerpt.jsonl"
HH_TWO_TURNS = ASSETS / "hh_rlhf_harmless_line1255.jsonl"


class FinalTurnLength:
    """Reward = characters of the response's text (an honest, model-free reward)."""

    name = "final-turn-length"

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        return [Score(float(len(c.text))) for c in candidates]


def _final_assistant_turn(dialogue: str) -> str:
    """The last assistant turn of an HH dialogue, cut by hand (independent of pref_chat)."""
    return dialogue.rsplit("\n\nAssistant: ", 1)[1]


def test_hh_excerpt_as_shipped_scores_the_final_turns() -> None:
    rows = [json.loads(line) for line in HH.read_text().splitlines()]
    res = evaluate_pairwise(FinalTurnLength(), HH, n_boot=50)
    assert res.details["form"] == "conversational" and res.details["n_pairs"] == len(rows) == 10
    marker = len("\n\nAssistant: ")  # the response is rendered in HH markup
    want_c = [marker + len(_final_assistant_turn(r["chosen"])) for r in rows]
    want_r = [marker + len(_final_assistant_turn(r["rejected"])) for r in rows]
    assert res.details["scores"]["chosen"] == want_c
    assert res.details["scores"]["rejected"] == want_r
    correct = np.array(want_c) > np.array(want_r)
    assert res.metrics["accuracy"].value == pytest.approx(correct.mean())
    # the length reward is the length baseline, so both agree exactly
    assert res.baseline["accuracy"].value == pytest.approx(correct.mean())


def test_gzipped_hh_file_and_every_trl_form_give_the_same_scores(tmp_path: Path) -> None:
    gz = tmp_path / "hh.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as fh:
        fh.write(HH.read_text() + HH_TWO_TURNS.read_text())
    pairs = read_chat_pairs(gz)
    files = {"hh": gz}
    for form in ("conversational", "implicit"):
        files[form] = write_chat_pairs(pairs, tmp_path / f"{form}.jsonl", form=form)
    files["parquet"] = write_chat_pairs(pairs, tmp_path / "conv.parquet", form="conversational")
    files["explicit"] = write_chat_pairs(pairs, tmp_path / "explicit.jsonl", form="explicit")
    results = {k: evaluate_pairwise(FinalTurnLength(), p, n_boot=20) for k, p in files.items()}
    ref = results["hh"].details["scores"]
    assert len(ref["chosen"]) == 11
    for k, res in results.items():
        assert res.details["scores"] == ref, k
        assert res.details["form"] == ("explicit" if k == "explicit" else "conversational"), k
    # row 11 keeps its two final assistant turns on the chosen side, in HH markup
    two = json.loads(HH_TWO_TURNS.read_text())
    tail = two["chosen"][len(two["rejected"].rsplit("\n\nAssistant: ", 1)[0]) :]
    assert tail.count("\n\nAssistant: ") == 2 and ref["chosen"][10] == len(tail)


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


CONV = {
    "chosen": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
    "rejected": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "go"}],
}
EXPLICIT = {"prompt": "hi", "chosen": "hello", "rejected": "go"}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([CONV, EXPLICIT], r":2: this row is explicit-prompt .* row 1 is conversational"),
        ([EXPLICIT, EXPLICIT, CONV], r":3: this row is conversational .* row 1 is explicit"),
        (
            [CONV, {**CONV, "rejected": [{"role": "user", "content": "hi"}, {"role": "bot"}]}],
            r":2: rejected\[1\] must be \{'role'",
        ),
        (
            [{**CONV, "prompt": [{"role": "assistant", "content": "x"}]}],
            r":1: the prompt must end with a user turn",
        ),
        ([{**CONV, "rejected": CONV["chosen"]}], r":1: chosen and rejected are the same"),
    ],
    ids=["conv-then-explicit", "explicit-then-conv", "bad-message", "bad-prompt", "same"],
)
def test_mixed_or_malformed_files_are_named(
    tmp_path: Path, rows: list[dict[str, object]], message: str
) -> None:
    path = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError, match=message):
        evaluate_pairwise(FinalTurnLength(), path, n_boot=10)


def test_dev_file_may_be_conversational(tmp_path: Path) -> None:
    res = evaluate_pairwise(FinalTurnLength(), HH, dev=HH, n_boot=20)
    assert res.details["calibration"]["n_dev"] == 10
    assert "ece/temperature" in res.metrics


def test_cli_reads_hh_and_refuses_a_mixed_file_before_loading_a_model(tmp_path: Path) -> None:
    runner = CliRunner()
    data = tmp_path / "hh.jsonl"
    shutil.copy(HH, data)
    ok = runner.invoke(
        app,
        [
            *("eval", "pairwise", "--reward", "unit-test-quality", "--data", str(data)),
            *("--out", str(tmp_path / "ev"), "--n-boot", "20"),
        ],
    )
    assert ok.exit_code == 0, ok.output
    result = json.loads((tmp_path / "ev" / "pairwise.json").read_text())
    assert result["details"]["form"] == "conversational"
    assert result["metrics"]["accuracy"]["n"] == 10
    mixed = _write(tmp_path / "mixed.jsonl", [CONV, EXPLICIT])
    bad = runner.invoke(
        app,
        ["eval", "pairwise", "--reward", "orm", "--data", str(mixed), "--out", str(tmp_path)],
    )
    assert bad.exit_code == 2, bad.output
    assert "mixed.jsonl:2: this row is explicit-prompt" in bad.output
    assert not (tmp_path / "pairwise.json").exists()
