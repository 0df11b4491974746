"""DuckDB SQL for the warehouse schema: types, quoting, DDL and the Arrow form of planned rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from eventyard.warehouse import ColumnType

DUCKDB_TYPES = {
    ColumnType.BOOLEAN: "BOOLEAN",
    ColumnType.BIGINT: "BIGINT",
    ColumnType.DOUBLE: "DOUBLE",
    ColumnType.TIMESTAMP: "TIMESTAMP",
    ColumnType.TEXT: "VARCHAR",
}
#: DuckDB's type names back to column types (types a user added by hand count as text).
COLUMN_TYPES = {
    "BOOLEAN": ColumnType.BOOLEAN,
    "BIGINT": ColumnType.BIGINT,
    "INTEGER": ColumnType.BIGINT,
    "DOUBLE": ColumnType.DOUBLE,
    "TIMESTAMP": ColumnType.TIMESTAMP,
    "TIMESTAMP WITH TIME ZONE": ColumnType.TIMESTAMP,
    "VARCHAR": ColumnType.TEXT,
}


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote(schema)}.{quote(table)}"


def create_table(schema: str, table: str, columns: Mapping[str, ColumnType]) -> str:
    cols = ", ".join(f"{quote(c)} {DUCKDB_TYPES[t]}" for c, t in columns.items())
    return f"CREATE TABLE IF NOT EXISTS {qualified(schema, table)} ({cols})"


def add_column(schema: str, table: str, column: str, kind: ColumnType) -> str:
    return f"ALTER TABLE {qualified(schema, table)} ADD COLUMN IF NOT EXISTS {quote(column)} {DUCKDB_TYPES[kind]}"


def widen_column(schema: str, table: str, column: str, kind: ColumnType) -> str:
    return f"ALTER TABLE {qualified(schema, table)} ALTER COLUMN {quote(column)} TYPE {DUCKDB_TYPES[kind]}"


def _naive_utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def arrow_table(columns: Mapping[str, ColumnType], rows: Sequence[Mapping[str, Any]]) -> Any:
    """The rows as a ``pyarrow.Table`` with one typed column per planned column (timestamps as naive UTC)."""
    import pyarrow as pa

    arrow_types = {
        ColumnType.BOOLEAN: pa.bool_(),
        ColumnType.BIGINT: pa.int64(),
        ColumnType.DOUBLE: pa.float64(),
        ColumnType.TIMESTAMP: pa.timestamp("us"),
        ColumnType.TEXT: pa.string(),
    }
    arrays = []
    for column, kind in columns.items():
        values = [row.get(column) for row in rows]
        if kind == ColumnType.TIMESTAMP:
            values = [_naive_utc(v) for v in values]
        arrays.append(pa.array(values, type=arrow_types[kind]))
    return pa.Table.from_arrays(arrays, names=list(columns))
