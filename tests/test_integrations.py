"""The trainer adapters, called the way TRL, verl and OpenRLHF call them (their current source)."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from rewardlab.integrations.common import (
    TimedScorer,
    load_scorer,
    make_pair,
    parse_label,
    split_query,
)
from rewardlab.integrations.openrlhf import remote_url, write_reward_func_file
from rewardlab.integrations.trl import TRLReward, trl_reward
from rewardlab.integrations.verl import verl_compute_score
from rewardlab.rewards.shaping import Clip
from rewardlab.tasks.arith import generate, gold_solution
from rewardlab.types import Candidate, Problem, Score


@dataclass(frozen=True)
class SleepyReward:
    """Sleeps ``delay`` seconds on texts containing 'slow', scores len(text) otherwise."""

    delay: float = 5.0
    name: str = "sleepy"

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        out = []
        for c in candidates:
            if "slow" in c.text:
                time.sleep(self.delay)
            if "boom" in c.text:
                raise RuntimeError("grader crashed")
            out.append(Score(float(len(c.text))))
        return out


def test_split_query_cases() -> None:
    assert split_query("Q: 1+1?\nA: 2<|im_end|>", "Q: 1+1?\n") == ("Q: 1+1?\n", "A: 2", None)
    prompt, resp, note = split_query("<s>Q? 42</s></s>", "Q?")
    assert (prompt, resp, note) == ("Q?", " 42", None)
    _, resp, note = split_query("whole text", "not here")
    assert resp == "whole text" and note and "not found" in note
    _, resp, note = split_query("whole", None)
    assert resp == "whole" and note


def test_parse_label() -> None:
    assert parse_label("42") == ("42", {})
    assert parse_label(7) == ("7", {})
    assert parse_label('{"answer": "5", "meta": {"states": [2, 5]}}') == ("5", {"states": [2, 5]})
    assert parse_label({"answer": 5, "meta": {"k": 1}}) == ("5", {"k": 1})
    assert parse_label("{not json") == ("{not json", {})
    with pytest.raises(ValueError, match="'answer'"):
        parse_label('{"x": 1}')
    with pytest.raises(ValueError, match="text or a number"):
        parse_label(["a"])


def test_timeout_works_off_the_main_thread() -> None:
    scorer = TimedScorer(SleepyReward(delay=3.0), timeout_s=0.3, workers=2)
    pairs = [make_pair("q", t) for t in ("fast", "slow one", "boom", "ok")]
    t0 = time.monotonic()
    with ThreadPoolExecutor(1) as ex:  # a trainer's worker thread, never the main one
        scores = ex.submit(scorer.score, [p for p, _ in pairs], [c for _, c in pairs]).result()
    assert time.monotonic() - t0 < 2.0
    assert scores[0].value == 4.0 and scores[3].value == 2.0
    assert scores[1].value is None and scores[1].info["reason"] == "timeout"
    assert scores[2].value is None and "grader crashed" in scores[2].info["detail"]
    scorer.close()


def _arith(n: int = 2) -> list[Problem]:
    return generate(n=n, seed=3, n_ops=(2, 2))


def test_trl_adapter_call_shape_from_a_thread() -> None:
    """TRL's call: prompts, completions, completion_ids, dataset columns, trainer_state,
    log_metric as keywords; math-verify (whose own timeout is a main-thread alarm) from a
    worker thread."""
    fn = trl_reward("math-verify", timeout_s=20)
    logged: dict[str, float] = {}
    kwargs = {
        "prompts": [[{"role": "user", "content": "2+3?"}]] * 3,
        "completions": [
            [{"role": "assistant", "content": "The answer is \\boxed{5}"}],
            [{"role": "assistant", "content": "\\boxed{6}"}],
            [{"role": "assistant", "content": "\\boxed{5}"}],
        ],
        "completion_ids": [[1, 2], [3], [4]],
        "answer": ["5", "5", ""],  # no gold for the last: None, not 0.0
        "trainer_state": object(),
        "log_metric": lambda k, v: logged.__setitem__(k, v),
    }
    with ThreadPoolExecutor(1) as ex:
        out = ex.submit(lambda: fn(**kwargs)).result()
    assert out == [1.0, 0.0, None]
    assert logged == {"rewardlab_math_verify/ungraded": pytest.approx(1 / 3)}
    assert fn.__name__ == "rewardlab_math_verify"


def test_trl_adapter_step_transform_with_exact() -> None:
    p = _arith(1)[0]
    label = json.dumps({"answer": p.answer, "meta": {"states": list(p.meta["states"])}})
    good = gold_solution(p)
    bad = "\n".join([*good.split("\n")[:-1], f"The answer is {int(p.answer) + 1}."])
    fn = TRLReward(load_scorer("exact"), use_steps=lambda s: sum(Clip(0.5)(s)))
    out = fn(prompts=[p.question] * 2, completions=[good, bad], answer=[label, label])
    # gold: every step 1.0 -> clipped to 0; bad: the last step is wrong -> -0.5
    assert out == [0.0, -0.5]


def test_trl_adapter_question_column_scores_the_question_not_the_prompt() -> None:
    """A PRM reads its own template around the question: with ``question_column`` it gets the
    bare question (as when called directly), not the policy's templated prompt."""
    from rewardlab.policies.prompts import plain_prompt

    probs = _arith(2)
    texts = [gold_solution(p) for p in probs]
    scorer = load_scorer("prm", device="cpu")
    pairs = [make_pair(p.question, t) for p, t in zip(probs, texts, strict=True)]
    direct = [s.steps for s in scorer.score([q for q, _ in pairs], [c for _, c in pairs])]
    kwargs = {"prompts": [plain_prompt(p.question) for p in probs], "completions": texts}
    by_question = TRLReward(scorer, question_column="question").scores(
        **kwargs, question=[p.question for p in probs]
    )
    by_prompt = TRLReward(scorer).scores(**kwargs)
    assert [s.steps for s in by_question] == direct
    assert [s.steps for s in by_prompt] != direct
    with pytest.raises(ValueError, match="column 'question': no values"):
        TRLReward(scorer, question_column="question").scores(**kwargs)


