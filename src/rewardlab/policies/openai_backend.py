"""Policy backend ``openai``: any OpenAI-compatible server (vLLM, SGLang, llama.cpp, ``transformers
serve``, hosted APIs) as a :class:`~rewardlab.policies.base.Policy`.

>>> spec = "openai:base_url=http://127.0.0.1:8000/v1,model=Qwen2.5-0.5B"
>>> policy = load_policy(spec)  # doctest: +SKIP
>>> policy.sample([policy.format_prompt("What is 2 + 3?")], 4, Sampling())  # doctest: +SKIP

Spec options (``key=value`` separated by commas, after ``openai:``): see :func:`parse_spec`
and ``docs/backends.md``. What it does, and where servers differ:

- **Endpoint.** ``sample`` and ``extend`` post the formatted text to ``/v1/completions`` (the
  server applies no template: the prompt is continued as given, which is what ``extend`` needs).
  ``endpoint=chat`` uses ``/v1/chat/completions`` for servers that have only chat: the prompt is
  sent as one user message (``format_prompt`` then returns the bare question, the server applies
  its template), and ``extend`` is refused (a chat turn cannot continue a given prefix).
- **n > 1.** One request per prompt asks for ``n`` choices; a server that returns fewer (it
  ignores ``n``: ``transformers serve``, llama.cpp) gets the missing ones as ``n=1`` requests,
  and the backend remembers to send ``n=1`` requests from then on (``n=emulate`` does so from
  the start). Each emulated request carries its own seed, derived from the call's seed, the
  prompt and the sample's index, so a server that honours ``seed`` gives the same samples again.
- **Stop strings.** ``extend`` keeps the stop string in the text (the Policy contract), the
  OpenAI API drops it. With ``stops=server`` the server stops generation and the backend puts
  the stop back: from the text when the server left it there (``transformers serve``), or from
  ``stop_reason`` (vLLM) / ``matched_stop`` (SGLang). A server that reports neither cannot tell
  an end-of-sequence from a stop string, so for unknown servers ``stops=auto`` means
  ``stops=client``: no stop is sent, generation runs to ``max_new_tokens`` and the text is cut
  after the first stop string here (exact; it costs the tokens past the stop, and the ledger
  counts them, since the server computed them).
- **Log-probabilities.** ``logprobs=1`` (default) asks for each sampled token's log-probability;
  ``Completion.logprobs`` holds them when the server fills them (vLLM, SGLang, llama.cpp), else
  None (``transformers serve``). Which distribution they come from is the server's (vLLM's
  default ``raw_logprobs``: the model's, untempered, as the ``hf`` backend records).
  :meth:`OpenAIPolicy.continuation_logprobs` reads the log-probability of given continuations
  through ``echo`` (vLLM, llama.cpp with ``logits_all``); servers without it get a clear error.
- **Accounting.** Token counts come from the server's ``usage``: ``Completion.prompt_tokens`` is
  the request's ``usage.prompt_tokens``; ``generated_tokens`` is the number of tokens kept (from
  the logprobs' tokens when present, else ``usage.completion_tokens`` of an ``n=1`` request, else
  that request's completion tokens shared by characters). The ledger records per call the
  logical prompt tokens of every sample (as the ``hf`` backend does), the generated tokens the
  server reports, and FLOPs ``2 * params * (prompt tokens the server read + generated tokens)``
  with ``params`` from the spec (0 when not given: the server does not say).
- **Concurrency, retries, timeouts.** Requests run on ``concurrency`` threads; failures are
  retried with exponential backoff (:mod:`rewardlab.policies.openai_http`).
- **Checks.** The first call asks ``/v1/models``: nothing answering raises
  :class:`~rewardlab.policies.openai_http.ServerUnavailableError`, a model the server does not
  list raises :class:`~rewardlab.policies.openai_http.ModelNotFoundError` naming the ones it
  does. Bodies that break the API's shape raise
  :class:`~rewardlab.policies.openai_http.MalformedResponseError` quoting the bad part.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from typing import Any

from rewardlab.compute import Ledger, forward_flops
from rewardlab.policies.openai_http import (
    MalformedResponseError,
    ModelNotFoundError,
    OpenAIBackendError,
    RetryPolicy,
    ServerError,
    Transport,
)
from rewardlab.policies.prompts import plain_prompt
from rewardlab.types import Completion, Sampling

SERVERS = ("auto", "vllm", "sglang", "llamacpp", "transformers", "openai")
ENDPOINTS = ("completions", "chat")
N_MODES = ("auto", "native", "emulate")
STOP_MODES = ("auto", "server", "client")
# what ``/v1/models``' ``owned_by`` says about the server behind it
_OWNED_BY = {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llamacpp"}
_REPORTS_STOP = frozenset({"vllm", "sglang", "transformers"})  # stops=auto -> server
_IGNORES_N = frozenset({"transformers", "llamacpp"})  # n=auto -> emulate at once
_SUFFIX = {"k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}
_SNIPPET = 300


@dataclass(frozen=True)
class OpenAIConfig:
    """Everything the ``openai`` backend needs; built by :func:`parse_spec` from a spec string.

    Attributes:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1``.
        model: the model name the server knows.
        name: the policy's name in store keys and the ledger (default ``openai:<model>``).
        api_key: bearer token; None reads ``api_key_env`` from the environment.
        api_key_env: the environment variable read when ``api_key`` is None.
        server: ``auto`` (from ``/v1/models``' ``owned_by``) or the server kind, which picks
            defaults for ``n`` and ``stops`` and the extensions sent (vLLM/SGLang only).
        endpoint: ``completions`` or ``chat``.
        n: ``auto`` (detect a server that ignores ``n``), ``native`` or ``emulate``.
        stops: ``auto``, ``server`` or ``client`` (see the module docstring).
        logprobs: top log-probabilities to ask per token (0: ask none).
        concurrency: requests in flight at once.
        timeout_s: longest wait for one response.
        max_retries / backoff_s / max_backoff_s: the retry policy.
        params: the model's parameter count, for FLOPs (0: unknown).
        template: a local tokenizer directory whose chat template formats prompts (so that the
            text sent equals what the ``hf`` backend would build); None: the plain format.
        check_model: ask ``/v1/models`` before the first request.
    """

    base_url: str
    model: str
    name: str = ""
    api_key: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    server: str = "auto"
    endpoint: str = "completions"
    n: str = "auto"
    stops: str = "auto"
    logprobs: int = 1
    concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    params: int = 0
    template: str | None = None
    check_model: bool = True

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("the openai backend needs model=NAME (the name the server serves)")
        for value, allowed, key in (
            (self.server, SERVERS, "server"),
            (self.endpoint, ENDPOINTS, "endpoint"),
            (self.n, N_MODES, "n"),
            (self.stops, STOP_MODES, "stops"),
        ):
            if value not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {value!r}")
        if not 0 <= self.logprobs <= 20:
            raise ValueError(f"logprobs must be in 0..20, got {self.logprobs}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.params < 0:
            raise ValueError(f"params must be >= 0, got {self.params}")
        RetryPolicy(self.max_retries, self.backoff_s, self.max_backoff_s)  # validates


def parse_count(text: str) -> int:
    """A parameter count with an optional K/M/B suffix.

    >>> parse_count("135M"), parse_count("1.5b"), parse_count("4096")
    (135000000, 1500000000, 4096)
    """
    raw = text.strip().lower()
    scale = _SUFFIX.get(raw[-1:], 1)
    number = raw[:-1] if scale != 1 else raw
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"params must be a count like 135M or 1.5B, got {text!r}") from None
    return round(value * scale)


def parse_spec(spec: str) -> OpenAIConfig:
    """The config of a spec ``key=value,key=value`` (what follows ``openai:``).

    Keys are the fields of :class:`OpenAIConfig`; ``base_url`` and ``model`` are required.
    ``url`` is accepted for ``base_url``. A value cannot contain a comma.

    >>> parse_spec("base_url=http://127.0.0.1:8000/v1,model=m,concurrency=4").concurrency
    4

    Raises:
        ValueError: a part without ``=``, an unknown or repeated key (with a suggestion), a value
            of the wrong type, or a missing ``base_url`` / ``model``.
    """
    known = {f.name: f for f in fields(OpenAIConfig)}
    values: dict[str, Any] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = {"url": "base_url"}.get(key.strip(), key.strip())
        if not sep:
            raise ValueError(f"openai spec part {part!r} is not key=value (in {spec!r})")
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (keys: {sorted(known)})"
            raise ValueError(f"unknown openai spec key {key!r}{hint}")
        if key in values:
            raise ValueError(f"openai spec key {key!r} given twice in {spec!r}")
        values[key] = _convert(key, value.strip())
    missing = [k for k in ("base_url", "model") if k not in values]
    if missing:
        raise ValueError(
            f"openai spec {spec!r} lacks {' and '.join(missing)}; e.g. "
            "'openai:base_url=http://127.0.0.1:8000/v1,model=NAME'"
        )
    return OpenAIConfig(**values)


def _convert(key: str, value: str) -> Any:
    if key == "params":
        return parse_count(value)
    if key in ("logprobs", "concurrency", "max_retries"):
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{key} must be an integer, got {value!r}") from None
    if key in ("timeout_s", "backoff_s", "max_backoff_s"):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{key} must be a number, got {value!r}") from None
    if key == "check_model":
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"check_model must be true or false, got {value!r}")
        return value.lower() in ("true", "1", "yes")
    return value


# -- pure response parsing -----------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """One choice of a response, before stop handling.

    ``tokens`` and ``token_logprobs`` are the sampled tokens' texts and log-probabilities when
    the server returned them (else None); ``stop_reason`` the stop string the server reports
    it stopped at (vLLM ``stop_reason``, SGLang ``matched_stop``), if any.
    """

    text: str
    finish_reason: str
    tokens: tuple[str, ...] | None = None
    token_logprobs: tuple[float, ...] | None = None
    stop_reason: str | None = None


def _bad(what: str, payload: Any) -> MalformedResponseError:
    try:
        shown = repr(payload)[:_SNIPPET]
    except Exception:  # pragma: no cover - repr of JSON values does not fail
        shown = "?"
    return MalformedResponseError(f"malformed response from the server: {what}; got {shown}")


def parse_choices(body: Any, chat: bool) -> list[Choice]:
    """The choices of a ``/v1/completions`` (or chat) response body, in ``index`` order.

    Raises:
        MalformedResponseError: no ``choices`` list, a choice without text or with logprobs of
            the wrong shape.
    """
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise _bad("expected a JSON object with a 'choices' list", body)
    out: list[tuple[int, Choice]] = []
    for i, raw in enumerate(body["choices"]):
        if not isinstance(raw, dict):
            raise _bad(f"choice {i} is not an object", raw)
        if chat:
            message = raw.get("message")
            text = message.get("content") if isinstance(message, dict) else None
            if text is None and isinstance(message, dict) and "content" in message:
                text = ""
        else:
            text = raw.get("text")
        if not isinstance(text, str):
            where = "message.content" if chat else "text"
            raise _bad(f"choice {i} has no string '{where}'", raw)
        index = raw.get("index", i)
        if not isinstance(index, int):
            raise _bad(f"choice {i} has a non-integer index", raw)
        tokens, logprobs = _choice_logprobs(raw.get("logprobs"), chat, i)
        stop = raw.get("stop_reason", raw.get("matched_stop"))
        finish = raw.get("finish_reason")
        out.append(
            (
                index,
                Choice(
                    text=text,
                    finish_reason=str(finish) if finish is not None else "stop",
                    tokens=tokens,
                    token_logprobs=logprobs,
                    stop_reason=stop if isinstance(stop, str) else None,
                ),
            )
        )
    return [c for _, c in sorted(out, key=lambda pair: pair[0])]


def _choice_logprobs(
    raw: Any, chat: bool, i: int
) -> tuple[tuple[str, ...] | None, tuple[float, ...] | None]:
    if raw is None:
        return None, None
    if chat:
        content = raw.get("content") if isinstance(raw, dict) else None
        if content is None:
            return None, None
        if not isinstance(content, list) or not all(
            isinstance(t, dict) and isinstance(t.get("token"), str) for t in content
        ):
            raise _bad(f"choice {i}'s logprobs.content is not a list of tokens", raw)
        return tuple(t["token"] for t in content), tuple(
            _number(t.get("logprob"), i) for t in content
        )
    if not isinstance(raw, dict):
        raise _bad(f"choice {i}'s logprobs is not an object", raw)
    tokens, values = raw.get("tokens"), raw.get("token_logprobs")
    if tokens is None and values is None:
        return None, None
    if not (isinstance(tokens, list) and isinstance(values, list) and len(tokens) == len(values)):
        raise _bad(f"choice {i}'s logprobs.tokens and token_logprobs differ in shape", raw)
    if not all(isinstance(t, str) for t in tokens):
        raise _bad(f"choice {i}'s logprobs.tokens are not strings", raw)
    return tuple(tokens), tuple(_number(v, i) for v in values)


def _number(value: Any, i: int) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(f"choice {i} has a log-probability that is not a number", value)
    return float(value)


def usage_counts(body: Any) -> tuple[int, int] | None:
    """``(prompt_tokens, completion_tokens)`` from a response's ``usage``, or None if absent.

    Raises:
        MalformedResponseError: ``usage`` present but its counts are not non-negative integers.
    """
    usage = body.get("usage") if isinstance(body, dict) else None
    if usage is None:
        return None
    if not isinstance(usage, dict):
        raise _bad("usage is not an object", usage)
    prompt: Any = usage.get("prompt_tokens")
    completion: Any = usage.get("completion_tokens", 0)
    if not (_count(prompt) and _count(completion)):
        raise _bad("usage.prompt_tokens / completion_tokens are not non-negative integers", usage)
    return int(prompt), int(completion)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def first_stop(text: str, stops: Sequence[str]) -> int | None:
    """End position of the earliest stop string in ``text`` (the longer one on a tie), or None.

    >>> first_stop("a\\nb\\n", ["\\n"]), first_stop("ab", ["\\n"])
    (2, None)
    """
    best: tuple[int, int] | None = None
    for stop in stops:
        if not stop:
            continue
        at = text.find(stop)
        if at >= 0 and (best is None or (at, -len(stop)) < (best[0], -best[1])):
            best = (at, len(stop))
    return None if best is None else best[0] + best[1]


def apply_stop(choice: Choice, stops: Sequence[str]) -> Choice:
    """The choice as the Policy contract has it: text up to and including the first stop string.

    A stop string in the text cuts it there (and the token lists after the token that completes
    it); a stop the server reports but left out of the text is appended. ``finish_reason`` is
    ``"stop"`` (end of sequence or a stop string) or ``"length"``.
    """
    cut = first_stop(choice.text, stops) if stops else None
    if cut is not None:
        tokens, logprobs = choice.tokens, choice.token_logprobs
        if tokens is not None and logprobs is not None:
            kept, length = 0, 0
            while kept < len(tokens) and length < cut:
                length += len(tokens[kept])
                kept += 1
            tokens, logprobs = tokens[:kept], logprobs[:kept]
        return replace(
            choice,
            text=choice.text[:cut],
            finish_reason="stop",
            tokens=tokens,
            token_logprobs=logprobs,
        )
    finish = "length" if choice.finish_reason == "length" else "stop"
    if finish == "stop" and choice.stop_reason in stops:
        return replace(choice, text=choice.text + str(choice.stop_reason), finish_reason=finish)
    return replace(choice, finish_reason=finish)


def split_by_chars(total: int, texts: Sequence[str]) -> list[int]:
    """``total`` tokens shared among ``texts`` by characters (largest remainder; sums to total).

    >>> split_by_chars(10, ["aaaa", "a"])
    [8, 2]
    """
    if not texts:
        return []
    weights = [max(len(t), 1) for t in texts]
    exact = [total * w / sum(weights) for w in weights]
    out = [int(x) for x in exact]
    order = sorted(range(len(texts)), key=lambda i: out[i] - exact[i])
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def sample_seed(seed: int, prompt: str, k: int) -> int:
    """The seed sent for sample ``k`` of ``prompt`` (a 31-bit integer from all three)."""
    digest = hashlib.blake2b(f"{seed}\x00{k}\x00{prompt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


# -- the policy ------------------------------------------------------------------------------


@dataclass
class ServerStats:
    """What the backend learned and counted: the server kind, n emulation, tokens billed."""

    server: str = "auto"
    emulate_n: bool = False
    emulated_requests: int = 0
    missing_usage: int = 0
    served_prompt_tokens: int = 0
    served_completion_tokens: int = 0
    models: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class _Request:
    """One HTTP request to make: which prompt, how many choices, which sample indices."""

    prompt: str
    n: int
    first: int  # index of its first sample among the prompt's samples
    seed: int


@dataclass(frozen=True)
class _Reply:
    choices: list[Choice]
    prompt_tokens: int
    completion_tokens: int | None


class OpenAIPolicy:
    """A model behind an OpenAI-compatible server, as a Policy.

    Args:
        config: the server, model and behaviour (see :class:`OpenAIConfig`).
        ledger: where each call's tokens are recorded, if given.
    """

    def __init__(self, config: OpenAIConfig, *, ledger: Ledger | None = None) -> None:
        self.config = config
        self.name = config.name or f"openai:{config.model}"
        self.params: int = config.params
        self.ledger = ledger
        key = config.api_key if config.api_key is not None else os.environ.get(config.api_key_env)
        self.transport = Transport(
            config.base_url,
            api_key=key,
            timeout_s=config.timeout_s,
            retry=RetryPolicy(config.max_retries, config.backoff_s, config.max_backoff_s),
            max_connections=config.concurrency,
        )
        self.stats = ServerStats(server=config.server, emulate_n=config.n == "emulate")
        self._checked = not config.check_model
        self._lock = threading.Lock()
        self._tokenizer: Any = None
        if config.server in _IGNORES_N and config.n == "auto":
            self.stats.emulate_n = True

    @classmethod
    def from_spec(
        cls, spec: str, *, ledger: Ledger | None = None, name: str | None = None, **kwargs: Any
    ) -> OpenAIPolicy:
        """The policy of an ``openai:`` spec (without the prefix).

        ``device`` (passed by jobs to every backend) is accepted and ignored: the server
        decides where the model runs. Other keyword arguments override spec keys.
        """
        kwargs.pop("device", None)
        config = parse_spec(spec)
        if name is not None:
            kwargs["name"] = name
        if kwargs:
            config = replace(config, **kwargs)
        return cls(config, ledger=ledger)

    # -- Policy ------------------------------------------------------------------------------

    def format_prompt(self, question: str) -> str:
        """The text sent: the bare question for ``endpoint=chat`` (the server applies its
        template), else the local ``template``'s chat format, else the plain format."""
        if self.config.endpoint == "chat":
            return question
        if self.config.template is None:
            return plain_prompt(question)
        tokenizer = self._template_tokenizer()
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        return str(text)

    def sample(self, prompts: Sequence[str], n: int, params: Sampling) -> list[list[Completion]]:
        """``n`` completions per prompt, in prompt order."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        check_prompts(prompts)
        return self._generate(prompts, n, params, ())

    def extend(
        self, prefixes: Sequence[str], params: Sampling, stop: Sequence[str]
    ) -> list[Completion]:
        """Continue each prefix up to and including the first of ``stop`` (one sample each)."""
        if self.config.endpoint == "chat":
            raise OpenAIBackendError(
                "extend needs /v1/completions (a chat turn cannot continue a given prefix); "
                f"policy {self.name!r} uses endpoint=chat. Use a server with /v1/completions"
            )
        check_prompts(prefixes)
        stops = tuple(s for s in stop if s)
        rows = self._generate(prefixes, 1, params, stops)
        return [r[0] for r in rows]

    def continuation_logprobs(
        self, prefixes: Sequence[str], continuations: Sequence[str]
    ) -> list[tuple[float, ...]]:
        """Per pair, the log-probability of each token of the continuation after the prefix.

        Uses ``echo`` + ``logprobs`` on ``/v1/completions`` (one generated token, ignored):
        the continuation's tokens are those ending after the prefix's last character (a token
        spanning the boundary counts with the continuation). Recorded in the ledger as scored
        tokens (the whole text read).

        Raises:
            OpenAIBackendError: the server returns no prompt log-probabilities (no ``echo``).
        """
        if len(prefixes) != len(continuations):
            raise ValueError(f"{len(prefixes)} prefixes but {len(continuations)} continuations")
        if self.config.endpoint == "chat":
            raise OpenAIBackendError(
                "continuation_logprobs needs /v1/completions with echo; endpoint=chat"
            )
        self._check_server()
        pairs = list(zip(prefixes, continuations, strict=True))
        for i, (_, cont) in enumerate(pairs):
            if not cont:
                raise ValueError(f"continuation {i} is empty: nothing to score")
        results = self._map(lambda pair: self._score_one(*pair), pairs)
        read = sum(tokens for _, tokens in results)
        if self.ledger is not None and results:
            self.ledger.record(
                self.name,
                params=self.params,
                scored_tokens=read,
                flops=forward_flops(self.params, read),
            )
        return [values for values, _ in results]

    def close(self) -> None:
        """Close the HTTP connections."""
        self.transport.close()

    # -- internals ---------------------------------------------------------------------------

    def _template_tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(
                self.config.template, local_files_only=True
            )
            if not getattr(self._tokenizer, "chat_template", None):
                raise ValueError(f"template={self.config.template!r} has no chat template")
        return self._tokenizer

    def _check_server(self) -> None:
        """Ask ``/v1/models`` once: the server is up, serves the model, and of which kind."""
        with self._lock:
            if self._checked:
                return
            try:
                body = self.transport.get("models")
            except ServerError as err:
                if err.status in (404, 405):  # a server without /v1/models: nothing to check
                    self._checked = True
                    return
                raise
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, list):
                raise _bad("/v1/models has no 'data' list", body)
            models = tuple(str(m.get("id")) for m in data if isinstance(m, dict))
            self.stats.models = models
            if self.config.model not in models:
                close = difflib.get_close_matches(self.config.model, models, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ModelNotFoundError(
                    f"the server at {self.transport.base_url} does not serve model "
                    f"{self.config.model!r}; it serves {list(models)}{hint}",
                    models,
                )
            if self.config.server == "auto":
                entry = next(m for m in data if m.get("id") == self.config.model)
                if isinstance(entry.get("status"), dict):  # transformers serve's own field
                    self.stats.server = "transformers"
                else:
                    self.stats.server = _OWNED_BY.get(str(entry.get("owned_by")), "openai")
                if self.stats.server in _IGNORES_N and self.config.n == "auto":
                    self.stats.emulate_n = True
            self._checked = True

    @property
    def _server_stops(self) -> bool:
        if self.config.stops != "auto":
            return self.config.stops == "server"
        return self.stats.server in _REPORTS_STOP

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if len(items) <= 1 or self.config.concurrency == 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.config.concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    def _generate(
        self, prompts: Sequence[str], n: int, params: Sampling, stops: tuple[str, ...]
    ) -> list[list[Completion]]:
        self._check_server()
        got: list[list[Completion]] = [[] for _ in prompts]
        # first round: n choices per prompt, or n single requests when n is emulated
        requests = [(i, r) for i, p in enumerate(prompts) for r in self._requests(p, n, 0, params)]
        billed = [0, 0]  # prompt and completion tokens the server read and wrote
        while requests:
            replies = self._map(lambda item: self._complete(item[1], params, stops), requests)
            again: list[tuple[int, _Request]] = []
            for (i, request), reply in zip(requests, replies, strict=True):
                if not reply.choices or len(reply.choices) > request.n:
                    raise _bad(f"asked for {request.n} choices, got {len(reply.choices)}", None)
                counts = self._generated_counts(reply)
                done = [
                    self._completion(c, reply.prompt_tokens, k)
                    for c, k in zip(reply.choices, counts, strict=True)
                ]
                got[i] += done
                billed[0] += reply.prompt_tokens
                billed[1] += (
                    reply.completion_tokens
                    if reply.completion_tokens is not None
                    else sum(c.generated_tokens for c in done)
                )
                missing = request.n - len(reply.choices)
                if missing:
                    with self._lock:
                        self.stats.emulate_n = True
                    first = request.first + len(reply.choices)
                    again += [
                        (i, r) for r in self._requests(request.prompt, missing, first, params)
                    ]
            requests = again
        self._record(got, billed[0], billed[1])
        return got

    def _requests(self, prompt: str, n: int, first: int, params: Sampling) -> list[_Request]:
        if n == 1 or self.stats.emulate_n:
            reqs = [
                _Request(prompt, 1, first + k, sample_seed(params.seed, prompt, first + k))
                for k in range(n)
            ]
            if n > 1 or first > 0:
                with self._lock:
                    self.stats.emulated_requests += len(reqs)
            return reqs
        return [_Request(prompt, n, first, sample_seed(params.seed, prompt, first))]

    def _generated_counts(self, reply: _Reply) -> list[int | None]:
        """Per choice, its generated tokens when the response says (see the module docstring)."""
        if reply.completion_tokens is None:
            return [None] * len(reply.choices)
        if len(reply.choices) == 1:
            return [reply.completion_tokens]
        if all(c.tokens is not None for c in reply.choices):
            return [len(c.tokens or ()) for c in reply.choices]
        return list(split_by_chars(reply.completion_tokens, [c.text for c in reply.choices]))

    def _body(self, request: _Request, params: Sampling, stops: tuple[str, ...]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": request.seed,
        }
        if request.n != 1:
            body["n"] = request.n
        if self.stats.server == "transformers":
            # it samples only when the model's generation config says so, with its top-k: say
            # what the Sampling means (top_k 0: no top-k cut)
            body["generation_config"] = json.dumps(
                {"do_sample": params.temperature > 0, "top_k": 0}
            )
        if stops and self._server_stops:
            body["stop"] = list(stops)
        if self.config.endpoint == "chat":
            body["messages"] = [{"role": "user", "content": request.prompt}]
            if self.config.logprobs:
                body["logprobs"] = True
        else:
            body["prompt"] = request.prompt
            if self.config.logprobs:
                body["logprobs"] = self.config.logprobs
        return body

    def _complete(self, request: _Request, params: Sampling, stops: tuple[str, ...]) -> _Reply:
        chat = self.config.endpoint == "chat"
        path = "chat/completions" if chat else "completions"
        try:
            body = self.transport.post(path, self._body(request, params, stops))
        except ServerError as err:
            if err.status == 404 and "model" in err.detail.lower():
                raise ModelNotFoundError(
                    f"the server at {self.transport.base_url} answered 404 for model "
                    f"{self.config.model!r}: {err.detail}",
                    self.stats.models,
                ) from err
            raise
        choices = [apply_stop(c, stops) for c in parse_choices(body, chat)]
        usage = usage_counts(body)
        if usage is None:
            with self._lock:
                self.stats.missing_usage += 1
            return _Reply(choices, 0, None)
        with self._lock:
            self.stats.served_prompt_tokens += usage[0]
            self.stats.served_completion_tokens += usage[1]
        return _Reply(choices, usage[0], usage[1])

    def _completion(self, choice: Choice, prompt_tokens: int, count: int | None) -> Completion:
        logprobs = choice.token_logprobs
        if choice.tokens is not None:
            generated = len(choice.tokens)  # after stop handling: the tokens kept
        else:
            generated = count if count is not None else 0
        return Completion(
            text=choice.text,
            prompt_tokens=prompt_tokens,
            generated_tokens=generated,
            logprobs=logprobs,
            finish_reason=choice.finish_reason,
        )

    def _record(self, rows: list[list[Completion]], billed_prompt: int, billed_new: int) -> None:
        """One ledger entry per call: logical prompt tokens of every sample, the generated
        tokens the server reports (past a client-side stop too: it computed them), FLOPs of
        what the server read and wrote."""
        if self.ledger is None or not any(rows):
            return
        prompt = sum(c.prompt_tokens for row in rows for c in row)
        self.ledger.record(
            self.name,
            params=self.params,
            prompt_tokens=prompt,
            generated_tokens=billed_new,
            flops=forward_flops(self.params, billed_prompt + billed_new),
        )

    def _score_one(self, prefix: str, continuation: str) -> tuple[tuple[float, ...], int]:
        body = {
            "model": self.config.model,
            "prompt": prefix + continuation,
            "max_tokens": 1,
            "temperature": 0.0,
            "echo": True,
            "logprobs": max(self.config.logprobs, 1),
        }
        reply = self.transport.post("completions", body)
        choices = reply.get("choices") if isinstance(reply, dict) else None
        first = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(first, dict) or not isinstance(first.get("text"), str):
            raise _bad("expected 'choices' with a 'text'", reply)
        raw = first.get("logprobs")
        offsets = raw.get("text_offset") if isinstance(raw, dict) else None
        tokens, values = _echo_lists(raw)
        text = prefix + continuation
        if tokens is None or not first["text"].startswith(text):
            raise OpenAIBackendError(
                f"the server at {self.transport.base_url} returned no prompt log-probabilities "
                "(echo + logprobs): scoring needs a server that echoes them (vLLM; llama.cpp "
                "started with logits_all)"
            )
        if not isinstance(offsets, list) or len(offsets) != len(tokens):
            offsets = _offsets(tokens)
        usage = usage_counts(reply)
        prompt_count = usage[0] if usage else None
        ends = [int(o) + len(t) for o, t in zip(offsets, tokens, strict=True)]
        picked = [
            j
            for j, end in enumerate(ends)
            if end > len(prefix)
            and int(offsets[j]) < len(text)
            and (prompt_count is None or j < prompt_count)
        ]
        scored = []
        for j in picked:
            if values[j] is None:
                raise _bad(f"echoed token {j} of the continuation has no log-probability", raw)
            scored.append(float(values[j]))  # type: ignore[arg-type]
        if not scored:
            raise _bad("no echoed token covers the continuation", raw)
        return tuple(scored), prompt_count if prompt_count is not None else len(picked)


def _echo_lists(raw: Any) -> tuple[list[str] | None, list[float | None]]:
    """Tokens and log-probabilities of an echoed completion (first prompt token's may be None)."""
    if not isinstance(raw, dict):
        return None, []
    tokens, values = raw.get("tokens"), raw.get("token_logprobs")
    if not (isinstance(tokens, list) and isinstance(values, list) and len(tokens) == len(values)):
        return None, []
    if not all(isinstance(t, str) for t in tokens):
        raise _bad("echoed logprobs.tokens are not strings", raw)
    if not all(v is None or isinstance(v, (int, float)) for v in values):
        raise _bad("echoed token_logprobs are not numbers", raw)
    return tokens, values


def _offsets(tokens: Sequence[str]) -> list[int]:
    out, at = [], 0
    for t in tokens:
        out.append(at)
        at += len(t)
    return out


def check_prompts(prompts: Sequence[str]) -> None:
    """Every prompt a non-empty ``str`` (TypeError / ValueError naming its position); the
    remote backends (``openai``, ``vllm``) check their inputs with it before any request."""
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise TypeError(f"prompt {i} is {type(p).__name__}, not str")
        if not p:
            raise ValueError(f"prompt {i} is empty: nothing to continue from")


def load_openai_policy(spec: str, **kwargs: Any) -> OpenAIPolicy:
    """Registry entry: ``openai:<spec>`` (see :func:`parse_spec`)."""
    return OpenAIPolicy.from_spec(spec, **kwargs)


def describe(policy: OpenAIPolicy) -> Mapping[str, Any]:
    """What a report may say about the backend: server kind, emulation, retries, tokens."""
    return {
        "server": policy.stats.server,
        "base_url": policy.transport.base_url,
        "model": policy.config.model,
        "emulate_n": policy.stats.emulate_n,
        "emulated_requests": policy.stats.emulated_requests,
        "requests": policy.transport.stats.requests,
        "retries": policy.transport.stats.retries,
        "rate_limited": policy.transport.stats.rate_limited,
        "missing_usage": policy.stats.missing_usage,
        "served_prompt_tokens": policy.stats.served_prompt_tokens,
        "served_completion_tokens": policy.stats.served_completion_tokens,
    }
