"""FQL's built-in functions. Each takes already evaluated arguments and never raises:
an argument of the wrong type gives the documented null-safe default (``false``, ``0`` or null).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eventyard.route.fql.glob import cached_glob
from eventyard.route.fql.values import kind, to_bool, to_number, to_string

_SPACE = re.compile(r"\s")
_WORD_START = re.compile(r"(?:^|(?<=\s))\S")


@dataclass(frozen=True, slots=True)
class Function:
    arity: int
    impl: Callable[..., Any]
    doc: str


def contains(s: Any, sub: Any) -> bool:
    return isinstance(s, str) and isinstance(sub, str) and sub in s


def length(value: Any) -> int | None:
    """Bytes of a string's UTF-8 encoding (as Segment documents), elements of a list, 0 for null."""
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, list | tuple):
        return len(value)
    return None


def lowercase(s: Any) -> str | None:
    return s.lower() if isinstance(s, str) else None


def uppercase(s: Any) -> str | None:
    return s.upper() if isinstance(s, str) else None


def snakecase(s: Any) -> str | None:
    return _SPACE.sub("_", s) if isinstance(s, str) else None


def kebabcase(s: Any) -> str | None:
    return _SPACE.sub("-", s) if isinstance(s, str) else None


def titlecase(s: Any) -> str | None:
    """The first letter of every word in upper case; the other letters unchanged."""
    return _WORD_START.sub(lambda m: m.group().upper(), s) if isinstance(s, str) else None


def match(s: Any, pattern: Any) -> bool:
    if not isinstance(s, str) or not isinstance(pattern, str):
        return False
    glob = cached_glob(pattern)
    return glob is not None and glob.matches(s)


FUNCTIONS: dict[str, Function] = {
    "contains": Function(2, contains, "true if the string contains the substring"),
    "length": Function(1, length, "bytes in a string, elements in a list; 0 for null"),
    "lowercase": Function(1, lowercase, "the string in lower case"),
    "uppercase": Function(1, uppercase, "the string in upper case"),
    "snakecase": Function(1, snakecase, "spaces replaced by '_'"),
    "kebabcase": Function(1, kebabcase, "spaces replaced by '-'"),
    "titlecase": Function(1, titlecase, "every word capitalised"),
    "typeof": Function(1, kind, "string, number, bool, list, object or null"),
    "match": Function(2, match, "true if the whole string matches the glob pattern"),
    "bool": Function(1, to_bool, "the value as a boolean"),
    "string": Function(1, to_string, "the value as a string"),
    "number": Function(1, to_number, "the value as a number, or null"),
}
