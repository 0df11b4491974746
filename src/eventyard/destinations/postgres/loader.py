"""One load: a batch of events into PostgreSQL, in one transaction.

1. Without a connection, in a worker process (``eventyard.warehouse.workers``; a thread for
   small batches or with ``prepare_processes: 0``): flatten every event into Segment's tables
   (``eventyard.warehouse``), group the rows by (schema, table), plan each table against the
   catalog as the last load saw it, and encode each table's rows for COPY (binary; CSV for a
   table with a column altered by hand). This overlaps the previous load, which is busy in the
   server, and two batches are prepared at once on two CPUs. A process that dies meanwhile
   fails nothing: the batch is answered with a retry (``prepare_failed``).
2. In one transaction: lock the schemas (advisory locks, sorted), create the schemas that are
   missing and read their tables. If a table changed since the plan was made (another loader,
   a person), the batch is planned again from what is there now. A table that would pass the
   1600-column cap fails only the events with rows in it (``column_cap``).
3. Apply the DDL, COPY each table's rows through a staging table, write the discards.

The transaction makes a load all-or-nothing: a retried batch finds either nothing or every
row of it, and the primary keys turn the second case into no change. When PostgreSQL refuses
a load for good, the batch is loaded again in halves (``eventyard.warehouse.loading.Bisector``)
until the event it refuses is alone; that event fails with ``load_refused`` and the others load.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from eventyard.destinations.base import DeleteSubject, DeliveryEvent, Outcome
from eventyard.destinations.postgres import catalog
from eventyard.destinations.postgres.binary import binary_of
from eventyard.destinations.postgres.catalog import Conn, TableInfo
from eventyard.destinations.postgres.classify import outcome_for
from eventyard.destinations.postgres.copy import copy_csv, copy_into, csv_of, existing_ids
from eventyard.destinations.postgres.pool import Pool
from eventyard.destinations.postgres.settings import PostgresSettings
from eventyard.destinations.postgres.types import sendable
from eventyard.warehouse import DISCARDS_TABLE, POSTGRES, USERS, ColumnType, Discard
from eventyard.warehouse.batch import Grouped, LoadPlan, plan_load
from eventyard.warehouse.columns import ARROW_TYPES, ColumnarPlan
from eventyard.warehouse.loading import Bisector, flatten_batch
from eventyard.warehouse.workers import PrepareError, PrepareFailed, PreparePool

log = logging.getLogger(__name__)

#: Events between two hand-overs of the GIL while a batch is flattened in a worker thread.
PAUSE_EVERY = 128

Key = tuple[str, str]
Catalog = dict[str, dict[str, TableInfo]]
#: A table's rows for COPY: (binary format or CSV, the data).
Encoded = tuple[bool, bytes]


@dataclass
class Prepared:
    """A batch ready to load: its flattened events and, for the whole batch, a plan with its rows encoded."""

    #: ``None`` when a worker process prepared the batch (the rows stay there): flattened again
    #: in this process only if the batch must be planned again (``grouped_of``).
    grouped: Grouped | None = field(default_factory=Grouped)
    #: The events that were flattened (every one but the unsupported), in batch order.
    events: list[int] = field(default_factory=list)
    #: Events that cannot be loaded at all (an event type the schema has no table for).
    unsupported: dict[int, Outcome] = field(default_factory=dict)
    plan: LoadPlan | None = None
    #: The catalog the plan was made against (only its tables matter).
    seen: Catalog = field(default_factory=dict)
    encoded: dict[Key, Encoded] = field(default_factory=dict)
    #: What ``grouped`` is made from: (events, their sources, source -> schema, load time).
    source: tuple[Sequence[Mapping[str, Any]], Sequence[str], dict[str, str], datetime] | None = None

    def grouped_of(self) -> Grouped:
        if self.grouped is None:
            assert self.source is not None
            self.grouped, _ = flatten_batch(*self.source, POSTGRES, PAUSE_EVERY)
        return self.grouped


def prepare(
    events: Sequence[Mapping[str, Any]], sources: Sequence[str], schemas: dict[str, str], now: datetime, known: Catalog
) -> Prepared:
    """Flatten, plan against the catalog ``known`` and encode the rows (in a worker thread)."""
    out = Prepared(source=(events, sources, schemas, now))
    grouped, out.unsupported = flatten_batch(events, sources, schemas, now, POSTGRES, PAUSE_EVERY)
    out.grouped, out.events = grouped, grouped.events
    if grouped.events:
        out.seen = {schema: dict(tables) for schema, tables in known.items()}
        try:
            out.plan = plan_batch(grouped, grouped.events, out.seen)
            out.encoded = _encode_all(out.plan, out.seen)
        except Exception:  # planned again per attempt, where the error is told to the events
            out.plan, out.encoded = None, {}
    return out


def prepare_elsewhere(
    events: Sequence[Mapping[str, Any]], sources: Sequence[str], schemas: dict[str, str], now: datetime, known: Catalog
) -> Prepared:
    """``prepare`` in a worker process: only what the load needs goes back (no rows, no catalog)."""
    out = prepare(events, sources, schemas, now, known)
    out.grouped, out.source, out.seen = None, None, {}
    return out


def plan_batch(whole: Grouped, indices: list[int], known: Catalog) -> LoadPlan:
    """The plan of the events ``indices`` of ``whole`` against the catalog ``known``."""

    def columns(schema: str, table: str) -> dict[str, ColumnType]:
        info = known.get(schema, {}).get(table)
        return info.columns if info else {}

    def check(schema: str, table: str, plan: ColumnarPlan) -> str | None:
        info = known.get(schema, {}).get(table) or TableInfo()
        if info.slots + len(plan.add) <= catalog.MAX_COLUMNS:
            return None
        return (
            f"table {schema}.{table} has used {info.slots} of PostgreSQL's {catalog.MAX_COLUMNS} "
            f"column slots (dropped columns keep theirs) and this batch needs {len(plan.add)} more; "
            "rebuild the table (CREATE TABLE ... AS) to free dropped slots, or drop properties "
            "before they reach the warehouse"
        )

    grouped = whole if len(indices) == len(whole.events) else whole.subset(indices)
    return plan_load(grouped, columns, POSTGRES, check)


@dataclass
class Result:
    """What happened to each event that was not delivered, and the discards of committed loads."""

    outcomes: dict[int, Outcome] = field(default_factory=dict)
    discards: list[tuple[int, str, Discard]] = field(default_factory=list)


class Loader:
    """Loads batches and deletes users over a small pool of connections."""

    def __init__(self, settings: PostgresSettings, application_name: str) -> None:
        self.settings = settings
        self.pool = Pool(settings, application_name)
        #: Tables as the last load saw them, per schema (plans are made against this first).
        self.known: Catalog = {}
        #: Worker processes that prepare large batches (started on first use).
        self.workers = PreparePool(settings.prepare_processes)
        # In this process one batch is prepared at a time: two would only take turns at the
        # GIL, while one overlaps the other load's work in the server.
        self._preparing = asyncio.Lock()

    async def load(self, batch: Sequence[DeliveryEvent], schemas: dict[str, str], now: datetime) -> Result:
        events = [item.event for item in batch]
        sources = [item.source_id for item in batch]
        prepared: Prepared | None = None
        if self.workers.wanted(len(batch)):
            seen = {schema: dict(tables) for schema, tables in self.known.items()}
            try:
                found = await self.workers.run(
                    "eventyard.destinations.postgres.loader:prepare_elsewhere", events, sources, schemas, now, seen
                )
            except PrepareFailed as exc:  # nothing was written: the whole batch is tried again later
                log.warning("a batch of %d events is retried: %s", len(batch), exc)
                return Result({i: Outcome.retry(f"prepare_failed: {exc}") for i in range(len(batch))})
            except PrepareError as exc:  # prepared here instead, where the error is raised as before
                log.warning("preparing a batch in a worker process failed, preparing it here: %s", exc)
            else:
                assert isinstance(found, Prepared)
                prepared = found
                prepared.seen, prepared.source = seen, (events, sources, schemas, now)
        if prepared is None:
            async with self._preparing:
                prepared = await asyncio.to_thread(prepare, events, sources, schemas, now, self.known)
        result = Result(dict(prepared.unsupported))
        bisector = Bisector(sorted(prepared.events))
        first = True
        while (part := bisector.next()) is not None:
            plan = prepared.plan if first else None
            first = False
            failed, error, isolate = await self._attempt(prepared, part, plan, now, result)
            bisector.done(part, failed, error, isolate)
        result.outcomes.update(bisector.outcomes)
        return result

    async def delete_user(self, subject: DeleteSubject) -> int:
        """Delete the user's rows (by user id; ``users`` by id) from every table of every eventyard schema."""
        anonymous = sorted(
            {v for k, v in subject.identifiers.items() if k.split(".")[0] in ("anonymousId", "anonymous_id") and v}
        )
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
        try:
            await self.workers.close()
        finally:
            await self.pool.close()

    # -- steps ------------------------------------------------------------------------------

    def _plan(self, prepared: Prepared, indices: list[int], known: Catalog) -> LoadPlan:
        return plan_batch(prepared.grouped_of(), indices, known)

    async def _attempt(
        self, prepared: Prepared, part: list[int], plan: LoadPlan | None, now: datetime, result: Result
    ) -> tuple[dict[int, str], Outcome | None, bool]:
        """Load the events ``part`` in one transaction: (events that cannot be loaded, the error
        or ``None``, whether an event may have caused the error)."""
        encoded = prepared.encoded if plan is not None else {}
        basis = prepared.seen
        connected = False
        try:
            async with self.pool.connection() as conn:
                connected = True
                async with conn.transaction():
                    if plan is None:
                        basis = {schema: dict(tables) for schema, tables in self.known.items()}
                        made = await self._plan_or_refuse(prepared, part, basis)
                        if made is None:
                            return {}, _REFUSED_ROWS, True
                        plan, encoded = made
                    schemas = sorted({s for s, _ in plan.plans} | set(plan.discards))
                    await catalog.lock_schemas(conn, schemas)
                    fresh: Catalog = {}
                    for schema in schemas:
                        await catalog.ensure_schema(conn, schema)
                        fresh[schema] = await catalog.tables(conn, schema)
                    if _changed(plan, basis, fresh):  # planned again from what is there now
                        made = await self._plan_or_refuse(prepared, part, fresh)
                        if made is None:
                            return {}, _REFUSED_ROWS, True
                        plan, encoded = made
                    self.known.update(fresh)
                    await self._write(conn, plan, encoded, fresh, now)
        except (psycopg.Error, OSError) as exc:
            self.known.clear()  # the catalog may not be what it was
            failed = plan.failed if plan is not None else {}
            return failed, _coded(outcome_for(exc)), connected
        for (schema, table), table_plan in plan.plans.items():
            info = self.known.setdefault(schema, {}).get(table) or TableInfo()
            self.known[schema][table] = TableInfo(
                dict(table_plan.columns), info.slots + len(table_plan.add), info.foreign.difference(table_plan.widen)
            )
        result.discards.extend((i, schema, d) for schema, found in plan.discards.items() for i, d in found)
        return plan.failed, None, True

    async def _plan_or_refuse(
        self, prepared: Prepared, part: list[int], known: Catalog
    ) -> tuple[LoadPlan, dict[Key, Encoded]] | None:
        """A plan with its rows encoded, or ``None`` when the rows cannot be written at all (not UTF-8)."""

        def plan_and_encode() -> tuple[LoadPlan, dict[Key, Encoded]]:
            plan = self._plan(prepared, part, known)
            return plan, _encode_all(plan, known)

        try:
            return await asyncio.to_thread(plan_and_encode)
        except Exception:
            log.debug("the rows of %d event(s) cannot be written", len(part), exc_info=True)
            return None

    async def _write(
        self, conn: Conn, plan: LoadPlan, encoded: dict[Key, Encoded], known: Catalog, now: datetime
    ) -> None:
        for (schema, table), table_plan in plan.plans.items():
            info = known[schema].get(table)
            if info is None:
                await catalog.create_table(conn, schema, table, table_plan.columns)
            else:
                await catalog.add_columns(conn, schema, table, table_plan.add)
                await catalog.widen_columns(conn, schema, table, table_plan.widen)
            if not table_plan.num_rows:
                continue
            names = _present(table, table_plan)
            if table == USERS:  # through a staging table of eventyard's own types: binary fits
                columns = {name: table_plan.columns[name] for name in names}
                binary, users = encoded.get((schema, table)) or _encode(table, table_plan, None)
                await copy_csv(conn, schema, table, columns, users, upsert=True, order_by="received_at", binary=binary)
                continue
            found = encoded.get((schema, table))
            if found is None or (found[0] and not _binary_fits(info, names)):
                found = _encode(table, table_plan, info)
            binary, data = found
            if info is None or "id" not in table_plan.arrays:
                await copy_into(conn, schema, table, names, data, binary=binary)
                continue
            try:
                async with conn.transaction():  # a savepoint: a duplicate undoes only this COPY
                    await copy_into(conn, schema, table, names, data, binary=binary)
            except psycopg.errors.UniqueViolation:
                # A retry or a replay: leave out the rows the table has already.
                ids = table_plan.arrays["id"]
                stored = await existing_ids(conn, schema, table, ids.to_pylist())
                keep = pc.invert(pc.is_in(ids, pa.array(sorted(stored), pa.string())))
                binary, data = _encode(table, table_plan, info, keep=keep)
                await copy_into(conn, schema, table, names, data, binary=binary)
        for schema, kept in plan.discard_rows().items():
            await _write_discards(conn, schema, kept, known[schema], now)


