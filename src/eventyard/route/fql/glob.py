"""Glob patterns for ``match()``, compiled once.

Segment's syntax (segmentio/glob): ``*`` any run of characters (``/`` included), ``?`` one
character, ``[abc]`` one of, ``[a-z]`` a range, ``[^a-z]`` none of, ``\\x`` the character x.
The whole string must match, case-sensitively.
"""

from __future__ import annotations

import re
from functools import lru_cache

#: (follows a '*', the chunk: plain text, a regex, or None for a trailing '*', characters it matches)
Chunk = tuple[bool, str | re.Pattern[str] | None, int]


class GlobError(ValueError):
    """The pattern is malformed; ``offset`` is where, within the pattern."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class Glob:
    """A compiled pattern: chunks of single-character matchers separated by ``*``.

    Every chunk matches a fixed number of characters, so the leftmost place where a chunk fits
    after a ``*`` is always a right one: matching never backtracks and takes at most (string
    length × pattern length) steps, whatever the pattern or the string (both may come from
    events).
    """

    __slots__ = ("_chunks", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._chunks = _split(pattern)

    def matches(self, text: str) -> bool:
        pos, end, last = 0, len(text), len(self._chunks) - 1
        for index, (star, chunk, size) in enumerate(self._chunks):
            if chunk is None:
                return True
            if not star or index == last:
                at = pos if not star else end - size
                if at < pos or not _match_at(chunk, text, at):
                    return False
                pos = at + size
            elif isinstance(chunk, str):
                found = text.find(chunk, pos)
                if found < 0:
                    return False
                pos = found + size
            else:
                match = chunk.search(text, pos)
                if match is None:
                    return False
                pos = match.end()
        return pos == end


def _match_at(chunk: str | re.Pattern[str], text: str, at: int) -> bool:
    if isinstance(chunk, str):
        return text.startswith(chunk, at)
    return chunk.match(text, at) is not None


def _split(pattern: str) -> list[Chunk]:
    chunks: list[Chunk] = []
    star = False  # the chunk being read follows a '*'
    parts: list[str] = []  # one regex per character the chunk matches
    plain: list[str] = []  # the characters themselves, while the chunk has no '?' or '[...]'
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if parts:
                chunks.append(_chunk(star, parts, plain))
                parts, plain = [], []
            star = True
            i += 1
            continue
        if ch == "?":
            parts.append(".")
            i += 1
        elif ch == "[":
            i = _char_class(pattern, i, parts)
        else:
            if ch == "\\":
                if i + 1 >= n:
                    raise GlobError("the pattern ends with a lone '\\'", i)
                i += 1
            parts.append(re.escape(pattern[i]))
            plain.append(pattern[i])
            i += 1
    if parts:
        chunks.append(_chunk(star, parts, plain))
    elif star:
        chunks.append((True, None, 0))
    return chunks


def _chunk(star: bool, parts: list[str], plain: list[str]) -> Chunk:
    if len(plain) == len(parts):
        return (star, "".join(plain), len(parts))
    return (star, re.compile("".join(parts), re.DOTALL), len(parts))


def _class_char(pattern: str, i: int, start: int) -> tuple[str, int]:
    """One possibly escaped character of a ``[...]`` class and the index after it."""
    n = len(pattern)
    if i >= n:
        raise GlobError("'[' is never closed with ']'", start)
    ch = pattern[i]
    if ch in "-]":
        raise GlobError(f"unexpected {ch!r} in a character class (write \\{ch} for the character)", i)
    if ch == "\\":
        if i + 1 >= n:
            raise GlobError("'[' is never closed with ']'", start)
        return pattern[i + 1], i + 2
    return ch, i + 1


def _char_class(pattern: str, start: int, parts: list[str]) -> int:
    i = start + 1
    negate = i < len(pattern) and pattern[i] == "^"
    if negate:
        i += 1
    ranges: list[str] = []
    while not (ranges and i < len(pattern) and pattern[i] == "]"):
        lo, i = _class_char(pattern, i, start)
        hi = lo
        if i < len(pattern) and pattern[i] == "-":
            hi, i = _class_char(pattern, i + 1, start)
        if lo > hi:
            raise GlobError(f"the range {lo}-{hi} is reversed", i - 1)
        ranges.append(_escape(lo) if lo == hi else f"{_escape(lo)}-{_escape(hi)}")
    parts.append(("[^" if negate else "[") + "".join(ranges) + "]")
    return i + 1


def _escape(ch: str) -> str:
    return "\\" + ch if ch in "\\]^-[" else ch


def compile_glob(pattern: str) -> Glob:
    """The compiled pattern; raises ``GlobError`` when it is malformed."""
    return Glob(pattern)


@lru_cache(maxsize=512)
def cached_glob(pattern: str) -> Glob | None:
    """For patterns only known per event: compiled once per distinct pattern; ``None`` if malformed."""
    try:
        return Glob(pattern)
    except GlobError:
        return None
