"""The ``Policy`` contract: anything that samples solutions and extends prefixes by one step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from rewardlab.types import Completion, Sampling


@runtime_checkable
class Policy(Protocol):
    """A text generator with cost accounting.

    ``name`` identifies the policy in store keys and the ledger; ``params`` is its parameter
    count (for FLOPs). ``sample`` returns ``n`` completions per prompt; ``extend`` continues each
    prefix until one of ``stop`` (the stop string is kept in the text) or the token limit.
    Both are deterministic for a fixed ``params.seed``.
    """

    name: str
    params: int

    def format_prompt(self, question: str) -> str: ...

    def sample(
        self, prompts: Sequence[str], n: int, params: Sampling
    ) -> list[list[Completion]]: ...

    def extend(
        self, prefixes: Sequence[str], params: Sampling, stop: Sequence[str]
    ) -> list[Completion]: ...
