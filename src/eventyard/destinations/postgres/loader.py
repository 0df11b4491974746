"""One load: a batch of events into PostgreSQL, in one transaction.

1. Flatten every event into Segment's tables (``eventyard.warehouse``), grouped by
   (schema, table). No connection is held while this runs.
2. In one transaction: lock the schemas (advisory locks, sorted), create what is missing,
   read the tables' columns, and plan each table (columns to add or widen, values to discard).
   A table that would pass the 1600-column cap fails only the events with rows in it; the
   rest of the batch is planned again without them.
3. Apply the DDL, COPY each table's rows through a staging table, write the discards.

The transaction makes a load all-or-nothing: a retried batch finds either nothing or every
row of it, and the primary keys turn the second case into no change.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from eventyard.destinations.base import DeleteSubject, DeliveryEvent, Outcome
from eventyard.destinations.postgres import catalog
from eventyard.destinations.postgres.catalog import Conn, TableInfo
from eventyard.destinations.postgres.classify import outcome_for
from eventyard.destinations.postgres.copy import copy_rows
from eventyard.destinations.postgres.pool import Pool
from eventyard.destinations.postgres.settings import PostgresSettings
from eventyard.destinations.postgres.types import sendable
from eventyard.warehouse import (
    DISCARDS_TABLE,
    POSTGRES,
    USERS,
    Discard,
    TablePlan,
    TooManyColumns,
    flatten_event,
    plan_table,
    schema_name,
)

log = logging.getLogger(__name__)

Key = tuple[str, str]


@dataclass
class _Rows:
    """The rows of one (schema, table), each with the index of the event it came from."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)
    upsert: bool = False


@dataclass
class _Batch:
    tables: dict[Key, _Rows] = field(default_factory=lambda: defaultdict(_Rows))
    #: Discards found while flattening (reserved or colliding names), per schema, with their event.
    discards: dict[str, list[tuple[int, Discard]]] = field(default_factory=lambda: defaultdict(list))


class Loader:
    """Loads batches and deletes users over a small pool of connections."""

    def __init__(self, settings: PostgresSettings, application_name: str) -> None:
        self.settings = settings
        self.pool = Pool(settings, application_name)

    def schema_for(self, source_id: str) -> str:
        """The schema of a source: ``schema_prefix`` + the source's slug (``eventyard`` when unknown)."""
        name = self.settings.schema_prefix + schema_name(source_id or "eventyard", POSTGRES)
        return name[: POSTGRES.max_identifier_length]

    async def load(self, batch: Sequence[DeliveryEvent], now: datetime) -> list[Outcome]:
        outcomes = [Outcome.delivered()] * len(batch)
        flat = self._flatten(batch, now, outcomes)
        if not flat.tables:
            return outcomes
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await self._load(conn, flat, outcomes, now)
        except (psycopg.Error, OSError) as exc:
            problem = outcome_for(exc)
            return [problem if o.kind == "delivered" else o for o in outcomes]
        return outcomes

    async def delete_user(self, subject: DeleteSubject) -> int:
        """Delete the user's rows (by user id; ``users`` by id) from every table of every eventyard schema."""
        anonymous = sorted({v for k, v in subject.identifiers.items() if k in ("anonymousId", "anonymous_id") and v})
        deleted = 0
        async with self.pool.connection() as conn, conn.transaction():
            schemas = await catalog.managed_schemas(conn, self.settings.schema_prefix)
            await catalog.lock_schemas(conn, schemas)
            for schema in schemas:
                for table, info in (await catalog.tables(conn, schema)).items():
                    if table != DISCARDS_TABLE:
                        deleted += await _delete_rows(conn, schema, table, info, subject.user_id, anonymous)
        return deleted

    async def check(self) -> None:
        conn = await self.pool.connect()
        try:
            await conn.execute("SELECT 1")
        finally:
            await conn.close()

    async def close(self) -> None:
        await self.pool.close()

    # -- steps ------------------------------------------------------------------------------

    def _flatten(self, batch: Sequence[DeliveryEvent], now: datetime, outcomes: list[Outcome]) -> _Batch:
        out = _Batch()
        for index, item in enumerate(batch):
            try:
                flat = flatten_event(item.event, loaded_at=now, dialect=POSTGRES)
            except (ValueError, TypeError) as exc:
                outcomes[index] = Outcome.failed(f"cannot load this event into the warehouse: {exc}")
                continue
            schema = self.schema_for(item.source_id)
            for row in flat.rows:
                group = out.tables[(schema, row.table)]
                group.rows.append(row.row)
                group.owners.append(index)
                group.upsert = group.upsert or row.upsert
            out.discards[schema].extend((index, d) for d in flat.discards)
        return out

    async def _load(self, conn: Conn, batch: _Batch, outcomes: list[Outcome], now: datetime) -> None:
        schemas = sorted({schema for schema, _ in batch.tables})
        await catalog.lock_schemas(conn, schemas)
        known: dict[str, dict[str, TableInfo]] = {}
        for schema in schemas:
            await catalog.ensure_schema(conn, schema)
            known[schema] = await catalog.tables(conn, schema)
        plans = self._plan(batch, known, outcomes)
        discards: dict[str, list[Discard]] = defaultdict(list)
        for schema, found in batch.discards.items():
            discards[schema].extend(d for i, d in found if outcomes[i].kind == "delivered")
        for (schema, table), plan in plans.items():
            info = known[schema].get(table)
            if info is None:
                await catalog.create_table(conn, schema, table, plan.add)
            else:
                await catalog.add_columns(conn, schema, table, plan.add)
                await catalog.widen_columns(conn, schema, table, plan.widen)
            upsert = batch.tables[(schema, table)].upsert
            await _copy_plan(conn, schema, plan, upsert)
            discards[schema].extend(plan.discards)
        for schema, kept in discards.items():
            if kept:
                await _write_discards(conn, schema, kept, known[schema], now)

    def _plan(
        self, batch: _Batch, known: dict[str, dict[str, TableInfo]], outcomes: list[Outcome]
    ) -> dict[Key, TablePlan]:
        """A plan per table; events with rows in a table over the column cap fail, and the rest is planned again."""
        while True:
            plans: dict[Key, TablePlan] = {}
            newly_failed = False
            for (schema, table), group in batch.tables.items():
                rows = [r for r, i in zip(group.rows, group.owners, strict=True) if outcomes[i].kind == "delivered"]
                if not rows:
                    continue
                info = known[schema].get(table) or TableInfo()
                problem = ""
                try:
                    plan = plan_table(table, info.columns, rows, POSTGRES)
                except TooManyColumns as exc:
                    problem = str(exc)
                else:
                    if info.slots + len(plan.add) > catalog.MAX_COLUMNS:
                        problem = (
                            f"table {schema}.{table} has used {info.slots} of PostgreSQL's {catalog.MAX_COLUMNS} "
                            f"column slots (dropped columns keep theirs) and this batch needs {len(plan.add)} more; "
                            "rebuild the table (CREATE TABLE ... AS) to free dropped slots, or drop properties "
                            "before they reach the warehouse"
                        )
                if problem:
                    for i in set(group.owners):
                        if outcomes[i].kind == "delivered":
                            outcomes[i] = Outcome.failed(f"column cap: {problem}")
                            newly_failed = True
                    continue
                plans[(schema, table)] = plan
            if not newly_failed:
                return plans


