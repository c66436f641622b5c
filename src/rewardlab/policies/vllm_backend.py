"""Policy backend ``vllm``: a model in this process on vLLM's engine (GPU machines; optional).

>>> policy = load_policy("vllm:model=/models/Qwen2.5-Math-1.5B,params=1.5B")  # doctest: +SKIP

vLLM is an optional extra (``pip install 'rewardlab[vllm]'``: it brings a CUDA build of torch);
nothing here imports it until a policy is built, and a missing install is an
:class:`VLLMMissingError` naming the extra. The CPU paths (``hf``, ``gguf``, ``openai``) stay the
default. Everything that does not need the engine is a pure function below, tested without
vLLM on objects shaped like its outputs; the engine path runs in
``scripts/device/vllm_e2e.py`` on a GPU machine.

What the backend does:

- **Prompts.** Prompts are tokenized here with the model directory's own tokenizer (the rule of
  the ``hf`` backend: a BOS doubled by template + tokenizer is kept once) and handed to the
  engine as ``{"prompt_token_ids": ids}``, so the engine reads exactly the ids the ``hf`` backend
  would, and the prefix cache keys on them. ``format_prompt`` is the chat template's user turn
  when the tokenizer has one, else the plain format (as ``hf``).
- **Prefix caching.** The engine is built with ``enable_prefix_caching=True``: the online
  searches extend many beams that share a question and earlier steps, and the engine reuses
  their KV blocks. ``RequestOutput.num_cached_tokens`` (the prompt tokens served from the cache)
  is taken off the FLOPs the ledger records.
- **Sampling.** :func:`sampling_kwargs` maps a :class:`~rewardlab.types.Sampling`, ``n`` and the
  stop strings to ``SamplingParams``: ``n``, ``temperature``, ``top_p``, ``max_tokens``, ``seed``
  (one per prompt, derived from the call's seed and the prompt, so a re-run gives the same
  samples), ``stop`` with ``include_stop_str_in_output=True`` (the Policy contract keeps the
  stop string at the end of an ``extend``), ``logprobs`` (the sampled token's log-probability
  is always among those returned).
- **Outputs.** :func:`completions_of` turns one ``RequestOutput`` into ``Completion`` s (index
  order); :func:`sampled_logprobs` reads each sampled token's log-probability.
- **Scoring.** :meth:`VLLMPolicy.continuation_logprobs` asks for ``prompt_logprobs`` with one
  generated token (ignored) and reads the continuation's tokens (:func:`prompt_token_logprobs`);
  the split between prefix and continuation tokens is the ``hf`` backend's
  (:func:`split_continuation`).

The vLLM fields relied on (stable from 0.6 to 0.11 and later; see ``docs/backends.md``):
``LLM(model, tokenizer, dtype, seed, gpu_memory_utilization, max_model_len,
tensor_parallel_size, enable_prefix_caching, trust_remote_code)``; ``LLM.generate(prompts,
sampling_params)`` with ``{"prompt_token_ids": [...]}`` prompts; ``RequestOutput.outputs``,
``.prompt_token_ids``, ``.prompt_logprobs`` (``list[dict[int, Logprob] | None]``, position 0
None), ``.num_cached_tokens`` (absent before 0.7: read as 0); ``CompletionOutput.index``,
``.text``, ``.token_ids``, ``.logprobs`` (``list[dict[int, Logprob]]``), ``.finish_reason``
(``"stop"``, ``"length"``, ``"abort"``), ``.stop_reason`` (the stop string, a stop token id, or
None); ``Logprob.logprob``.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from rewardlab.compute import Ledger, forward_flops
from rewardlab.policies.openai_backend import check_prompts, parse_count
from rewardlab.policies.prompts import plain_prompt
from rewardlab.types import Completion, Sampling

EXTRA_HINT = (
    "pip install 'rewardlab[vllm]' on a machine with a CUDA GPU (vLLM brings a CUDA build of "
    "torch); the CPU backends 'hf', 'gguf' and 'openai' need nothing more"
)
#: the ``SamplingParams`` fields :func:`sampling_kwargs` fills (checked against the installed
#: vLLM by ``scripts/device/vllm_e2e.py``)
SAMPLING_FIELDS = (
    "n",
    "temperature",
    "top_p",
    "max_tokens",
    "seed",
    "stop",
    "include_stop_str_in_output",
    "logprobs",
    "prompt_logprobs",
)
_DTYPES = ("auto", "float16", "bfloat16", "float32")


class VLLMMissingError(ImportError):
    """vLLM is not installed: the message names the optional extra."""


class VLLMOutputError(RuntimeError):
    """An engine output that breaks the shape this backend relies on (named in the message)."""


def import_vllm() -> Any:
    """The ``vllm`` module, or :class:`VLLMMissingError` naming the extra."""
    try:
        return importlib.import_module("vllm")
    except ImportError as err:
        raise VLLMMissingError(
            f"the vllm backend needs vLLM, which is not installed: {EXTRA_HINT}"
        ) from err


def check_installed() -> None:
    """Raise :class:`VLLMMissingError` unless vLLM is installed (nothing is imported)."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise VLLMMissingError(f"the vllm backend needs vLLM, which is not installed: {EXTRA_HINT}")


