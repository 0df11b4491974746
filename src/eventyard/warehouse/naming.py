"""Names in the warehouse: snake_case like Segment, reserved words, identifier length limits.

``snake_case`` follows Segment's go-snakecase: words split at case changes (an acronym stays
one word: ``JSONData`` -> ``json_data``, ``userID`` -> ``user_id``), at digit runs
(``step2`` -> ``step_2``) and at anything that is not a letter or digit; lowercased and joined
with ``_``. A name that is an SQL reserved word or starts with a digit gets a ``_`` prefix (as
RudderStack does), so users' SQL never has to quote it. A name longer than the backend allows
keeps its start and ends with ``_`` and 8 hex digits of its SHA-1, so two long names that share
a prefix do not collide.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

#: A source id that is already a plain lower-case identifier (``src_3f9a...``).
PLAIN_ID = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][^\W\dA-Z_])|[A-Z]?[^\W\dA-Z_]+|[A-Z]+|\d+")

#: Reserved words of PostgreSQL and DuckDB (SQL:2016 reserved, type and function names that
#: cannot be a bare column name). The same list for every backend keeps schemas portable.
_RESERVED_TEXT = """
all analyse analyze and any array as asc asymmetric authorization binary both case cast check
collate collation column concurrently constraint create cross current_catalog current_date
current_role current_schema current_time current_timestamp current_user default deferrable desc
distinct do else end except false fetch for foreign freeze from full grant group having ilike
in initially inner intersect into is isnull join lateral leading left like limit localtime
localtimestamp natural not notnull null offset on only or order outer overlaps placing primary
qualify references returning right select session_user similar some symmetric table tablesample
then to trailing true union unique user using variadic verbose when where window with
"""
RESERVED_WORDS = frozenset(_RESERVED_TEXT.split())


@dataclass(frozen=True)
class Dialect:
    """What a warehouse backend allows in names and tables."""

    name: str
    #: Longest identifier, in characters (PostgreSQL: 63 bytes; names here are ASCII-safe).
    max_identifier_length: int
    #: Most columns in one table; more is refused with ``TooManyColumns``.
    max_columns: int
    reserved_words: frozenset[str] = field(default=RESERVED_WORDS)


#: DuckDB has no hard column cap; 10,000 (BigQuery's) keeps tables usable.
DUCKDB = Dialect("duckdb", max_identifier_length=120, max_columns=10_000)
POSTGRES = Dialect("postgres", max_identifier_length=63, max_columns=1600)


def snake_case(name: str) -> str:
    """``name`` in snake_case, as Segment's go-snakecase spells it (``""`` when nothing is left)."""
    return "_".join(w.lower() for w in _WORDS.findall(name))


def _fit(name: str, dialect: Dialect) -> str:
    if name in dialect.reserved_words or name[:1].isdigit():
        name = "_" + name
    limit = dialect.max_identifier_length
    if len(name) > limit:
        digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]
        name = name[: limit - 9].rstrip("_") + "_" + digest
    return name


def column_name(path: str, dialect: Dialect) -> str:
    """The column for a (flattened, ``_``-joined) property path; ``""`` when it has no letters or digits."""
    snake = snake_case(path)
    return _fit(snake, dialect) if snake else ""


def table_name(event: str, dialect: Dialect, taken: frozenset[str] = frozenset()) -> str:
    """The table of a track event: its slug, ``_``-prefixed when it collides with ``taken``
    (the standard tables) or a reserved word; ``_unnamed`` when the name has no letters or digits."""
    snake = snake_case(event) or "_unnamed"
    if snake in taken:
        snake = "_" + snake
    return _fit(snake, dialect)


def schema_name(source: str, dialect: Dialect) -> str:
    """The schema of a source (snake_case, e.g. ``"Marketing Site"`` -> ``marketing_site``); ``_unnamed`` when empty."""
    return _fit(snake_case(source) or "_unnamed", dialect)


class SourceSchemas:
    """The schema each source loads into: one per source, named after the source as Segment does.

    In order: the destination's explicit ``schemas`` setting (keyed by source id or source
    name), the snake_case of the source's name (``"Marketing Site"`` -> ``marketing_site``), and, when the
    name is not known, the source id itself (``src_3f9a...``). Events without a source go to
    ``default``. ``prefix`` is put before every name. A name, once resolved, is kept: renaming
    a source does not move its data.
    """

    def __init__(self, dialect: Dialect, explicit: Mapping[str, str], default: str, prefix: str = "") -> None:
        self.dialect = dialect
        self.explicit = dict(explicit)
        self.prefix = prefix
        self.default = self._fit(default)
        self._known: dict[str, str] = {}

    def known(self, source_id: str) -> str | None:
        """The schema of a source whose name is not needed or was already resolved."""
        if not source_id:
            return self.default
        if source_id in self.explicit:
            return self._fit(self.explicit[source_id])
        return self._known.get(source_id)

    def resolve(self, source_id: str, source_name: str | None) -> str:
        """The schema of ``source_id`` given its name (``None``: not known, the id names it)."""
        found = self.known(source_id)
        if found is not None:
            return found
        if source_name is None:
            if PLAIN_ID.fullmatch(source_id):  # an id such as src_3f9a... is used as it is
                return self._fit(source_id, plain=True)
            return self._fit(source_id)
        schema = self._fit(self.explicit.get(source_name, source_name))
        self._known[source_id] = schema
        return schema

    def _fit(self, name: str, plain: bool = False) -> str:
        base = name if plain else schema_name(name, self.dialect)
        return (self.prefix + base)[: self.dialect.max_identifier_length]
