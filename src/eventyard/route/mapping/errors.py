"""``MappingError``: what is wrong with a mapping, and where in it.

Locations are written like JSON paths into the mapping itself: ``$`` is the mapping,
``.key`` an object key, ``[2]`` a list item, and a directive's options sit under the
directive's name, e.g. ``$.user.email.@replace.pattern``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable

from eventyard.errors import ConfigError

_PLAIN_KEY = re.compile(r"[A-Za-z_@$][\w@$-]*")


class MappingError(ConfigError):
    """A mapping (or an action holding one) does not compile.

    ``path`` is the location in the mapping, ``detail`` the problem; ``str()`` gives both.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.detail = message
        super().__init__(f"at {path}: {message}")


def child(path: str, key: str | int) -> str:
    """The location of ``key`` (an object key or a list index) under ``path``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def did_you_mean(word: str, choices: Iterable[str], *, quoted: bool = False) -> str:
    """`` (did you mean X?)`` for the closest of ``choices`` (case-insensitive), else ``""``."""
    by_lower = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    if not close:
        return ""
    best = by_lower[close[0]]
    return f' (did you mean "{best}"?)' if quoted else f" (did you mean {best}?)"


def describe(value: object) -> str:
    """A JSON type name with its article, for messages: ``a string``, ``an object``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"
