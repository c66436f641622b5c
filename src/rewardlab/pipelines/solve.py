"""The ``rewardlab solve`` job: answer a question with a saved compute-optimal selector.

1. **Predict the difficulty** (Snell et al. 2024, "predicted" bins): sample ``probe_n``
   solutions at the run's sampling, score them with the selector's verifier, place their mean
   final score into a bin with the saved thresholds. Its cost is reported apart (``probe``):
   Snell et al. also leave the difficulty estimate out of the budget.
2. **Pick** the bin's choice at the budget (``n`` = a level, or the largest level whose FLOPs
   allowance fits ``max_flops``).
3. **Run** it: an offline config samples ``n`` candidates (at the config's temperature /
   top-p) and selects one with the strategy's ``select``; an online config (beam search,
   DVTS, MCTS ...) runs its search once at budget ``n`` through the step-expansion engine of
   :mod:`rewardlab.search.online`, with the run's step settings and its own spec (options
   kept, from the run's summary).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rewardlab.pipelines.scaling import build_arrays
from rewardlab.pipelines.tune import parse_config
from rewardlab.search.compute_optimal import FittedSelector, bin_of
from rewardlab.search.offline import Selector, parse_strategy
from rewardlab.search.pool import derive_seed, make_candidate
from rewardlab.steps import segment
from rewardlab.types import Candidate, Problem, Sampling, Score


@dataclass
class Solver:
    """The selector with its policy and task loaded once (for many problems); the run's
    rewards are loaded on first use, by name (``reward``)."""

    selector: FittedSelector
    policy: Any
    task: Any
    rewards: dict[str, Any] = field(default_factory=dict)  # loaded so far, by name
    specs: list[str] = field(default_factory=list)  # the run's reward specs not loaded yet

    @classmethod
    def load(cls, selector: FittedSelector, policy: str | None = None) -> Solver:
        from rewardlab.policies.registry import load_policy
        from rewardlab.tasks.registry import load_task

        meta = selector.meta
        if meta.get("task") == "arith":
            task = load_task("arith", 1)[0]
        else:
            from rewardlab.tasks.math_check import MathTask

            task = MathTask()
        specs = [str(s) for s in meta.get("rewards_used", [])]  # type: ignore[attr-defined]
        return cls(selector, load_policy(policy or str(meta["policy"])), task, specs=specs)

    def reward(self, name: str) -> Any:
        """The run's reward called ``name`` (its specs are loaded in order until found)."""
        from rewardlab.rewards.registry import load_reward

        while name not in self.rewards and self.specs:
            r = load_reward(self.specs.pop(0))
            self.rewards[r.name] = r
        if name not in self.rewards:
            raise ValueError(f"reward {name!r} is not among the run's rewards {list(self.rewards)}")
        return self.rewards[name]


def free_problem(question: str, task: str) -> Problem:
    """A problem from a bare question (no reference answer), with a content-derived id."""
    if not question.strip():
        raise ValueError("the question is empty")
    pid = "q-" + hashlib.sha256(question.encode()).hexdigest()[:12]
    return Problem(pid, question, "", task=task)


def _sample(solver: Solver, problem: Problem, n: int, sampling: Sampling) -> list[Candidate]:
    prompt = solver.policy.format_prompt(problem.question)
    seeded = replace(sampling, seed=derive_seed(sampling.seed, problem.id, n, sampling))
    comps = solver.policy.sample([prompt], n, seeded)[0]
    name = solver.policy.name
    if problem.answer:
        return [make_candidate(solver.task, problem, c, i, name) for i, c in enumerate(comps)]
    # a free question: no reference to check or annotate against
    return [
        Candidate(
            problem_id=problem.id,
            text=c.text,
            steps=segment(c.text, solver.task.segmentation),
            answer=solver.task.extract_answer(c.text),
            prompt_tokens=c.prompt_tokens,
            generated_tokens=c.generated_tokens,
            logprobs=c.logprobs,
            segmentation=solver.task.segmentation,
            index=i,
            meta={"policy": name, "finish_reason": c.finish_reason},
        )
        for i, c in enumerate(comps)
    ]


def _scores(reward: Any, problem: Problem, cands: Sequence[Candidate]) -> tuple[list[Score], bool]:
    is_step = callable(getattr(reward, "score_steps", None))
    fn = reward.score_steps if is_step else reward.score
    return fn([problem] * len(cands), list(cands)), is_step


def _tokens(cands: Sequence[Candidate]) -> int:
    return int(sum(c.prompt_tokens + c.generated_tokens for c in cands))


def _flops(solver: Solver, cands: Sequence[Candidate], reward: str | None) -> float:
    params = int(solver.policy.params)
    v = int(solver.selector.meta.get("reward_params", {}).get(reward, 0)) if reward else 0  # type: ignore[attr-defined]
    return 2.0 * (params + v) * _tokens(cands)


