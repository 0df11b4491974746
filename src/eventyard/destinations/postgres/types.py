"""Warehouse column types in PostgreSQL: how each is spelled, and how existing columns read back.

Columns made by eventyard use the first table; a column someone altered by hand (``varchar(n)``,
``integer``, ``numeric`` ...) reads back as the nearest warehouse type, and anything unknown
(``json``, ``uuid`` ...) as text, so the planner never tries to widen what it does not know.
"""

from __future__ import annotations

from typing import Any

from eventyard.warehouse import ColumnType

#: How each warehouse type is created (and named to binary COPY).
SQL_TYPES: dict[ColumnType, str] = {
    ColumnType.BOOLEAN: "boolean",
    ColumnType.BIGINT: "bigint",
    ColumnType.DOUBLE: "double precision",
    ColumnType.TIMESTAMP: "timestamptz",
    ColumnType.TEXT: "text",
}
#: How ``format_type`` names the types of ``SQL_TYPES`` (a column reading back otherwise was
#: altered by hand).
CATALOG_NAMES: dict[ColumnType, str] = {
    ColumnType.BOOLEAN: "boolean",
    ColumnType.BIGINT: "bigint",
    ColumnType.DOUBLE: "double precision",
    ColumnType.TIMESTAMP: "timestamp with time zone",
    ColumnType.TEXT: "text",
}

_READ_BACK: dict[str, ColumnType] = {
    "boolean": ColumnType.BOOLEAN,
    "bigint": ColumnType.BIGINT,
    "integer": ColumnType.BIGINT,
    "smallint": ColumnType.BIGINT,
    "double precision": ColumnType.DOUBLE,
    "real": ColumnType.DOUBLE,
    "numeric": ColumnType.DOUBLE,
    "timestamp with time zone": ColumnType.TIMESTAMP,
    "timestamp without time zone": ColumnType.TIMESTAMP,
    "text": ColumnType.TEXT,
    "character varying": ColumnType.TEXT,
    "character": ColumnType.TEXT,
}


def type_of_column(format_type: str) -> ColumnType:
    """The warehouse type of an existing column from its ``format_type`` name."""
    base = format_type.split("(", 1)[0].strip()
    return _READ_BACK.get(base, ColumnType.TEXT)


def sendable(value: Any) -> Any:
    """A coerced value as COPY sends it: text without NUL characters, which PostgreSQL refuses."""
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "")
    return value
