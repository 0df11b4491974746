"""DuckDB warehouse load rate: eventyard's ``deliver`` path against a plain DuckDB append of the same rows.

    .venv/bin/python bench/warehouse_duckdb.py                    # 1,000,000 events
    .venv/bin/python bench/warehouse_duckdb.py --events 200000

Events are ``ingest.EventGenerator``'s (seeded: track 60 %, page 25 %, identify 15 %) with
``receivedAt`` set and messageIds ``bench-<n>`` (``warehouse_common.batches``). They are
generated round by round (``--round`` batches at a time) and not timed.

Each round is loaded three times, one after the other, so that all three meet the same
background load (the machine is shared):

* **eventyard**: ``DuckDBDestination.deliver`` in batches of ``--batch`` with three loads in flight
  (the destination's default concurrency, as the delivery worker runs it; ``--concurrency``;
  batches prepared in 2 worker processes, the default),
  into its own file: flattening, schema planning, Arrow columns, ``INSERT ... WHERE NOT EXISTS``
  (idempotence), the ``users`` upsert and discards, one transaction per batch.
* **plain appender** and **plain arrow**: the same rows, flattened and coerced by
  ``eventyard.warehouse`` outside the timer into Python column lists (timestamps as naive UTC
  datetimes), appended batch by batch and table by table into a file of their own whose tables
  have eventyard's columns (created and altered outside the timer): with DuckDB's ``Appender``
  (``append_rows`` + ``flush``), and with Arrow arrays built from the lists and inserted by
  ``INSERT INTO t SELECT * FROM arrow``. No idempotence, no upsert (``users`` gets each user's
  first row), autocommit. The faster of the two is the reference.

It prints rows/s (rows in the tables; events/s too for eventyard) and the ratio eventyard /
plain. Files live in a temporary directory that is removed at the end (``--workdir`` keeps them).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from eventyard.destinations.base import DestinationContext, Outcome
from eventyard.destinations.duckdb import DuckDBDestination, DuckDBSettings
from eventyard.destinations.duckdb.sql import add_column, create_table, qualified
from eventyard.testing.events import delivery
from eventyard.warehouse import DUCKDB, ColumnType
from warehouse_common import DEFAULT_SEED, SOURCE, batches, machine_load, plain_columns

ARROW = {
    ColumnType.BOOLEAN: pa.bool_(),
    ColumnType.BIGINT: pa.int64(),
    ColumnType.DOUBLE: pa.float64(),
    ColumnType.TIMESTAMP: pa.timestamp("us"),
    ColumnType.TEXT: pa.string(),
}
Columns = dict[str, dict[str, list[Any]]]
Tables = dict[str, dict[str, ColumnType]]


class Eventyard:
    def __init__(self, path: Path, batch_size: int, concurrency: int) -> None:
        settings = DuckDBSettings(path=str(path), batch_size=batch_size, schemas={SOURCE: SOURCE})
        self.dest = DuckDBDestination(settings, DestinationContext("dst-bench", "bench", path.parent))
        self.concurrency = concurrency
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

    def tables(self) -> Tables:
        store = self.dest._store
        assert store is not None
        return {t: dict(cols) for (s, t), cols in store.tables.items() if s == SOURCE and t != "discards"}

    async def rows(self) -> int:
        total = 0
        for table in self.tables():
            result = await self.dest.query(f"SELECT count(*) FROM {qualified(SOURCE, table)}", 1)
            total += int(result.rows[0][0])
        return total


def _check(outcomes: list[Outcome]) -> None:
    bad = [o for o in outcomes if o.kind != "delivered"]
    assert not bad, bad[0]


class Plain:
    """A plain DuckDB file with eventyard's tables, appended to without anything else."""

    def __init__(
        self, path: Path, label: str, append: Callable[[Any, str, dict[str, list[Any]], Tables], None]
    ) -> None:
        self.con = duckdb.connect(str(path), config={"enable_external_access": False})
        self.con.execute("CREATE SCHEMA plain")
        self.label = label
        self.append = append
        self.tables: Tables = {}
        self.seconds = 0.0
        self.rows = 0

    def catch_up(self, tables: Tables) -> None:
        """Create or extend tables to eventyard's columns (not timed)."""
        for table, columns in tables.items():
            have = self.tables.get(table)
            if have is None:
                self.con.execute(create_table("plain", table, columns))
            else:
                for column, kind in columns.items():
                    if column not in have:
                        self.con.execute(add_column("plain", table, column, kind))
            self.tables[table] = dict(columns)

    def load(self, prepared: list[Columns]) -> None:
        started = time.perf_counter()
        for batch in prepared:
            for table, columns in batch.items():
                self.append(self.con, table, columns, self.tables)
        self.seconds += time.perf_counter() - started
        self.rows += sum(len(next(iter(c.values()))) for batch in prepared for c in batch.values())

    def stored(self) -> int:
        total = 0
        for table in self.tables:
            found = self.con.execute(f"SELECT count(*) FROM {qualified('plain', table)}").fetchone()
            total += int(found[0]) if found else 0
        return total