# -- the spec ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VLLMConfig:
    """Everything the ``vllm`` backend needs; built by :func:`parse_spec` from a spec string.

    Attributes:
        model: a local model directory (config.json, weights, tokenizer).
        name: the policy's name in store keys and the ledger (default: the directory's name).
        params: parameter count for FLOPs; 0 counts the safetensors tensors of ``model``.
        dtype: ``auto``, ``float16``, ``bfloat16`` or ``float32``.
        gpu_memory_utilization: the share of GPU memory vLLM may take (0, 1].
        max_model_len: context length cap (None: the model's).
        tensor_parallel_size: GPUs per model.
        enable_prefix_caching: reuse KV blocks of shared prefixes (default on).
        logprobs: top log-probabilities per sampled token (0: record none).
        seed: the engine's own seed (requests carry theirs).
        trust_remote_code: let vLLM run the checkpoint's modeling code (default off).
    """

    model: str
    name: str = ""
    params: int = 0
    dtype: str = "auto"
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    tensor_parallel_size: int = 1
    enable_prefix_caching: bool = True
    logprobs: int = 1
    seed: int = 0
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("the vllm backend needs model=DIR (a local model directory)")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {self.dtype!r}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(
                f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}"
            )
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ValueError(f"max_model_len must be >= 1, got {self.max_model_len}")
        if self.tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")
        if not 0 <= self.logprobs <= 20:
            raise ValueError(f"logprobs must be in 0..20, got {self.logprobs}")
        if self.params < 0:
            raise ValueError(f"params must be >= 0, got {self.params}")


_INTS = ("logprobs", "seed", "tensor_parallel_size", "max_model_len")
_BOOLS = ("enable_prefix_caching", "trust_remote_code")


def parse_spec(spec: str) -> VLLMConfig:
    """The config of a spec ``key=value,key=value`` (what follows ``vllm:``); ``model`` (or
    ``path``) is required. A value cannot contain a comma.

    >>> parse_spec("model=/models/m,dtype=bfloat16,params=1.5B").params
    1500000000

    Raises:
        ValueError: a part without ``=``, an unknown or repeated key (with a suggestion), a value
            of the wrong type, or no ``model``.
    """
    known = {f.name for f in fields(VLLMConfig)}
    values: dict[str, Any] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = {"path": "model"}.get(key.strip(), key.strip())
        if not sep:
            raise ValueError(f"vllm spec part {part!r} is not key=value (in {spec!r})")
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (keys: {sorted(known)})"
            raise ValueError(f"unknown vllm spec key {key!r}{hint}")
        if key in values:
            raise ValueError(f"vllm spec key {key!r} given twice in {spec!r}")
        values[key] = _convert(key, value.strip())
    if "model" not in values:
        raise ValueError(f"vllm spec {spec!r} lacks model; e.g. 'vllm:model=/models/NAME'")
    return VLLMConfig(**values)


