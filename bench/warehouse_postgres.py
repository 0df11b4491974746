"""PostgreSQL warehouse load rate: eventyard's ``deliver`` path against a plain COPY of the same rows.

    .venv/bin/python bench/warehouse_postgres.py                 # 1,000,000 events
    .venv/bin/python bench/warehouse_postgres.py --events 200000 --max-seconds 300

Events are ``ingest.EventGenerator``'s (seeded: track 60 %, page 25 %, identify 15 %), with
``receivedAt`` set and messageIds ``bench-<n>``. Generating them is not timed.

* **eventyard**: ``PostgresDestination.deliver`` in batches of ``--batch`` with two loads in
  flight (the destination's default concurrency): flattening, schema planning, binary COPY into
  staging tables and ``INSERT ... ON CONFLICT`` in one transaction per batch.
* **plain**: the same rows (flattened and coerced by ``eventyard.warehouse`` outside the timer)
  with one binary ``COPY`` per table and batch, two connections in parallel, into tables created
  ``LIKE`` eventyard's (same columns, same primary keys), autocommit.

It prints rows/s (rows written, events for eventyard's rate too) and the ratio eventyard / plain.
A run stops generating new batches after ``--max-seconds`` per side. Only 127.0.0.1 is contacted,
in a throwaway database that is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from eventyard.destinations.base import DestinationContext
from eventyard.destinations.postgres import PostgresDestination, PostgresSettings
from eventyard.destinations.postgres.types import SQL_TYPES, sendable, type_of_column
from eventyard.testing.events import delivery
from eventyard.warehouse import POSTGRES, flatten_event, plan_table
from ingest import EventGenerator

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SOURCE = "bench"


def batches(count: int, size: int, seed: int) -> Iterator[list[dict[str, Any]]]:
    gen = EventGenerator(seed)
    n = 0
    while n < count:
        out = []
        for _ in range(min(size, count - n)):
            event = gen.event()
            event["messageId"] = f"bench-{n}"
            event["receivedAt"] = event["timestamp"]
            event.setdefault("originalTimestamp", event["timestamp"])
            out.append(event)
            n += 1
        yield out


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


async def run_eventyard(
    dsn: str, args: argparse.Namespace, all_batches: list[list[dict[str, Any]]]
) -> tuple[int, float]:
    settings = PostgresSettings(dsn=dsn, batch_size=args.batch, concurrency=2)
    dest = PostgresDestination(settings, DestinationContext("dst-bench", "bench", Path("/tmp")))
    await dest.start()
    loaded = 0
    started = time.perf_counter()
    pending: list[asyncio.Task[list[Any]]] = []
    try:
        for batch in all_batches:
            items = [delivery(e, source_id=SOURCE) for e in batch]
            if len(pending) >= 2:
                outcomes = await pending.pop(0)
                assert all(o.kind == "delivered" for o in outcomes), outcomes[:1]
            pending.append(asyncio.create_task(dest.deliver(items)))
            loaded += len(items)
            if time.perf_counter() - started > args.max_seconds:
                break
        for task in pending:
            outcomes = await task
            assert all(o.kind == "delivered" for o in outcomes), outcomes[:1]
    finally:
        await dest.close()
    return loaded, time.perf_counter() - started


def plain_rows(
    batch: list[dict[str, Any]], columns: dict[str, dict[str, Any]], seen_users: set[str]
) -> dict[str, list[tuple[Any, ...]]]:
    """The batch's rows per table, coerced exactly as eventyard coerces them, in the table's column order."""
    now = datetime.now(UTC)
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in batch:
        for row in flatten_event(event, loaded_at=now, dialect=POSTGRES).rows:
            grouped[row.table].append(row.row)
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table, rows in grouped.items():
        types = columns[table]
        plan = plan_table(table, types, rows, POSTGRES)
        if table == "users":  # COPY cannot upsert: each user's first row only
            fresh = {r["id"]: r for r in plan.rows if r["id"] not in seen_users}
            seen_users.update(fresh)
            plan.rows = list(fresh.values())
        out[table] = [tuple(sendable(r.get(c)) for c in types) for r in plan.rows]
    return out


async def run_plain(dsn: str, all_batches: list[list[dict[str, Any]]], loaded_events: int) -> tuple[int, float]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name <> 'discards' ORDER BY table_name, ordinal_position",
            (SOURCE,),
        )
        columns: dict[str, dict[str, Any]] = defaultdict(dict)
        for table, column, kind in await cur.fetchall():
            columns[str(table)][str(column)] = type_of_column(str(kind))
        await conn.execute("CREATE SCHEMA plain")
        for table in columns:
            await conn.execute(
                sql.SQL("CREATE TABLE plain.{} (LIKE {}.{} INCLUDING ALL)").format(
                    sql.Identifier(table), sql.Identifier(SOURCE), sql.Identifier(table)
                )
            )
    conns = [await psycopg.AsyncConnection.connect(dsn, autocommit=True) for _ in range(2)]
    rows_written = 0
    elapsed = 0.0
    seen_users: set[str] = set()
    taken = 0
    try:
        for batch in all_batches:
            if taken >= loaded_events:
                break
            taken += len(batch)
            prepared = plain_rows(batch, columns, seen_users)  # not timed
            tables = list(prepared)
            t0 = time.perf_counter()
            await asyncio.gather(*(_copy(c, tables[i::2], prepared, columns) for i, c in enumerate(conns)))
            elapsed += time.perf_counter() - t0
            rows_written += sum(len(r) for r in prepared.values())
    finally:
        for c in conns:
            await c.close()
    return rows_written, elapsed


async def _copy(conn: psycopg.AsyncConnection[Any], tables: list[str], prepared: dict[str, Any], columns: Any) -> None:
    for table in tables:
        names = list(columns[table])
        stmt = sql.SQL("COPY plain.{} ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
        )
        async with conn.cursor() as cur, cur.copy(stmt) as copy:
            copy.set_types([SQL_TYPES[columns[table][n]] for n in names])
            for row in prepared[table]:
                await copy.write_row(row)


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    all_batches = list(batches(args.events, args.batch, args.seed))
    print(f"generated {args.events:,} events in {time.perf_counter() - t0:.1f} s (not timed)")
    with database() as dsn:
        events, seconds = await run_eventyard(dsn, args, all_batches)
        rows = await count_rows(dsn, SOURCE)
        print(
            f"eventyard: {events:,} events -> {rows:,} rows in {seconds:.1f} s: "
            f"{events / seconds:,.0f} events/s, {rows / seconds:,.0f} rows/s"
        )
        plain_written, plain_seconds = await run_plain(dsn, all_batches, events)
        plain = await count_rows(dsn, "plain")
        print(
            f"plain COPY: {plain_written:,} rows ({plain:,} in the tables) in {plain_seconds:.1f} s: "
            f"{plain_written / plain_seconds:,.0f} rows/s"
        )
        ratio = (rows / seconds) / (plain_written / plain_seconds)
        print(
            f"ratio eventyard / plain (rows/s): {ratio:.2f}  (target >= 0.50: {'met' if ratio >= 0.5 else 'not met'})"
        )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
