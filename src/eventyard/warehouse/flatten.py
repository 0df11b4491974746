"""A normalized event as rows of Segment's warehouse schema.

=============  =============================================================================
call           rows
=============  =============================================================================
track          ``tracks`` (standard columns, ``event``, ``event_text``) and the event's own
               table (the same plus the properties, un-prefixed)
identify       ``identifies`` (standard columns plus the traits) and, when there is a userId,
               ``users`` (``id`` = userId, ``received_at``, ``uuid_ts``, traits; upserted)
page, screen   ``pages`` / ``screens`` (standard columns, ``name``, properties)
group          ``groups`` (standard columns, ``group_id``, traits)
alias          ``aliases`` (standard columns, ``previous_id``)
=============  =============================================================================

Standard columns: ``id`` (messageId), ``anonymous_id``, ``user_id``, ``received_at``,
``sent_at``, ``original_timestamp``, ``timestamp``, ``uuid_ts`` (load time) and ``context_*``.
Nested objects become ``parent_child`` columns, lists JSON text, ``null`` no column at all.
Other top-level fields (``integrations``, ``type``, ...) are not loaded, as in Segment.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

import msgspec

from eventyard.warehouse.discards import Discard
from eventyard.warehouse.naming import Dialect, column_name, table_name

TRACKS = "tracks"
IDENTIFIES = "identifies"
USERS = "users"
PAGES = "pages"
SCREENS = "screens"
GROUPS = "groups"
ALIASES = "aliases"
#: Tables every source may have; a track event named like one gets a ``_`` prefix.
STANDARD_TABLES = frozenset({TRACKS, IDENTIFIES, USERS, PAGES, SCREENS, GROUPS, ALIASES, "accounts", "discards"})

#: (column, event field) of the columns every table but ``users`` has.
EVENT_COLUMNS = (
    ("id", "messageId"),
    ("anonymous_id", "anonymousId"),
    ("user_id", "userId"),
    ("received_at", "receivedAt"),
    ("sent_at", "sentAt"),
    ("original_timestamp", "originalTimestamp"),
    ("timestamp", "timestamp"),
)
#: Names a property or trait may never take in any table (they would overwrite a standard column).
RESERVED_COLUMNS = frozenset({c for c, _ in EVENT_COLUMNS} | {"uuid", "uuid_ts", "loaded_at"})
#: Further names reserved per call type (``name`` is a standard column of pages, a trait elsewhere).
_RESERVED_BY_TYPE = {
    "track": RESERVED_COLUMNS | {"event", "event_text", ""},
    "page": RESERVED_COLUMNS | {"name", ""},
    "screen": RESERVED_COLUMNS | {"name", ""},
    "group": RESERVED_COLUMNS | {"group_id", ""},
    "alias": RESERVED_COLUMNS | {"previous_id", ""},
}
_RESERVED_DEFAULT = RESERVED_COLUMNS | {""}


class TableRow(NamedTuple):
    """One row for ``table``; ``upsert`` rows replace the row with the same ``id`` (``users``)."""

    table: str
    row: dict[str, Any]
    upsert: bool = False


class Flattened:
    """The rows of one event, and the values that could not become columns."""

    __slots__ = ("discards", "rows")

    def __init__(self, rows: list[TableRow] | None = None, discards: list[Discard] | None = None) -> None:
        self.rows: list[TableRow] = [] if rows is None else rows
        self.discards: list[Discard] = [] if discards is None else discards

    def __repr__(self) -> str:
        return f"Flattened(rows={self.rows!r}, discards={self.discards!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Flattened) and (self.rows, self.discards) == (other.rows, other.discards)

    __hash__ = None  # type: ignore[assignment]


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def flatten_object(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [1]}`` -> ``{"a_b": 1, "c": "[1]"}``: raw keys joined with ``_``,
    lists as JSON text, ``None`` and empty objects left out. Keys are not yet column names."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        path = f"{prefix}_{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten_object(value, path))
        elif isinstance(value, list | tuple):
            out[path] = _json(value)
        elif value is not None:
            out[path] = value
    return out


#: Column names already worked out, per dialect: prefix -> key -> column ("" when it has no
#: letters or digits). Events of one source carry the same few hundred keys again and again, so
#: naming each once instead of once per event is most of the flattening time saved.
_NAMES: dict[Dialect, dict[str, dict[Any, str]]] = {}
#: The cache is dropped when it grows past this many prefixes (keys made of user data could
#: otherwise grow it forever).
_NAMES_LIMIT = 20_000
_last: tuple[Dialect, dict[str, dict[Any, str]]] | None = None


def _names(dialect: Dialect) -> dict[str, dict[Any, str]]:
    global _last
    if _last is not None and _last[0] is dialect and len(_last[1]) <= _NAMES_LIMIT:
        return _last[1]
    names = _NAMES.get(dialect)
    if names is None or len(names) > _NAMES_LIMIT:
        names = _NAMES[dialect] = {}
    _last = (dialect, names)
    return names


class _Where:
    """Where a leaf is going, for the discards table (only read when a value is discarded)."""

    __slots__ = ("dialect", "discards", "names", "row_id", "table")

    def __init__(self, dialect: Dialect, discards: list[Discard], row_id: str) -> None:
        self.dialect = dialect
        self.names = _names(dialect)
        self.discards = discards
        self.row_id = row_id
        self.table = ""


#: A name that is never a column: keys with no letters or digits get it, and it is in every
#: ``reserved`` set, so one membership test catches empty, reserved and taken names.
_NO_NAME = ""
_CONTEXT_RESERVED = frozenset({_NO_NAME})


def _walk(row: dict[str, Any], obj: Mapping[Any, Any], prefix: str, reserved: frozenset[str], at: _Where) -> None:
    """Every leaf of ``obj`` into ``row`` under the column of ``prefix`` + its ``_``-joined path
    (``prefix`` is ``"context_"`` for the context, ``""`` for properties and traits)."""
    names = at.names.get(prefix)
    if names is None:
        names = at.names[prefix] = {}
    for key, value in obj.items():
        kind = value.__class__
        if kind is not str and kind is not int and kind is not float and kind is not bool:
            if kind is dict:
                if value:
                    _walk(row, value, _child(prefix, key), reserved, at)
                continue
            if value is None:
                continue
            if kind is list or kind is tuple:
                value = _json(value)
            elif isinstance(value, Mapping):
                if value:
                    _walk(row, value, _child(prefix, key), reserved, at)
                continue
        column = names.get(key)
        if column is None:
            column = names[key] = column_name(f"{prefix}{key}", at.dialect) or _NO_NAME
        if column in row or column in reserved:
            _discard(column, f"{prefix}{key}", value, reserved, at)
            continue
        row[column] = value


def _child(prefix: str, key: Any) -> str:
    """The prefix of a nested object's leaves (an object under an empty key adds nothing)."""
    path = f"{prefix}{key}"
    return path + "_" if path else ""