def solve_one(
    solver: Solver,
    problem: Problem,
    *,
    n: int | None = None,
    max_flops: float | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Answer ``problem`` within the budget (see the module doc); a JSON-ready dict."""
    sel = solver.selector
    base = Sampling(**sel.meta["sampling"])  # type: ignore[arg-type]
    base = replace(base, seed=seed)
    probes = _sample(solver, problem, sel.probe_n, base)
    scored, is_step = _scores(solver.reward(sel.verifier), problem, probes)
    finals = [
        (s.steps[-1] if is_step and s.steps else s.value) for s in scored if s.value is not None
    ]
    if not finals:
        reasons = sorted({str(s.info.get("reason")) for s in scored})
        raise ValueError(f"verifier {sel.verifier!r} graded none of the probes: {reasons}")
    mean = float(np.mean(finals))
    bin_ = bin_of(mean, sel.thresholds)
    choice = sel.pick(bin_, n=n, max_flops=max_flops)
    strategy_name, t, p = parse_config(choice.config)
    from rewardlab.search.online import is_online

    spec = online_spec(sel, strategy_name)
    if spec is not None and is_online(spec):
        out = run_online_choice(solver, problem, spec, choice.n, base)
        return {
            **out,
            "problem_id": problem.id,
            "question": problem.question,
            "correct": solver.task.is_correct(problem, out["answer"]) if problem.answer else None,
            "predicted_bin": bin_ + 1,
            "probe_mean_score": mean,
            "config": choice.config,
            "n": choice.n,
            "level": choice.level,
            "allowance_flops": choice.max_flops,
            "probe_flops": _flops(solver, probes, sel.verifier),
        }
    strategy = parse_strategy(strategy_name)
    if not isinstance(strategy, Selector):
        raise ValueError(f"config {choice.config!r} cannot choose without the answer key")
    sampling = base if t is None or p is None else replace(base, temperature=t, top_p=p)
    cands = _sample(solver, problem, choice.n, sampling)
    reward = str(getattr(strategy, "reward", "") or "") or None
    outcome: dict[str, list[list[Score]]] = {}
    steps: dict[str, list[list[Score]]] = {}
    if reward is not None:
        got, r_step = _scores(solver.reward(reward), problem, cands)
        (steps if r_step else outcome)[reward] = [got]
    arrays = build_arrays([problem], [cands], solver.task, outcome, steps)
    pick = strategy.select(arrays, 0)
    chosen = None if pick is None else cands[pick]
    answer = None if chosen is None else chosen.answer
    flops_main = _flops(solver, cands, reward)
    flops_probe = _flops(solver, probes, sel.verifier)
    return {
        "problem_id": problem.id,
        "question": problem.question,
        "answer": answer,
        "text": None if chosen is None else chosen.text,
        "correct": solver.task.is_correct(problem, answer) if problem.answer else None,
        "predicted_bin": bin_ + 1,
        "probe_mean_score": mean,
        "config": choice.config,
        "n": choice.n,
        "level": choice.level,
        "allowance_flops": choice.max_flops,
        "flops": flops_main,
        "probe_flops": flops_probe,
        "tokens": _tokens(cands),
    }


def online_spec(selector: FittedSelector, name: str) -> str | None:
    """The spec of online config ``name``: the run's own (options kept) or, for a name like
    ``beam[prm:4]`` from a hand-made online.jsonl, ``beam:prm:4``; None for other names."""
    specs = selector.meta.get("online_specs") or {}
    if name in specs:  # type: ignore[operator]
        return str(specs[name])  # type: ignore[index]
    head, sep, rest = name.partition("[")
    if sep and rest.endswith("]"):
        return f"{head}:{rest[:-1]}"
    return None


def run_online_choice(
    solver: Solver, problem: Problem, spec: str, n: int, base: Sampling
) -> dict[str, Any]:
    """Run online strategy ``spec`` at budget ``n`` with the run's step settings (the engine of
    :mod:`rewardlab.search.online`, no store); the answer, its text, FLOPs and tokens."""
    from rewardlab.rewards.registry import load_reward
    from rewardlab.search.online import EngineConfig, StepExpander, parse_online

    strategy, reward_spec = parse_online(spec)
    try:
        reward = solver.reward(reward_spec)  # a reward name of the run
    except ValueError:
        reward = solver.rewards.setdefault(reward_spec, load_reward(reward_spec))
    engine_meta = dict(solver.selector.meta.get("online_engine") or {})  # type: ignore[call-overload]
    sampling = Sampling(
        float(engine_meta.get("temperature", base.temperature)),
        base.top_p,
        int(engine_meta.get("step_tokens", 48)),
        base.seed,
    )
    engine = StepExpander(solver.policy, solver.task, reward, EngineConfig(sampling=sampling))
    result = strategy.search(problem, engine, n)
    chosen = None if result.chosen is None else result.candidates[result.chosen]
    return {
        "answer": result.answer,
        "text": None if chosen is None else chosen.text,
        "flops": float(result.cost.flops),
        "tokens": int(result.cost.tokens),
        "shortfall": result.shortfall,
    }