def _convert(key: str, value: str) -> Any:
    if key == "params":
        return parse_count(value)
    if key in _INTS:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{key} must be an integer, got {value!r}") from None
    if key == "gpu_memory_utilization":
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{key} must be a number, got {value!r}") from None
    if key in _BOOLS:
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{key} must be true or false, got {value!r}")
        return value.lower() in ("true", "1", "yes")
    return value


def check_model_dir(path: str) -> Path:
    """The model directory of a spec, or FileNotFoundError naming what is missing."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"vllm model {path!r} is not a directory")
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"vllm model directory {p} has no config.json")
    return p


def engine_kwargs(config: VLLMConfig) -> dict[str, Any]:
    """Keyword arguments of ``vllm.LLM`` for a generation engine (prefix caching on)."""
    out: dict[str, Any] = {
        "model": str(Path(config.model).expanduser()),
        "tokenizer": str(Path(config.model).expanduser()),
        "dtype": config.dtype,
        "seed": config.seed,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "tensor_parallel_size": config.tensor_parallel_size,
        "enable_prefix_caching": config.enable_prefix_caching,
        "trust_remote_code": config.trust_remote_code,
    }
    if config.max_model_len is not None:
        out["max_model_len"] = config.max_model_len
    return out


def safetensors_params(directory: str | Path) -> int:
    """Parameter count of a model directory from its safetensors headers (no tensor is read).

    Each ``*.safetensors`` file starts with an 8-byte little-endian header length and a JSON
    header mapping tensor names to ``shape``; the count is the sum of their products (tied
    weights are stored once, so counted once).

    Raises:
        FileNotFoundError: no ``*.safetensors`` file in the directory.
        ValueError: a header that is not the safetensors format.
    """
    files = sorted(Path(directory).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors file in {directory}: give params=COUNT")
    total = 0
    for f in files:
        with f.open("rb") as fh:
            raw = fh.read(8)
            if len(raw) != 8:
                raise ValueError(f"{f} is not a safetensors file (short header)")
            (size,) = struct.unpack("<Q", raw)
            if size > 100_000_000:
                raise ValueError(f"{f} is not a safetensors file (header of {size} bytes)")
            try:
                header = json.loads(fh.read(size))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise ValueError(f"{f} is not a safetensors file: {err}") from None
        for key, entry in header.items():
            if key == "__metadata__":
                continue
            count = 1
            for dim in entry["shape"]:
                count *= int(dim)
            total += count
    return total


# -- pure request building -----------------------------------------------------------------


def request_seed(seed: int, prompt_ids: Sequence[int]) -> int:
    """The seed of one request: a 31-bit integer from the call's seed and the prompt's ids
    (a prompt sampled again with the same seed gets the same samples)."""
    text = ",".join(str(int(i)) for i in prompt_ids)
    digest = hashlib.blake2b(f"{seed}\x00{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


def sampling_kwargs(
    params: Sampling,
    n: int,
    seed: int,
    stop: Sequence[str] = (),
    logprobs: int = 1,
    prompt_logprobs: int | None = None,
) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for one request.

    ``temperature`` 0 is greedy in vLLM (it then ignores ``top_p``). Stop strings are kept in
    the text (``include_stop_str_in_output``: the Policy contract). ``logprobs`` 0 asks none.

    >>> sampling_kwargs(Sampling(temperature=0.0, max_new_tokens=8), 1, 7, ["\\n"])["stop"]
    ['\\n']
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if logprobs < 0:
        raise ValueError(f"logprobs must be >= 0, got {logprobs}")
    out: dict[str, Any] = {
        "n": n,
        "temperature": float(params.temperature),
        "top_p": float(params.top_p),
        "max_tokens": int(params.max_new_tokens),
        "seed": int(seed),
    }
    stops = [s for s in stop if s]
    if stops:
        out["stop"] = stops
        out["include_stop_str_in_output"] = True
    if logprobs:
        out["logprobs"] = int(logprobs)
    if prompt_logprobs is not None:
        out["prompt_logprobs"] = int(prompt_logprobs)
    return out


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a prompt, the ``hf`` backend's rule: a BOS doubled by template and
    tokenizer is kept once."""
    ids = [int(i) for i in tokenizer(text)["input_ids"]]
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None and len(ids) >= 2 and ids[0] == ids[1] == bos:
        ids = ids[1:]
    return ids


