"""A scalar preference reward model on any transformers backbone, and its checkpoint as a Reward.

Two heads (the choice is recorded in the checkpoint):

- ``seqcls``: ``AutoModelForSequenceClassification`` with ``num_labels=1`` (the model pools at
  its last non-pad token; a causal LM checkpoint gets a fresh ``score`` layer);
- ``value``: the backbone's trunk (``AutoModel``; a causal LM checkpoint loads without its LM
  head) plus a linear value head read at the last non-pad token (Ouyang et al. 2022).

The text scored is ``template.format(prompt=..., response=...)``; the default is the plain
prompt format the tiny policy is trained on, so ``prompt`` is the bare question. Texts longer
than ``max_length`` tokens keep their *last* ``max_length`` tokens (the verdict is at the end).

A checkpoint directory holds the transformers files, ``value_head.safetensors`` (value head
only) and ``rewardlab.json`` with ``{"kind": "preference-rm", "loader": "<module:callable>",
"head", "template", "max_length", ...}``; :meth:`PreferenceRM.from_dir` loads it.

Scoring sorts texts by token length and packs batches up to ``max_tokens`` padded tokens
(``max_batch`` rows at most), under ``torch.inference_mode()``: little compute goes to padding.
``max_tokens`` defaults to 2048 on a CPU (small batches stay in cache) and 16384 on an
accelerator. On a Llama trunk with SDPA the last layer runs at the pooled token only and no
attention mask is built (:mod:`rewardlab.rewards.pooled_forward`; ``pooled=False`` turns it
off); ``benchmarks/results/rm_scoring.md`` has the throughput against a ``pipeline`` loop and
where the time goes.

>>> rm = PreferenceRM.from_dir("runs/rm-bt")  # doctest: +SKIP
>>> rm.score(problems, candidates)[0].value  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from rewardlab.compute import Ledger
from rewardlab.rewards.pooled_forward import pooled_rewards, supports_pooled_forward
from rewardlab.types import Candidate, Problem, Score

Head = Literal["seqcls", "value"]
DEFAULT_TEMPLATE = "Question: {prompt}\nAnswer:\n{response}"
META_FILE = "rewardlab.json"
LOADER = "rewardlab.rewards.preference_rm:PreferenceRM.from_dir"


class ScalarRewardModel(torch.nn.Module):
    """``forward(input_ids, attention_mask) -> rewards [B]`` (float32), right-padded inputs."""

    def __init__(self, backbone: Any, head: Head, value_head: torch.nn.Linear | None = None):
        super().__init__()
        if head not in ("seqcls", "value"):
            raise ValueError(f"unknown head {head!r}: seqcls | value")
        if (head == "value") != (value_head is not None):
            raise ValueError("a value_head is needed exactly when head == 'value'")
        self.backbone = backbone
        self.head = head
        self.value_head = value_head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.head == "seqcls":
            logits = self.backbone(input_ids=input_ids, attention_mask=attention_mask).logits
            out: torch.Tensor = logits[:, 0].float()
            return out
        assert self.value_head is not None
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        last = attention_mask.long().sum(dim=1) - 1
        pooled = hidden.last_hidden_state[torch.arange(input_ids.shape[0]), last]
        value: torch.Tensor = self.value_head(pooled)[:, 0].float()
        return value


def build_reward_model(backbone_dir: str | Path, head: Head = "seqcls", seed: int = 0) -> Any:
    """A fresh reward model (new head seeded by ``seed``) on a local backbone; no downloads.

    Returns ``(model, tokenizer)``; the tokenizer gets a pad token (eos) when it has none.
    """
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    src = str(backbone_dir)
    tokenizer = AutoTokenizer.from_pretrained(src, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(seed)
    if head == "seqcls":
        backbone = AutoModelForSequenceClassification.from_pretrained(
            src, num_labels=1, local_files_only=True, dtype=torch.float32
        )
        backbone.config.pad_token_id = tokenizer.pad_token_id
        return ScalarRewardModel(backbone, "seqcls"), tokenizer
    trunk = AutoModel.from_pretrained(src, local_files_only=True, dtype=torch.float32)
    value = torch.nn.Linear(trunk.config.hidden_size, 1)
    torch.nn.init.normal_(value.weight, std=1.0 / (trunk.config.hidden_size + 1) ** 0.5)
    torch.nn.init.zeros_(value.bias)
    return ScalarRewardModel(trunk, "value", value), tokenizer


def save_reward_model(
    model: ScalarRewardModel, tokenizer: Any, out: str | Path, **meta: Any
) -> Path:
    """Save weights, tokenizer and ``rewardlab.json`` (``meta`` is merged into it)."""
    from safetensors.torch import save_file

    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    model.backbone.save_pretrained(path)
    tokenizer.save_pretrained(path)
    if model.value_head is not None:
        state = {k: v.detach().cpu().contiguous() for k, v in model.value_head.state_dict().items()}
        save_file(state, str(path / "value_head.safetensors"))
    info = {
        "kind": "preference-rm",
        "loader": LOADER,
        "head": model.head,
        "template": DEFAULT_TEMPLATE,
        "max_length": 1024,
        "params": param_count(model),
        **meta,
    }
    (path / META_FILE).write_text(json.dumps(info, indent=2))
    return path


def load_reward_model(path: str | Path) -> tuple[ScalarRewardModel, Any, dict[str, Any]]:
    """``(model, tokenizer, meta)`` from a directory written by :func:`save_reward_model`."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    p = Path(path)
    meta_path = p / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{p} is not a reward checkpoint: no {META_FILE}")
    meta = json.loads(meta_path.read_text())
    if meta.get("kind") != "preference-rm":
        raise ValueError(f"{p}: kind {meta.get('kind')!r} is not a preference-rm checkpoint")
    tokenizer = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if meta["head"] == "seqcls":
        backbone = AutoModelForSequenceClassification.from_pretrained(
            str(p), num_labels=1, local_files_only=True
        )
        model = ScalarRewardModel(backbone, "seqcls")
    else:
        trunk = AutoModel.from_pretrained(str(p), local_files_only=True)
        value = torch.nn.Linear(trunk.config.hidden_size, 1)
        value.load_state_dict(load_file(str(p / "value_head.safetensors")))
        model = ScalarRewardModel(trunk, "value", value)
    model.eval()
    return model, tokenizer, meta


