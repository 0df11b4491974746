"""Warehouse batches prepared in worker processes (``eventyard.warehouse.workers``).

The pool itself (results, errors, a process that dies, closing), and both warehouse
destinations with every batch sent to the processes: the same rows as preparing in a thread, a
process killed during a batch makes that batch a retry (nothing written, nothing lost, nothing
twice after the retry), and closing leaves no process behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_warehouse_support import fresh_database, new_prefix, postgres_is_up

from eventyard.destinations.base import DeliveryEvent, DestinationContext, Outcome
from eventyard.destinations.duckdb import DuckDBDestination, DuckDBSettings
from eventyard.destinations.postgres import PostgresDestination, PostgresSettings
from eventyard.testing import events
from eventyard.testing.services import require_service
from eventyard.warehouse import workers
from eventyard.warehouse.workers import PrepareError, PrepareFailed, PreparePool

SOURCE = "web"


@pytest.fixture(autouse=True)
def every_batch_to_the_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "MIN_EVENTS", 1)


def processes_of(pool: PreparePool) -> list[Any]:
    return [w.proc for w in [*pool._idle, *pool._busy] if w.proc is not None]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# -- the pool ----------------------------------------------------------------------------------


async def test_pool_runs_functions_and_reports_their_errors() -> None:
    pool = PreparePool(2)
    try:
        assert await pool.run("builtins:len", [{"a": 1}, {"b": [1, 2]}]) == 2
        assert await pool.run("builtins:divmod", 7, 2) == (3, 1)
        # values msgpack cannot carry exactly go as pickle
        big = [{"n": 2**70}, {"t": "\ud800"}]
        assert await pool.run("builtins:list", big) == big
        with pytest.raises(PrepareError, match="TypeError"):
            await pool.run("builtins:len", 5)
        assert pool.started == 1  # the process lived through the error
    finally:
        await pool.close()


async def test_a_process_that_dies_fails_its_request_and_is_replaced() -> None:
    pool = PreparePool(1)
    try:
        assert await pool.run("builtins:len", [1]) == 1
        [proc] = processes_of(pool)
        # dies in the middle of a request (os.kill(<its own pid>, SIGKILL))
        with pytest.raises(PrepareFailed, match="killed by SIGKILL"):
            await pool.run("os:kill", proc.pid, signal.SIGKILL)
        assert gone(proc.pid)
        with pytest.raises(PrepareFailed, match="exited with code 3"):
            await pool.run("os:_exit", 3)
        assert await pool.run("builtins:len", [1, 2, 3]) == 3
        assert pool.started == 3
        # killed while idle: noticed when it is next used
        [proc] = processes_of(pool)
        proc.kill()
        proc.wait()
        assert await pool.run("builtins:len", [1]) == 1
        assert pool.started == 4
    finally:
        await pool.close()


async def test_close_stops_every_process() -> None:
    pool = PreparePool(2)
    await asyncio.gather(pool.run("time:sleep", 0.2), pool.run("time:sleep", 0.2))
    pids = [p.pid for p in processes_of(pool)]
    assert len(pids) == 2
    await pool.close()
    assert all(gone(pid) for pid in pids)
    assert processes_of(pool) == []
    assert not pool.wanted(10_000)
    with pytest.raises(PrepareFailed):
        await pool.run("builtins:len", [1])


# -- the destinations ----------------------------------------------------------------------------


def batch(prefix: str, count: int = 120) -> list[DeliveryEvent]:
    items = events.sample(count, prefix=prefix)
    # values that change column types, and one that fits nowhere (a discard)
    items[0].setdefault("properties", {})["amount"] = 1
    items[6].setdefault("properties", {})["amount"] = 2.5
    items[12].setdefault("properties", {})["amount"] = "many"
    items[18].setdefault("properties", {})["when"] = "2026-11-29T10:00:00Z"
    items[24].setdefault("properties", {})["when"] = "not a time"
    return [events.delivery(e, source_id=SOURCE) for e in items]


def kill_during_exchange(pool: PreparePool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next batch's process is killed as the batch is sent to it."""
    original = workers._Worker.exchange

    def exchange(self: workers._Worker, function: str, evts: Any, args: tuple[Any, ...]) -> Any:
        monkeypatch.setattr(workers._Worker, "exchange", original)
        assert self.proc is not None
        self.proc.kill()
        return original(self, function, evts, args)

    monkeypatch.setattr(workers._Worker, "exchange", exchange)


def kinds(outcomes: list[Outcome]) -> set[str]:
    return {o.kind for o in outcomes}


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    require_service(postgres_is_up(), "PostgreSQL on 127.0.0.1:5432")
    with fresh_database() as url:
        yield url


async def pg_tables(dsn: str, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of ``schema`` but its load times, sorted."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with await psycopg.AsyncConnection.connect(dsn, options="-c TimeZone=UTC") as conn:
        cur = await conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))
        for (table,) in await cur.fetchall():
            cur = await conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                "AND column_name <> 'uuid_ts' ORDER BY column_name",
                (schema, table),
            )
            names = [str(r[0]) for r in await cur.fetchall()]
            select = ", ".join(f'"{n}"::text' for n in names)
            cur = await conn.execute(f'SELECT {select} FROM "{schema}"."{table}"')
            out[str(table)] = sorted(await cur.fetchall(), key=repr)
    return out