def split_continuation(tokenizer: Any, prefix: str, continuation: str) -> tuple[list[int], int]:
    """Ids of ``prefix + continuation`` and where the continuation's tokens start.

    The ``hf`` backend's rule (``hf_scoring.continuation_ids``): when the prefix's own ids are a
    prefix of the joined ids, the continuation is the rest; otherwise (a token merges across
    the boundary) the continuation is encoded alone, without special tokens, after the prefix.

    Raises:
        ValueError: the continuation has no tokens.
    """
    head = encode_prompt(tokenizer, prefix)
    full = encode_prompt(tokenizer, prefix + continuation)
    if full[: len(head)] == head and len(full) > len(head):
        return full, len(head)
    alone = [int(i) for i in tokenizer(continuation, add_special_tokens=False)["input_ids"]]
    if not alone:
        raise ValueError(f"continuation {continuation!r} has no tokens")
    return head + alone, len(head)


# -- pure output reading -------------------------------------------------------------------


def _logprob_value(entry: Any, token: int, where: str) -> float:
    """The log-probability of ``token`` in one position's ``{token_id: Logprob}`` mapping."""
    if entry is None:
        raise VLLMOutputError(f"{where}: no log-probabilities at this position")
    try:
        item = entry[token]
    except (KeyError, IndexError, TypeError):
        raise VLLMOutputError(f"{where}: token {token} is not among the returned ids") from None
    value = getattr(item, "logprob", item)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VLLMOutputError(f"{where}: log-probability {value!r} is not a number")
    return float(value)


def sampled_logprobs(output: Any) -> tuple[float, ...] | None:
    """Per generated token of one ``CompletionOutput``, its log-probability (None when the
    request asked none). vLLM always returns the sampled token among a position's entries.

    Raises:
        VLLMOutputError: logprobs and token ids of different lengths, or a sampled token
            missing from its position's entries.
    """
    logprobs = getattr(output, "logprobs", None)
    if logprobs is None:
        return None
    tokens = list(output.token_ids)
    if len(logprobs) != len(tokens):
        raise VLLMOutputError(
            f"completion {output.index}: {len(logprobs)} logprob positions for {len(tokens)} tokens"
        )
    return tuple(
        _logprob_value(entry, tok, f"completion {output.index}, token {i}")
        for i, (entry, tok) in enumerate(zip(logprobs, tokens, strict=True))
    )


def finish_of(output: Any) -> str:
    """``"length"`` or ``"stop"`` (end of sequence, stop string or stop token).

    Raises:
        VLLMOutputError: the request was aborted or has not finished.
    """
    reason = output.finish_reason
    if reason == "length":
        return "length"
    if reason == "stop":
        return "stop"
    raise VLLMOutputError(f"completion {output.index} finished with {reason!r}, not stop/length")


def completion_of(output: Any, prompt_tokens: int, stop: Sequence[str] = ()) -> Completion:
    """One ``CompletionOutput`` as a :class:`Completion`.

    With ``include_stop_str_in_output`` vLLM leaves the stop string in the text; should a
    version drop it, the reported ``stop_reason`` is put back (the Policy contract).
    """
    finish = finish_of(output)
    text = str(output.text)
    reason = getattr(output, "stop_reason", None)
    if (
        finish == "stop"
        and isinstance(reason, str)
        and reason in stop
        and not text.endswith(reason)
    ):
        text += reason
    return Completion(
        text=text,
        prompt_tokens=prompt_tokens,
        generated_tokens=len(output.token_ids),
        logprobs=sampled_logprobs(output),
        finish_reason=finish,
    )


