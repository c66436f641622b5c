"""Qwen2.5-Math-PRM on vLLM's pooling engine (``vllm-prm:path=DIR``; GPU machines, optional).

The recipe is :mod:`rewardlab.rewards.presets.qwen_prm`'s, token for token (Zhang et al. 2025,
"The Lessons of Developing Process Reward Models in Mathematical Reasoning"; the model card):
system + user + assistant turns through the chat template, each step followed by ``<extra_0>``,
step score = ``softmax(head)[1]`` at each separator. The ids are built here by that recipe's own
``encode`` (so the positions are the ones the transformers path reads) and handed to the engine
as ``{"prompt_token_ids": ids}``; vLLM runs the backbone and the head
(``Qwen2ForProcessRewardModel``, native in vLLM, no remote code) and returns per-token class
values; :func:`step_probs` reads them at the recorded separators.

vLLM's API for this moved across versions; the one targeted is **0.11 and later**
(``LLM(model, runner="pooling")``, ``LLM.encode(prompts, pooling_task="token_classify")``), and
0.7 - 0.10 are handled too (``LLM(model, task="reward")``; ``encode`` without a pooling task, or
with ``"encode"`` where 0.10 asks for one). See :func:`pooling_engine_kwargs` and
:func:`pooling_task_of`. Fields relied on: ``PoolingRequestOutput.outputs.data`` (a tensor) and
``.prompt_token_ids``.

What ``data`` holds depends on the pooler: ``STEP`` pooling (vLLM's default for this model, with
``step_tag_id`` = ``<extra_0>``) gives one row per ``<extra_0>`` in the ids, in order; ``ALL``
pooling one row per token. Rows are probabilities (the default ``softmax``) or logits (a pooler
config without it): :func:`step_probs` tells them apart by shape and by whether every row is a
distribution, and reads the class-1 probability at each of the recipe's own boundaries (a step
whose text contains ``<extra_0>`` adds rows that are skipped, as the transformers path does).
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.rewards.presets.common import (
    StepScorer,
    fingerprint,
    load_tokenizer,
    model_dir,
    read_config,
    scores_by_boundary,
    single_token,
)
from rewardlab.rewards.presets.qwen_prm import QWEN_PRM_SEPARATOR, QWEN_PRM_SYSTEM, QwenPRM
from rewardlab.rewards.step_format import Encoded
from rewardlab.types import Candidate, Problem, Score

VLLM_EXTRA_HINT = (
    "pip install 'rewardlab[vllm]' on a machine with a CUDA GPU; on CPU use "
    "'qwen-prm:path=DIR' (the same recipe on transformers)"
)
_PROB_ATOL = 1e-3


class PoolingOutputError(RuntimeError):
    """Pooled data whose shape fits neither STEP nor ALL pooling of the given ids."""


def pooling_engine_kwargs(engine_fields: Collection[str]) -> dict[str, Any]:
    """How to ask ``vllm.LLM`` for a pooling (reward) engine, given ``EngineArgs``' field names:
    ``runner="pooling"`` (0.10 and later), else ``task="reward"`` (0.7 - 0.9), else nothing
    (older: the architecture decides).

    >>> pooling_engine_kwargs({"model", "runner", "task"})
    {'runner': 'pooling'}
    """
    if "runner" in engine_fields:
        return {"runner": "pooling"}
    if "task" in engine_fields:
        return {"task": "reward"}
    return {}


def pooling_task_of(encode_params: Collection[str], has_token_classify: bool) -> dict[str, Any]:
    """The extra arguments of ``LLM.encode`` for per-token reward outputs: ``pooling_task``
    ``"token_classify"`` where that task exists (0.11 and later), ``"encode"`` where ``encode``
    takes a task but the newer name does not exist (0.10), nothing where it takes none."""
    if "pooling_task" not in encode_params:
        return {}
    return {"pooling_task": "token_classify" if has_token_classify else "encode"}


def as_probabilities(rows: np.ndarray) -> np.ndarray:
    """Rows that are already distributions (non-negative, summing to 1) as they are; other rows
    (logits) through a softmax. A row of logits that happens to be a distribution is taken as
    one: the pooler's ``softmax`` setting decides which, and its default is on."""
    if rows.ndim != 2 or rows.shape[1] < 2:
        raise PoolingOutputError(f"expected [rows, classes >= 2], got shape {rows.shape}")
    if np.all(rows >= 0) and np.allclose(rows.sum(axis=1), 1.0, atol=_PROB_ATOL):
        return rows
    shifted = rows - rows.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def step_probs(data: Any, encoded: Encoded, sep_id: int, positive: int = 1) -> list[float]:
    """The class-``positive`` probability at each boundary of ``encoded`` from pooled ``data``.

    ``data`` is ``[len(ids), classes]`` (ALL pooling: one row per token) or ``[k, classes]``
    with ``k`` the number of ``sep_id`` tokens in the ids (STEP pooling: one row per separator,
    in order); one STEP row may come flat (``[classes]``).

    Raises:
        PoolingOutputError: a shape that fits neither, or a boundary that is not ``sep_id``.
    """
    rows = np.asarray(data, dtype=np.float64)
    ids = encoded.ids
    tags = [t for t, i in enumerate(ids) if i == sep_id]
    if rows.ndim == 1 and len(tags) == 1:
        rows = rows[None, :]
    for b in encoded.boundaries:
        if ids[b] != sep_id:
            raise PoolingOutputError(f"boundary {b} is token {ids[b]}, not the separator {sep_id}")
    if rows.ndim != 2:
        raise PoolingOutputError(f"pooled data of shape {rows.shape} is not [rows, classes]")
    if rows.shape[0] == len(ids) and len(ids) != len(tags):
        picked = rows[list(encoded.boundaries)]
    elif rows.shape[0] == len(tags):
        ordinal = {t: k for k, t in enumerate(tags)}
        picked = rows[[ordinal[b] for b in encoded.boundaries]]
    else:
        raise PoolingOutputError(
            f"pooled data has {rows.shape[0]} rows for {len(ids)} tokens with {len(tags)} "
            f"separators: neither ALL nor STEP pooling of these ids"
        )
    if not 0 <= positive < picked.shape[1]:
        raise PoolingOutputError(f"class {positive} out of range for {picked.shape[1]} classes")
    return [float(v) for v in as_probabilities(picked)[:, positive]]


