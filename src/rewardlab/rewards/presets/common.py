"""What every published-model recipe shares: its model card's text, tokenized once, and the
token positions its scores are read at, found by character offsets (never by searching ids).

A recipe builds the exact string its model card builds (chat template, step separators or
tags), tokenizes it once with a fast tokenizer, and records where each step mark lands:
the token that ends exactly where the mark ends. A mark that merges with its neighbouring
text, or is not the token the card reads, is an error naming the problem, never a silent
misread. Scoring is one forward pass per batch of candidates, right-padded (a causal model's
output at a real position is the same alone and in a padded batch).

Local weights only: every ``from_pretrained`` here is ``local_files_only=True`` and
``trust_remote_code=False`` — the heads that published checkpoints ship as their own code
(Qwen2.5-Math-PRM's MLP, ArmoRM's gating) are rebuilt here from the tensors' names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rewardlab.rewards.prm import AGGREGATES, aggregate
from rewardlab.rewards.step_format import Encoded, pad_id_of, pad_right
from rewardlab.types import Candidate, Problem, Score

#: stands in for the response while finding where a chat template puts it
SENTINEL = "\x00rewardlab-response\x00"
DTYPES = ("float32", "bfloat16", "float16")


# ---------------------------------------------------------------------------- text and marks


def render_chat(
    tokenizer: Any, messages: Sequence[Mapping[str, str]], *, generation_prompt: bool = False
) -> str:
    """The tokenizer's own chat template applied to ``messages`` (text, not ids)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "the tokenizer has no chat template (tokenizer_config.json 'chat_template'); this "
            "recipe renders the conversation the way the model card does"
        )
    out = tokenizer.apply_chat_template(
        [dict(m) for m in messages], tokenize=False, add_generation_prompt=generation_prompt
    )
    return str(out)


def chat_text(
    tokenizer: Any, prompt: Sequence[Mapping[str, str]], response: str, *, exact: bool
) -> tuple[str, int]:
    """The conversation ``prompt`` + assistant ``response`` rendered by the chat template, and
    the character where the response starts in it.

    With ``exact`` the template must copy the response verbatim (a recipe that located step
    marks inside it needs their characters where it put them); else only the text before the
    response must not depend on it (Llama-3's template trims the response, which is fine for a
    score read at the last token).
    """
    probe = render_chat(tokenizer, [*prompt, {"role": "assistant", "content": SENTINEL}])
    if probe.count(SENTINEL) != 1:
        raise ValueError("the chat template does not place the assistant message exactly once")
    start = probe.index(SENTINEL)
    text = render_chat(tokenizer, [*prompt, {"role": "assistant", "content": response}])
    if text[:start] != probe[:start]:
        raise ValueError("the chat template renders the prompt differently for this response")
    if exact and text[start : start + len(response)] != response:
        raise ValueError(
            "the chat template alters the response text (trims or escapes it), so the step "
            "marks cannot be located; strip the steps or use a template that copies them"
        )
    return text, start


def tokenize_marked(
    tokenizer: Any,
    text: str,
    marks: Sequence[tuple[int, int]],
    response_start: int,
    *,
    add_special_tokens: bool,
    mark_id: int | None = None,
) -> Encoded:
    """Tokenize ``text`` once; each mark (a ``(start, end)`` character span) becomes the index
    of the token that ends exactly at the mark's end (with id ``mark_id`` when given).

    Returns an :class:`~rewardlab.rewards.step_format.Encoded` whose ``boundaries`` are the
    marks' token positions and ``prompt_len`` the first token holding a response character.

    Raises:
        ValueError: the tokenizer gives no offsets (not a fast tokenizer), or a mark is not a
            token of its own (merged with its neighbours, or not ``mark_id``).
    """
    try:
        enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    except NotImplementedError:
        raise ValueError(
            "this recipe needs a fast tokenizer (tokenizer.json) for character offsets"
        ) from None
    ids = [int(i) for i in enc["input_ids"]]
    offsets = [(int(a), int(b)) for a, b in enc["offset_mapping"]]
    boundaries = []
    for a, b in marks:
        covering = [t for t, (s, e) in enumerate(offsets) if s < b <= e and s < e]
        if not covering or offsets[covering[0]][1] != b:
            raise ValueError(
                f"step mark {text[a:b]!r} at characters {a}-{b} is not a token of its own: it "
                "merges with the text after it for this tokenizer"
            )
        t = covering[0]
        if mark_id is not None and ids[t] != mark_id:
            raise ValueError(
                f"step mark {text[a:b]!r} is token {ids[t]} in context, not the id {mark_id} "
                "the recipe reads"
            )
        boundaries.append(t)
    prompt_len = next((t for t, (_, e) in enumerate(offsets) if e > response_start), len(ids))
    return Encoded(tuple(ids), tuple(boundaries), prompt_len)


