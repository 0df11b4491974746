"""Rows into a table through COPY: a temporary staging table, then one INSERT ... SELECT.

COPY is PostgreSQL's fast path but cannot skip rows that are already there. So each table's
rows are copied (binary) into a temporary table that is dropped at commit, and moved with
``INSERT ... ON CONFLICT (id)``: ``DO NOTHING`` for event tables (a replayed event is not
inserted twice), ``DO UPDATE`` for ``users``, where a newer row's non-null values replace the
stored ones and an older row only fills in what is still missing.
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


async def copy_rows(
    conn: Conn,
    schema: str,
    table: str,
    columns: Mapping[str, ColumnType],
    rows: Sequence[Sequence[Any]],
    *,
    key: str = "id",
    upsert: bool = False,
    order_by: str | None = None,
) -> int:
    """Insert ``rows`` (values in ``columns`` order, coerced to their kinds); returns rows inserted or changed.

    Call inside a transaction. ``order_by`` names the column that says which of two rows for the
    same key is newer (``received_at``), for ``upsert``.
    """
    if not rows:
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
        async with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(stage, cols)) as copy:
            copy.set_types([SQL_TYPES[k] for k in columns.values()])
            for row in rows:
                await copy.write_row(row)
        if upsert:
            query = _upsert(target, stage, names, key, order_by)
        else:
            query = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ({}) DO NOTHING").format(
                target, cols, cols, stage, sql.Identifier(key)
            )
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