def completions_of(request: Any, n: int, stop: Sequence[str] = ()) -> list[Completion]:
    """The ``n`` completions of one ``RequestOutput``, in ``index`` order.

    Raises:
        VLLMOutputError: not ``n`` outputs, or indices that are not ``0..n-1``.
    """
    outputs = sorted(request.outputs, key=lambda o: o.index)
    if [o.index for o in outputs] != list(range(n)):
        raise VLLMOutputError(
            f"asked for {n} completions, got indices {[o.index for o in outputs]}"
        )
    prompt_tokens = len(request.prompt_token_ids)
    return [completion_of(o, prompt_tokens, stop) for o in outputs]


def prompt_token_logprobs(request: Any, start: int) -> tuple[float, ...]:
    """Log-probabilities of the prompt's tokens from position ``start`` on (``start >= 1``:
    position 0 has none), from ``RequestOutput.prompt_logprobs``; position ``t``'s entry holds
    ``log p(token_t | tokens_<t)``.

    Raises:
        ValueError: ``start`` < 1 or past the prompt.
        VLLMOutputError: no prompt log-probabilities, or a prompt token missing from its entry.
    """
    ids = list(request.prompt_token_ids)
    if not 1 <= start < len(ids):
        raise ValueError(f"start must be in 1..{len(ids) - 1}, got {start}")
    table = getattr(request, "prompt_logprobs", None)
    if table is None or len(table) != len(ids):
        got = "none" if table is None else f"{len(table)} positions"
        raise VLLMOutputError(
            f"prompt_logprobs for {len(ids)} prompt tokens expected, got {got} (was "
            "prompt_logprobs set in SamplingParams?)"
        )
    return tuple(
        _logprob_value(table[t], ids[t], f"prompt token {t}") for t in range(start, len(ids))
    )


@dataclass(frozen=True)
class CallCost:
    """What one engine call read and wrote: logical prompt tokens (per sample, as the ``hf``
    backend counts them), prompt tokens computed (per request, minus the prefix cache's hits)
    and tokens generated."""

    prompt_tokens: int
    computed_prompt_tokens: int
    cached_prompt_tokens: int
    generated_tokens: int


def call_cost(requests: Sequence[Any]) -> CallCost:
    """The :class:`CallCost` of a call's ``RequestOutput`` s (``num_cached_tokens`` absent or
    None counts as no cache hit)."""
    logical = computed = cached = generated = 0
    for r in requests:
        length = len(r.prompt_token_ids)
        hit = int(getattr(r, "num_cached_tokens", None) or 0)
        if not 0 <= hit <= length:
            raise VLLMOutputError(f"num_cached_tokens {hit} outside 0..{length}")
        logical += length * len(r.outputs)
        computed += length - hit
        cached += hit
        generated += sum(len(o.token_ids) for o in r.outputs)
    return CallCost(logical, computed, cached, generated)


# -- the policy ------------------------------------------------------------------------------


