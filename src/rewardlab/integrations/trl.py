"""A rewardlab reward as a TRL ``GRPOTrainer`` reward function.

TRL calls ``reward_func(prompts=..., completions=..., completion_ids=..., **kwargs)`` where the
keyword arguments are the dataset's other columns (one list entry per completion) plus
``trainer_state``, ``log_extra`` and ``log_metric``; it takes back one float per completion,
``None`` where the function cannot grade one (TRL turns it into NaN and ignores it in the
combined reward). Prompts and completions are text or conversations (lists of
``{"role", "content"}``); the reference answer comes from the column ``answer_column``.

>>> from rewardlab.integrations.trl import trl_reward            # doctest: +SKIP
>>> trainer = GRPOTrainer(model, reward_funcs=[trl_reward("math-verify")], ...)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rewardlab.integrations.common import TimedScorer, load_scorer, make_pair, parse_label
from rewardlab.types import Score


def message_text(x: Any) -> str:
    """Text of a TRL prompt/completion: a string, or a conversation's contents (the last
    message for a completion-like list of one, all joined by newlines otherwise)."""
    if isinstance(x, str):
        return x
    if isinstance(x, list) and all(isinstance(m, dict) and "content" in m for m in x):
        return "\n".join(str(m["content"]) for m in x)
    raise ValueError(f"expected text or a list of {{'role', 'content'}} messages, got {x!r:.80}")


class TRLReward:
    """Callable for ``GRPOTrainer(reward_funcs=[...])``; ``__name__`` is what TRL logs.

    Args:
        scorer: the timed scorer of a rewardlab reward.
        answer_column: the dataset column holding the reference answer (absent: "").
        use_steps: return a transform of the step scores instead of the value (e.g.
            ``lambda steps: sum(Clip(0.5)(steps))``), for PRM rewards in RL; a score without
            step values then gives None.
        log_ungraded: report the ungraded fraction through TRL's ``log_metric``.
        question_column: score against this dataset column's text as the question instead of
            the prompt (the prompt often wraps the question in a template the reward does not
            expect, e.g. ``"Question: {q}\\nAnswer:\\n"`` around a PRM's own template).
    """

    def __init__(
        self,
        scorer: TimedScorer,
        answer_column: str = "answer",
        use_steps: Callable[[Sequence[float]], float] | None = None,
        log_ungraded: bool = True,
        name: str | None = None,
        question_column: str | None = None,
    ) -> None:
        self.scorer = scorer
        self.question_column = question_column
        self.answer_column = answer_column
        self.use_steps = use_steps
        self.log_ungraded = log_ungraded
        self.__name__ = name or f"rewardlab_{scorer.name}".replace("-", "_")

    def scores(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[Score]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        answers = kwargs.get(self.answer_column)
        if answers is not None and len(answers) != len(completions):
            raise ValueError(
                f"column {self.answer_column!r}: {len(answers)} values for "
                f"{len(completions)} completions"
            )
        if self.question_column is not None:
            questions = kwargs.get(self.question_column)
            if questions is None or len(questions) != len(completions):
                n = "no" if questions is None else len(questions)
                raise ValueError(
                    f"column {self.question_column!r}: {n} values for "
                    f"{len(completions)} completions"
                )
            prompts = questions
        pairs = []
        for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
            answer, meta = parse_label(answers[i] if answers is not None else None)
            pairs.append(make_pair(message_text(p), message_text(c), answer, meta, pid=f"s{i}"))
        return self.scorer.score([p for p, _ in pairs], [c for _, c in pairs])

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Sequence[int]] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        scores = self.scores(prompts, completions, **kwargs)
        out: list[float | None] = []
        for s in scores:
            if s.value is None:
                out.append(None)
            elif self.use_steps is not None:
                out.append(float(self.use_steps(s.steps)) if s.steps else None)
            else:
                out.append(float(s.value))
        log_metric = kwargs.get("log_metric")
        if self.log_ungraded and callable(log_metric) and out:
            log_metric(f"{self.__name__}/ungraded", sum(v is None for v in out) / len(out))
        return out


def trl_reward(
    spec: str, timeout_s: float = 10.0, answer_column: str = "answer", **kwargs: Any
) -> TRLReward:
    """``reward_funcs=[trl_reward("math-verify")]``: any registry spec or checkpoint dir."""
    return TRLReward(load_scorer(spec, timeout_s=timeout_s, **kwargs), answer_column)