def param_count(model: torch.nn.Module) -> int:
    """Number of parameters (the ``params`` the compute ledger charges 2·params per token)."""
    return int(sum(p.numel() for p in model.parameters()))


def length_sorted_batches(
    lengths: Sequence[int], max_tokens: int, max_batch: int
) -> list[list[int]]:
    """Indices grouped into batches, longest first, each with ``rows * longest <= max_tokens``.

    A text longer than ``max_tokens`` gets a batch of its own.

    >>> length_sorted_batches([3, 10, 4, 9], max_tokens=20, max_batch=8)
    [[1, 3], [2, 0]]
    """
    if max_tokens < 1 or max_batch < 1:
        raise ValueError("max_tokens and max_batch must be >= 1")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]
        if current and (len(current) >= max_batch or (len(current) + 1) * width > max_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def encode_texts(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text, keeping the last ``max_length`` tokens of longer texts."""
    ids = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    return [list(x[-max_length:]) for x in ids]


def pad_right(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``(input_ids, attention_mask)`` long tensors."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


class PreferenceRM:
    """A trained scalar reward model as a :class:`~rewardlab.rewards.base.Reward`.

    Score = the model's scalar output for ``template.format(prompt=problem.question,
    response=candidate.text)``. ``params`` is the parameter count (for compute accounting).
    ``pooled`` (default on) computes a supported causal trunk's last layer at the pooled token
    only (:mod:`rewardlab.rewards.pooled_forward`; the same scores to float rounding).
    """

    def __init__(
        self,
        model: ScalarRewardModel,
        tokenizer: Any,
        *,
        name: str = "preference-rm",
        template: str = DEFAULT_TEMPLATE,
        max_length: int = 1024,
        max_tokens: int | None = None,
        max_batch: int = 64,
        ledger: Ledger | None = None,
        pooled: bool = True,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.template = template
        self.max_length = max_length
        self.max_tokens = max_tokens
        self.max_batch = max_batch
        self.ledger = ledger
        self.pooled = pooled
        self.params = param_count(model)

    @classmethod
    def from_dir(
        cls, path: str | Path, *, device: str | None = None, **kwargs: Any
    ) -> PreferenceRM:
        """Load a checkpoint saved by the preference trainer (``rewardlab.json`` inside)."""
        model, tokenizer, meta = load_reward_model(path)
        model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        kwargs.setdefault("name", str(meta.get("name") or Path(path).resolve().name))
        kwargs.setdefault("template", meta.get("template", DEFAULT_TEMPLATE))
        kwargs.setdefault("max_length", int(meta.get("max_length", 1024)))
        return cls(model, tokenizer, **kwargs)

    def text(self, prompt: str, response: str) -> str:
        return self.template.format(prompt=prompt, response=response)

    def score_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Rewards (float [n]) for already formatted texts, in input order."""
        if not texts:
            return np.zeros(0)
        ids = encode_texts(self.tokenizer, texts, self.max_length)
        out = np.zeros(len(texts))
        device = next(self.model.parameters()).device
        budget = self.max_tokens or (2048 if device.type == "cpu" else 16384)
        was_training = self.model.training
        self.model.eval()
        forward = (
            pooled_rewards
            if self.pooled and supports_pooled_forward(self.model)
            else lambda model, x, m: model(x, m)
        )
        with torch.inference_mode():
            for batch in length_sorted_batches([len(x) for x in ids], budget, self.max_batch):
                input_ids, mask = pad_right([ids[i] for i in batch], self.tokenizer.pad_token_id)
                r = forward(self.model, input_ids.to(device), mask.to(device))
                out[batch] = r.cpu().numpy()
        self.model.train(was_training)
        if self.ledger is not None:
            self.ledger.record(self.name, params=self.params, scored_tokens=sum(map(len, ids)))
        return out

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        if len(problems) != len(candidates):
            raise ValueError(f"{len(problems)} problems for {len(candidates)} candidates")
        texts = [self.text(p.question, c.text) for p, c in zip(problems, candidates, strict=True)]
        return [Score(float(v)) for v in self.score_texts(texts)]
