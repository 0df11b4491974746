"""Paths into an event, parsed once into fast getters.

Syntax (the mapping kit's, made strict): an optional leading ``$`` or ``$.``, then keys
separated by dots; a key may be written ``[0]`` (list index) or ``["any key"]`` /
``['any key']`` (quoted, may hold dots). ``$``, ``$.`` and ``""`` mean the root itself.
Keys may contain spaces (``$.integrations.Actions Amplitude.session_id``). A key made of
digits also indexes a list (``$.products.0.sku`` = ``$.products[0].sku``).

A path that leads nowhere (a missing key, an index past the end, a key under a non-object)
resolves to ``MISSING``, never raises.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable
from typing import Any, Final

#: A compiled piece of mapping: takes the root (the event, an array item, ...) and returns a
#: JSON value or ``MISSING``.
Node = Callable[[Any], Any]

#: A key and, when the key is all digits, the list index it also stands for.
Segment = tuple[str, int | None]


class _Missing(enum.Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


#: JavaScript's ``undefined`` in the mapping kit: "no value". An object key whose value is
#: MISSING is left out of the output; a list item that is MISSING becomes ``null``.
MISSING: Final = _Missing.MISSING

_BRACKET = re.compile(r"""\[(?:(?P<index>\d+)|"(?P<dq>[^"]*)"|'(?P<sq>[^']*)')\]""")


class PathSyntaxError(ValueError):
    """A path does not parse; the message says where."""


def parse_path(text: str) -> tuple[Segment, ...]:
    """The segments of ``text``; ``()`` is the root. Raises ``PathSyntaxError``."""
    rest = text.strip()
    if rest.startswith("$") and (len(rest) == 1 or rest[1] in ".["):
        rest = rest[2:] if rest[1:2] == "." else rest[1:]
    segments: list[Segment] = []
    need_key = False  # just after a dot: a key must follow
    i, n = 0, len(rest)
    while i < n:
        ch = rest[i]
        if ch == ".":
            if need_key or not segments:
                raise PathSyntaxError(f"empty key at character {i + 1} of {text!r}")
            need_key = True
            i += 1
            continue
        match = _BRACKET.match(rest, i) if ch == "[" else None
        if match is not None:
            index = match["index"]
            key = index if index is not None else match["dq"] if match["dq"] is not None else match["sq"]
            end = match.end()
        else:
            # A plain key runs to the next dot or to a bracket that opens an index or quoted key;
            # any other bracket is part of the key, as in the mapping kit.
            end = i + 1
            while end < n and rest[end] != "." and not (rest[end] == "[" and _BRACKET.match(rest, end)):
                end += 1
            key = rest[i:end]
        segments.append((key, int(key) if key.isascii() and key.isdigit() else None))
        need_key = False
        i = end
    if need_key:
        raise PathSyntaxError(f"{text!r} ends with a dot; name a key after it")
    return tuple(segments)


def _root(root: Any) -> Any:
    return root


def getter(segments: tuple[Segment, ...]) -> Node:
    """A function reading ``segments`` from a root value; ``MISSING`` where the path leads nowhere.

    Paths of up to three plain keys (most paths: ``$.event``, ``$.context.page.url``) get
    unrolled getters; they run about twice as fast as the general loop.
    """
    if not segments:
        return _root
    if any(index is not None for _, index in segments):
        return _indexed_getter(segments)
    keys = tuple(key for key, _ in segments)
    if len(keys) == 1:
        (k1,) = keys

        def get_1(root: Any) -> Any:
            return root.get(k1, MISSING) if isinstance(root, dict) else MISSING

        return get_1
    if len(keys) == 2:
        k1, k2 = keys

        def get_2(root: Any) -> Any:
            value = root.get(k1, MISSING) if isinstance(root, dict) else MISSING
            return value.get(k2, MISSING) if isinstance(value, dict) else MISSING

        return get_2
    if len(keys) == 3:
        k1, k2, k3 = keys

        def get_3(root: Any) -> Any:
            value = root.get(k1, MISSING) if isinstance(root, dict) else MISSING
            value = value.get(k2, MISSING) if isinstance(value, dict) else MISSING
            return value.get(k3, MISSING) if isinstance(value, dict) else MISSING

        return get_3

    def get_keys(root: Any) -> Any:
        value = root
        for key in keys:
            if not isinstance(value, dict):
                return MISSING
            value = value.get(key, MISSING)
        return value

    return get_keys


def _indexed_getter(segments: tuple[Segment, ...]) -> Node:
    def get(root: Any) -> Any:
        value = root
        for key, index in segments:
            if isinstance(value, dict):
                value = value.get(key, MISSING)
            elif index is not None and isinstance(value, list) and index < len(value):
                value = value[index]
            else:
                return MISSING
        return value

    return get


@functools.lru_cache(maxsize=512)
def cached_getter(text: str) -> Node | None:
    """The getter for a path computed at run time (``{"@path": {"@path": ...}}``); ``None`` if
    it does not parse. Cached, because such paths usually take few distinct values."""
    try:
        return getter(parse_path(text))
    except PathSyntaxError:
        return None