def _merge_users(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per user id: values of later rows (by ``received_at``) win, missing ones are kept."""
    epoch = datetime.min.replace(tzinfo=UTC)
    merged: dict[Any, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: r.get("received_at") or epoch):
        into = merged.setdefault(row.get("id"), {})
        into.update((k, v) for k, v in row.items() if v is not None)
    return list(merged.values())


async def _copy_plan(conn: Conn, schema: str, plan: TablePlan, upsert: bool) -> None:
    rows = _merge_users(plan.rows) if upsert else plan.rows
    present: set[str] = set()
    for row in rows:
        present.update(row)
    columns = {name: kind for name, kind in plan.columns.items() if name in present}
    tuples = [tuple(sendable(row.get(name)) for name in columns) for row in rows]
    order_by = "received_at" if upsert else None
    await copy_rows(conn, schema, plan.table, columns, tuples, upsert=upsert, order_by=order_by)


async def _write_discards(
    conn: Conn, schema: str, discards: list[Discard], known: dict[str, TableInfo], now: datetime
) -> None:
    await catalog.ensure_discards(conn, schema, known)
    target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(DISCARDS_TABLE))
    async with conn.cursor() as cur:
        await cur.executemany(
            sql.SQL(
                "INSERT INTO {} (table_name, column_name, row_id, column_value, reason, uuid_ts) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
            ).format(target),
            [(d.table, d.column, d.row_id, sendable(d.value), d.reason, now) for d in discards],
        )
    by_table: dict[str, int] = defaultdict(int)
    for d in discards:
        by_table[d.table] += 1
    log.warning(
        "warehouse discards in schema %s: %s (see %s.%s)",
        schema,
        ", ".join(f"{t}: {n}" for t, n in sorted(by_table.items())),
        schema,
        DISCARDS_TABLE,
    )


async def _delete_rows(conn: Conn, schema: str, table: str, info: TableInfo, user_id: str, anonymous: list[str]) -> int:
    target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    params: list[Any] = [user_id]
    if table == USERS:
        where = sql.SQL("id = %s")
    elif "user_id" in info.columns:
        where = sql.SQL("user_id = %s")
        if anonymous and "anonymous_id" in info.columns:
            where = sql.SQL("(user_id = %s OR anonymous_id = ANY(%s))")
            params.append(anonymous)
    else:
        return 0
    cur = await conn.execute(sql.SQL("DELETE FROM {} WHERE {} RETURNING id").format(target, where), params)
    ids = [str(r[0]) for r in await cur.fetchall()]
    if ids:
        discards = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(DISCARDS_TABLE))
        exists = await conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{DISCARDS_TABLE}"',))
        found = await exists.fetchone()
        if found is not None and found[0] is not None:
            await conn.execute(
                sql.SQL("DELETE FROM {} WHERE table_name = %s AND row_id = ANY(%s)").format(discards), (table, ids)
            )
    return len(ids)
