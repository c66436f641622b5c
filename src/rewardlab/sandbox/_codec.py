"""Strict, tagged JSON for values crossing the sandbox boundary (never pickle).

Only exact built-in types are encoded (``type(x) is int``, not ``isinstance``): a subclass, or an
object with a rigged ``__eq__``, cannot be encoded, so it can never reach a comparison. JSON
types map to themselves; the rest are tagged objects ``{"$": tag, "v": ...}``: tuple, dict
(as a list of pairs, so keys keep their types), set, frozenset, bytes, complex and non-finite
floats. :func:`decode` builds only built-in values and rejects anything else.

Stand-alone (stdlib only): the judge copies this file into the sandbox as ``_rl_codec.py``.

>>> decode(encode({"a": (1, 2.5), 3: [None, b"x"]}))
{'a': (1, 2.5), 3: [None, b'x']}
"""

from __future__ import annotations

import base64
import math
from typing import Any

MAX_DEPTH = 64
MAX_ITEMS = 200_000
_DECIMAL_BITS = 10_000  # ~3,010 digits: below CPython's int/str conversion limit (4,300)


class CodecError(ValueError):
    """A value that may not cross the boundary (unsupported type, too deep, too large)."""


def encode(value: Any) -> Any:
    """A JSON-ready form of ``value``; raises :class:`CodecError` for anything unsupported."""
    budget = [MAX_ITEMS]
    return _enc(value, 0, budget)


def _enc(x: Any, depth: int, budget: list[int]) -> Any:
    budget[0] -= 1
    if depth > MAX_DEPTH or budget[0] < 0:
        raise CodecError("value too deep or too large to encode")
    t = type(x)
    if x is None or t is bool or t is str:
        return x
    if t is int:
        if x.bit_length() > 64 * 1024:
            raise CodecError("integer too large to encode")
        if x.bit_length() > _DECIMAL_BITS:  # json may not print it in decimal (4300 digits)
            return {"$": "int", "v": format(x, "x")}
        return x
    if t is float:
        return x if math.isfinite(x) else {"$": "float", "v": repr(x)}
    if t is list:
        return [_enc(v, depth + 1, budget) for v in x]
    if t is tuple:
        return {"$": "tuple", "v": [_enc(v, depth + 1, budget) for v in x]}
    if t is dict:
        pairs = [[_enc(k, depth + 1, budget), _enc(v, depth + 1, budget)] for k, v in x.items()]
        return {"$": "dict", "v": pairs}
    if t is set or t is frozenset:
        return {"$": t.__name__, "v": [_enc(v, depth + 1, budget) for v in x]}
    if t is bytes:
        return {"$": "bytes", "v": base64.b64encode(x).decode("ascii")}
    if t is complex:
        return {"$": "complex", "v": [repr(x.real), repr(x.imag)]}
    raise CodecError(f"cannot encode a value of type {t.__qualname__}")


def decode(data: Any) -> Any:
    """The built-in value ``data`` encodes; raises :class:`CodecError` on malformed input."""
    return _dec(data, 0)


def _float(text: Any) -> float:
    if type(text) is not str:
        raise CodecError("bad float")
    try:
        return float(text)
    except ValueError:
        raise CodecError("bad float") from None


def _dec(d: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise CodecError("value too deep")
    t = type(d)
    if d is None or t in (bool, int, str):
        return d
    if t is float:
        return d
    if t is list:
        return [_dec(v, depth + 1) for v in d]
    if t is not dict or set(d) != {"$", "v"}:
        raise CodecError(f"malformed encoded value of type {t.__name__}")
    tag, v = d["$"], d["v"]
    if tag == "float":
        return _float(v)
    if tag == "int" and type(v) is str and len(v) <= 64 * 1024 // 4 + 1:
        try:
            return int(v, 16)  # hexadecimal: no conversion limit, linear
        except ValueError:
            raise CodecError("bad int") from None
    if tag == "bytes" and type(v) is str:
        return base64.b64decode(v.encode("ascii"), validate=True)
    if tag == "complex" and type(v) is list and len(v) == 2:
        return complex(_float(v[0]), _float(v[1]))
    if type(v) is not list:
        raise CodecError(f"malformed {tag!r} value")
    items = [_dec(x, depth + 1) for x in v]
    try:
        if tag == "tuple":
            return tuple(items)
        if tag == "set":
            return set(items)
        if tag == "frozenset":
            return frozenset(items)
        if tag == "dict":
            if not all(type(p) is list and len(p) == 2 for p in items):
                raise CodecError("malformed dict")
            return {k: val for k, val in items}
    except TypeError as exc:  # unhashable key or element
        raise CodecError(str(exc)) from None
    raise CodecError(f"unknown tag {tag!r}")
