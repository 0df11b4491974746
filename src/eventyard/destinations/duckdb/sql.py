"""DuckDB SQL for the warehouse schema: types, quoting, DDL and the Arrow form of planned rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from eventyard.warehouse import DISCARDS_COLUMNS, ColumnType, Discard

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


def naive_utc(table: Any) -> Any:
    """``table`` with its UTC timestamp columns as naive ``timestamp[us]`` (DuckDB's ``TIMESTAMP``
    holds UTC without a zone; a zoned Arrow column would be converted through the session's time zone)."""
    import pyarrow as pa

    columns = [c.cast(pa.timestamp("us")) if pa.types.is_timestamp(c.type) else c for c in table.columns]
    return pa.Table.from_arrays(columns, names=table.column_names)


def discards_table(discards: Sequence[Discard], uuid_ts: datetime) -> Any:
    """Discards as an Arrow table with the columns of the discards table."""
    import pyarrow as pa

    return pa.Table.from_arrays(
        [
            pa.array([d.table for d in discards], pa.string()),
            pa.array([d.column for d in discards], pa.string()),
            pa.array([d.row_id for d in discards], pa.string()),
            pa.array([d.value for d in discards], pa.string()),
            pa.array([d.reason for d in discards], pa.string()),
            pa.array([uuid_ts.astimezone(UTC).replace(tzinfo=None)] * len(discards), pa.timestamp("us")),
        ],
        names=list(DISCARDS_COLUMNS),
    )
