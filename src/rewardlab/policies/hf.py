"""Policy backend ``hf``: any transformers causal LM from a local directory, sampled in batches.

>>> policy = HFPolicy.from_dir("src/rewardlab/assets/tiny_policy")  # doctest: +SKIP
>>> rows = policy.sample([policy.format_prompt("What is 2 + 3?")], 2, Sampling())  # doctest: +SKIP
>>> [c.text for c in rows[0]]  # doctest: +SKIP

How sampling works (so that it is deterministic, batched and honest about logprobs):

- Prompts x n are expanded into rows, sorted by length (identical prompts side by side) and
  run in chunks of ``max_batch_size`` rows through our own decode loop
  (:mod:`rewardlab.policies.hf_decode`: one preallocated key/value buffer, identical prompts
  computed once, finished rows leave the batch), or through ``model.generate`` with
  ``decoder="generate"`` (the previous engine; also used for models whose cache is not one
  ``[batch, heads, tokens, head_dim]`` tensor per layer, e.g. sliding-window attention).
- The token is chosen by us, not by ``generate``: each row has its own random stream, seeded
  from ``(params.seed, text, k)`` where ``k`` counts earlier rows with the same text in the
  call; the token is ``argmax(logits / T - log E)`` with ``E ~ Exp(1)`` per vocabulary entry
  (the Gumbel-max trick: an exact sample from ``softmax(logits / T)``, after top-p). So a row's
  output does not depend on which other rows share its batch, on the batch size, on the order
  of prompts, on the prefix cache or on the decoder; ``sample(p, 8)`` repeats the first 4
  samples of ``sample(p, 4)`` (up to floating-point noise between batch shapes, which can in
  rare cases flip a near-tie). ``temperature == 0`` is greedy.
- ``Completion.logprobs`` holds the *untempered model* log-probability of each generated token
  (``log_softmax(logits)``, no temperature, no top-p). The log-probability under the
  distribution actually sampled from (tempered and top-p truncated; 0.0 per token when greedy)
  is in ``Generated.sampling_logprobs`` from :meth:`HFPolicy.generate`.
- Token counts exclude padding and everything after the end: ``generated_tokens`` counts the
  tokens sampled up to and including the eos token or the token that completed the stop string
  (as vLLM does); the text has no eos and ends right after the first stop string.

Prefix reuse: with the loop decoder, a :class:`~rewardlab.policies.prefix_cache.PrefixCache`
of at most ``prefix_cache_mb`` MiB keeps the key/value states of prompts (``sample``) and of
prompt + generated step (``extend``), so the next ``extend`` on "prefix + step" re-reads only
the tokens the cache cannot serve. Results are the same with and without it.

Ledger: ``prompt_tokens`` is the *logical* prompt length of every row (as without reuse),
``generated_tokens`` the generated ones; ``flops`` is ``2 * params * (prompt tokens actually
run through the model + generated tokens)``: prompt tokens served by the prefix cache or shared
with an identical row of the same call are not counted as computed. The difference is in
:attr:`HFPolicy.reuse` (``served_prompt_tokens``).

Limits: a prompt longer than ``max_prompt_tokens`` (default: the model's
``max_position_embeddings`` minus ``max_new_tokens``; 32,768 minus that when the model states
no maximum) raises :class:`PromptTooLongError` naming the row and the lengths, before anything
is run; with ``truncate=True`` it keeps the prompt's last tokens (and a leading BOS) instead.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rewardlab.compute import Ledger, forward_flops
from rewardlab.policies.hf_decode import StopRule, decode_rows
from rewardlab.policies.hf_sampling import (
    RowSampler,
    StopCriteria,
    neutral_config,
    row_generators,
    row_seeds,
    stop_table,
    truncate_at_stop,
)
from rewardlab.policies.prefix_cache import PrefixCache
from rewardlab.policies.prompts import plain_prompt
from rewardlab.types import Completion, Sampling

_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model*.bin")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
_DECODE_CONTEXT = 4  # prompt tokens decoded with a continuation, so its first space survives
_DEFAULT_MAX_POSITIONS = 32768  # assumed when a model's config states no maximum
DECODERS = ("loop", "generate")


class PromptTooLongError(ValueError):
    """A prompt has more tokens than the policy takes (``row``, ``tokens``, ``limit``)."""

    def __init__(self, row: int, tokens: int, limit: int, detail: str, *, at_least: bool = False):
        self.row, self.tokens, self.limit = row, tokens, limit
        size = f"at least {tokens:,}" if at_least else f"{tokens:,}"
        super().__init__(
            f"prompt {row} has {size} tokens; this policy takes at most {limit:,} prompt "
            f"tokens ({detail}); shorten it, raise max_prompt_tokens, or pass truncate=True "
            "to keep its last tokens"
        )


@dataclass
class ReuseStats:
    """Prompt tokens of every call: logical, actually computed, served by reuse.

    ``served_prompt_tokens = prompt_tokens - computed_prompt_tokens``: tokens whose states came
    from the prefix cache or from an identical prompt in the same call.
    """

    prompt_tokens: int = 0
    computed_prompt_tokens: int = 0

    @property
    def served_prompt_tokens(self) -> int:
        return self.prompt_tokens - self.computed_prompt_tokens


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
        max_batch_size: most rows (prompt x sample) decoded at once.
        use_chat_template: format questions with the tokenizer's chat template when it has one.
        system_prompt: optional system message for the chat template.
        decoder: ``"loop"`` (our decode loop, prefix reuse) or ``"generate"`` (``model.generate``
            with a logits processor; no reuse). Models the loop cannot serve use ``generate``.
        prefix_cache_mb: budget of the prefix cache in MiB (0 turns reuse between calls off).
        max_prompt_tokens: longest prompt accepted, in tokens; None: the model's maximum
            positions minus ``max_new_tokens`` of the call.
        truncate: cut too-long prompts from the left instead of raising.
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
        decoder: str = "loop",
        prefix_cache_mb: float = 256.0,
        max_prompt_tokens: int | None = None,
        truncate: bool = False,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        if not prefix_cache_mb >= 0:
            raise ValueError(f"prefix_cache_mb must be >= 0, got {prefix_cache_mb}")
        if max_prompt_tokens is not None and max_prompt_tokens < 1:
            raise ValueError(f"max_prompt_tokens must be >= 1, got {max_prompt_tokens}")
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.ledger = ledger
        self.max_batch_size = max_batch_size
        self.use_chat_template = use_chat_template
        self.system_prompt = system_prompt
        self.params: int = sum(p.numel() for p in model.parameters())
        self.decoder = decoder if _loop_supported(model) else "generate"
        self.prefix_cache = PrefixCache(int(prefix_cache_mb * 2**20))
        self.max_prompt_tokens = max_prompt_tokens
        self.truncate = truncate
        self.reuse = ReuseStats()
        self._stop_tables: dict[tuple[str, ...], torch.Tensor] = {}
        self._max_token_chars: int | None = None
        self._lock = threading.Lock()  # one call at a time: the prefix cache is shared state

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
        run = self._run(rows, params, (), store_generated=False, per_prompt=n)
        done = [g.completion for g in run]
        return [done[i * n : (i + 1) * n] for i in range(len(prompts))]

    def extend(
        self, prefixes: Sequence[str], params: Sampling, stop: Sequence[str]
    ) -> list[Completion]:
        """Continue each prefix by one step: up to and including the first of ``stop``.

        Prefix + generated states go to the prefix cache, so extending "prefix + step" next
        re-reads only what the cache cannot serve.
        """
        return [g.completion for g in self._run(prefixes, params, stop, store_generated=True)]

    def generate(
        self, texts: Sequence[str], params: Sampling, stop: Sequence[str] = ()
    ) -> list[Generated]:
        """One continuation per text (texts may repeat), with ids and sampling logprobs.

        Rows are sorted by length and run in chunks of ``max_batch_size``; the result is in
        input order. The whole call is recorded in the ledger as one call. Prompt states are
        stored in the prefix cache (generated ones only by :meth:`extend`).

        Raises:
            PromptTooLongError: a prompt is over the limit (and ``truncate`` is off).
        """
        return self._run(texts, params, stop, store_generated=False)

    def prompt_limit(self, max_new_tokens: int) -> int:
        """Most prompt tokens accepted by a call generating up to ``max_new_tokens``."""
        positions = self._max_positions()
        room = positions - max_new_tokens
        if room < 1:
            raise ValueError(
                f"max_new_tokens={max_new_tokens} leaves no room for a prompt: the model has "
                f"{positions} positions"
            )
        return room if self.max_prompt_tokens is None else min(self.max_prompt_tokens, room)

    def _run(
        self,
        texts: Sequence[str],
        params: Sampling,
        stop: Sequence[str],
        *,
        store_generated: bool,
        per_prompt: int = 1,
    ) -> list[Generated]:
        """Generate for every text (``per_prompt`` consecutive rows per caller's prompt)."""
        with self._lock:
            return self._run_locked(texts, params, stop, store_generated, per_prompt)

    def _run_locked(
        self,
        texts: Sequence[str],
        params: Sampling,
        stop: Sequence[str],
        store_generated: bool,
        per_prompt: int,
    ) -> list[Generated]:
        stops = tuple(s for s in stop if s)
        limit = self.prompt_limit(params.max_new_tokens)
        encoded = [self._encode_limited(t, row // per_prompt, limit) for row, t in enumerate(texts)]
        seeds = row_seeds(texts, params.seed)
        order = sorted(range(len(texts)), key=lambda i: (-len(encoded[i]), encoded[i]))
        out: list[Generated | None] = [None] * len(texts)
        computed = 0
        for start in range(0, len(order), self.max_batch_size):
            chunk = order[start : start + self.max_batch_size]
            prompts, chunk_seeds = [encoded[i] for i in chunk], [seeds[i] for i in chunk]
            if self.decoder == "loop":
                results, n = self._decode_chunk(
                    prompts, chunk_seeds, params, stops, store_generated
                )
            else:
                results = self._generate_chunk(prompts, chunk_seeds, params, stops)
                n = sum(map(len, prompts))
            computed += n
            for i, result in zip(chunk, results, strict=True):
                out[i] = result
        generated = [g for g in out if g is not None]
        prompt_tokens = sum(g.completion.prompt_tokens for g in generated)
        self.reuse.prompt_tokens += prompt_tokens
        self.reuse.computed_prompt_tokens += computed
        if self.ledger is not None and generated:
            new_tokens = sum(g.completion.generated_tokens for g in generated)
            self.ledger.record(
                self.name,
                params=self.params,
                prompt_tokens=prompt_tokens,
                generated_tokens=new_tokens,
                flops=forward_flops(self.params, computed + new_tokens),
            )
        return generated

    # -- internals -------------------------------------------------------------------------

    def _max_positions(self) -> int:
        config = self.model.config
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        value = getattr(text, "max_position_embeddings", None)
        return int(value) if isinstance(value, int) and value > 0 else _DEFAULT_MAX_POSITIONS

    def _encode_limited(self, text: str, row: int, limit: int) -> list[int]:
        """Token ids of a prompt within ``limit`` tokens (error or left truncation).

        A text with more characters than ``limit`` tokens can hold (longest token's characters
        x limit) is refused, or cut to its tail by characters, before it is tokenized, so one
        huge input never costs more than a bounded tokenization.
        """
        detail = f"max_prompt_tokens={self.max_prompt_tokens}"
        if self.max_prompt_tokens is None or self.max_prompt_tokens > limit:
            detail = f"the model's {self._max_positions()} positions minus max_new_tokens"
        if len(text) > limit:
            widest = self._widest_token()
            if len(text) > limit * widest:
                if not self.truncate:
                    least = math.ceil(len(text) / widest)
                    raise PromptTooLongError(row, least, limit, detail, at_least=True)
                text = text[-(limit + 64) * widest :]
        ids = self._encode(text)
        if not ids:
            raise ValueError(f"prompt {row} is empty: it has no tokens to continue from")
        if len(ids) <= limit:
            return ids
        if not self.truncate:
            raise PromptTooLongError(row, len(ids), limit, detail)
        bos = self.tokenizer.bos_token_id
        if bos is not None and ids[0] == bos:
            return [bos, *ids[len(ids) - limit + 1 :]]
        return ids[len(ids) - limit :]

    def _widest_token(self) -> int:
        """The most characters one token decodes to (at least 1)."""
        if self._max_token_chars is None:
            texts = self.tokenizer.batch_decode([[v] for v in range(len(self.tokenizer))])
            self._max_token_chars = max([1, *map(len, texts)])
        return self._max_token_chars

    def _decode_chunk(
        self,
        prompts: list[list[int]],
        seeds: list[int],
        params: Sampling,
        stops: tuple[str, ...],
        store_generated: bool,
    ) -> tuple[list[Generated], int]:
        vocab = int(self.model.get_output_embeddings().weight.shape[0])
        if stops not in self._stop_tables:
            self._stop_tables[stops] = stop_table(self.tokenizer, vocab, stops, self._eos_ids)

        def hit(prompt: list[int], token_ids: list[int]) -> bool:
            return truncate_at_stop(self._continuation(prompt, token_ids), stops)[1]

        rule = StopRule(self._stop_tables[stops], hit if stops else None)
        gens = row_generators(seeds, self.device) if params.temperature > 0 else [None] * len(seeds)
        cache = self.prefix_cache if self.prefix_cache.max_bytes > 0 else None
        decoded = decode_rows(
            self.model,
            prompts,
            gens,
            params,
            rule,
            pad_id=self._pad_id,
            prefix_cache=cache,
            store_generated=store_generated,
        )
        results = []
        for r, prompt in enumerate(prompts):
            token_ids = decoded.tokens[r]
            text = self._continuation(prompt, token_ids)
            if decoded.reasons[r] == "stop" and stops:
                text = truncate_at_stop(text, stops)[0]
            completion = Completion(
                text=text,
                prompt_tokens=len(prompt),
                generated_tokens=len(token_ids),
                logprobs=tuple(decoded.raw[r]),
                finish_reason=decoded.reasons[r],
            )
            results.append(Generated(completion, tuple(token_ids), tuple(decoded.sampled[r])))
        return results, decoded.computed_prompt_tokens

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


def _loop_supported(model: Any) -> bool:
    """Whether our decode loop can serve ``model``: a decoder-only LM with full attention in
    every layer (its cache one ``[batch, heads, tokens, head_dim]`` tensor pair per layer)."""
    config = model.config
    if getattr(config, "is_encoder_decoder", False) or not hasattr(config, "get_text_config"):
        return False
    text = config.get_text_config()
    if getattr(text, "sliding_window", None) and getattr(text, "use_sliding_window", True):
        return False
    layer_types = getattr(text, "layer_types", None)
    if layer_types and any(t != "full_attention" for t in layer_types):
        return False
    return isinstance(getattr(text, "num_hidden_layers", None), int)


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
