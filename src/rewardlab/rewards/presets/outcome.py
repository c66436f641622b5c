"""Outcome reward models read at the last token of a chat: a scalar head (Skywork-Reward) and
a multi-objective head with a prompt-conditioned gate (ArmoRM).

Skywork-Reward (Liu et al. 2024, "Skywork-Reward: Bag of Tricks for Reward Modeling in
LLMs"), as its model card runs it: the conversation ``user`` (question), ``assistant``
(response) rendered by the chat template, a leading BOS removed from the text when the
tokenizer adds its own (the card's v0.2 note), tokenized, and the 1-output
``*ForSequenceClassification`` head read at the last token; the reward is the raw logit.

ArmoRM (Wang et al. 2024, "Interpretable Preferences via Multi-Objective Reward Modeling and
Mixture-of-Experts"): a Llama backbone, ``regression_layer`` (``K x h``, no bias) on the last
token's hidden state gives ``K`` objective rewards ``r``; a gating MLP on the hidden state at
the start of the last ``<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n``
(the end of the prompt) gives weights ``g = softmax(MLP(x) / temperature) * logit_scale``;
the score is ``sum(g * (r @ T))`` with the checkpoint's ``reward_transform_matrix`` T (which
removes the verbosity objective's leakage). ``Score.info`` carries ``objectives`` (``r``)
and ``gating`` (``g``). The head ships as remote code; it is rebuilt here from its tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.rewards.presets.common import (
    PresetScorer,
    batch_ids,
    chat_text,
    device_of,
    fingerprint,
    head_tensors,
    load_auto,
    load_tokenizer,
    model_dir,
    param_count,
    read_config,
    tokenize_marked,
)
from rewardlab.rewards.step_format import Encoded
from rewardlab.types import Candidate, Problem, Score

#: where ArmoRM reads its gate: the start of the last occurrence of these tokens
ARMORM_GATING_PATTERN = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
#: the 19 objectives of ArmoRM-Llama3-8B-v0.1, in the order of its regression layer
ARMORM_OBJECTIVES = (
    "helpsteer-helpfulness", "helpsteer-correctness", "helpsteer-coherence",
    "helpsteer-complexity", "helpsteer-verbosity", "ultrafeedback-overall_score",
    "ultrafeedback-instruction_following", "ultrafeedback-truthfulness",
    "ultrafeedback-honesty", "ultrafeedback-helpfulness", "beavertails-is_safe",
    "prometheus-score", "argilla-overall_quality", "argilla-judge_lm", "code-complexity",
    "code-style", "code-explanation", "code-instruction-following", "code-readability",
)  # fmt: skip


def chat_encoding(
    tokenizer: Any, problem: Problem, candidate: Candidate, *, strip_bos: bool
) -> Encoded | Score:
    """The ``user``/``assistant`` conversation of one candidate, tokenized once."""
    if not candidate.text.strip():
        return Score.ungraded("empty response")
    prompt = [{"role": "user", "content": problem.question}]
    text, start = chat_text(tokenizer, prompt, candidate.text, exact=False)
    bos = getattr(tokenizer, "bos_token", None)
    if strip_bos and bos and text.startswith(bos):
        text, start = text[len(bos) :], start - len(bos)
    return tokenize_marked(tokenizer, text, (), start, add_special_tokens=strip_bos)


def last_hidden(backbone: Any, tokenizer: Any, batch: Sequence[Encoded]) -> tuple[Any, Any]:
    """``[B, T, h]`` hidden states and ``[B, h]`` at each sequence's last real token."""
    import torch

    dev = next(backbone.parameters()).device
    ids, mask = batch_ids(batch, tokenizer, backbone, dev)
    hidden = backbone(input_ids=ids, attention_mask=mask).last_hidden_state
    last = torch.tensor([len(e) - 1 for e in batch], device=dev)
    return hidden, hidden[torch.arange(len(batch), device=dev), last]