_REFUSED_ROWS = Outcome.failed("load_refused: the rows cannot be written (text that is not valid UTF-8?)")


def _present(table: str, plan: ColumnarPlan) -> list[str]:
    """The columns a table's rows are copied with: those with a value in the batch (and ``id``)."""
    names = list(plan.arrays)
    if "id" in plan.columns and "id" not in names:
        names.insert(0, "id")
    return names


def _binary_fits(info: TableInfo | None, names: Sequence[str]) -> bool:
    """Whether binary COPY fits the table's columns ``names`` (each of the type eventyard creates)."""
    return info is None or info.foreign.isdisjoint(names)


def _encode_all(plan: LoadPlan, known: Catalog) -> dict[Key, Encoded]:
    return {
        (schema, table): _encode(table, p, None if table == USERS else known.get(schema, {}).get(table))
        for (schema, table), p in plan.plans.items()
    }


def _encode(table: str, plan: ColumnarPlan, info: TableInfo | None, keep: Any = None) -> Encoded:
    """The plan's rows for COPY into a table that is as ``info`` says (``None``: new, or a staging
    table): binary COPY when every column is of eventyard's own type, else CSV. Only the rows
    where ``keep`` is true, when given."""
    names = _present(table, plan)
    if _binary_fits(info, names):
        columns = [
            plan.arrays[c] if c in plan.arrays else pa.nulls(plan.num_rows, ARROW_TYPES[plan.columns[c]]) for c in names
        ]
        if keep is not None:
            columns = [c.filter(keep) for c in columns]
        try:
            return True, binary_of(columns)
        except (pa.ArrowException, ValueError, TypeError):  # beyond the format's limits: CSV can say it
            log.debug("the rows of %s go as CSV", table, exc_info=True)
    return False, _csv(table, plan, keep)


