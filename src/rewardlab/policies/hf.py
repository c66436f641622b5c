"""Policy backend ``hf``: any transformers causal LM from a local directory, sampled in batches.

>>> policy = HFPolicy.from_dir("src/rewardlab/assets/tiny_policy")  # doctest: +SKIP
>>> rows = policy.sample([policy.format_prompt("What is 2 + 3?")], 2, Sampling())  # doctest: +SKIP
>>> [c.text for c in rows[0]]  # doctest: +SKIP

How sampling works (so that it is deterministic, batched and honest about logprobs):

- Prompts x n are expanded into rows, sorted by length, left-padded and run through
  ``model.generate`` (KV cache, greedy selection) in chunks of ``max_batch_size`` rows.
- The token is chosen by a logits processor of ours, not by ``generate``: each row has its own
  random stream, seeded from ``(params.seed, text, k)`` where ``k`` counts earlier rows with the
  same text in the call; the token is ``argmax(logits / T - log E)`` with ``E ~ Exp(1)`` per
  vocabulary entry (the Gumbel-max trick: an exact sample from ``softmax(logits / T)``, after
  top-p). So a row's output does not depend on which other rows share its batch, on the batch
  size or on the order of prompts; ``sample(p, 8)`` repeats the first 4 samples of
  ``sample(p, 4)`` (up to floating-point noise between batch shapes). ``temperature == 0`` is
  greedy.
- ``Completion.logprobs`` holds the *untempered model* log-probability of each generated token
  (``log_softmax(logits)``, no temperature, no top-p). The log-probability under the
  distribution actually sampled from (tempered and top-p truncated; 0.0 per token when greedy)
  is in ``Generated.sampling_logprobs`` from :meth:`HFPolicy.generate`.
- Token counts exclude padding and everything after the end: ``generated_tokens`` counts the
  tokens sampled up to and including the eos token or the token that completed the stop string
  (as vLLM does); the text has no eos and ends right after the first stop string.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rewardlab.compute import Ledger
from rewardlab.policies.hf_sampling import (
    RowSampler,
    StopCriteria,
    neutral_config,
    row_seeds,
    truncate_at_stop,
)
from rewardlab.policies.prompts import plain_prompt
from rewardlab.types import Completion, Sampling

_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model*.bin")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
_DECODE_CONTEXT = 4  # prompt tokens decoded with a continuation, so its first space survives


@dataclass(frozen=True)
class Generated:
    """One generated row with everything :class:`Completion` leaves out.

    Attributes:
        completion: text, token counts, untempered model logprobs, finish reason.
        token_ids: the generated token ids counted in ``completion.generated_tokens``.
        sampling_logprobs: per token, the logprob under the distribution sampled from
            (temperature and top-p applied); all 0.0 under greedy decoding.
    """

    completion: Completion
    token_ids: tuple[int, ...]
    sampling_logprobs: tuple[float, ...]


class HFPolicy:
    """A transformers causal LM as a :class:`rewardlab.policies.base.Policy`.

    The constructor only stores its arguments; :meth:`from_dir` loads a model directory. The
    model and tokenizer are used as given and never modified.

    Args:
        model: a loaded causal LM (in eval mode, on its device).
        tokenizer: its tokenizer.
        name: the policy's name in store keys and the ledger.
        ledger: where each call's tokens are recorded, if given.
        max_batch_size: most rows (prompt x sample) run through ``generate`` at once.
        use_chat_template: format questions with the tokenizer's chat template when it has one.
        system_prompt: optional system message for the chat template.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        ledger: Ledger | None = None,
        max_batch_size: int = 64,
        use_chat_template: bool = True,
        system_prompt: str | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.ledger = ledger
        self.max_batch_size = max_batch_size
        self.use_chat_template = use_chat_template
        self.system_prompt = system_prompt
        self.params: int = sum(p.numel() for p in model.parameters())

    @classmethod
    def from_dir(
        cls,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        ledger: Ledger | None = None,
        allow_download: bool = False,
        **kwargs: Any,
    ) -> HFPolicy:
        """Load a model directory saved in transformers format (never downloads by default).

        Args:
            path: a local directory with ``config.json``, weights and tokenizer files; or a hub
                id, only together with ``allow_download=True``.
            name: the policy's name; defaults to the directory's basename.
            device: ``"cpu"``, ``"cuda"``, ...; defaults to CUDA when available.
            dtype: torch dtype or its name; defaults to float32 on CPU, bfloat16 on CUDA.
            allow_download: permit fetching ``path`` from the Hugging Face hub.
            **kwargs: passed to the constructor (``max_batch_size``, ``system_prompt`` ...).

        Raises:
            FileNotFoundError: ``path`` is not a directory (and downloads are not allowed) or
                lacks the config, weights or tokenizer.
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source = str(path)
        local = Path(path).is_dir()
        if local:
            check_model_dir(Path(path))
        elif not allow_download:
            raise FileNotFoundError(
                f"no model directory at {source!r}; give a local directory saved in "
                "transformers format, or pass allow_download=True to fetch a hub id"
            )
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        torch_dtype = _resolve_dtype(dtype, dev)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=not allow_download)
        model: Any = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch_dtype, local_files_only=not allow_download
        )
        model.to(dev).eval()
        default_name = Path(path).resolve().name if local else source.rstrip("/")
        return cls(model, tokenizer, name=name or default_name, ledger=ledger, **kwargs)

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are (inputs are moved there)."""
        return torch.device(next(self.model.parameters()).device)

    @property
    def chat_template(self) -> str | None:
        """The chat template in use, or None when prompts use the plain format."""
        template = getattr(self.tokenizer, "chat_template", None)
        return template if self.use_chat_template and template else None

    def format_prompt(self, question: str) -> str:
        """The question as a prompt: the chat template's user turn, else the plain format."""
        if self.chat_template is None:
            return plain_prompt(question)
        messages = [{"role": "user", "content": question}]
        if self.system_prompt is not None:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return str(text)

    def sample(self, prompts: Sequence[str], n: int, params: Sampling) -> list[list[Completion]]:
        """``n`` completions per prompt, in prompt order; deterministic under ``params.seed``."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        rows = [p for p in prompts for _ in range(n)]
        done = [g.completion for g in self.generate(rows, params)]
        return [done[i * n : (i + 1) * n] for i in range(len(prompts))]

    def extend(
        self, prefixes: Sequence[str], params: Sampling, stop: Sequence[str]
    ) -> list[Completion]:
        """Continue each prefix by one step: up to and including the first of ``stop``."""
        return [g.completion for g in self.generate(prefixes, params, stop)]

    def generate(
        self, texts: Sequence[str], params: Sampling, stop: Sequence[str] = ()
    ) -> list[Generated]:
        """One continuation per text (texts may repeat), with ids and sampling logprobs.

        Rows are sorted by length and run in chunks of ``max_batch_size``; the result is in
        input order. The whole call is recorded in the ledger as one call.
        """
        stops = tuple(s for s in stop if s)
        encoded = [self._encode(t) for t in texts]
        seeds = row_seeds(texts, params.seed)
        order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))
        out: list[Generated | None] = [None] * len(texts)
        for start in range(0, len(order), self.max_batch_size):
            chunk = order[start : start + self.max_batch_size]
            results = self._generate_chunk(
                [encoded[i] for i in chunk], [seeds[i] for i in chunk], params, stops
            )
            for i, result in zip(chunk, results, strict=True):
                out[i] = result
        generated = [g for g in out if g is not None]
        if self.ledger is not None and generated:
            self.ledger.record(
                self.name,
                params=self.params,
                prompt_tokens=sum(g.completion.prompt_tokens for g in generated),
                generated_tokens=sum(g.completion.generated_tokens for g in generated),
            )
        return generated

    # -- internals -------------------------------------------------------------------------

    def _encode(self, text: str) -> list[int]:
        """Token ids of a prompt; a BOS doubled by template + tokenizer is kept once."""
        ids = list(self.tokenizer(text)["input_ids"])
        bos = self.tokenizer.bos_token_id
        if bos is not None and len(ids) >= 2 and ids[0] == ids[1] == bos:
            ids = ids[1:]
        return ids

    @property
    def _eos_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        for source in (self.tokenizer.eos_token_id, self.model.generation_config.eos_token_id):
            if isinstance(source, int):
                ids.add(source)
            elif source is not None:
                ids.update(int(i) for i in source)
        return frozenset(ids)

    @property
    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = min(self._eos_ids) if self._eos_ids else 0
        return int(pad)

    def _generate_chunk(
        self,
        prompts: list[list[int]],
        seeds: list[int],
        params: Sampling,
        stops: tuple[str, ...],
    ) -> list[Generated]:
        width = max(len(p) for p in prompts)
        pad = self._pad_id
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for r, p in enumerate(prompts):
            ids[r, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[r, width - len(p) :] = 1
        device = self.device
        chooser = RowSampler(seeds, params.temperature, params.top_p, device)
        stopper = StopCriteria(self._continuation, prompts, width, stops, self._eos_ids)
        with torch.inference_mode():
            sequences = self.model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                generation_config=neutral_config(params.max_new_tokens, pad, self._eos_ids),
                logits_processor=[chooser],
                stopping_criteria=[stopper],
            )
        gen = sequences[:, width:].tolist()
        results = []
        for r, prompt in enumerate(prompts):
            length, reason = stopper.finished.get(r, (len(gen[r]), "length"))
            token_ids = gen[r][:length]
            text = self._continuation(prompt, token_ids)
            if reason == "stop" and stops:
                text = truncate_at_stop(text, stops)[0]
            completion = Completion(
                text=text,
                prompt_tokens=len(prompt),
                generated_tokens=length,
                logprobs=tuple(chooser.raw[r][:length]),
                finish_reason=reason,
            )
            sampled = tuple(chooser.sampled[r][:length])
            results.append(Generated(completion, tuple(token_ids), sampled))
        return results

    def _continuation(self, prompt: list[int], token_ids: list[int]) -> str:
        """Decode generated ids in the context of the prompt's last tokens (keeps spaces)."""
        context = prompt[-_DECODE_CONTEXT:]
        head = self.tokenizer.decode(context, skip_special_tokens=True)
        full = self.tokenizer.decode(context + token_ids, skip_special_tokens=True)
        if full.startswith(head):
            return str(full[len(head) :])
        return str(self.tokenizer.decode(token_ids, skip_special_tokens=True))


def check_model_dir(path: Path) -> None:
    """Raise FileNotFoundError naming what a transformers model directory lacks."""
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if not any(any(path.glob(p)) for p in _WEIGHT_PATTERNS):
        missing.append("weights (*.safetensors or pytorch_model*.bin)")
    if not any((path / f).is_file() for f in _TOKENIZER_FILES):
        missing.append(f"tokenizer (one of {', '.join(_TOKENIZER_FILES)})")
    if missing:
        raise FileNotFoundError(f"model directory {str(path)!r} lacks {'; '.join(missing)}")


def _resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}")
    return resolved
