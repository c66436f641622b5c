"""Process reward models scored in ONE forward pass per candidate, read at every step boundary.

Every recipe here is a :class:`~rewardlab.rewards.base.StepReward` (``score_steps``: one value
per step) and a :class:`~rewardlab.rewards.base.Reward` (``score``: the same steps, aggregated;
``last`` by default, Snell et al. 2024). Candidates are encoded with the shared
:class:`~rewardlab.rewards.step_format.StepFormat`, right-padded, batched, run through the model
once, and read at ``boundaries[t]`` for every step ``t``: never one pass per prefix. For a
causal model the output at ``boundaries[t]`` depends only on tokens ``<= boundaries[t]``, so it
equals the output of the prefix run alone; :func:`score_per_prefix` is that slow reference,
kept for tests and the benchmark.

Recipes:

- :class:`TagPRM` (Math-Shepherd, Wang et al. 2024): a causal LM; step score =
  ``softmax(logit[good], logit[bad])[good]`` at the tag after the step.
- :class:`ClassifierPRM` (Qwen2.5-Math-PRM, Zhang et al. 2025; TRL ``PRMTrainer``): a 2-class
  token-classification head; step score = ``P(class 1)`` at the separator.
- :class:`OVM` (Yu et al. 2024, outcome-supervised value model): a 1-output token head (value
  head) regressed on the outcome label; step score = the value at the separator.

The outcome ORM is in :mod:`rewardlab.rewards.orm`, the implicit PRM in
:mod:`rewardlab.rewards.implicit`. The ``*_logits`` functions are shared with the trainers in
:mod:`rewardlab.train.process`, so training supervises the very positions scoring reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from rewardlab.rewards.step_format import (
    Encoded,
    StepFormat,
    boundary_index,
    pad_id_of,
    pad_right,
)
from rewardlab.types import Candidate, Problem, Score

Aggregate = Literal["last", "min", "mean", "prod", "sum"]
AGGREGATES: tuple[str, ...] = ("last", "min", "mean", "prod", "sum")


def aggregate(values: Sequence[float], how: str) -> float:
    """One number from step values: ``last`` (Snell et al. 2024), ``min`` (Lightman et al.
    2023), ``mean``, ``prod`` (P(all steps right) for independent probabilities) or ``sum``
    (the implicit PRM's outcome reward ``r = sum_t r_t``, Yuan et al. 2024).

    >>> aggregate([0.9, 0.5, 0.8], "min"), round(aggregate([0.9, 0.5, 0.8], "prod"), 2)
    (0.5, 0.36)
    """
    if how not in AGGREGATES:
        raise ValueError(f"unknown aggregation {how!r}; choose one of {list(AGGREGATES)}")
    if not values:
        raise ValueError("no step values to aggregate")
    arr = np.asarray(values, dtype=float)
    if how == "last":
        return float(arr[-1])
    return float(getattr(np, how)(arr))


class StepReader(Protocol):
    """What :func:`score_one_pass` needs of a recipe: a format, limits, and one batched read."""

    @property
    def name(self) -> str: ...

    @property
    def tokenizer(self) -> Any: ...

    @property
    def fmt(self) -> StepFormat: ...

    @property
    def aggregate(self) -> str: ...

    @property
    def batch_size(self) -> int: ...

    @property
    def max_length(self) -> int | None: ...

    def read(self, batch: Sequence[Encoded]) -> list[np.ndarray]:
        """Step values of every sequence of ``batch`` (one forward pass), one per boundary."""
        ...


def encode_candidates(
    reader: StepReader, problems: Sequence[Problem], candidates: Sequence[Candidate]
) -> list[Encoded | Score]:
    if len(problems) != len(candidates):
        raise ValueError("problems and candidates must have the same length")
    out: list[Encoded | Score] = []
    limit = reader.max_length
    for p, c in zip(problems, candidates, strict=True):
        if not c.steps:
            out.append(Score.ungraded("no steps"))
            continue
        enc = reader.fmt.encode(reader.tokenizer, p.question, c.steps)
        if limit is not None and len(enc) > limit:
            out.append(Score.ungraded(f"{len(enc)} tokens, more than the model's {limit}"))
        else:
            out.append(enc)
    return out


def run_batched(reader: StepReader, encoded: Sequence[Encoded]) -> list[np.ndarray]:
    """Step values of every sequence, in batches of similar length (input order kept)."""
    import torch

    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out: list[np.ndarray] = [np.zeros(0)] * len(encoded)
    with torch.inference_mode():
        for start in range(0, len(order), reader.batch_size):
            chunk = order[start : start + reader.batch_size]
            for i, vals in zip(chunk, reader.read([encoded[i] for i in chunk]), strict=True):
                out[i] = vals
    return out


def score_one_pass(
    reader: StepReader, problems: Sequence[Problem], candidates: Sequence[Candidate]
) -> list[Score]:
    """Scores of every candidate from one forward pass each (batched): the fast path."""
    items = encode_candidates(reader, problems, candidates)
    todo = [i for i, it in enumerate(items) if isinstance(it, Encoded)]
    values = run_batched(reader, [items[i] for i in todo])  # type: ignore[misc]
    for i, vals in zip(todo, values, strict=True):
        items[i] = _score(vals, reader.aggregate)
    return items  # type: ignore[return-value]


def score_per_prefix(
    reader: StepReader, problems: Sequence[Problem], candidates: Sequence[Candidate]
) -> list[Score]:
    """The slow reference: every prefix (question + steps ``0..t``) run alone, its last read.

    One pass per step instead of one per candidate; equal to :func:`score_one_pass` for the
    causal recipes up to floating-point noise (the test and the benchmark compare them).
    """
    items = encode_candidates(reader, problems, candidates)
    todo = [i for i, it in enumerate(items) if isinstance(it, Encoded)]
    prefixes = [
        (i, items[i].prefix(t))  # type: ignore[union-attr]
        for i in todo
        for t in range(len(items[i].boundaries))  # type: ignore[union-attr]
    ]
    last = run_batched(reader, [p for _, p in prefixes])
    per: dict[int, list[float]] = {}
    for (i, _), vals in zip(prefixes, last, strict=True):
        per.setdefault(i, []).append(float(vals[-1]))
    for i in todo:
        items[i] = _score(np.asarray(per[i]), reader.aggregate)
    return items  # type: ignore[return-value]


def _score(values: np.ndarray, how: str) -> Score:
    steps = tuple(float(v) for v in values)
    if not all(np.isfinite(steps)):
        return Score.ungraded("non-finite step score", steps=steps)
    return Score(aggregate(steps, how), steps)


# ------------------------------------------------------------------ shared differentiable reads


def model_device(model: Any) -> Any:
    return next(model.parameters()).device


def batch_tensors(model: Any, tokenizer: Any, batch: Sequence[Encoded]) -> tuple[Any, ...]:
    """``(ids, mask, rows, positions)`` of a batch on the model's device (right-padded)."""
    ids, mask = pad_right(batch, pad_id_of(tokenizer, model))
    rows, pos = boundary_index(batch)
    dev = model_device(model)
    return ids.to(dev), mask.to(dev), rows.to(dev), pos.to(dev)


def tag_logits(model: Any, ids: Any, mask: Any, rows: Any, pos: Any, good: int, bad: int) -> Any:
    """``[N, 2]`` logits ``(bad, good)`` of a causal LM at each boundary (Math-Shepherd)."""
    logits = model(input_ids=ids, attention_mask=mask).logits
    return logits[rows, pos][:, [bad, good]].float()


def classifier_logits(model: Any, ids: Any, mask: Any, rows: Any, pos: Any) -> Any:
    """``[N, C]`` logits of a token-classification head at each boundary (Qwen2.5-Math-PRM)."""
    return model(input_ids=ids, attention_mask=mask).logits[rows, pos].float()


def split_counts(flat: Any, batch: Sequence[Encoded]) -> list[np.ndarray]:
    """Cut a flat per-boundary tensor back into one array per sequence."""
    arr = flat.detach().float().cpu().numpy()
    counts = np.cumsum([len(e.boundaries) for e in batch])[:-1]
    return list(np.split(arr, counts))


def token_id(tokenizer: Any, text: str) -> int:
    """The id of ``text`` when it is exactly one token (good/bad label tokens)."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if len(ids) != 1:
        raise ValueError(f"label token {text!r} is {len(ids)} tokens for this tokenizer, not one")
    return int(ids[0])


# ----------------------------------------------------------------------------------- recipes


def param_count(model: Any) -> int:
    """Number of parameters of a torch module."""
    return int(sum(p.numel() for p in model.parameters()))


def max_positions(model: Any) -> int | None:
    """The model's context length from its config, if it says."""
    value = getattr(model.config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) else None


def check_settings(aggregate_how: str, batch_size: int) -> None:
    """Validate the settings every recipe shares (called from each ``__post_init__``)."""
    if aggregate_how not in AGGREGATES:
        raise ValueError(f"unknown aggregation {aggregate_how!r}; choose {list(AGGREGATES)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


class OnePassSettings:
    """What every learned recipe shares: settings checked at construction, its parameter count
    and context length from ``model``. Mixed into the frozen dataclasses, which declare these
    attributes as fields (the bare annotations here only type them)."""

    model: Any
    tokenizer: Any
    fmt: StepFormat
    aggregate: str
    name: str
    batch_size: int
    #: the score depends only on the question and the candidate's steps (not on its
    #: log-probabilities or metadata): identical candidates may be scored once
    text_only: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_settings(self.aggregate, self.batch_size)

    @property
    def params(self) -> int:
        """Parameter count (the scaling job charges ``2 * params`` FLOPs per scored token)."""
        return param_count(self.model)

    @property
    def max_length(self) -> int | None:
        return max_positions(self.model)

    def read(self, batch: Sequence[Encoded]) -> list[np.ndarray]:
        """Step values of every sequence of ``batch`` (one forward pass), one per boundary."""
        raise NotImplementedError


class OnePassScorer(OnePassSettings):
    """A step reward scored by :func:`score_one_pass`: ``score_steps`` and ``score``."""

    def score_steps(
        self, problems: Sequence[Problem], candidates: Sequence[Candidate]
    ) -> list[Score]:
        """One value per step in ``Score.steps`` (``value`` = their aggregate); one pass each."""
        return score_one_pass(self, problems, candidates)

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        """The aggregated step scores (``self.aggregate``); the steps stay in ``Score.steps``."""
        return score_one_pass(self, problems, candidates)


@dataclass(frozen=True, eq=False)
class TagPRM(OnePassScorer):
    """Math-Shepherd-style PRM: a causal LM whose next-token logits at the tag after each step
    say good (``good``) or bad (``bad``); step score = P(good) over {good, bad}.

    Args:
        model: a causal LM (``AutoModelForCausalLM``), in eval mode.
        tokenizer: its tokenizer; ``fmt.separator``, ``good`` and ``bad`` are one token each.
        fmt: the step format it was trained with (the tag is ``fmt.separator``).
        good / bad: the label tokens (Math-Shepherd: ``"+"`` / ``"-"`` after the tag ``"ки"``).
        aggregate: how ``score`` turns step scores into one value (``last`` by default).
        name: the reward's name (store key, strategy labels).
        batch_size: candidates per forward pass.
        fingerprint: identifies the weights (the loader sets a hash of the checkpoint), so
            cached scores of an older model under the same name are never reused.
    """

    model: Any
    tokenizer: Any
    fmt: StepFormat = field(default_factory=StepFormat)
    good: str = "+"
    bad: str = "-"
    aggregate: str = "last"
    name: str = "prm"
    batch_size: int = 32
    fingerprint: str = ""

    def read(self, batch: Sequence[Encoded]) -> list[np.ndarray]:
        good, bad = token_id(self.tokenizer, self.good), token_id(self.tokenizer, self.bad)
        ids, mask, rows, pos = batch_tensors(self.model, self.tokenizer, batch)
        probs = tag_logits(self.model, ids, mask, rows, pos, good, bad).softmax(-1)[:, 1]
        return split_counts(probs, batch)


@dataclass(frozen=True, eq=False)
class ClassifierPRM(OnePassScorer):
    """Qwen2.5-Math-PRM-style PRM: a 2-class token-classification head read at the separator
    after each step; step score = P(class 1), class 1 = good step (as TRL's ``PRMTrainer``).

    Args: as :class:`TagPRM` (without ``good``/``bad``); ``model`` is an
    ``AutoModelForTokenClassification`` with ``num_labels=2``.
    """

    model: Any
    tokenizer: Any
    fmt: StepFormat = field(default_factory=StepFormat)
    aggregate: str = "last"
    name: str = "prm"
    batch_size: int = 32
    fingerprint: str = ""

    def read(self, batch: Sequence[Encoded]) -> list[np.ndarray]:
        ids, mask, rows, pos = batch_tensors(self.model, self.tokenizer, batch)
        probs = classifier_logits(self.model, ids, mask, rows, pos).softmax(-1)[:, 1]
        return split_counts(probs, batch)


@dataclass(frozen=True, eq=False)
class OVM(OnePassScorer):
    """Outcome-supervised value model (Yu et al. 2024): a value head (token classification,
    ``num_labels=1``) regressed on the final outcome at every step boundary; step score = the
    predicted value of the prefix (its estimated chance of ending correct).

    Args: as :class:`ClassifierPRM`, with ``num_labels=1``.
    """

    model: Any
    tokenizer: Any
    fmt: StepFormat = field(default_factory=StepFormat)
    aggregate: str = "last"
    name: str = "ovm"
    batch_size: int = 32
    fingerprint: str = ""

    def read(self, batch: Sequence[Encoded]) -> list[np.ndarray]:
        ids, mask, rows, pos = batch_tensors(self.model, self.tokenizer, batch)
        return split_counts(classifier_logits(self.model, ids, mask, rows, pos)[:, 0], batch)