def test_verl_compute_score_call_shape() -> None:
    compute_score = verl_compute_score("math-verify", timeout_s=20)
    ok = compute_score(
        data_source="openai/gsm8k",
        solution_str="so \\boxed{12}",
        ground_truth="12",
        extra_info={"question": "6+6?", "index": 0},
    )
    assert ok == {"score": 1.0, "ungraded": 0, "reason": ""}
    with ThreadPoolExecutor(1) as ex:  # verl may call it from a worker thread
        bad = ex.submit(compute_score, "x", "\\boxed{1}", "", None).result()
    assert bad["ungraded"] == 1 and bad["reason"] == "gold unparseable"


def test_openrlhf_reward_func_file_loads_like_openrlhf(tmp_path: Path) -> None:
    path = write_reward_func_file(tmp_path / "rf.py", "math-verify", timeout_s=20)
    # openrlhf.utils.agent.SingleTurnAgentExecutor: spec_from_file_location + exec_module
    spec = importlib.util.spec_from_file_location("reward_func", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out: dict[str, object] = {}

    def call() -> None:  # OpenRLHF offloads it with asyncio.to_thread
        out.update(module.reward_func(["Q: 1+1?\n\\boxed{2}<|im_end|>"], ["Q: 1+1?\n"], ["2"]))

    t = threading.Thread(target=call)
    t.start()
    t.join(60)
    assert out["rewards"].tolist() == [1.0]  # type: ignore[attr-defined]
    assert out["scores"].tolist() == [1.0]  # type: ignore[attr-defined]
    assert out["extra_logs"]["ungraded"].tolist() == [0.0]  # type: ignore[index]
    assert remote_url(port=5001) == "http://127.0.0.1:5001/get_reward"
    with pytest.raises(ValueError, match="unknown reward"):
        write_reward_func_file(tmp_path / "x.py", "math-verfy")
