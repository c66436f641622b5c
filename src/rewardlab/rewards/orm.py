"""Outcome reward model: one scalar per candidate from a sequence-level head.

The candidate is laid out in the shared step format (:mod:`rewardlab.rewards.step_format`), so
an ORM reads the same text a PRM does; its score head is read at the last token, the separator
after the final step (``AutoModelForSequenceClassification`` with ``num_labels=1`` pools the
rightmost non-pad token). Trained with binary cross-entropy on the outcome label
(Cobbe et al. 2021), so ``value = sigmoid(logit)`` estimates P(correct).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rewardlab.rewards.prm import OnePassSettings, batch_tensors, encode_candidates, run_batched
from rewardlab.rewards.step_format import Encoded, StepFormat
from rewardlab.types import Candidate, Problem, Score


def sequence_logits(model: Any, ids: Any, mask: Any) -> Any:
    """``[B]`` logits of a 1-label sequence-classification model (rightmost non-pad token).

    Right padding with the model's ``config.pad_token_id`` is what makes the pooled token the
    final separator; :func:`~rewardlab.rewards.step_format.pad_id_of` picks that id.
    """
    return model(input_ids=ids, attention_mask=mask).logits[:, 0].float()


@dataclass(frozen=True, eq=False)
class ORM(OnePassSettings):
    """Outcome reward model (a :class:`~rewardlab.rewards.base.Reward`): value = P(correct).

    Args:
        model: ``AutoModelForSequenceClassification`` with ``num_labels=1`` and
            ``config.pad_token_id`` set, in eval mode.
        tokenizer: its tokenizer.
        fmt: the step format it was trained with.
        name: the reward's name (store key, strategy labels).
        batch_size: candidates per forward pass.
        fingerprint: identifies the weights (see :class:`~rewardlab.rewards.prm.TagPRM`).
        aggregate: unused by an ORM (kept so every learned reward has the same fields).
    """

    model: Any
    tokenizer: Any
    fmt: StepFormat = field(default_factory=StepFormat)
    name: str = "orm"
    batch_size: int = 32
    fingerprint: str = ""
    aggregate: str = "last"

    def read(self, batch: Sequence[Encoded]) -> list[np.ndarray]:
        """P(correct) of each sequence, as a one-element array."""
        ids, mask, _, _ = batch_tensors(self.model, self.tokenizer, batch)
        probs = sequence_logits(self.model, ids, mask).sigmoid().cpu().numpy()
        return [np.array([p]) for p in probs]

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        """P(correct) per candidate; candidates without steps or too long are ungraded."""
        items = encode_candidates(self, problems, candidates)
        todo = [i for i, it in enumerate(items) if isinstance(it, Encoded)]
        values = run_batched(self, [items[i] for i in todo])  # type: ignore[misc]
        for i, v in zip(todo, values, strict=True):
            items[i] = Score(float(v[0]))
        return items  # type: ignore[return-value]
