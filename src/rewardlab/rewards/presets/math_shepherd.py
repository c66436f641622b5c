"""Math-Shepherd (Wang et al. 2024, "Math-Shepherd: Verify and Reinforce LLMs Step-by-step
without Human Annotations"): a causal LM whose next-token logits at a step tag say good or bad.

The model card's recipe (``peiyi9979/math-shepherd-mistral-7b-prm``), repeated here:

- the input is ``f"{question} {output}"`` where ``output`` is the steps, each followed by
  ``" ки"``, joined by ``"\\n"`` (``"Step 1: ... ки\\nStep 2: ... ки"``), tokenized once with
  the tokenizer's special tokens (Mistral's BOS);
- the tag id is the last token of ``encode("ки")``; the candidate ids are
  ``encode("+ -")`` without the BOS: ``[good, bad]`` (``"▁+"``, ``"▁-"`` for Mistral);
- the step score is ``softmax(logits[tag_position, [good, bad]])[0]`` = P(good) at every tag.

The card's policy wrote ``"Step k: "`` before every step; ``number_steps=True`` adds it to
steps that lack it. Tag positions are recorded from character offsets, so a step whose text
contains ``ки`` is still read at its own tag only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.rewards.presets.common import (
    StepScorer,
    batch_ids,
    fingerprint,
    load_auto,
    load_tokenizer,
    model_dir,
    param_count,
    scores_by_boundary,
    tokenize_marked,
)
from rewardlab.rewards.step_format import Encoded, boundary_index
from rewardlab.types import Candidate, Problem, Score

STEP_TAG = "ки"


def label_ids(tokenizer: Any, good: str, bad: str, where: str) -> tuple[int, int]:
    """``[good, bad]`` ids as the card takes them: ``encode(f"{good} {bad}")`` sans specials."""
    ids = list(tokenizer(f"{good} {bad}", add_special_tokens=False)["input_ids"])
    if len(ids) != 2:
        raise ValueError(
            f"{where}: {good!r} {bad!r} encode to {len(ids)} tokens, not one each; the recipe "
            "reads one logit per label"
        )
    return int(ids[0]), int(ids[1])


def tag_id(tokenizer: Any, tag: str, where: str) -> int:
    """The tag's id as the card takes it: the last token of ``encode(tag)``."""
    ids = list(tokenizer(tag, add_special_tokens=False)["input_ids"])
    if not ids:
        raise ValueError(f"{where}: the step tag {tag!r} encodes to no token")
    return int(ids[-1])


@dataclass(frozen=True, eq=False)
class MathShepherdPRM(StepScorer):
    """Math-Shepherd-style process reward (a :class:`~rewardlab.rewards.base.StepReward`).

    Args:
        model: the causal LM, eval mode.
        tokenizer: its fast tokenizer.
        tag / good / bad: step tag and label tokens (``ки``, ``+``, ``-``).
        number_steps: prefix ``"Step k: "`` to steps that do not start with ``"Step"``.
        aggregate, name, batch_size, fingerprint, max_length: as every preset.
    """

    model: Any
    tokenizer: Any
    tag: str = STEP_TAG
    good: str = "+"
    bad: str = "-"
    number_steps: bool = False
    aggregate: str = "last"
    name: str = "math-shepherd"
    batch_size: int = 8
    fingerprint: str = ""
    max_length: int | None = None

    def __post_init__(self) -> None:
        self.check(self.aggregate)
        label_ids(self.tokenizer, self.good, self.bad, self.name)
        tag_id(self.tokenizer, self.tag, self.name)

    @property
    def params(self) -> int:
        return param_count(self.model)

    def _steps(self, steps: Sequence[str]) -> list[str]:
        if not self.number_steps:
            return list(steps)
        return [s if s.startswith("Step") else f"Step {k}: {s}" for k, s in enumerate(steps, 1)]

    def encode(self, problem: Problem, candidate: Candidate) -> Encoded | Score:
        if not candidate.steps:
            return Score.ungraded("no steps")
        text = f"{problem.question} "
        start, marks = len(text), []
        for k, step in enumerate(self._steps(candidate.steps)):
            text += ("\n" if k else "") + f"{step} "
            marks.append((len(text), len(text) + len(self.tag)))
            text += self.tag
        tid = tag_id(self.tokenizer, self.tag, self.name)
        return tokenize_marked(
            self.tokenizer, text, marks, start, add_special_tokens=True, mark_id=tid
        )

    def read(self, batch: Sequence[Encoded]) -> list[Score]:
        good, bad = label_ids(self.tokenizer, self.good, self.bad, self.name)
        dev = next(self.model.parameters()).device
        ids, mask = batch_ids(batch, self.tokenizer, self.model, dev)
        logits = self.model(input_ids=ids, attention_mask=mask).logits
        rows, pos = boundary_index(batch)
        picked = logits[rows.to(dev), pos.to(dev)][:, [good, bad]].float()
        flat = picked.softmax(-1)[:, 0].cpu().numpy()
        return scores_by_boundary(flat, batch, self.aggregate)


def load_math_shepherd(
    path: str | Path,
    *,
    device: str | None = None,
    dtype: str = "float32",
    name: str | None = None,
    aggregate: str = "last",
    batch_size: int = 8,
    number_steps: bool = False,
) -> MathShepherdPRM:
    """Math-Shepherd from a local directory (``math-shepherd:path=DIR``); nothing downloads.

    Raises naming the problem when ``+``/``-`` are not one token each for its tokenizer.
    """
    p = model_dir(path)
    tokenizer = load_tokenizer(p)
    label_ids(tokenizer, "+", "-", str(p))
    model = load_auto(p, "AutoModelForCausalLM", device, dtype)
    limit = getattr(model.config, "max_position_embeddings", None)
    return MathShepherdPRM(
        model=model,
        tokenizer=tokenizer,
        number_steps=number_steps,
        aggregate=aggregate,
        name=name or "math-shepherd",
        batch_size=batch_size,
        fingerprint=fingerprint(p),
        max_length=int(limit) if isinstance(limit, int) else None,
    )
