"""Values as text: ``{{...}}`` templates, JSON encoding, and JavaScript-like number formatting.

The mapping kit runs in JavaScript, so a number or boolean placed in a string reads the way
JavaScript writes it (``1``, not ``1.0``; ``true``, not ``True``). Objects and lists become
compact JSON (JavaScript would write ``[object Object]``, which nobody wants in a payload).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from typing import Any

import msgspec

from eventyard.route.mapping.paths import MISSING, Node, PathSyntaxError, getter, parse_path

#: ``{{{path}}}`` (kept for compatibility: the kit never escapes either form) or ``{{path}}``.
_PLACEHOLDER = re.compile(r"\{\{\{([^}]+)\}\}\}|\{\{([^}]+)\}\}")

_json = msgspec.json.Encoder(enc_hook=str)


def json_text(value: Any) -> str:
    """Compact JSON, keys in their order, non-ASCII kept as is (like ``JSON.stringify``)."""
    return _json.encode(value).decode()


def number_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def to_text(value: Any) -> str:
    """``value`` as it reads inside a string: ``""`` for null or nothing."""
    if isinstance(value, str):
        return value
    if value is None or value is MISSING:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return number_text(value)
    return json_text(value)


def scalar_text(value: Any) -> str | None:
    """A string, number or boolean as text (what ``@replace`` works on); ``None`` for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return number_text(value)
    return None


def compile_template(template: str) -> Callable[[Any], str]:
    """A function rendering ``template`` against a root. Raises ``PathSyntaxError``.

    Placeholders are found in one pass, so text a value brings in is never expanded again.
    """
    pieces: list[str | Node] = []
    last = 0
    for match in _PLACEHOLDER.finditer(template):
        if match.start() > last:
            pieces.append(template[last : match.start()])
        expression = (match[1] or match[2]).strip()
        if not expression:
            raise PathSyntaxError(f"empty placeholder at character {match.start() + 1}")
        pieces.append(getter(parse_path(expression)))
        last = match.end()
    if last < len(template):
        pieces.append(template[last:])

    first = pieces[0] if pieces else ""
    if len(pieces) == 1 and not isinstance(first, str):

        def single(root: Any) -> str:
            return to_text(first(root))

        return single
    if all(isinstance(piece, str) for piece in pieces):

        def constant(root: Any) -> str:
            return template

        return constant
    parts = tuple(pieces)

    def render(root: Any) -> str:
        return "".join([piece if isinstance(piece, str) else to_text(piece(root)) for piece in parts])

    return render


@functools.lru_cache(maxsize=256)
def cached_template(template: str) -> Callable[[Any], str] | None:
    """The renderer for a template computed at run time; ``None`` if it does not parse."""
    try:
        return compile_template(template)
    except PathSyntaxError:
        return None
