"""FQL, Segment's Filter Query Language: compile a statement once, evaluate it per event.

::

    from eventyard.route import fql

    expr = fql.compile("type = 'track' and match(event, 'Order *')")
    expr.matches(event)        # True only when the statement evaluates to exactly true
    expr.evaluate(event)       # the raw value (for statements such as "lowercase(event)")
    expr.fields                # {"type", "event"}: the field paths the statement reads
    fql.validate("event = ")   # the FqlError (with its column), or None

The language is described in docs/filters-and-fql.md. The pieces: ``lexer`` (text → tokens),
``parser`` (tokens → ``nodes``), ``evaluate`` (nodes → closures), ``functions``, ``glob``
and ``values`` (FQL's types and conversions).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from eventyard.route.fql.errors import FqlError
from eventyard.route.fql.evaluate import Fn, build, field_getter
from eventyard.route.fql.lexer import format_path, parse_path
from eventyard.route.fql.nodes import Field, Node, walk
from eventyard.route.fql.parser import parse

__all__ = ["Expression", "Fn", "FqlError", "compile", "field_getter", "format_path", "parse_path", "validate"]


class Expression:
    """A compiled FQL statement. Immutable and safe to share between threads and destinations."""

    __slots__ = ("_fn", "fields", "paths", "source", "tree")

    def __init__(self, source: str, tree: Node, fn: Fn) -> None:
        self.source = source
        #: The syntax tree (``eventyard.route.fql.nodes``).
        self.tree = tree
        self._fn = fn
        #: The field paths the statement reads, as segment tuples: ``("properties", "product 1")``.
        self.paths: frozenset[tuple[str, ...]] = frozenset(n.segments for n in walk(tree) if isinstance(n, Field))
        #: The same paths as FQL writes them: ``properties.product\\ 1``.
        self.fields: frozenset[str] = frozenset(format_path(p) for p in self.paths)

    def matches(self, event: Mapping[str, Any]) -> bool:
        """True when the statement evaluates to exactly ``true`` for ``event``."""
        return self._fn(event) is True

    def evaluate(self, event: Mapping[str, Any]) -> Any:
        """The value of the statement for ``event`` (a bool, string, number, list, or None)."""
        return self._fn(event)

    def __repr__(self) -> str:
        return f"fql.compile({self.source!r})"


def compile(source: str) -> Expression:
    """Compile ``source``; raises ``FqlError`` (a ``ConfigError``) pointing at the problem.

    Compiled statements are cached by their text, so compiling the same filter for every
    destination, or again when the routing table is rebuilt, costs one dictionary lookup.
    """
    if not isinstance(source, str):
        raise FqlError(f"an FQL statement is a string, not {type(source).__name__}", 0)
    return _compile(source)


@lru_cache(maxsize=1024)
def _compile(source: str) -> Expression:
    tree = parse(source)
    return Expression(source, tree, build(tree, source))


def validate(source: str) -> FqlError | None:
    """The error that ``compile(source)`` would raise, or None when the statement is valid."""
    try:
        compile(source)
    except FqlError as exc:
        return exc
    return None
