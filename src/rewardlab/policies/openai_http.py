"""HTTP for the ``openai`` policy backend: requests with retries, backoff, timeouts, clear errors.

:class:`Transport` sends one JSON request to an OpenAI-compatible server and returns the parsed
JSON body. What it retries, and how:

- connection refused / reset, read or connect timeouts, a server that closes mid-response, and
  the statuses 429, 500, 502, 503 and 504: retried up to ``max_retries`` times, waiting
  ``backoff_s * 2**attempt`` seconds (capped at ``max_backoff_s``, times a random factor in
  [0.5, 1] so that many clients do not retry in lock step), or the server's ``Retry-After``
  header when it sends one (429 / 503), capped the same way;
- any other 4xx status: not retried (the request is wrong, a retry would fail the same way):
  :class:`ServerError` with the server's own message.

Errors name the URL and what to do: :class:`ServerUnavailableError` (nothing answers at the
address, after the retries), :class:`ServerError` (the server answered with an error status),
:class:`MalformedResponseError` (the body is not what the OpenAI API promises; it quotes the
part that is wrong).
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_SNIPPET = 300  # characters of a bad body quoted in an error


class OpenAIBackendError(RuntimeError):
    """Base class of the ``openai`` backend's errors."""


class ServerUnavailableError(OpenAIBackendError):
    """No server answered at the address (connection refused, timed out, dropped)."""


class ServerError(OpenAIBackendError):
    """The server answered with an error status; ``status`` and the server's ``detail``."""

    def __init__(self, message: str, status: int, detail: str) -> None:
        super().__init__(message)
        self.status, self.detail = status, detail


class ModelNotFoundError(OpenAIBackendError):
    """The server does not serve the requested model; ``available`` lists what it serves."""

    def __init__(self, message: str, available: tuple[str, ...]) -> None:
        super().__init__(message)
        self.available = available


class MalformedResponseError(OpenAIBackendError):
    """A response body that is not what the OpenAI API promises."""


@dataclass
class TransportStats:
    """Counters over the transport's life: requests sent (tries included), retries, failures."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    Attributes:
        max_retries: retries after the first try (0: no retry).
        backoff_s: the first wait; the n-th retry waits ``backoff_s * 2**n``.
        max_backoff_s: no wait is longer, whatever ``Retry-After`` says.
    """

    max_retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if not (self.backoff_s >= 0 and self.max_backoff_s >= 0):
            raise ValueError("backoff_s and max_backoff_s must be >= 0")

    def wait(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff_s)
        base = min(self.backoff_s * 2.0**attempt, self.max_backoff_s)
        return base * (0.5 + 0.5 * rng.random())


def retry_after_seconds(value: str | None) -> float | None:
    """The ``Retry-After`` header as seconds (only its delta-seconds form), else None.

    >>> retry_after_seconds("2"), retry_after_seconds("1.5"), retry_after_seconds("soon")
    (2.0, 1.5, None)
    """
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def error_detail(response: httpx.Response) -> str:
    """The server's error message: ``error.message``, ``detail`` or ``error``, else the body."""
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:_SNIPPET]
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        for key in ("detail", "error", "message"):
            if body.get(key) is not None:
                value = body[key]
                return value if isinstance(value, str) else json.dumps(value)[:_SNIPPET]
    return json.dumps(body)[:_SNIPPET]


class Transport:
    """One HTTP client for one server, safe to share between threads.

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1``.
        api_key: sent as ``Authorization: Bearer``; None sends no header.
        timeout_s: longest wait for a response (connect: at most 10 s of it).
        retry: the retry policy.
        max_connections: most connections open at once (the backend's concurrency).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        retry: RetryPolicy = RetryPolicy(),
        max_connections: int = 8,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self.stats = TransportStats()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )
        self._rng = random.Random()
        self._lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    def get(self, path: str) -> Any:
        """GET ``path`` (relative to the base URL), JSON body; retried like :meth:`post`."""
        return self._send("GET", path, None)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST a JSON ``body`` to ``path``; the parsed JSON response.

        Raises:
            ServerUnavailableError: no answer after all retries.
            ServerError: an error status that is not retried, or still there after the retries.
            MalformedResponseError: a 2xx body that is not JSON.
        """
        return self._send("POST", path, body)

    def _send(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        url = f"{self.base_url}/{path.lstrip('/')}"
        attempt = 0
        while True:
            self._count("requests")
            try:
                response = self._client.request(method, url, json=body)
            except (httpx.TransportError, httpx.TimeoutException) as err:
                if attempt >= self.retry.max_retries:
                    raise ServerUnavailableError(
                        f"no answer from the OpenAI-compatible server at {self.base_url} "
                        f"({type(err).__name__}: {err or 'no detail'}) after {attempt + 1} "
                        "tries; is it running, and is base_url right (it usually ends in /v1)?"
                    ) from err
                self._pause(attempt, None)
                attempt += 1
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.retry.max_retries:
                if response.status_code == 429:
                    self._count("rate_limited")
                self._pause(attempt, retry_after_seconds(response.headers.get("retry-after")))
                attempt += 1
                continue
            if response.status_code >= 400:
                detail = error_detail(response)
                tries = f" after {attempt + 1} tries" if attempt else ""
                raise ServerError(
                    f"{method} {url} answered {response.status_code}{tries}: {detail}",
                    response.status_code,
                    detail,
                )
            try:
                return response.json()
            except ValueError:
                raise MalformedResponseError(
                    f"{method} {url} answered {response.status_code} with a body that is not "
                    f"JSON: {response.text[:_SNIPPET]!r}"
                ) from None

    def _pause(self, attempt: int, retry_after: float | None) -> None:
        with self._lock:
            self.stats.retries += 1
            wait = self.retry.wait(attempt, retry_after, self._rng)
        time.sleep(wait)

    def _count(self, field: str) -> None:
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)