def _to_numpy(data: Any) -> np.ndarray:
    """A tensor (any device, any float dtype) or nested list as a float64 array."""
    if hasattr(data, "detach"):
        data = data.detach().float().cpu().numpy()
    return np.asarray(data, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class VLLMQwenPRM(StepScorer):
    """Qwen2.5-Math-PRM scored on a vLLM pooling engine (a
    :class:`~rewardlab.rewards.base.StepReward`).

    Args:
        llm: a ``vllm.LLM`` pooling engine for the PRM's directory.
        recipe: the transformers preset used only for its ``encode`` (tokenizer side: ids and
            separator positions); it holds no model.
        encode_kwargs: extra arguments of ``LLM.encode`` (:func:`pooling_task_of`).
        aggregate, name, batch_size, fingerprint, max_length, params: as the other presets.
    """

    llm: Any
    recipe: QwenPRM
    encode_kwargs: dict[str, Any]
    aggregate: str = "last"
    name: str = "vllm-prm"
    batch_size: int = 64
    fingerprint: str = ""
    max_length: int | None = None
    params: int = 0

    def __post_init__(self) -> None:
        self.check(self.aggregate)

    @property
    def tokenizer(self) -> Any:
        return self.recipe.tokenizer

    def encode(self, problem: Problem, candidate: Candidate) -> Encoded | Score:
        return self.recipe.encode(problem, candidate)

    def read(self, batch: Sequence[Encoded]) -> list[Score]:
        sep_id = single_token(self.tokenizer, self.recipe.separator, "step separator", self.name)
        prompts = [{"prompt_token_ids": list(e.ids)} for e in batch]
        outs = self.llm.encode(prompts, **self.encode_kwargs)
        if len(outs) != len(batch):
            raise PoolingOutputError(f"{len(batch)} prompts but {len(outs)} pooling outputs")
        flat: list[float] = []
        for e, out in zip(batch, outs, strict=True):
            if list(out.prompt_token_ids) != list(e.ids):
                raise PoolingOutputError("the engine read other ids than the recipe built")
            flat += step_probs(_to_numpy(out.outputs.data), e, sep_id)
        return scores_by_boundary(flat, batch, self.aggregate)


def load_vllm_prm(
    path: str | Path,
    *,
    device: str | None = None,
    dtype: str = "auto",
    name: str | None = None,
    aggregate: str = "last",
    batch_size: int = 64,
    separator: str = QWEN_PRM_SEPARATOR,
    gpu_memory_utilization: float = 0.9,
    max_model_len: int | None = None,
    llm: Any = None,
) -> VLLMQwenPRM:
    """Qwen2.5-Math-PRM from a local directory on vLLM (``vllm-prm:path=DIR``); nothing
    downloads. ``device`` is accepted and ignored (vLLM runs on its GPUs); ``llm`` takes an
    engine already built.

    Raises:
        ImportError: vLLM is not installed (naming the extra).
        ValueError: the separator is not one token of the tokenizer.
    """
    del device
    p = model_dir(path)
    tokenizer = load_tokenizer(p)
    single_token(tokenizer, separator, "step separator", str(p))
    if llm is None:
        try:
            import vllm
        except ImportError as err:
            raise ImportError(
                f"vllm-prm needs vLLM, which is not installed: {VLLM_EXTRA_HINT}"
            ) from err
        engine_fields = (
            {f.name for f in fields(vllm.EngineArgs)} if is_dataclass(vllm.EngineArgs) else set()
        )
        kwargs: dict[str, Any] = {"model": str(p), "tokenizer": str(p), "dtype": dtype}
        kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        llm = vllm.LLM(**kwargs, **pooling_engine_kwargs(engine_fields))
    params = inspect.signature(llm.encode).parameters
    has_token_classify = _knows_token_classify()
    recipe = QwenPRM(backbone=None, head=None, tokenizer=tokenizer, separator=separator)
    config = read_config(p)
    limit = config.get("max_position_embeddings")
    return VLLMQwenPRM(
        llm=llm,
        recipe=recipe,
        encode_kwargs=pooling_task_of(set(params), has_token_classify),
        aggregate=aggregate,
        name=name or "vllm-prm",
        batch_size=batch_size,
        fingerprint=fingerprint(p),
        max_length=int(limit) if isinstance(limit, int) else None,
        params=_count_params(p),
    )


def _knows_token_classify() -> bool:
    """Whether the installed vLLM has the ``token_classify`` pooling task (0.11 and later)."""
    try:
        from vllm.tasks import POOLING_TASKS
    except ImportError:
        return False
    return "token_classify" in POOLING_TASKS


def _count_params(p: Path) -> int:
    from rewardlab.policies.vllm_backend import safetensors_params

    try:
        return safetensors_params(p)
    except (FileNotFoundError, ValueError):
        return 0


__all__ = [
    "QWEN_PRM_SYSTEM",
    "PoolingOutputError",
    "VLLMQwenPRM",
    "as_probabilities",
    "load_vllm_prm",
    "pooling_engine_kwargs",
    "pooling_task_of",
    "step_probs",
]