def single_token(tokenizer: Any, text: str, what: str, where: str) -> int:
    """The id of ``text`` when the tokenizer knows it as exactly one token."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if len(ids) != 1:
        raise ValueError(
            f"{where}: the tokenizer splits the {what} {text!r} into {len(ids)} tokens; the "
            "recipe reads it as one (is this the model the recipe is for?)"
        )
    return int(ids[0])


# ----------------------------------------------------------------------------------- loading


def model_dir(path: str | Path) -> Path:
    """``path`` as a local transformers model directory (raises naming what is missing)."""
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"model directory {p} does not exist (nothing is downloaded)")
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"{p} has no config.json: not a transformers model directory")
    return p


def device_of(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def torch_dtype(dtype: str) -> Any:
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {list(DTYPES)}")
    return getattr(torch, dtype)


def load_auto(path: Path, auto_class: str, device: str | None, dtype: str) -> Any:
    """A transformers model from a local directory by its model type (never remote code)."""
    import transformers

    cls = getattr(transformers, auto_class)
    model = cls.from_pretrained(
        str(path), local_files_only=True, trust_remote_code=False, dtype=torch_dtype(dtype)
    )
    return model.to(device_of(device)).eval()


def load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def read_config(path: Path) -> dict[str, Any]:
    data = json.loads((path / "config.json").read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}/config.json is not a JSON object")
    return data


def head_tensors(path: Path, prefix: str) -> dict[str, Any]:
    """Every tensor of the checkpoint whose name starts with ``prefix`` (prefix removed), read
    from ``model.safetensors`` or the shards its index names; only those tensors are loaded."""
    from safetensors import safe_open

    index = path / "model.safetensors.index.json"
    if index.is_file():
        weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        files = sorted({f for k, f in weight_map.items() if k.startswith(prefix)})
    else:
        files = ["model.safetensors"] if (path / "model.safetensors").is_file() else []
    out: dict[str, Any] = {}
    for name in files:
        with safe_open(str(path / name), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open has keys(), not iteration)
                if key.startswith(prefix):
                    out[key[len(prefix) :]] = f.get_tensor(key)
    if not out:
        raise ValueError(
            f"{path} has no '{prefix}*' tensors in its safetensors weights: the head this "
            "recipe reads is missing (is this the model the recipe is for?)"
        )
    return out


def fingerprint(*paths: Path) -> str:
    """First 16 hex digits of a SHA-256 over the weight files (names and sizes) and configs:
    cheap for 8B checkpoints, and different whenever the weights are replaced."""
    import hashlib

    digest = hashlib.sha256()
    for path in paths:
        for f in [*sorted(path.glob("*.safetensors")), path / "config.json"]:
            if f.is_file():
                digest.update(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def param_count(*modules: Any) -> int:
    return int(sum(p.numel() for m in modules for p in m.parameters()))


# ----------------------------------------------------------------------------------- scoring


def step_score(values: Sequence[float], how: str, **info: Any) -> Score:
    """A :class:`Score` of per-step values aggregated by ``how`` (ungraded if non-finite)."""
    steps = tuple(float(v) for v in values)
    if not steps:
        return Score.ungraded("no step was scored", **info)
    if not all(np.isfinite(steps)):
        return Score.ungraded("non-finite step score", steps=steps, **info)
    return Score(aggregate(steps, how), steps, info)


def scores_by_boundary(flat: Sequence[float], batch: Sequence[Encoded], how: str) -> list[Score]:
    """Per-candidate :func:`step_score` s from one value per boundary, in batch order (the
    order :func:`boundary_index` gathers them)."""
    out, k = [], 0
    for e in batch:
        n = len(e.boundaries)
        out.append(step_score(flat[k : k + n], how))
        k += n
    return out


def batch_ids(batch: Sequence[Encoded], tokenizer: Any, model: Any, device: Any) -> tuple[Any, Any]:
    """Right-padded ``(input_ids, attention_mask)`` of a batch on ``device``."""
    ids, mask = pad_right(batch, pad_id_of(tokenizer, model))
    return ids.to(device), mask.to(device)


class PresetScorer:
    """The scoring loop every preset shares; a preset supplies ``encode`` and ``read``.

    ``score`` returns one :class:`Score` per candidate (``steps`` holds the per-step values
    for the step recipes, :class:`StepScorer`); candidates without steps or longer than
    the model's context are ungraded with the reason. Candidates are sorted by length and run
    ``batch_size`` at a time, one forward pass per batch.
    """

    name: str
    batch_size: int
    tokenizer: Any
    max_length: int | None = None
    #: the score depends only on the problem and the candidate's text/steps
    text_only: ClassVar[bool] = True

    def encode(self, problem: Problem, candidate: Candidate) -> Encoded | Score:
        raise NotImplementedError

    def read(self, batch: Sequence[Encoded]) -> list[Score]:
        raise NotImplementedError

    def check(self, how: str) -> None:
        if how not in AGGREGATES:
            raise ValueError(f"unknown aggregation {how!r}; choose one of {list(AGGREGATES)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        """One :class:`Score` per candidate, from one forward pass per batch."""
        import torch

        if len(problems) != len(candidates):
            raise ValueError("problems and candidates must have the same length")
        items: list[Encoded | Score] = []
        for p, c in zip(problems, candidates, strict=True):
            item = self.encode(p, c)
            if isinstance(item, Encoded) and self.max_length and len(item) > self.max_length:
                limit = self.max_length
                item = Score.ungraded(f"{len(item)} tokens, more than the model's {limit}")
            items.append(item)
        todo = sorted(
            (i for i, it in enumerate(items) if isinstance(it, Encoded)),
            key=lambda i: len(items[i]),  # type: ignore[arg-type]
        )
        out: list[Score | None] = [it if isinstance(it, Score) else None for it in items]
        with torch.inference_mode():
            for start in range(0, len(todo), self.batch_size):
                chunk = todo[start : start + self.batch_size]
                batch = [items[i] for i in chunk]
                for i, s in zip(chunk, self.read(batch), strict=True):  # type: ignore[arg-type]
                    out[i] = s
        missing = [i for i, s in enumerate(out) if s is None]
        if missing:
            raise RuntimeError(f"{self.name}: no score read for candidates {missing}")
        return out  # type: ignore[return-value]


class StepScorer(PresetScorer):
    """A preset whose scores are per step: also a :class:`~rewardlab.rewards.base.StepReward`
    (the outcome presets are not, so the jobs never take them for process rewards)."""

    def score_steps(
        self, problems: Sequence[Problem], candidates: Sequence[Candidate]
    ) -> list[Score]:
        """The same scores; ``Score.steps`` holds one value per step."""
        return self.score(problems, candidates)
