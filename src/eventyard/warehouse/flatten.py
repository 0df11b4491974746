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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
    "track": RESERVED_COLUMNS | {"event", "event_text"},
    "page": RESERVED_COLUMNS | {"name"},
    "screen": RESERVED_COLUMNS | {"name"},
    "group": RESERVED_COLUMNS | {"group_id"},
    "alias": RESERVED_COLUMNS | {"previous_id"},
}


@dataclass(frozen=True)
class TableRow:
    """One row for ``table``; ``upsert`` rows replace the row with the same ``id`` (``users``)."""

    table: str
    row: dict[str, Any]
    upsert: bool = False


@dataclass
class Flattened:
    """The rows of one event, and the values that could not become columns."""

    rows: list[TableRow] = field(default_factory=list)
    discards: list[Discard] = field(default_factory=list)


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


def _add_free(
    row: dict[str, Any],
    obj: Any,
    table: str,
    row_id: str,
    dialect: Dialect,
    discards: list[Discard],
    prefix: str = "",
    reserved: frozenset[str] = RESERVED_COLUMNS,
) -> None:
    """Add properties/traits (or context, with ``prefix``) to ``row`` under their column names."""
    if not isinstance(obj, Mapping):
        return
    for path, value in flatten_object(obj, prefix).items():
        column = column_name(path, dialect)
        reason = ""
        if not column:
            reason = "empty_column_name"
        elif not prefix and column in reserved:
            reason = "reserved_column"
        elif column in row:
            reason = "duplicate_column"
        if reason:
            text = value if isinstance(value, str) else _json(value)
            discards.append(Discard(table, column or path, row_id, text, reason))
            continue
        row[column] = value


def _base(
    event: Mapping[str, Any], table: str, loaded_at: datetime, dialect: Dialect, out: Flattened
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column, key in EVENT_COLUMNS:
        value = event.get(key)
        if value is not None:
            row[column] = value
    row["uuid_ts"] = loaded_at
    _add_free(row, event.get("context"), table, str(event.get("messageId", "")), dialect, out.discards, "context")
    return row


def flatten_event(event: Mapping[str, Any], *, loaded_at: datetime, dialect: Dialect) -> Flattened:
    """The rows (and discards) of one normalized event; ``loaded_at`` becomes ``uuid_ts``.

    Raises ``ValueError`` for an event type the warehouse schema has no table for.
    """
    kind = event.get("type")
    row_id = str(event.get("messageId", ""))
    out = Flattened()
    reserved = _RESERVED_BY_TYPE.get(str(kind), RESERVED_COLUMNS)

    def free(row: dict[str, Any], table: str, key: str) -> dict[str, Any]:
        _add_free(row, event.get(key), table, row_id, dialect, out.discards, reserved=reserved)
        return row

    if kind == "track":
        name = str(event.get("event", ""))
        slug = table_name(name, dialect, STANDARD_TABLES)
        tracks = _base(event, TRACKS, loaded_at, dialect, out)
        tracks["event"] = slug
        tracks["event_text"] = name
        out.rows.append(TableRow(TRACKS, tracks))
        out.rows.append(TableRow(slug, free(dict(tracks), slug, "properties")))
    elif kind == "identify":
        identifies = free(_base(event, IDENTIFIES, loaded_at, dialect, out), IDENTIFIES, "traits")
        out.rows.append(TableRow(IDENTIFIES, identifies))
        user_id = event.get("userId")
        if user_id is not None:
            user = {"id": user_id, "received_at": event.get("receivedAt"), "uuid_ts": loaded_at}
            out.rows.append(TableRow(USERS, free(user, USERS, "traits"), upsert=True))
    elif kind in ("page", "screen"):
        table = PAGES if kind == "page" else SCREENS
        row = _base(event, table, loaded_at, dialect, out)
        if event.get("name") is not None:
            row["name"] = event["name"]
        out.rows.append(TableRow(table, free(row, table, "properties")))
    elif kind == "group":
        row = _base(event, GROUPS, loaded_at, dialect, out)
        row["group_id"] = event.get("groupId")
        out.rows.append(TableRow(GROUPS, free(row, GROUPS, "traits")))
    elif kind == "alias":
        row = _base(event, ALIASES, loaded_at, dialect, out)
        row["previous_id"] = event.get("previousId")
        out.rows.append(TableRow(ALIASES, row))
    else:
        raise ValueError(f"the warehouse schema has no table for events of type {kind!r}")
    return out