def append_rows(con: Any, table: str, columns: dict[str, list[Any]], tables: Tables) -> None:
    appender = con.appender(f"plain.{table}", columns=list(columns))
    appender.append_rows(list(zip(*columns.values(), strict=True)))
    appender.flush()


def append_arrow(con: Any, table: str, columns: dict[str, list[Any]], tables: Tables) -> None:
    arrays = [pa.array(values, ARROW[tables[table][name]]) for name, values in columns.items()]
    con.register("plain_stage", pa.Table.from_arrays(arrays, names=list(columns)))
    try:
        names = ", ".join(f'"{c}"' for c in columns)
        con.execute(f"INSERT INTO {qualified('plain', table)} ({names}) SELECT * FROM plain_stage")
    finally:
        con.unregister("plain_stage")


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--round", type=int, default=10, help="batches per round (each side loads a round in turn)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--concurrency", type=int, default=DuckDBDestination.capabilities.concurrency, help="loads in flight"
    )
    parser.add_argument("--workdir", type=Path, help="keep the DuckDB files here instead of a temporary directory")
    args = parser.parse_args()
    print(f"before the run: {machine_load()}", flush=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="eventyard-bench-duckdb-"))
    workdir.mkdir(parents=True, exist_ok=True)
    eventyard = Eventyard(workdir / "eventyard.duckdb", args.batch, args.concurrency)
    plains = [
        Plain(workdir / "plain-appender.duckdb", "appender", append_rows),
        Plain(workdir / "plain-arrow.duckdb", "arrow", append_arrow),
    ]
    seen_users: set[str] = set()
    generated = batches(args.events, args.batch, args.seed)
    try:
        await eventyard.dest.start()
        while chunk := list(itertools.islice(generated, args.round)):
            work = [[delivery(e, source_id=SOURCE) for e in batch] for batch in chunk]  # not timed
            await eventyard.load(work)
            tables = eventyard.tables()
            prepared = [plain_columns(batch, tables, seen_users, DUCKDB) for batch in chunk]  # not timed
            for plain in plains:
                plain.catch_up(tables)
                plain.load(prepared)
            print(
                f"  {eventyard.events:,} events: eventyard {eventyard.seconds:.1f} s, "
                + ", ".join(f"{p.label} {p.seconds:.1f} s" for p in plains),
                flush=True,
            )
        rows = await eventyard.rows()
        rate = rows / eventyard.seconds
        print(
            f"eventyard deliver: {eventyard.events:,} events -> {rows:,} rows in {eventyard.seconds:.1f} s: "
            f"{eventyard.events / eventyard.seconds:,.0f} events/s, {rate:,.0f} rows/s"
        )
        for plain in plains:
            print(
                f"plain DuckDB {plain.label}: {plain.rows:,} rows ({plain.stored():,} in the tables) in "
                f"{plain.seconds:.1f} s: {plain.rows / plain.seconds:,.0f} rows/s"
            )
        best = max(plains, key=lambda p: p.rows / p.seconds)
        ratio = rate / (best.rows / best.seconds)
        verdict = "met" if ratio >= 0.5 else "not met"
        print(f"ratio eventyard / plain {best.label} (rows/s): {ratio:.2f}  (target >= 0.50: {verdict})")
        print(f"after the run: {machine_load()}")
    finally:
        await eventyard.dest.close()
        for plain in plains:
            plain.con.close()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