@dataclass(frozen=True, eq=False)
class SeqClsRM(PresetScorer):
    """A 1-output sequence-classification RM on a chat (Skywork-Reward style); value = the
    head's raw logit at the last token (a :class:`~rewardlab.rewards.base.Reward`).

    Args:
        model: an ``AutoModelForSequenceClassification`` with ``num_labels=1``; its base model
            and ``score`` head are run directly so the read position is the last real token
            whatever the pad id.
        tokenizer: its fast tokenizer with a chat template.
        name, batch_size, fingerprint, max_length: as every preset.
    """

    model: Any
    tokenizer: Any
    name: str = "seqcls-rm"
    batch_size: int = 8
    fingerprint: str = ""
    max_length: int | None = None

    def __post_init__(self) -> None:
        self.check("last")
        head = getattr(self.model, "score", None)
        if head is None or getattr(head, "out_features", None) != 1:
            raise ValueError(
                f"{self.name}: the model has no 1-output 'score' head (a sequence-"
                "classification reward model with num_labels=1)"
            )

    @property
    def params(self) -> int:
        return param_count(self.model)

    def encode(self, problem: Problem, candidate: Candidate) -> Encoded | Score:
        return chat_encoding(self.tokenizer, problem, candidate, strip_bos=True)

    def read(self, batch: Sequence[Encoded]) -> list[Score]:
        backbone = getattr(self.model, self.model.base_model_prefix)
        _, last = last_hidden(backbone, self.tokenizer, batch)
        logits = self.model.score(last)[:, 0].float().cpu().numpy()
        return [Score(float(v)) for v in logits]


class GatingNetwork:
    """ArmoRM's gate: ``Linear (+ReLU)`` x n, ``Linear``, ``softmax(. / T) * logit_scale``."""

    def __init__(self, tensors: dict[str, Any], temperature: float, where: str) -> None:
        import torch

        n = len({k.split(".")[1] for k in tensors if k.startswith("layers.")})
        if n < 1 or "logit_scale" not in tensors:
            raise ValueError(f"{where}: no 'gating.layers.*' / 'gating.logit_scale' tensors")
        layers = []
        for i in range(n):
            w = tensors[f"layers.{i}.weight"]
            lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=f"layers.{i}.bias" in tensors)
            lin.load_state_dict(
                {k.split(".", 2)[2]: v for k, v in tensors.items() if k.startswith(f"layers.{i}.")}
            )
            layers.append(lin)
        self.layers = torch.nn.ModuleList(layers)
        self.logit_scale = tensors["logit_scale"]
        self.temperature = float(temperature)

    def to(self, device: Any) -> GatingNetwork:
        self.layers = self.layers.to(device).float()
        self.logit_scale = self.logit_scale.to(device).float()
        return self

    def __call__(self, x: Any) -> Any:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = x.relu()
        return (x / self.temperature).softmax(-1) * self.logit_scale[0]


