"""Rows into a table through COPY.

COPY is PostgreSQL's fast path but cannot skip rows that are already there. Event tables are
append-only and their rows are loaded once per ``id``: the loader asks which of the batch's ids
the table has already (``existing_ids``, one index lookup per id), leaves those rows out, and
COPYs the rest straight into the table (``copy_into``). The schema's advisory lock keeps other
eventyard loads out meanwhile. (The loader first COPYs without asking, inside a savepoint, and
asks only when the table refuses a duplicate: a batch is almost always new.)

``users`` rows are merged with the stored ones: they are copied into a temporary table that is
dropped at commit and moved with ``INSERT ... ON CONFLICT (id) DO UPDATE`` (``copy_csv``),
where a newer row's non-null values replace the stored ones and an older row only fills in
what is still missing.

The rows arrive in binary COPY format (``binary.binary_of``), or, for a table with a column
someone altered to a type eventyard does not create, as CSV made from the plan's Arrow columns
by Arrow's C++ writer (``csv_of``). Either way no Python code runs per value: in CSV strings
are quoted (an empty string stays ``""``, a null is an empty field), timestamps are written in
UTC with a ``Z``; NUL characters, which PostgreSQL refuses in text, are removed.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import sql

from eventyard.destinations.postgres.catalog import Conn
from eventyard.destinations.postgres.types import SQL_TYPES
from eventyard.warehouse import ColumnType

_stage_names = itertools.count()


def csv_of(table: Any) -> bytes:
    """An Arrow table as CSV for ``COPY ... (FORMAT csv)``: no header, strings quoted, NULs removed."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    def write(rows: Any) -> bytes:
        sink = pa.BufferOutputStream()
        pcsv.write_csv(rows, sink, pcsv.WriteOptions(include_header=False, quoting_style="needed"))
        data: bytes = sink.getvalue().to_pybytes()
        return data

    data = write(table)
    if b"\x00" not in data:
        return data
    columns = [pc.replace_substring(c, "\x00", "") if pa.types.is_string(c.type) else c for c in table.columns]
    return write(pa.Table.from_arrays(columns, names=table.column_names))


async def existing_ids(conn: Conn, schema: str, table: str, ids: Sequence[str], key: str = "id") -> set[str]:
    """Which of ``ids`` the table has already."""
    if not ids:
        return set()
    cur = await conn.execute(
        sql.SQL("SELECT {} FROM {}.{} WHERE {} = ANY(%s)").format(
            sql.Identifier(key), sql.Identifier(schema), sql.Identifier(table), sql.Identifier(key)
        ),
        (list(ids),),
    )
    return {str(row[0]) for row in await cur.fetchall()}


def _format(binary: bool) -> sql.SQL:
    return sql.SQL("binary" if binary else "csv")


async def copy_into(
    conn: Conn, schema: str, table: str, columns: Sequence[str], data: bytes, *, binary: bool = False
) -> None:
    """COPY rows (fields in ``columns`` order; CSV, or binary COPY when ``binary``) straight into the table."""
    if not data:
        return
    target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    cols = sql.SQL(", ").join(sql.Identifier(n) for n in columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT {})").format(target, cols, _format(binary))
    async with conn.cursor() as cur, cur.copy(statement) as copy:
        await copy.write(data)


async def copy_csv(
    conn: Conn,
    schema: str,
    table: str,
    columns: Mapping[str, ColumnType],
    data: bytes,
    *,
    key: str = "id",
    upsert: bool = False,
    order_by: str | None = None,
    binary: bool = False,
) -> int:
    """Insert CSV rows, or binary COPY rows when ``binary`` (fields in ``columns`` order); returns
    rows inserted or changed.

    Call inside a transaction. ``order_by`` names the column that says which of two rows for the
    same key is newer (``received_at``), for ``upsert``.
    """
    if not data:
        return 0
    names = list(columns)
    stage = sql.Identifier(f"eventyard_stage_{next(_stage_names)}")
    target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    cols = sql.SQL(", ").join(sql.Identifier(n) for n in names)
    defs = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(SQL_TYPES[k])) for n, k in columns.items()
    )
    await conn.execute(sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(stage, defs))
    async with conn.cursor() as cur:
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT {})").format(stage, cols, _format(binary))
        async with cur.copy(statement) as copy:
            await copy.write(data)
        if upsert:
            query = _upsert(target, stage, names, key, order_by)
        elif key in columns:
            query = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ({}) DO NOTHING").format(
                target, cols, cols, stage, sql.Identifier(key)
            )
        else:  # rows without an id cannot be told apart: the primary key refuses them (not null)
            query = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(target, cols, cols, stage)
        await cur.execute(query)
        return max(cur.rowcount, 0)


def _upsert(
    target: sql.Composable, stage: sql.Identifier, names: list[str], key: str, order_by: str | None
) -> sql.Composed:
    """One row per key from the stage (the newest), merged into the stored row column by column."""
    cols = sql.SQL(", ").join(sql.Identifier(n) for n in names)
    k = sql.Identifier(key)
    newest: sql.Composable = sql.SQL("")
    is_newer: sql.Composable = sql.SQL("true")
    if order_by is not None and order_by in names:
        o = sql.Identifier(order_by)
        newest = sql.SQL(", {} DESC NULLS LAST").format(o)
        is_newer = sql.SQL("(t.{o} IS NULL OR EXCLUDED.{o} >= t.{o})").format(o=o)
    sets = [
        sql.SQL(
            "{c} = CASE WHEN {newer} THEN COALESCE(EXCLUDED.{c}, t.{c}) ELSE COALESCE(t.{c}, EXCLUDED.{c}) END"
        ).format(c=sql.Identifier(n), newer=is_newer)
        for n in names
        if n != key
    ]
    action = sql.SQL("DO UPDATE SET {}").format(sql.SQL(", ").join(sets)) if sets else sql.SQL("DO NOTHING")
    return sql.SQL(
        "INSERT INTO {target} AS t ({cols}) SELECT DISTINCT ON ({k}) {cols} FROM {stage} ORDER BY {k}{newest} "
        "ON CONFLICT ({k}) {action}"
    ).format(target=target, cols=cols, k=k, stage=stage, newest=newest, action=action)
