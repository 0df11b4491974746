"""FQL's view of JSON values: types, strict equality and the conversions ``bool/string/number``.

FQL is strictly typed: ``1 = '1'`` is false, ``true`` is not the number 1, and comparing
values of different types is never an error, just false.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_TRUE_TEXT = frozenset({"true", "t", "1"})
_MAX_NUMBER_TEXT = 300


def is_number(value: Any) -> bool:
    """An ``int`` or ``float`` but not a ``bool`` (which Python counts as an int)."""
    return type(value) is int or type(value) is float


def kind(value: Any) -> str:
    """The FQL type name: ``string number bool list object null`` (``typeof()`` returns it)."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "unknown"


def strict_equal(a: Any, b: Any) -> bool:
    """Same FQL type and equal value; lists and objects are compared element by element."""
    ka = kind(a)
    if ka != kind(b):
        return False
    if ka == "list":
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if ka == "object":
        return a.keys() == b.keys() and all(strict_equal(v, b[k]) for k, v in a.items())
    if ka == "unknown":
        return False
    return bool(a == b)


def hash_key(value: Any) -> tuple[str, Any] | None:
    """A key with which equal scalars (by ``strict_equal``) collide in a set; ``None`` for containers."""
    k = kind(value)
    if k in ("list", "object", "unknown"):
        return None
    return (k, value)


def to_bool(value: Any) -> bool:
    """``bool()``: null → false; numbers → not zero; strings ``true``/``t``/``1`` (any case) → true;
    lists and objects → not empty."""
    if value is None:
        return False
    if value is True or value is False:
        return value
    if isinstance(value, str):
        return value.strip().lower() in _TRUE_TEXT
    if is_number(value):
        return bool(value != 0)
    if isinstance(value, list | tuple | dict):
        return len(value) > 0
    return False


def format_number(value: int | float) -> str:
    """Numbers as JSON writes them, with whole floats written without ``.0``."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        if math.isnan(value) or math.isinf(value):
            return "null"
        return repr(value)
    return str(value)


def to_string(value: Any) -> str:
    """``string()``: strings unchanged, numbers and booleans as JSON writes them, null → ``"null"``,
    lists and objects as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if is_number(value):
        return format_number(value)
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (ValueError, TypeError, RecursionError):
        return str(value)


def to_number(value: Any) -> int | float | None:
    """``number()``: numbers unchanged; a string holding a decimal number is parsed; else null."""
    if is_number(value):
        return value  # type: ignore[no-any-return]
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) > _MAX_NUMBER_TEXT or not _NUMBER_TEXT.fullmatch(text):
        return None
    if "." in text or "e" in text or "E" in text:
        number = float(text)
        return number if math.isfinite(number) else None
    return int(text)
