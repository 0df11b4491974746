"""The DuckDB warehouse file: one writer connection, loads in one transaction, read-only queries.

Everything here is synchronous and runs in a worker thread. The connection is opened with
``enable_external_access = false`` and a locked configuration, so SQL run through ``query``
can read the warehouse and nothing else (no files, no extensions, no ATTACH), and every query
runs in a ``READ ONLY`` transaction on its own cursor.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from eventyard.destinations.duckdb import sql
from eventyard.warehouse import (
    DISCARDS_COLUMNS,
    DISCARDS_TABLE,
    USERS,
    ColumnType,
    Discard,
    QueryResult,
    ReadOnlyViolation,
    TableDescription,
)
from eventyard.warehouse.columns import ColumnarPlan

Columns = dict[str, ColumnType]
STAGING = "_eventyard_staging"
MERGED = "_eventyard_merged"


@dataclass
class Load:
    """Everything one ``deliver`` writes: table plans and discards, per schema."""

    plans: dict[tuple[str, str], ColumnarPlan] = field(default_factory=dict)
    discards: dict[str, list[Discard]] = field(default_factory=dict)


class DuckDBStore:
    """The warehouse file, open for loading, or with ``read_only`` for queries only (another
    process may then not have it open for writing: DuckDB allows one writer per file)."""

    def __init__(self, path: Path, memory_limit: str = "", read_only: bool = False) -> None:
        import duckdb

        self._duckdb = duckdb
        config: dict[str, Any] = {"enable_external_access": False}
        if memory_limit:
            config["memory_limit"] = memory_limit
        self.path = path
        if read_only:
            self.con = duckdb.connect(str(path), read_only=True, config=config)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.con = duckdb.connect(str(path), config=config)
        self.con.execute("SET lock_configuration = true")
        self._write_lock = threading.Lock()
        self.tables: dict[tuple[str, str], Columns] = {}
        #: Goes up whenever ``tables`` may have changed: a plan made at one generation is still
        #: valid if the generation is the same when it is loaded.
        self.generation = 0
        self.refresh()

    def close(self) -> None:
        self.con.close()

    def refresh(self) -> None:
        """Read every table's columns from the catalog (after a failed load, the cache may be wrong)."""
        rows = self.con.execute(
            "SELECT c.table_schema, c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
            " JOIN duckdb_tables() t ON t.schema_name = c.table_schema AND t.table_name = c.table_name"
            " WHERE NOT t.temporary ORDER BY c.table_schema, c.table_name, c.ordinal_position"
        ).fetchall()
        tables: dict[tuple[str, str], Columns] = {}
        for schema, table, column, data_type in rows:
            tables.setdefault((schema, table), {})[column] = sql.COLUMN_TYPES.get(data_type, ColumnType.TEXT)
        self.tables = tables
        self.generation += 1

    def columns(self, schema: str, table: str) -> Columns:
        return self.tables.get((schema, table), {})

    # -- loading ---------------------------------------------------------------------------

    def load(self, load: Load, uuid_ts: datetime) -> None:
        """Apply every plan and write the discards in one transaction; raises the driver's error."""
        with self._write_lock:
            con = self.con
            con.execute("BEGIN TRANSACTION")
            try:
                for schema in {s for s, _ in load.plans} | set(load.discards):
                    con.execute(f"CREATE SCHEMA IF NOT EXISTS {sql.quote(schema)}")
                for (schema, table), plan in load.plans.items():
                    self._apply(schema, table, plan)
                for schema, discards in load.discards.items():
                    self._discard(schema, discards, uuid_ts)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                self.refresh()
                raise
            changed = False
            for (schema, table), plan in load.plans.items():
                if plan.changes_schema or (schema, table) not in self.tables:
                    self.tables[(schema, table)] = dict(plan.columns)
                    changed = True
            for schema in load.discards:
                if (schema, DISCARDS_TABLE) not in self.tables:
                    self.tables[(schema, DISCARDS_TABLE)] = dict(DISCARDS_COLUMNS)
                    changed = True
            if changed:
                self.generation += 1

    def _apply(self, schema: str, table: str, plan: ColumnarPlan) -> None:
        con = self.con
        if (schema, table) not in self.tables:
            con.execute(sql.create_table(schema, table, plan.columns))
        else:
            for column, kind in plan.add.items():
                con.execute(sql.add_column(schema, table, column, kind))
            for column, kind in plan.widen.items():
                con.execute(sql.widen_column(schema, table, column, kind))
        if not plan.num_rows:
            return
        target = sql.qualified(schema, table)
        # users rows are merged with the stored ones column by column, so they carry every column.
        names = list(plan.columns) if table == USERS else list(plan.arrays)
        if "id" in plan.columns and "id" not in names:
            names.insert(0, "id")
        cols = ", ".join(sql.quote(c) for c in names)
        con.register(STAGING, sql.naive_utc(plan.arrow(names)))
        try:
            if table == USERS:
                self._upsert(target, names)
            elif "id" in names:
                con.execute(
                    f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {STAGING} s"
                    f" WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE t.id = s.id)"
                )
            else:
                con.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {STAGING}")
        finally:
            con.unregister(STAGING)

    def _upsert(self, target: str, columns: Sequence[str]) -> None:
        """Merge staged user rows into ``users``: a newer row's values win, missing ones are kept."""
        newer = "u.id IS NULL OR u.received_at IS NULL OR s.received_at >= u.received_at"
        picks = ["s.id AS id"]
        for column in columns:
            if column != "id":
                c = sql.quote(column)
                picks.append(f"CASE WHEN {newer} THEN COALESCE(s.{c}, u.{c}) ELSE COALESCE(u.{c}, s.{c}) END AS {c}")
        cols = ", ".join(sql.quote(c) for c in columns)
        con = self.con
        con.execute(
            f"CREATE TEMP TABLE {MERGED} AS SELECT {', '.join(picks)}"
            f" FROM {STAGING} s LEFT JOIN {target} u ON u.id = s.id"
        )
        try:
            con.execute(f"DELETE FROM {target} WHERE id IN (SELECT id FROM {STAGING})")
            con.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {MERGED}")
        finally:
            con.execute(f"DROP TABLE {MERGED}")

    def _discard(self, schema: str, discards: Sequence[Discard], uuid_ts: datetime) -> None:
        con = self.con
        target = sql.qualified(schema, DISCARDS_TABLE)
        con.execute(sql.create_table(schema, DISCARDS_TABLE, DISCARDS_COLUMNS))
        cols = ", ".join(sql.quote(c) for c in DISCARDS_COLUMNS)
        con.register(STAGING, sql.discards_table(discards, uuid_ts))
        try:
            con.execute(
                f"INSERT INTO {target} ({cols}) SELECT DISTINCT ON (table_name, column_name, row_id) {cols}"
                f" FROM {STAGING} s WHERE NOT EXISTS (SELECT 1 FROM {target} t"
                " WHERE t.table_name = s.table_name AND t.column_name = s.column_name AND t.row_id = s.row_id)"
            )
        finally:
            con.unregister(STAGING)

    # -- deletion --------------------------------------------------------------------------

    def delete_user(self, user_id: str, anonymous_ids: Iterable[str] = ()) -> int:
        """Delete the user's rows from every table of every schema (and their discards); rows deleted."""
        anonymous = list(anonymous_ids)
        deleted = 0
        with self._write_lock:
            con = self.con
            con.execute("BEGIN TRANSACTION")
            try:
                for (schema, table), columns in sorted(self.tables.items()):
                    deleted += self._delete_from(schema, table, columns, user_id, anonymous)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return deleted

    def _delete_from(self, schema: str, table: str, columns: Columns, user_id: str, anonymous: list[str]) -> int:
        if table == DISCARDS_TABLE:
            return 0
        target = sql.qualified(schema, table)
        if table == USERS:
            where, params = "id = ?", [user_id]
        elif "user_id" in columns:
            where, params = "user_id = ?", [user_id]
            if anonymous and "anonymous_id" in columns:
                where = f"user_id = ? OR anonymous_id IN ({', '.join('?' * len(anonymous))})"
                params = [user_id, *anonymous]
        elif anonymous and "anonymous_id" in columns:
            where, params = f"anonymous_id IN ({', '.join('?' * len(anonymous))})", list(anonymous)
        else:
            return 0
        if (schema, DISCARDS_TABLE) in self.tables:
            self.con.execute(
                f"DELETE FROM {sql.qualified(schema, DISCARDS_TABLE)} WHERE table_name = ?"
                f" AND row_id IN (SELECT id FROM {target} WHERE {where})",
                [table, *params],
            )
        found = self.con.execute(f"DELETE FROM {target} WHERE {where}", params).fetchone()
        return int(found[0]) if found else 0

    # -- reading ---------------------------------------------------------------------------

    def check_read_only(self, text: str) -> None:
        try:
            statements = self._duckdb.extract_statements(text)
        except self._duckdb.Error as exc:
            raise ReadOnlyViolation(f"the SQL does not parse: {exc}") from None
        if len(statements) != 1:
            raise ReadOnlyViolation(f"send exactly one statement (got {len(statements)})")
        kind = statements[0].type
        if kind != self._duckdb.StatementType.SELECT:
            raise ReadOnlyViolation(
                f"only read-only queries (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE) are allowed, not {kind.name}"
            )

    def query(self, text: str, max_rows: int) -> QueryResult:
        """Run one read-only statement in a READ ONLY transaction; at most ``max_rows`` rows."""
        self.check_read_only(text)
        cur = self.con.cursor()
        try:
            cur.execute("BEGIN TRANSACTION READ ONLY")
            try:
                cur.execute(text)
                columns = [d[0] for d in cur.description or []]
                fetched = cur.fetchmany(max_rows + 1)
            finally:
                cur.execute("ROLLBACK")
        finally:
            cur.close()
        rows = [[_jsonable(v) for v in row] for row in fetched[:max_rows]]
        return QueryResult(columns, rows, truncated=len(fetched) > max_rows)

    def describe(self) -> list[TableDescription]:
        cur = self.con.cursor()
        try:
            sizes = {
                (s, t): int(n)
                for s, t, n in cur.execute(
                    "SELECT schema_name, table_name, estimated_size FROM duckdb_tables() WHERE NOT temporary"
                ).fetchall()
            }
            rows = cur.execute(
                "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns"
                " ORDER BY table_schema, table_name, ordinal_position"
            ).fetchall()
        finally:
            cur.close()
        out: dict[tuple[str, str], TableDescription] = {}
        for schema, table, column, data_type in rows:
            if (schema, table) in sizes:
                out.setdefault((schema, table), TableDescription(schema, table, rows=sizes[(schema, table)]))
                out[(schema, table)].columns[column] = data_type
        return list(out.values())


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)
