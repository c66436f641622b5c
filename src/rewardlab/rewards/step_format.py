"""The one step-format contract: where step boundaries sit, identical in training and scoring.

A (question, steps) pair becomes token ids laid out as::

    [prompt ids] [step 1 ids] SEP [step 2 ids] SEP ... [step n ids] SEP
                              ^ boundaries[0]                       ^ boundaries[n-1]

- the prompt is ``fmt.template.format(question=...)``, encoded with the tokenizer's own
  special tokens (a BOS where the tokenizer adds one);
- each step is encoded alone, without special tokens, so a step's tokens never merge with its
  neighbours' and the ids of a prefix are exactly a prefix of the ids of the whole;
- ``SEP`` is ONE token (``fmt.separator``), placed after every step, the last one included;
- ``boundaries[t]`` is the position of the separator after step ``t``.

Every scoring recipe reads its step score at ``boundaries[t]`` (PRMs, OVM) or sums token
log-probabilities over ``(boundaries[t-1], boundaries[t]]`` (implicit PRM); every training
objective supervises exactly the same positions. This is the layout of Math-Shepherd (a step
tag after each step, Wang et al. 2024), Qwen2.5-Math-PRM (``<extra_0>`` after each step, Zhang
et al. 2025) and TRL's ``PRMTrainer`` (the label sits on the separator ending each step). The
default separator ``"\\n"`` makes the input read exactly like the testbed policy's own output.

Boundaries are recorded positions, never found by searching for the separator id: a step whose
text contains the separator string stays one step.

>>> fmt = StepFormat()
>>> enc = fmt.encode(tok, "What is 2 + 3?", ("2 + 3 = 5", "The answer is 5."))  # doctest: +SKIP
>>> [enc.ids[b] for b in enc.boundaries] == [fmt.separator_id(tok)] * 2  # doctest: +SKIP
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rewardlab.policies.prompts import PLAIN_PROMPT


@dataclass(frozen=True)
class Encoded:
    """Token ids of one (question, steps) pair and where its step boundaries are.

    Attributes:
        ids: the whole sequence.
        boundaries: position of the separator after each step (strictly increasing).
        prompt_len: number of prompt tokens (the first step starts here).
    """

    ids: tuple[int, ...]
    boundaries: tuple[int, ...]
    prompt_len: int

    def __len__(self) -> int:
        return len(self.ids)

    def prefix(self, t: int) -> Encoded:
        """The encoding of the question and steps ``0..t`` alone (a prefix of ``ids``)."""
        if not 0 <= t < len(self.boundaries):
            raise IndexError(f"step {t} out of range for {len(self.boundaries)} steps")
        end = self.boundaries[t] + 1
        return Encoded(self.ids[:end], self.boundaries[: t + 1], self.prompt_len)

    def step_spans(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of each step's own tokens, separator excluded."""
        starts = [self.prompt_len, *(b + 1 for b in self.boundaries[:-1])]
        return list(zip(starts, self.boundaries, strict=True))


@dataclass(frozen=True)
class StepFormat:
    """Where the question and the step separators go (stored in every checkpoint's json).

    Attributes:
        separator: text of the single token placed after every step.
        template: the prompt, with a ``{question}`` field (default: the tiny policy's plain
            prompt ``"Question: {question}\\nAnswer:\\n"``).
    """

    separator: str = "\n"
    template: str = PLAIN_PROMPT

    def __post_init__(self) -> None:
        if not self.separator:
            raise ValueError("the step separator must be a non-empty token text")
        if "{question}" not in self.template:
            raise ValueError("the prompt template needs a {question} field")

    def separator_id(self, tokenizer: Any) -> int:
        """The separator's token id; raises ValueError if it is not exactly one token."""
        ids = list(tokenizer(self.separator, add_special_tokens=False)["input_ids"])
        if len(ids) != 1:
            raise ValueError(
                f"step separator {self.separator!r} is {len(ids)} tokens for this tokenizer, "
                "not one; add it as a special token (ensure_separator) before training"
            )
        return int(ids[0])

    def encode(self, tokenizer: Any, question: str, steps: Sequence[str]) -> Encoded:
        """Token ids and step boundaries of ``question`` followed by ``steps``."""
        sep = self.separator_id(tokenizer)
        prompt = self.template.format(question=question)
        ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
        prompt_len = len(ids)
        boundaries = []
        for step in steps:
            ids.extend(tokenizer(step, add_special_tokens=False)["input_ids"])
            ids.append(sep)
            boundaries.append(len(ids) - 1)
        return Encoded(tuple(int(i) for i in ids), tuple(boundaries), prompt_len)

    def decode_steps(self, tokenizer: Any, encoded: Encoded) -> tuple[str, ...]:
        """The step texts back from an encoding (the inverse of :meth:`encode` on the steps)."""
        return tuple(
            str(tokenizer.decode(list(encoded.ids[a:b]), skip_special_tokens=False))
            for a, b in encoded.step_spans()
        )

    def as_dict(self) -> dict[str, str]:
        return {"separator": self.separator, "template": self.template}


def ensure_separator(tokenizer: Any, fmt: StepFormat) -> bool:
    """Make ``fmt.separator`` one token, adding it as a special token if needed (training only).

    Returns True when the vocabulary grew: the caller must then resize the model's embeddings
    (``model.resize_token_embeddings(len(tokenizer))``) and save the tokenizer with the model.
    """
    try:
        fmt.separator_id(tokenizer)
        return False
    except ValueError:
        tokenizer.add_special_tokens({"additional_special_tokens": [fmt.separator]})
        fmt.separator_id(tokenizer)
        return True


def pad_right(encoded: Sequence[Encoded], pad_id: int) -> tuple[Any, Any]:
    """Right-padded ``(input_ids, attention_mask)`` long tensors of shape ``[B, T]``.

    Right padding keeps every real token at the position it has alone, so a causal model's
    output at a boundary is the same in a batch, in one pass and for the prefix alone.
    """
    import torch

    width = max(len(e) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for r, e in enumerate(encoded):
        ids[r, : len(e)] = torch.tensor(e.ids, dtype=torch.long)
        mask[r, : len(e)] = 1
    return ids, mask


def boundary_index(encoded: Sequence[Encoded]) -> tuple[Any, Any]:
    """``(rows, positions)`` long tensors of every step boundary of a batch, in order.

    ``logits[rows, positions]`` is then one row per step, candidates in batch order and steps
    in step order; ``counts[i] = len(encoded[i].boundaries)`` splits it back.
    """
    import torch

    rows = [r for r, e in enumerate(encoded) for _ in e.boundaries]
    pos = [b for e in encoded for b in e.boundaries]
    return torch.tensor(rows, dtype=torch.long), torch.tensor(pos, dtype=torch.long)


def pad_id_of(tokenizer: Any, model: Any | None = None) -> int:
    """The id used for padding: the tokenizer's pad, else the model config's, else eos, else 0."""
    for source in (
        getattr(tokenizer, "pad_token_id", None),
        getattr(getattr(model, "config", None), "pad_token_id", None),
        getattr(tokenizer, "eos_token_id", None),
    ):
        if isinstance(source, int):
            return source
    return 0
