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
from dataclasses import dataclass, field

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
    """The schema of a source (its slug, e.g. ``"iOS App"`` -> ``ios_app``); ``_unnamed`` when empty."""
    return _fit(snake_case(source) or "_unnamed", dialect)