@pytest.fixture
async def pg_pair(dsn: str, tmp_path: Path) -> AsyncIterator[tuple[PostgresDestination, PostgresDestination]]:
    made = []
    for processes in (2, 0):
        prefix = new_prefix()
        settings = PostgresSettings(dsn=dsn, schema_prefix=prefix, prepare_processes=processes)
        made.append(PostgresDestination(settings, DestinationContext(f"dst-{processes}", "warehouse", tmp_path)))
    try:
        yield made[0], made[1]
    finally:
        for destination in made:
            await destination.close()


async def test_postgres_rows_are_the_same_as_prepared_in_a_thread(
    pg_pair: tuple[PostgresDestination, PostgresDestination], dsn: str
) -> None:
    in_processes, in_thread = pg_pair
    for i in range(3):  # new tables, then added and widened columns, then a replay
        items = batch("pg", 120) if i == 2 else batch(f"pg{i}", 120)
        a, b = await in_processes.deliver(items), await in_thread.deliver(items)
        assert a == b and kinds(a) == {"delivered"}
    loader = in_processes._loader
    assert loader is not None and loader.workers.started >= 1
    schemas = [d.settings.schema_prefix + SOURCE for d in pg_pair]
    found = [await pg_tables(dsn, schema) for schema in schemas]
    assert found[0] == found[1]
    assert found[0]["discards"]  # the value that fit nowhere


async def test_postgres_batch_whose_process_dies_is_retried_not_lost_or_doubled(
    pg_pair: tuple[PostgresDestination, PostgresDestination], dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    destination, _ = pg_pair
    items = batch("crash")
    assert kinds(await destination.deliver(items[:10])) == {"delivered"}  # the pool is running
    loader = destination._loader
    assert loader is not None
    schema = destination.settings.schema_prefix + SOURCE
    before = await pg_tables(dsn, schema)
    kill_during_exchange(loader.workers, monkeypatch)
    outcomes = await destination.deliver(items)
    assert kinds(outcomes) == {"retry"} and len(outcomes) == len(items)
    assert all(o.error.startswith("prepare_failed: the process preparing the batch") for o in outcomes)
    assert await pg_tables(dsn, schema) == before
    assert kinds(await destination.deliver(items)) == {"delivered"}  # the retry, in a new process
    assert kinds(await destination.deliver(items)) == {"delivered"}  # and once more: nothing twice
    after = await pg_tables(dsn, schema)
    assert len(after["tracks"]) == sum(1 for e in items if e.event["type"] == "track")
    pids = [p.pid for p in processes_of(loader.workers)]
    await destination.close()
    assert pids and all(gone(pid) for pid in pids)


# -- DuckDB --------------------------------------------------------------------------------------


@pytest.fixture
async def duck_pair(tmp_path: Path) -> AsyncIterator[tuple[DuckDBDestination, DuckDBDestination]]:
    made = []
    for processes in (2, 0):
        context = DestinationContext(f"dst-{processes}", "warehouse", tmp_path, clock=lambda: 1_800_000_000.0)
        settings = DuckDBSettings(path=str(tmp_path / f"w{processes}.duckdb"), prepare_processes=processes)
        made.append(DuckDBDestination(settings, context))
    try:
        yield made[0], made[1]
    finally:
        for destination in made:
            await destination.close()


async def duck_rows(destination: DuckDBDestination) -> dict[str, list[list[Any]]]:
    out = {}
    for table in await destination.describe():
        names = sorted(c for c in table.columns if c != "uuid_ts")
        select = ", ".join(f'CAST("{n}" AS VARCHAR)' for n in names)
        result = await destination.query(f'SELECT {select} FROM "{table.schema}"."{table.table}"', 100_000)
        out[f"{table.schema}.{table.table}"] = sorted(result.rows, key=repr)
    return out


async def test_duckdb_rows_are_the_same_as_prepared_in_a_thread(
    duck_pair: tuple[DuckDBDestination, DuckDBDestination],
) -> None:
    in_processes, in_thread = duck_pair
    for i in range(3):
        items = batch("dk", 120) if i == 2 else batch(f"dk{i}", 120)
        a, b = await in_processes.deliver(items), await in_thread.deliver(items)
        assert a == b and kinds(a) == {"delivered"}
    assert in_processes.workers.started >= 1 and in_thread.workers.started == 0
    found = [await duck_rows(d) for d in duck_pair]
    assert found[0] == found[1]
    assert any(table.endswith(".discards") and rows for table, rows in found[0].items())


async def test_duckdb_batch_whose_process_dies_is_retried_not_lost_or_doubled(
    duck_pair: tuple[DuckDBDestination, DuckDBDestination], monkeypatch: pytest.MonkeyPatch
) -> None:
    destination, _ = duck_pair
    items = batch("crash")
    assert kinds(await destination.deliver(items[:10])) == {"delivered"}
    before = await duck_rows(destination)
    kill_during_exchange(destination.workers, monkeypatch)
    outcomes = await destination.deliver(items)
    assert kinds(outcomes) == {"retry"} and len(outcomes) == len(items)
    assert all(o.error.startswith("prepare_failed: ") for o in outcomes)
    assert await duck_rows(destination) == before
    assert kinds(await destination.deliver(items)) == {"delivered"}
    assert kinds(await destination.deliver(items)) == {"delivered"}
    after = await duck_rows(destination)
    tracks = next(rows for table, rows in after.items() if table.endswith(".tracks"))
    assert len(tracks) == sum(1 for e in items if e.event["type"] == "track")
    pids = [p.pid for p in processes_of(destination.workers)]
    await destination.close()
    assert pids and all(gone(pid) for pid in pids)
