"""Reading candidate-controlled text in the trusted parent, with size, depth and time bounds.

The parent grades the code it runs, so whatever it parses itself (a candidate's source to see
whether it defines the entry point, the lines a sandboxed program prints) is written by the
party being judged. ``ast.parse`` of 5,000 chained ``+`` raises ``RecursionError`` (100,000 unary
``-``: ``MemoryError``), ``json.loads`` of a line nested 1,000 deep raises ``RecursionError``
once the caller is a few frames deep, and a backtracking regex can spend seconds on one input.
Here every parse is

* size-bounded: inputs over ``max_bytes`` are refused before any parsing (so time is bounded:
  every step below is linear in the input);
* depth-bounded: JSON nesting is measured by a linear scan *before* ``json.loads``; a Python
  tree is measured iteratively after ``ast.parse`` (whose own recursion and parser-stack
  failures are caught), so later recursive walkers (``ast.unparse``, evaluators) stay safe;
* contained: every failure is an :class:`UntrustedInputError` (a ``ValueError``) naming the
  bound, which callers turn into a failing or ungraded verdict for that candidate only.
"""

from __future__ import annotations

import ast
import json
import re
from itertools import accumulate
from typing import Any, Literal

MAX_SOURCE_BYTES = 1 << 20
MAX_AST_DEPTH = 200
MAX_JSON_BYTES = 4 << 20
MAX_JSON_DEPTH = 100

# a JSON string literal; possessive (Python >= 3.11), so linear even when it never closes
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_OPEN_CLOSE = bytes.maketrans(b"[{]}", b"\x01\x01\x02\x02")
_DELTA = (0, 1, -1)


class UntrustedInputError(ValueError):
    """Candidate-controlled input over a bound (size, depth) or unreadable."""


def _size(data: str | bytes) -> int:
    return len(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)


def json_depth(data: bytes) -> int:
    """Upper bound on the nesting depth of the JSON text ``data`` (linear time).

    Brackets inside string literals are skipped (the tokenisation agrees with ``json``'s on
    every valid prefix, and ``json`` stops at the first invalid one); an unterminated string
    counts its brackets, which can only over-estimate.

    >>> json_depth(b'[1, {"a": "[[["}]')
    2
    """
    skeleton = _JSON_STRING.sub(b"", data)
    only = skeleton.translate(_OPEN_CLOSE, delete=bytes(c for c in range(256) if c not in b"[]{}"))
    return max(0, max(accumulate(_DELTA[c] for c in only), default=0))


def loads_json(
    data: str | bytes, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """``json.loads`` with bounds; raises :class:`UntrustedInputError` (also for bad JSON)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise UntrustedInputError(f"JSON text of {len(raw)} bytes is over {max_bytes}")
    depth = json_depth(raw)
    if depth > max_depth:
        raise UntrustedInputError(f"JSON nested {depth} deep is over {max_depth}")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: only if the caller is deep
        raise UntrustedInputError(f"unreadable JSON: {type(exc).__name__}: {exc}") from None


def ast_depth(tree: ast.AST, limit: int) -> int:
    """Depth of ``tree`` (iterative); stops counting once ``limit`` is exceeded."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def parse_python(
    source: str | bytes,
    mode: Literal["exec", "eval"] = "exec",
    *,
    max_bytes: int = MAX_SOURCE_BYTES,
    max_depth: int = MAX_AST_DEPTH,
) -> ast.AST:
    """``ast.parse`` with bounds. Raises ``SyntaxError`` for invalid code (as ``ast.parse``)
    and :class:`UntrustedInputError` when the source is too large or too deeply nested for the
    parent (the sandboxed interpreter may still run it: that is its own verdict)."""
    if _size(source) > max_bytes:
        raise UntrustedInputError(f"source of {_size(source)} bytes is over {max_bytes}")
    try:
        tree = ast.parse(source, mode=mode)
    except (RecursionError, MemoryError) as exc:  # ast construction / the parser's own stack
        raise UntrustedInputError(
            f"source nested too deeply to parse: {type(exc).__name__}"
        ) from None
    except ValueError as exc:  # null bytes
        raise SyntaxError(str(exc)) from None
    depth = ast_depth(tree, max_depth)
    if depth > max_depth:
        raise UntrustedInputError(f"syntax tree deeper than {max_depth}")
    return tree
