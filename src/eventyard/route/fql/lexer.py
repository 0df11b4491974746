"""The FQL tokenizer: source text → tokens with their positions.

Token kinds:

- ``string``: ``'...'`` or ``"..."``; value is the unescaped text. ``\\\\ \\' \\" \\/ \\b \\f \\n \\r \\t \\uXXXX``
  are escapes; any other ``\\x`` is kept as the two characters, so glob escapes such as
  ``'ab\\*d'`` reach ``match()`` as written (Segment's own example).
- ``number``: ``-12``, ``+3.5``, ``1e3``; value is an ``int`` or a ``float``.
- ``field``: a dot-separated path such as ``context.page.url``; value is the tuple of segments.
  Field names are made of letters, digits, ``_`` and ``-`` (a path starts with a letter or ``_``);
  any other character is written with a ``\\`` before it: ``properties.product\\ 1.price``.
- ``keyword``: ``and or in true false null`` (written plainly; ``\\and`` is a field named "and").
- ``op``: ``= != > >= < <=``; and the punctuation ``! ( ) [ ] ,``; ``eof`` ends the list.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from eventyard.route.fql.errors import FqlError

KEYWORDS = frozenset({"and", "or", "in", "true", "false", "null"})
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_PUNCTUATION = frozenset("!()[],")
_HINTS = {"==": "use '=' to compare", "&&": "use 'and'", "||": "use 'or'", "&": "use 'and'", "|": "use 'or'"}
_MAX_DIGITS = 300
_DIGITS = frozenset("0123456789")


class Token(NamedTuple):
    kind: str
    value: Any
    pos: int
    #: The token as written in the source.
    text: str
    #: A field written without escapes and without dots: may be a keyword or a function name.
    plain: bool = False


def is_name_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_" or ch == "-"


def is_name_start(ch: str) -> bool:
    return ch.isalpha() or ch == "_"


def format_path(segments: tuple[str, ...]) -> str:
    """The FQL spelling of a field path: segments joined by dots, special characters escaped."""
    parts = []
    for index, seg in enumerate(segments):
        text = "".join(ch if is_name_char(ch) else "\\" + ch for ch in seg)
        first_needs_escape = seg and not is_name_start(seg[0]) and is_name_char(seg[0])
        if index == 0 and (first_needs_escape or (len(segments) == 1 and seg in KEYWORDS)):
            text = "\\" + text
        parts.append(text)
    return ".".join(parts)


def parse_path(text: str) -> tuple[str, ...]:
    """The segments of a field path written on its own (``"context.page.url"``); ``""`` is the root."""
    if text == "":
        return ()
    tokens = tokenize(text)
    first = tokens[0]
    if first.kind != "field" or tokens[1].kind != "eof":
        raise FqlError(
            "expected a field path such as properties.email", 0 if first.kind != "field" else first.pos, text
        )
    segments: tuple[str, ...] = first.value
    return segments


class _Lexer:
    def __init__(self, source: str) -> None:
        self.src = source
        self.n = len(source)

    def error(self, message: str, pos: int) -> FqlError:
        return FqlError(message, pos, self.src)

    def tokens(self) -> list[Token]:
        src, n = self.src, self.n
        out: list[Token] = []
        i = 0
        while i < n:
            ch = src[i]
            if ch.isspace():
                i += 1
            elif ch == "'" or ch == '"':
                i = self.string(i, out)
            elif ch in _DIGITS or (ch in "+-" and i + 1 < n and src[i + 1] in _DIGITS):
                i = self.number(i, out)
            elif is_name_start(ch) or ch == "\\":
                i = self.field(i, out)
            elif src.startswith(("!=", ">=", "<="), i):
                out.append(Token("op", src[i : i + 2], i, src[i : i + 2]))
                i += 2
            elif src.startswith(("==", "&&", "||"), i):
                raise self.error(f"unexpected '{src[i : i + 2]}' ({_HINTS[src[i : i + 2]]})", i)
            elif ch in "=<>":
                out.append(Token("op", ch, i, ch))
                i += 1
            elif ch in _PUNCTUATION:
                out.append(Token(ch, ch, i, ch))
                i += 1
            else:
                hint = f" ({_HINTS[ch]})" if ch in _HINTS else ""
                raise self.error(f"unexpected character {ch!r}{hint}", i)
        out.append(Token("eof", None, len(src.rstrip()), ""))
        return out

    def string(self, start: int, out: list[Token]) -> int:
        src, n, quote = self.src, self.n, self.src[start]
        chars: list[str] = []
        i = start + 1
        while True:
            if i >= n:
                raise self.error("unterminated string (no closing quote)", start)
            ch = src[i]
            if ch == quote:
                break
            if ch != "\\":
                chars.append(ch)
                i += 1
                continue
            if i + 1 >= n:
                raise self.error("unterminated string (no closing quote)", start)
            nxt = src[i + 1]
            if nxt == "u":
                digits = src[i + 2 : i + 6]
                if len(digits) != 4 or any(c not in "0123456789abcdefABCDEF" for c in digits):
                    raise self.error("expected four hex digits after '\\u'", i)
                chars.append(chr(int(digits, 16)))
                i += 6
            else:
                chars.append(_ESCAPES.get(nxt, "\\" + nxt))
                i += 2
        out.append(Token("string", "".join(chars), start, src[start : i + 1]))
        return i + 1

    def number(self, start: int, out: list[Token]) -> int:
        src, n = self.src, self.n
        i = start + 1 if src[start] in "+-" else start
        i = self.digits(i)
        is_float = False
        if i < n and src[i] == ".":
            if i + 1 >= n or src[i + 1] not in _DIGITS:
                raise self.error("expected a digit after the decimal point", i + 1)
            i = self.digits(i + 1)
            is_float = True
        if i < n and src[i] in "eE":
            j = i + 1
            if j < n and src[j] in "+-":
                j += 1
            if j >= n or src[j] not in _DIGITS:
                raise self.error("expected digits in the exponent", j)
            i = self.digits(j)
            is_float = True
        if i < n and (is_name_char(src[i]) or src[i] in ".\\"):
            raise self.error(f"unexpected {src[i]!r} after the number", i)
        text = src[start:i]
        if len(text) > _MAX_DIGITS:
            raise self.error("number is too long", start)
        value: int | float = float(text) if is_float else int(text)
        if value in (float("inf"), float("-inf")):
            raise self.error("number is out of range", start)
        out.append(Token("number", value, start, text))
        return i

    def digits(self, i: int) -> int:
        while i < self.n and self.src[i] in _DIGITS:
            i += 1
        return i

    def field(self, start: int, out: list[Token]) -> int:
        src, n = self.src, self.n
        segments: list[str] = []
        chars: list[str] = []
        escaped = False
        i = start
        while i < n:
            ch = src[i]
            if ch == "\\":
                if i + 1 >= n:
                    raise self.error("expected a character after '\\'", i)
                chars.append(src[i + 1])
                escaped = True
                i += 2
            elif is_name_char(ch):
                chars.append(ch)
                i += 1
            elif ch == ".":
                if i + 1 >= n or not (is_name_char(src[i + 1]) or src[i + 1] == "\\"):
                    raise self.error("expected a field name after '.'", i + 1)
                segments.append("".join(chars))
                chars = []
                i += 1
            else:
                break
        segments.append("".join(chars))
        text = src[start:i]
        plain = not escaped and len(segments) == 1
        if plain and text in KEYWORDS:
            out.append(Token("keyword", text, start, text))
        else:
            out.append(Token("field", tuple(segments), start, text, plain))
        return i


def tokenize(source: str) -> list[Token]:
    """The tokens of ``source``, ending with an ``eof`` token; raises ``FqlError``."""
    return _Lexer(source).tokens()
