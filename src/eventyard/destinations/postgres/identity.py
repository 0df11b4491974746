"""The identity tables in a PostgreSQL warehouse (``eventyard.warehouse.identity_tables``).

A load is one transaction: an advisory lock on the identity schema (so two loaders take
turns), the schema and tables created when missing, each step's rows staged in a temporary
table (``unnest`` of one array per column, dropped at commit) and its statements run, and the
workspace's position in ``_eventyard_feed`` moved.
"""

from __future__ import annotations

import itertools

from psycopg import sql

from eventyard.destinations.postgres.catalog import Conn, lock_schemas
from eventyard.destinations.postgres.types import SQL_TYPES
from eventyard.warehouse.identity_tables import (
    FEED,
    TABLES,
    IdentityLoad,
    Step,
    check_position,
    staged_columns,
    statements,
)

_names = itertools.count()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _target(schema: str, table: str) -> str:
    return f"{_quote(schema)}.{_quote(table)}"


async def position(conn: Conn, schema: str, workspace_id: str) -> int | None:
    cur = await conn.execute("SELECT to_regclass(%s)", (_target(schema, FEED.name),))
    found = await cur.fetchone()
    if found is None or found[0] is None:
        return None
    cur = await conn.execute(
        sql.SQL("SELECT last_change FROM {}.{} WHERE workspace_id = %s").format(
            sql.Identifier(schema), sql.Identifier(FEED.name)
        ),
        (workspace_id,),
    )
    row = await cur.fetchone()
    return int(str(row[0])) if row else None


async def _create(conn: Conn, schema: str) -> None:
    await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    for table in TABLES:
        cols = ", ".join(f"{_quote(c)} {SQL_TYPES[t]}" for c, t in table.columns.items())
        key = ", ".join(_quote(c) for c in ("workspace_id", *table.key))
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_target(schema, table.name)} ({cols}, PRIMARY KEY ({key}))".encode()
        )


async def _stage(conn: Conn, step: Step) -> str:
    name = f"_eventyard_identity_{next(_names)}"
    columns = staged_columns(step)
    arrays = ", ".join(f"%s::{SQL_TYPES[t]}[]" for t in step.types())
    values = [list(v) for v in zip(*step.rows, strict=True)] if step.rows else [[] for _ in columns]
    names = ", ".join(_quote(c) for c in columns)
    await conn.execute(
        f"CREATE TEMP TABLE {_quote(name)} ON COMMIT DROP AS SELECT * FROM unnest({arrays}) AS s({names})".encode(),
        values,
    )
    return _quote(name)


async def load(conn: Conn, schema: str, work: IdentityLoad) -> None:
    """Run ``work`` in one transaction on ``conn`` (an autocommit connection)."""
    async with conn.transaction():
        await lock_schemas(conn, [f"identity:{schema}"])
        check_position(await position(conn, schema, work.workspace_id), work)
        await _create(conn, schema)
        for step in work.steps:
            staged = await _stage(conn, step) if staged_columns(step) else ""
            for statement in statements(step, _target(schema, step.table.name), staged, _quote, "%s"):
                await conn.execute(statement.encode(), (work.workspace_id,))
        feed = _target(schema, FEED.name)
        await conn.execute(f"DELETE FROM {feed} WHERE workspace_id = %s".encode(), (work.workspace_id,))
        await conn.execute(
            f"INSERT INTO {feed} VALUES (%s, %s, %s)".encode(), (work.workspace_id, work.last_change, work.loaded_at)
        )