@dataclass(frozen=True, eq=False)
class ArmoRM(PresetScorer):
    """ArmoRM-style multi-objective RM (a :class:`~rewardlab.rewards.base.Reward`): value =
    the gated sum of the transformed objectives; ``info`` has ``objectives`` and ``gating``.

    Args:
        backbone: the base transformer (``LlamaModel``), eval mode.
        regression: ``[K, h]`` objective weights; transform: ``[K, K]``; gating: the gate.
        tokenizer: its fast tokenizer with the chat template.
        gating_pattern: the text whose first token's hidden state feeds the gate.
        objectives: names of the ``K`` objectives (``info`` keys).
    """

    backbone: Any
    regression: Any
    transform: Any
    gating: Any
    tokenizer: Any
    gating_pattern: str = ARMORM_GATING_PATTERN
    objectives: tuple[str, ...] = ARMORM_OBJECTIVES
    name: str = "armorm"
    batch_size: int = 8
    fingerprint: str = ""
    max_length: int | None = None

    def __post_init__(self) -> None:
        self.check("last")
        k = self.regression.shape[0]
        if tuple(self.transform.shape) != (k, k) or len(self.objectives) != k:
            raise ValueError(
                f"{self.name}: {k} objectives, a {tuple(self.transform.shape)} transform and "
                f"{len(self.objectives)} names do not match"
            )

    @property
    def params(self) -> int:
        return param_count(self.backbone, self.gating.layers) + int(self.regression.numel())

    def encode(self, problem: Problem, candidate: Candidate) -> Encoded | Score:
        return chat_encoding(self.tokenizer, problem, candidate, strip_bos=False)

    def gate_position(self, enc: Encoded) -> int:
        """Start of the last gating pattern inside the prompt (ArmoRM's gating token)."""
        pattern = list(self.tokenizer(self.gating_pattern, add_special_tokens=False)["input_ids"])
        ids = list(enc.ids)
        end = enc.prompt_len
        for j in range(end - len(pattern), -1, -1):
            if ids[j : j + len(pattern)] == pattern:
                return j
        raise ValueError(
            f"{self.name}: the gating pattern {self.gating_pattern!r} is not in the prompt "
            "(ArmoRM reads its gate there; is this a Llama-3 chat template?)"
        )

    def read(self, batch: Sequence[Encoded]) -> list[Score]:
        import torch

        hidden, last = last_hidden(self.backbone, self.tokenizer, batch)
        dev = hidden.device
        gate_at = torch.tensor([self.gate_position(e) for e in batch], device=dev)
        prompt = hidden[torch.arange(len(batch), device=dev), gate_at].float()
        rewards = last.float() @ self.regression.T  # [B, K]
        gates = self.gating(prompt)  # [B, K]
        scores = (gates * (rewards @ self.transform)).sum(-1)
        return [
            Score(
                float(s),
                info={
                    "objectives": dict(zip(self.objectives, map(float, r), strict=True)),
                    "gating": dict(zip(self.objectives, map(float, g), strict=True)),
                },
            )
            for s, r, g in zip(scores.cpu(), rewards.cpu(), gates.cpu(), strict=True)
        ]


def _limit(model: Any) -> int | None:
    value = getattr(model.config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) else None


def load_seqcls_rm(
    path: str | Path,
    *,
    device: str | None = None,
    dtype: str = "float32",
    name: str | None = None,
    batch_size: int = 8,
) -> SeqClsRM:
    """A sequence-classification RM from a local directory (``seqcls-rm:path=DIR``)."""
    p = model_dir(path)
    tokenizer = load_tokenizer(p)
    model = load_auto(p, "AutoModelForSequenceClassification", device, dtype)
    return SeqClsRM(
        model=model,
        tokenizer=tokenizer,
        name=name or "seqcls-rm",
        batch_size=batch_size,
        fingerprint=fingerprint(p),
        max_length=_limit(model),
    )


def load_armorm(
    path: str | Path,
    *,
    device: str | None = None,
    dtype: str = "float32",
    name: str | None = None,
    batch_size: int = 8,
    gating_pattern: str = ARMORM_GATING_PATTERN,
) -> ArmoRM:
    """ArmoRM from a local directory (``armorm:path=DIR``); its heads are rebuilt from the
    ``regression_layer`` / ``gating`` / ``reward_transform_matrix`` tensors (float32)."""
    p = model_dir(path)
    config = read_config(p)
    dev = device_of(device)
    regression = head_tensors(p, "regression_layer.")
    if set(regression) != {"weight"}:
        raise ValueError(f"{p}: 'regression_layer' is not one bias-free linear layer")
    transform = head_tensors(p, "reward_transform_matrix")
    gating = GatingNetwork(
        head_tensors(p, "gating."), config.get("gating_temperature", 10), str(p)
    ).to(dev)
    k = int(regression["weight"].shape[0])
    names = ARMORM_OBJECTIVES if k == len(ARMORM_OBJECTIVES) else tuple(f"obj{i}" for i in range(k))
    backbone = load_auto(p, "AutoModel", device, dtype)
    return ArmoRM(
        backbone=backbone,
        regression=regression["weight"].to(dev).float(),
        transform=transform[""].to(dev).float(),
        gating=gating,
        tokenizer=load_tokenizer(p),
        gating_pattern=gating_pattern,
        objectives=names,
        name=name or "armorm",
        batch_size=batch_size,
        fingerprint=fingerprint(p),
        max_length=_limit(backbone),
    )
