"""Qwen2.5-Math-PRM (Zhang et al. 2025, "The Lessons of Developing Process Reward Models in
Mathematical Reasoning"): a Qwen2 backbone with a 2-class MLP head read at every step
separator.

The model card's recipe, repeated here:

- the conversation is ``system`` ("Please reason step by step, and put your final answer
  within \\boxed{}."), ``user`` (the question), ``assistant`` (the steps joined by
  ``<extra_0>``, with one more ``<extra_0>`` after the last step), rendered by the
  tokenizer's chat template (``add_generation_prompt=False``) and tokenized once;
- the head is ``score = Linear(h, h) -> ReLU -> Linear(h, 2)`` on every token (the checkpoint's
  ``score.0.*`` and ``score.2.*`` tensors, shipped with its own modeling code; rebuilt here,
  so no remote code runs);
- the step score is ``softmax(logits)[1]`` at each ``<extra_0>`` (class 1 = the step is good).

Separator positions are recorded from character offsets, so a step whose text happens to
contain ``<extra_0>`` is still read at its own separator only (the card's ``input_ids ==
sep_id`` mask would read it twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.rewards.presets.common import (
    StepScorer,
    batch_ids,
    chat_text,
    device_of,
    fingerprint,
    head_tensors,
    load_auto,
    load_tokenizer,
    model_dir,
    param_count,
    scores_by_boundary,
    single_token,
    tokenize_marked,
    torch_dtype,
)
from rewardlab.rewards.step_format import Encoded, boundary_index
from rewardlab.types import Candidate, Problem, Score

QWEN_PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
QWEN_PRM_SEPARATOR = "<extra_0>"


def mlp_head(tensors: dict[str, Any], where: str) -> Any:
    """``Linear -> ReLU -> Linear`` from ``0.weight/0.bias/2.weight/2.bias`` (2 outputs)."""
    import torch

    need = {"0.weight", "0.bias", "2.weight", "2.bias"}
    if set(tensors) != need:
        raise ValueError(
            f"{where}: the 'score.*' head has tensors {sorted(tensors)}, not the 2-layer MLP "
            f"{sorted(need)} of Qwen2.5-Math-PRM"
        )
    hidden, width = tensors["0.weight"].shape
    classes = tensors["2.weight"].shape[0]
    if classes != 2:
        raise ValueError(f"{where}: the head has {classes} classes, not 2")
    head = torch.nn.Sequential(
        torch.nn.Linear(width, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, classes)
    )
    head.load_state_dict(tensors, strict=True)
    return head


@dataclass(frozen=True, eq=False)
class QwenPRM(StepScorer):
    """Qwen2.5-Math-PRM-style process reward (a :class:`~rewardlab.rewards.base.StepReward`).

    Args:
        backbone: the base transformer (``Qwen2Model``), eval mode.
        head: the 2-class token head (:func:`mlp_head`), on the backbone's device.
        tokenizer: its fast tokenizer, with a chat template and ``separator`` as one token.
        system: the system message of the card.
        separator: the step separator token (``<extra_0>``).
        aggregate: ``last`` / ``min`` / ``mean`` / ``prod`` / ``sum`` of the step scores.
        name, batch_size, fingerprint: reward name, candidates per pass, weights identity.
    """

    backbone: Any
    head: Any
    tokenizer: Any
    system: str = QWEN_PRM_SYSTEM
    separator: str = QWEN_PRM_SEPARATOR
    aggregate: str = "last"
    name: str = "qwen-prm"
    batch_size: int = 8
    fingerprint: str = ""
    max_length: int | None = None

    def __post_init__(self) -> None:
        self.check(self.aggregate)
        single_token(self.tokenizer, self.separator, "step separator", self.name)

    @property
    def params(self) -> int:
        return param_count(self.backbone, self.head)

    def encode(self, problem: Problem, candidate: Candidate) -> Encoded | Score:
        if not candidate.steps:
            return Score.ungraded("no steps")
        sep = self.separator
        content = "".join(f"{s}{sep}" for s in candidate.steps)
        prompt = [
            {"role": "system", "content": self.system},
            {"role": "user", "content": problem.question},
        ]
        text, start = chat_text(self.tokenizer, prompt, content, exact=True)
        marks, pos = [], start
        for s in candidate.steps:
            pos += len(s)
            marks.append((pos, pos + len(sep)))
            pos += len(sep)
        sep_id = single_token(self.tokenizer, sep, "step separator", self.name)
        return tokenize_marked(
            self.tokenizer, text, marks, start, add_special_tokens=False, mark_id=sep_id
        )

    def read(self, batch: Sequence[Encoded]) -> list[Score]:
        dev = next(self.backbone.parameters()).device
        ids, mask = batch_ids(batch, self.tokenizer, self.backbone, dev)
        hidden = self.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        rows, pos = boundary_index(batch)
        probs = self.head(hidden[rows.to(dev), pos.to(dev)]).float().softmax(-1)[:, 1]
        flat = probs.cpu().numpy()
        return scores_by_boundary(flat, batch, self.aggregate)


def load_qwen_prm(
    path: str | Path,
    *,
    device: str | None = None,
    dtype: str = "float32",
    name: str | None = None,
    aggregate: str = "last",
    batch_size: int = 8,
    separator: str = QWEN_PRM_SEPARATOR,
) -> QwenPRM:
    """Qwen2.5-Math-PRM from a local directory (``qwen-prm:path=DIR``); nothing downloads.

    The backbone loads by its config's model type (``qwen2``) without the checkpoint's remote
    code; the MLP head is rebuilt from its ``score.*`` tensors. Raises naming the problem when
    the separator token or the head is missing.
    """
    p = model_dir(path)
    tokenizer = load_tokenizer(p)
    single_token(tokenizer, separator, "step separator", str(p))
    head = mlp_head(head_tensors(p, "score."), str(p))
    backbone = load_auto(p, "AutoModel", device, dtype)
    head = head.to(device=device_of(device), dtype=torch_dtype(dtype)).eval()
    limit = getattr(backbone.config, "max_position_embeddings", None)
    return QwenPRM(
        backbone=backbone,
        head=head,
        tokenizer=tokenizer,
        separator=separator,
        aggregate=aggregate,
        name=name or "qwen-prm",
        batch_size=batch_size,
        fingerprint=fingerprint(p),
        max_length=int(limit) if isinstance(limit, int) else None,
    )
