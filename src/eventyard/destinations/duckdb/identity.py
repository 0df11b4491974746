"""The identity tables in a DuckDB warehouse (``eventyard.warehouse.identity_tables``).

Synchronous, run in a worker thread under the store's write lock: a load creates the schema
and tables when missing, stages each step's rows from Arrow and runs its statements, and moves
the workspace's position in ``_eventyard_feed``, all in one transaction.
"""

from __future__ import annotations

import contextlib
from typing import Any

from eventyard.destinations.duckdb import sql
from eventyard.destinations.duckdb.store import DuckDBStore
from eventyard.warehouse import ColumnType
from eventyard.warehouse.identity_tables import (
    FEED,
    TABLES,
    IdentityLoad,
    Step,
    check_position,
    staged_columns,
    statements,
)

STAGED = "_eventyard_identity_staged"


def _arrow_type(kind: ColumnType) -> Any:
    import pyarrow as pa

    return {
        ColumnType.TEXT: pa.string(),
        ColumnType.BIGINT: pa.int64(),
        ColumnType.DOUBLE: pa.float64(),
        ColumnType.BOOLEAN: pa.bool_(),
        ColumnType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    }[kind]


def _staged(step: Step) -> Any:
    import pyarrow as pa

    names = staged_columns(step)
    columns = list(zip(*step.rows, strict=True)) if step.rows else [() for _ in names]
    arrays = [pa.array(list(values), _arrow_type(kind)) for values, kind in zip(columns, step.types(), strict=True)]
    return sql.naive_utc(pa.Table.from_arrays(arrays, names=names))


def position(store: DuckDBStore, schema: str, workspace_id: str, con: Any = None) -> int | None:
    con = con if con is not None else store.con
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?", [schema, FEED.name]
    ).fetchone()
    if not exists or not exists[0]:
        return None
    row = con.execute(
        f"SELECT last_change FROM {sql.qualified(schema, FEED.name)} WHERE workspace_id = ?", [workspace_id]
    ).fetchone()
    return int(row[0]) if row else None


def load(store: DuckDBStore, schema: str, work: IdentityLoad) -> None:
    con = store.con
    with store._write_lock:
        con.execute("BEGIN TRANSACTION")
        try:
            check_position(position(store, schema, work.workspace_id, con), work)
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {sql.quote(schema)}")
            for table in TABLES:
                con.execute(sql.create_table(schema, table.name, table.columns))
            for step in work.steps:
                target = sql.qualified(schema, step.table.name)
                staged = bool(staged_columns(step))
                if staged:
                    con.register(STAGED, _staged(step))
                try:
                    for statement in statements(step, target, STAGED, sql.quote, "?"):
                        con.execute(statement, [work.workspace_id])
                finally:
                    if staged:
                        # after a failed statement DuckDB refuses this until the rollback;
                        # the next register replaces the view anyway
                        with contextlib.suppress(Exception):
                            con.unregister(STAGED)
            feed = sql.qualified(schema, FEED.name)
            con.execute(f"DELETE FROM {feed} WHERE workspace_id = ?", [work.workspace_id])
            con.execute(
                f"INSERT INTO {feed} VALUES (?, ?, ?)",
                [work.workspace_id, work.last_change, work.loaded_at.replace(tzinfo=None)],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
