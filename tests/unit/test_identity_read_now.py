"""``SQLiteIdentityStore.read_now``: the Profile API's short reads run on the calling thread and
never wait, neither for the writer (its Python lock, SQLite's write lock) nor for a worker thread.

"Never waits" is shown without clocks: the coroutine is stepped once by hand and must finish in
that one step (a coroutine that waited for a thread or a lock would suspend instead).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from eventyard.state import identity_sqlite
from eventyard.state.identity_base import GraphTx, IdentifierRow, ProfileRow
from eventyard.state.identity_sqlite import SQLiteIdentityStore

T = TypeVar("T")
WS = "ws_test"


def finished_in_one_step(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` for one step; fail if it suspended (it waited for something)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("read_now suspended: it waited for a worker thread or a lock")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteIdentityStore]:
    s = SQLiteIdentityStore(tmp_path / "state.sqlite3")
    await s.start()

    def seed(tx: GraphTx) -> None:
        tx.insert_profiles([ProfileRow("p1", WS, "users", 1.0, 1.0, traits={"plan": ["free", 1.0, "src_1", "m1"]})])
        tx.upsert_identifiers([IdentifierRow(WS, "users", "user_id:u1", "p1", 1.0, "m1", "src_1", "p1", 1.0)])

    await s.transact(seed)
    try:
        yield s
    finally:
        await s.close()


def plan_of(tx: GraphTx) -> str:
    pid = tx.lookup(WS, "users", ["user_id:u1"])["user_id:u1"]
    return str(tx.load_profiles([pid], traits=True)[pid].traits["plan"][0])


async def test_a_read_does_not_wait_for_a_writer_holding_its_locks(store: SQLiteIdentityStore) -> None:
    # The writer runs on the loop's only worker thread and stops inside its transaction: it
    # holds the store's Python write lock and SQLite's write lock (BEGIN IMMEDIATE, a row
    # changed), and the worker pool has no free thread left.
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(pool)
    inside, release = threading.Event(), threading.Event()

    def slow_write(tx: GraphTx) -> None:
        try:
            tx.save_traits([("p1", {"plan": ["pro", 2.0, "src_1", "m2"]}, 2.0)])
        finally:
            inside.set()  # (also when the write failed: the test then fails instead of hanging)
        release.wait()

    writing = asyncio.ensure_future(store.transact(slow_write))
    await asyncio.sleep(0)  # the writer is handed to the pool's thread
    try:
        inside.wait()  # (blocks the loop until the writer is inside its transaction)
        assert not writing.done()
        assert store._write_lock.locked()
        assert finished_in_one_step(store.read_now(plan_of)) == "free"  # the last committed state
        assert store.read_now_deferred == 0
    finally:
        release.set()
    await writing
    assert finished_in_one_step(store.read_now(plan_of)) == "pro"


async def test_a_read_whose_connection_is_in_use_goes_to_a_worker_thread(store: SQLiteIdentityStore) -> None:
    with store._now_lock:  # another caller (another thread's loop) reads through it right now
        assert await store.read_now(plan_of) == "free"
    assert store.read_now_deferred == 1


async def test_a_read_sqlite_calls_busy_goes_to_a_worker_thread(
    store: SQLiteIdentityStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def busy(fn: Any) -> Any:
        calls.append("here")
        raise identity_sqlite._Busy()

    monkeypatch.setattr(store, "_read_here", busy)
    assert await store.read_now(plan_of) == "free"
    assert calls == ["here"]
    assert store.read_now_deferred == 1


async def test_the_read_connection_has_no_busy_wait_and_cannot_write(store: SQLiteIdentityStore) -> None:
    assert finished_in_one_step(store.read_now(plan_of)) == "free"
    conn = store._now
    assert conn is not None
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 0
    assert conn.execute("PRAGMA query_only").fetchone()[0] == 1


async def test_errors_of_the_read_itself_reach_the_caller(store: SQLiteIdentityStore) -> None:
    def broken(tx: GraphTx) -> None:
        raise LookupError("not there")

    with pytest.raises(LookupError):
        finished_in_one_step(store.read_now(broken))
    assert finished_in_one_step(store.read_now(plan_of)) == "free"  # the connection is usable again
