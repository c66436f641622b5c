"""Core types, step segmentation and the compute ledger."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rewardlab.compute import Cost, Ledger, forward_flops, scaled
from rewardlab.steps import get_segmenter, segment
from rewardlab.types import Budget, Candidate, Sampling, Score


def test_ledger_flops_by_hand() -> None:
    ledger = Ledger()
    ledger.record("policy", params=1000, prompt_tokens=10, generated_tokens=5)
    ledger.record("policy", params=1000, generated_tokens=5)
    ledger.record("prm", params=10, scored_tokens=3, flops=7.0)
    assert ledger.totals("policy") == Cost(10, 10, 0, 2 * 1000 * 20, 2)
    assert ledger.totals("prm").flops == 7.0
    total = ledger.totals()
    assert total.tokens == 23 and total.flops == 40_007.0 and total.calls == 3
    assert set(ledger.as_dict()) == {"policy", "prm"}
    assert scaled(Cost(10, 20, 0, 100.0, 1), 0.5) == Cost(5, 10, 0, 50.0, 1)


def test_ledger_is_thread_safe() -> None:
    ledger = Ledger()

    def work() -> None:
        for _ in range(1000):
            ledger.record("m", params=1, generated_tokens=1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.totals("m").generated_tokens == 4000


def test_bad_values_raise() -> None:
    with pytest.raises(ValueError):
        forward_flops(-1, 3)
    with pytest.raises(ValueError):
        Ledger().record("m", prompt_tokens=-1)
    with pytest.raises(ValueError, match="temperature"):
        Sampling(temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        Sampling(top_p=0)
    with pytest.raises(ValueError):
        Budget(n=0)
    with pytest.raises(ValueError, match="unknown step segmentation"):
        get_segmenter("sentences")


def test_score_and_candidate() -> None:
    s = Score.ungraded("timeout", seconds=3)
    assert s.value is None and s.info == {"reason": "timeout", "seconds": 3}
    c = Candidate("p", "a\nb", ("a", "b"), None, logprobs=(-1.0, -3.0))
    assert c.mean_logprob == -2.0
    assert Candidate("p", "", (), None).mean_logprob is None


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1)))
def test_line_segmentation_round_trip(lines: list[str]) -> None:
    clean = [ln.strip() for ln in lines if ln.strip() and "\n" not in ln and "\r" not in ln]
    clean = [c for c in clean if len(c.splitlines()) == 1]
    assert segment("\n".join(clean), "lines") == tuple(clean)


def test_paragraphs() -> None:
    assert segment("a\nb\n\n\nc\n  \n d", "paragraphs") == ("a\nb", "c", "d")