def _discard(column: str, path: str, value: Any, reserved: frozenset[str], at: _Where) -> None:
    if column == _NO_NAME:
        reason = "empty_column_name"
    elif column in reserved:
        reason = "reserved_column"
    else:
        reason = "duplicate_column"
    text = value if isinstance(value, str) else _json(value)
    at.discards.append(Discard(at.table, column or path, at.row_id, text, reason))


def _free(row: dict[str, Any], obj: Any, table: str, reserved: frozenset[str], at: _Where) -> dict[str, Any]:
    """Properties or traits into ``row`` (names in ``reserved`` and collisions are discarded)."""
    if isinstance(obj, Mapping):
        at.table = table
        _walk(row, obj, "", reserved, at)
    return row


def _base(event: Mapping[str, Any], table: str, loaded_at: datetime, at: _Where) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column, key in EVENT_COLUMNS:
        value = event.get(key)
        if value is not None:
            row[column] = value
    row["uuid_ts"] = loaded_at
    context = event.get("context")
    if isinstance(context, Mapping):
        at.table = table
        _walk(row, context, "context_", _CONTEXT_RESERVED, at)
    return row


#: Track event name -> table, per dialect (same reasons as ``_NAMES``).
_TABLES: dict[Dialect, dict[str, str]] = {}


def _table_of(name: str, dialect: Dialect) -> str:
    tables = _TABLES.get(dialect)
    if tables is None or len(tables) > _NAMES_LIMIT:
        tables = _TABLES[dialect] = {}
    slug = tables.get(name)
    if slug is None:
        slug = tables[name] = table_name(name, dialect, STANDARD_TABLES)
    return slug


def flatten_event(event: Mapping[str, Any], *, loaded_at: datetime, dialect: Dialect) -> Flattened:
    """The rows (and discards) of one normalized event; ``loaded_at`` becomes ``uuid_ts``.

    Raises ``ValueError`` for an event type the warehouse schema has no table for.
    """
    kind = event.get("type")
    row_id = str(event.get("messageId", ""))
    out = Flattened()
    at = _Where(dialect, out.discards, row_id)
    reserved = _RESERVED_BY_TYPE.get(str(kind), _RESERVED_DEFAULT)
    if kind == "track":
        name = str(event.get("event", ""))
        slug = _table_of(name, dialect)
        tracks = _base(event, TRACKS, loaded_at, at)
        tracks["event"] = slug
        tracks["event_text"] = name
        out.rows.append(TableRow(TRACKS, tracks))
        out.rows.append(TableRow(slug, _free(dict(tracks), event.get("properties"), slug, reserved, at)))
    elif kind == "identify":
        identifies = _free(_base(event, IDENTIFIES, loaded_at, at), event.get("traits"), IDENTIFIES, reserved, at)
        out.rows.append(TableRow(IDENTIFIES, identifies))
        user_id = event.get("userId")
        if user_id is not None:
            user = {"id": user_id, "received_at": event.get("receivedAt"), "uuid_ts": loaded_at}
            out.rows.append(TableRow(USERS, _free(user, event.get("traits"), USERS, reserved, at), upsert=True))
    elif kind in ("page", "screen"):
        table = PAGES if kind == "page" else SCREENS
        row = _base(event, table, loaded_at, at)
        if event.get("name") is not None:
            row["name"] = event["name"]
        out.rows.append(TableRow(table, _free(row, event.get("properties"), table, reserved, at)))
    elif kind == "group":
        row = _base(event, GROUPS, loaded_at, at)
        row["group_id"] = event.get("groupId")
        out.rows.append(TableRow(GROUPS, _free(row, event.get("traits"), GROUPS, reserved, at)))
    elif kind == "alias":
        row = _base(event, ALIASES, loaded_at, at)
        row["previous_id"] = event.get("previousId")
        out.rows.append(TableRow(ALIASES, row))
    else:
        raise ValueError(f"the warehouse schema has no table for events of type {kind!r}")
    return out
