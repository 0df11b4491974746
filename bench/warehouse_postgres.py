"""PostgreSQL warehouse load rate: eventyard's ``deliver`` path against a plain COPY of the same rows.

    .venv/bin/python bench/warehouse_postgres.py                  # 1,000,000 events
    .venv/bin/python bench/warehouse_postgres.py --events 200000

Events are ``ingest.EventGenerator``'s (seeded: track 60 %, page 25 %, identify 15 %) with
``receivedAt`` set and messageIds ``bench-<n>`` (``warehouse_common.batches``). They are
generated round by round (``--round`` batches at a time) and not timed.

Each round is loaded twice, one after the other, so that both meet the same background load
(the machine is shared, and PostgreSQL runs on it too):

* **eventyard**: ``PostgresDestination.deliver`` in batches of ``--batch`` with the
  destination's default concurrency (3 loads in flight, as the delivery worker runs it;
  ``--concurrency``) and default settings (batches prepared in 2 worker processes): flattening,
  schema planning, binary COPY data built by Arrow, ``COPY`` straight into each table inside a
  savepoint (duplicates looked up only when the table refuses one), the ``users`` upsert and
  discards, one transaction per batch.
* **plain**: the same rows, flattened and coerced by ``eventyard.warehouse`` outside the timer
  into Python tuples, with one binary ``COPY`` per table and batch (psycopg ``write_row``), two
  connections in parallel, into tables created ``LIKE`` eventyard's (same columns, same primary
  keys), autocommit. ``users`` gets each user's first row (COPY cannot upsert).

It prints rows/s (rows in the tables; events/s too for eventyard) and the ratio eventyard /
plain. Only 127.0.0.1 is contacted, in a throwaway database that is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import psycopg
from psycopg import sql

from eventyard.destinations.base import DestinationContext, Outcome
from eventyard.destinations.postgres import PostgresDestination, PostgresSettings
from eventyard.destinations.postgres.types import SQL_TYPES, sendable, type_of_column
from eventyard.testing.events import delivery
from eventyard.warehouse import POSTGRES, ColumnType
from warehouse_common import DEFAULT_SEED, SOURCE, batches, machine_load, plain_columns

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
Tables = dict[str, dict[str, ColumnType]]


@contextlib.contextmanager
def database() -> Iterator[str]:
    name = f"eventyard_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _check(outcomes: list[Outcome]) -> None:
    bad = [o for o in outcomes if o.kind != "delivered"]
    assert not bad, bad[0]


class Eventyard:
    def __init__(self, dsn: str, batch_size: int, concurrency: int | None = None) -> None:
        settings = PostgresSettings(dsn=dsn, batch_size=batch_size, schemas={SOURCE: SOURCE})
        if concurrency is not None:
            settings = msgspec.structs.replace(settings, concurrency=concurrency)
        self.dest = PostgresDestination(settings, DestinationContext("dst-bench", "bench", Path("/tmp")))
        self.concurrency = settings.concurrency
        self.seconds = 0.0
        self.events = 0

    async def load(self, work: list[list[Any]]) -> None:
        """Like the delivery worker: up to ``concurrency`` loads in flight."""
        pending: list[asyncio.Task[list[Outcome]]] = []
        started = time.perf_counter()
        for items in work:
            if len(pending) >= self.concurrency:
                _check(await pending.pop(0))
            pending.append(asyncio.create_task(self.dest.deliver(items)))
        for task in pending:
            _check(await task)
        self.seconds += time.perf_counter() - started
        self.events += sum(len(items) for items in work)


class Plain:
    """Tables ``LIKE`` eventyard's in the schema ``plain``, loaded with binary COPY on two connections."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conns: list[psycopg.AsyncConnection[Any]] = []
        self.tables: Tables = {}
        self.seconds = 0.0
        self.rows = 0

    async def start(self) -> None:
        self.conns = [await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) for _ in range(2)]
        await self.conns[0].execute("CREATE SCHEMA plain")

    async def catch_up(self) -> Tables:
        """Create or extend the plain tables to eventyard's columns (not timed); eventyard's tables."""
        conn = self.conns[0]
        cur = await conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name <> 'discards' ORDER BY table_name, ordinal_position",
            (SOURCE,),
        )
        tables: Tables = {}
        for table, column, kind in await cur.fetchall():
            tables.setdefault(str(table), {})[str(column)] = type_of_column(str(kind))
        for table, columns in tables.items():
            have = self.tables.get(table)
            if have is None:
                await conn.execute(
                    sql.SQL("CREATE TABLE plain.{} (LIKE {}.{} INCLUDING ALL)").format(
                        sql.Identifier(table), sql.Identifier(SOURCE), sql.Identifier(table)
                    )
                )
            else:
                for column, kind in columns.items():
                    if column not in have:
                        await conn.execute(
                            sql.SQL("ALTER TABLE plain.{} ADD COLUMN {} {}").format(
                                sql.Identifier(table), sql.Identifier(column), sql.SQL(SQL_TYPES[kind])
                            )
                        )
            self.tables[table] = dict(columns)
        return tables

    async def load(self, prepared: list[dict[str, list[tuple[Any, ...]]]]) -> None:
        started = time.perf_counter()
        for batch in prepared:
            tables = list(batch)
            await asyncio.gather(*(self._copy(c, tables[i::2], batch) for i, c in enumerate(self.conns)))
        self.seconds += time.perf_counter() - started
        self.rows += sum(len(rows) for batch in prepared for rows in batch.values())

    async def _copy(self, conn: psycopg.AsyncConnection[Any], tables: list[str], batch: dict[str, Any]) -> None:
        for table in tables:
            names = list(self.tables[table])
            stmt = sql.SQL("COPY plain.{} ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
            )
            async with conn.cursor() as cur, cur.copy(stmt) as copy:
                copy.set_types([SQL_TYPES[self.tables[table][n]] for n in names])
                for row in batch[table]:
                    await copy.write_row(row)

    async def close(self) -> None:
        for conn in self.conns:
            await conn.close()