class VLLMPolicy:
    """A local model on vLLM's engine, as a :class:`~rewardlab.policies.base.Policy`.

    Args:
        config: the model and engine settings (:class:`VLLMConfig`).
        ledger: where each call's tokens and FLOPs are recorded, if given.
        llm: an engine already built (``vllm.LLM``); None builds one from ``config``.
        sampling_params: the ``SamplingParams`` class (None: vLLM's).
    """

    def __init__(
        self,
        config: VLLMConfig,
        *,
        ledger: Ledger | None = None,
        llm: Any = None,
        sampling_params: Any = None,
    ) -> None:
        directory = check_model_dir(config.model)
        self.config = config
        self.name = config.name or directory.name
        self.params: int = config.params or safetensors_params(directory)
        self.ledger = ledger
        if llm is None or sampling_params is None:
            vllm = import_vllm()
            llm = llm if llm is not None else vllm.LLM(**engine_kwargs(config))
            sampling_params = sampling_params or vllm.SamplingParams
        self._sampling_params: Any = sampling_params
        self.llm = llm
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        self.chat_template = getattr(self.tokenizer, "chat_template", None) or None
        self.cached_prompt_tokens = 0  # prefix-cache hits over the policy's life

    @classmethod
    def from_spec(
        cls, spec: str, *, ledger: Ledger | None = None, name: str | None = None, **kwargs: Any
    ) -> VLLMPolicy:
        """The policy of a ``vllm:`` spec (without the prefix). ``device`` (passed by jobs to
        every backend) is accepted and ignored: vLLM runs on its GPUs. Other keyword
        arguments override spec keys."""
        kwargs.pop("device", None)
        config = parse_spec(spec)
        if name is not None:
            kwargs["name"] = name
        if kwargs:
            config = replace(config, **kwargs)
        return cls(config, ledger=ledger)

    def format_prompt(self, question: str) -> str:
        """The chat template's user turn, else the plain format (as the ``hf`` backend)."""
        if self.chat_template is None:
            return plain_prompt(question)
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        return str(text)

    def sample(self, prompts: Sequence[str], n: int, params: Sampling) -> list[list[Completion]]:
        """``n`` completions per prompt, in prompt order; the same again for a fixed seed."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        return self._generate(prompts, n, params, ())

    def extend(
        self, prefixes: Sequence[str], params: Sampling, stop: Sequence[str]
    ) -> list[Completion]:
        """Continue each prefix up to and including the first of ``stop`` (one sample each)."""
        stops = tuple(s for s in stop if s)
        return [row[0] for row in self._generate(prefixes, 1, params, stops)]

    def continuation_logprobs(
        self, prefixes: Sequence[str], continuations: Sequence[str]
    ) -> list[tuple[float, ...]]:
        """Per pair, the log-probability of each token of the continuation after the prefix,
        from ``prompt_logprobs`` (one generated token, ignored); recorded as scored tokens."""
        if len(prefixes) != len(continuations):
            raise ValueError(f"{len(prefixes)} prefixes but {len(continuations)} continuations")
        check_prompts(prefixes)
        splits = [
            split_continuation(self.tokenizer, p, c)
            for p, c in zip(prefixes, continuations, strict=True)
        ]
        greedy = Sampling(temperature=0.0, max_new_tokens=1)
        sp = self._sampling_params(**sampling_kwargs(greedy, 1, 0, (), 0, prompt_logprobs=1))
        outs = self.llm.generate([{"prompt_token_ids": ids} for ids, _ in splits], sp)
        result = [
            prompt_token_logprobs(o, start) for o, (_, start) in zip(outs, splits, strict=True)
        ]
        cost = call_cost(outs)
        if self.ledger is not None:
            self.ledger.record(
                self.name,
                params=self.params,
                scored_tokens=sum(len(ids) for ids, _ in splits),
                flops=forward_flops(self.params, cost.computed_prompt_tokens),
            )
        return result

    def _generate(
        self, texts: Sequence[str], n: int, params: Sampling, stops: tuple[str, ...]
    ) -> list[list[Completion]]:
        check_prompts(texts)
        ids = [encode_prompt(self.tokenizer, t) for t in texts]
        sps = [
            self._sampling_params(
                **sampling_kwargs(
                    params, n, request_seed(params.seed, row), stops, self.config.logprobs
                )
            )
            for row in ids
        ]
        outs = self.llm.generate([{"prompt_token_ids": row} for row in ids], sps)
        if len(outs) != len(texts):
            raise VLLMOutputError(f"{len(texts)} prompts but {len(outs)} outputs")
        rows = [completions_of(o, n, stops) for o in outs]
        cost = call_cost(outs)
        self.cached_prompt_tokens += cost.cached_prompt_tokens
        if self.ledger is not None:
            self.ledger.record(
                self.name,
                params=self.params,
                prompt_tokens=cost.prompt_tokens,
                generated_tokens=cost.generated_tokens,
                flops=forward_flops(
                    self.params, cost.computed_prompt_tokens + cost.generated_tokens
                ),
            )
        return rows


def load_vllm_policy(spec: str, **kwargs: Any) -> VLLMPolicy:
    """Registry entry: ``vllm:<spec>`` (see :func:`parse_spec`)."""
    return VLLMPolicy.from_spec(spec, **kwargs)


def describe(policy: VLLMPolicy) -> Mapping[str, Any]:
    """What a report may say about the backend."""
    return {
        "model": policy.config.model,
        "prefix_caching": policy.config.enable_prefix_caching,
        "cached_prompt_tokens": policy.cached_prompt_tokens,
    }
