"""What exists in the warehouse, and the DDL that changes it.

Every load takes a transaction-scoped advisory lock per schema it touches (in sorted order,
so two loaders never deadlock), then reads the schema's tables from ``pg_attribute`` and
creates or alters what the batch needs. Under the lock the catalog read is current until the
transaction ends, so two loaders never race on ``CREATE`` or ``ALTER``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from eventyard.destinations.postgres.types import CATALOG_NAMES, SQL_TYPES, type_of_column
from eventyard.warehouse import DISCARDS_COLUMNS, DISCARDS_TABLE, ColumnType

#: The comment that marks a schema as eventyard's (user deletion looks only in those).
MARKER = "eventyard warehouse schema"
#: PostgreSQL's limit of columns per table; dropped columns still use their slot.
MAX_COLUMNS = 1600
#: Longer identifiers are truncated by PostgreSQL.
MAX_NAME_BYTES = 63

Conn = psycopg.AsyncConnection[tuple[object, ...]]


@dataclass
class TableInfo:
    """One existing table: its columns' kinds and how many column slots it has used."""

    columns: dict[str, ColumnType] = field(default_factory=dict)
    slots: int = 0
    #: Columns whose type is not exactly the one eventyard creates for their kind (altered by
    #: hand: ``integer``, ``varchar(n)``, ``timestamp`` ...); rows for them go as CSV, not binary.
    foreign: frozenset[str] = frozenset()


async def lock_schemas(conn: Conn, schemas: Iterable[str]) -> None:
    """Serialize loads (and deletions) per schema until the transaction ends."""
    for schema in sorted(set(schemas)):
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"eventyard:{schema}",))


async def ensure_schema(conn: Conn, schema: str) -> None:
    exists = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
    if await exists.fetchone() is None:
        ident = sql.Identifier(schema)
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        await conn.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(ident, sql.Literal(MARKER)))


async def tables(conn: Conn, schema: str) -> dict[str, TableInfo]:
    """The schema's tables with their live columns."""
    cur = await conn.execute(
        """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnum, a.attisdropped
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND a.attnum > 0
        """,
        (schema,),
    )
    out: dict[str, TableInfo] = {}
    foreign: dict[str, set[str]] = {}
    for relname, attname, type_name, attnum, dropped in await cur.fetchall():
        info = out.setdefault(str(relname), TableInfo())
        info.slots = max(info.slots, int(str(attnum)))
        if not dropped:
            kind = info.columns[str(attname)] = type_of_column(str(type_name))
            if str(type_name) != CATALOG_NAMES[kind]:
                foreign.setdefault(str(relname), set()).add(str(attname))
    for relname, names in foreign.items():
        out[relname].foreign = frozenset(names)
    return out


def _column_defs(columns: Mapping[str, ColumnType]) -> list[sql.Composable]:
    return [sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(SQL_TYPES[k])) for n, k in columns.items()]


async def create_table(conn: Conn, schema: str, table: str, columns: Mapping[str, ColumnType], key: str = "id") -> None:
    """A table whose ``key`` column (text) is the primary key: loads insert each key once."""
    rest = {n: k for n, k in columns.items() if n != key}
    defs = [sql.SQL("{} text PRIMARY KEY").format(sql.Identifier(key)), *_column_defs(rest)]
    await conn.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {}.{} ({})").format(
            sql.Identifier(schema), sql.Identifier(table), sql.SQL(", ").join(defs)
        )
    )


async def add_columns(conn: Conn, schema: str, table: str, columns: Mapping[str, ColumnType]) -> None:
    if not columns:
        return
    adds = [sql.SQL("ADD COLUMN IF NOT EXISTS ") + d for d in _column_defs(columns)]
    await conn.execute(
        sql.SQL("ALTER TABLE {}.{} {}").format(sql.Identifier(schema), sql.Identifier(table), sql.SQL(", ").join(adds))
    )


async def widen_columns(conn: Conn, schema: str, table: str, columns: Mapping[str, ColumnType]) -> None:
    """Change columns to a wider kind, converting the stored values (integer → float → text)."""
    if not columns:
        return
    changes = [
        sql.SQL("ALTER COLUMN {col} TYPE {type} USING {col}::{type}").format(
            col=sql.Identifier(name), type=sql.SQL(SQL_TYPES[kind])
        )
        for name, kind in columns.items()
    ]
    await conn.execute(
        sql.SQL("ALTER TABLE {}.{} {}").format(
            sql.Identifier(schema), sql.Identifier(table), sql.SQL(", ").join(changes)
        )
    )


async def ensure_discards(conn: Conn, schema: str, known: Mapping[str, TableInfo]) -> None:
    """The schema's discards table; one row per (table, column, row id), so a replay adds nothing."""
    if DISCARDS_TABLE in known:
        return
    defs = _column_defs(DISCARDS_COLUMNS)
    key = sql.SQL("PRIMARY KEY (table_name, column_name, row_id)")
    await conn.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {}.{} ({})").format(
            sql.Identifier(schema), sql.Identifier(DISCARDS_TABLE), sql.SQL(", ").join([*defs, key])
        )
    )


async def managed_schemas(conn: Conn, prefix: str = "") -> list[str]:
    """Schemas carrying eventyard's marker (and starting with ``prefix``)."""
    cur = await conn.execute(
        """
        SELECT nspname FROM pg_namespace
        WHERE obj_description(oid, 'pg_namespace') = %s AND starts_with(nspname, %s)
        ORDER BY nspname
        """,
        (MARKER, prefix),
    )
    return [str(row[0]) for row in await cur.fetchall()]