def plain_rows(batch: list[dict[str, Any]], tables: Tables, seen_users: set[str]) -> dict[str, list[tuple[Any, ...]]]:
    """The batch's rows as tuples in each table's column order (NULs removed as eventyard does)."""
    columns = plain_columns(batch, tables, seen_users, POSTGRES, naive=False)
    return {
        table: [tuple(sendable(v) for v in row) for row in zip(*values.values(), strict=True)]
        for table, values in columns.items()
    }


async def count_rows(dsn: str, schema: str) -> int:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name <> 'discards'",
            (schema,),
        )
        total = 0
        for (table,) in await cur.fetchall():
            c = await conn.execute(
                sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(str(table)))
            )
            row = await c.fetchone()
            total += int(row[0]) if row else 0
        return total


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--round", type=int, default=10, help="batches per round (each side loads a round in turn)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--concurrency", type=int, help="loads in flight (default: the destination's default)")
    args = parser.parse_args()
    print(f"before the run: {machine_load()}", flush=True)
    seen_users: set[str] = set()
    generated = batches(args.events, args.batch, args.seed)
    with database() as dsn:
        eventyard = Eventyard(dsn, args.batch, args.concurrency)
        plain = Plain(dsn)
        await plain.start()
        try:
            while chunk := list(itertools.islice(generated, args.round)):
                work = [[delivery(e, source_id=SOURCE) for e in batch] for batch in chunk]  # not timed
                await eventyard.load(work)
                tables = await plain.catch_up()
                prepared = [plain_rows(batch, tables, seen_users) for batch in chunk]  # not timed
                await plain.load(prepared)
                print(
                    f"  {eventyard.events:,} events: eventyard {eventyard.seconds:.1f} s, plain {plain.seconds:.1f} s",
                    flush=True,
                )
        finally:
            await eventyard.dest.close()
            await plain.close()
        rows = await count_rows(dsn, SOURCE)
        stored = await count_rows(dsn, "plain")
    rate = rows / eventyard.seconds
    plain_rate = plain.rows / plain.seconds
    print(
        f"eventyard deliver: {eventyard.events:,} events -> {rows:,} rows in {eventyard.seconds:.1f} s: "
        f"{eventyard.events / eventyard.seconds:,.0f} events/s, {rate:,.0f} rows/s"
    )
    print(
        f"plain COPY: {plain.rows:,} rows ({stored:,} in the tables) in {plain.seconds:.1f} s: {plain_rate:,.0f} rows/s"
    )
    ratio = rate / plain_rate
    print(f"ratio eventyard / plain (rows/s): {ratio:.2f}  (target >= 0.50: {'met' if ratio >= 0.5 else 'not met'})")
    print(f"after the run: {machine_load()}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