def _csv(table: str, plan: ColumnarPlan, keep: Any = None) -> bytes:
    """The plan's rows as CSV (only those where ``keep`` is true, when given); timestamps as the
    ISO text they came as (PostgreSQL parses it in C; Arrow formats zoned timestamps slowly)."""
    rows = plan.arrow(_present(table, plan))
    for name, text in plan.timestamp_text.items():
        if name in rows.column_names:
            rows = rows.set_column(rows.column_names.index(name), name, text)
    if keep is not None:
        rows = rows.filter(keep)
    return csv_of(rows) if rows.num_rows else b""


def _changed(plan: LoadPlan, seen: Catalog, fresh: Catalog) -> bool:
    """Whether a table the plan writes is not as it was when the plan was made."""
    for schema, table in plan.plans:
        if seen.get(schema, {}).get(table) != fresh.get(schema, {}).get(table):
            return True
    return any((DISCARDS_TABLE in seen.get(s, {})) != (DISCARDS_TABLE in fresh.get(s, {})) for s in plan.discards)


def _coded(outcome: Outcome) -> Outcome:
    """A reason code in front of the classified error: ``warehouse_unavailable`` or ``load_refused``."""
    code = "warehouse_unavailable" if outcome.kind == "retry" else "load_refused"
    return Outcome(outcome.kind, f"{code}: {outcome.error}", outcome.retry_after, outcome.status)


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
    elif anonymous and "anonymous_id" in info.columns:
        where, params = sql.SQL("anonymous_id = ANY(%s)"), [anonymous]
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
