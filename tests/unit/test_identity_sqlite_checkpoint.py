"""The SQLite identity store checkpoints its WAL on a thread of its own, and looks a batch's
identifiers up as one JSON array (with the ``IN`` list for keys SQLite's JSON cannot carry)."""

from __future__ import annotations

import functools
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from eventyard.state import identity_sqlite
from eventyard.state.identity_base import GraphTx, IdentifierRow, ProfileRow
from eventyard.state.identity_sql import SqlGraphTx
from eventyard.state.identity_sqlite import SQLiteIdentityStore
from eventyard.testing.wait import eventually

WS = "ws_test"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteIdentityStore]:
    s = SQLiteIdentityStore(tmp_path / "state.sqlite3")
    await s.start()
    try:
        yield s
    finally:
        await s.close()


def add(tx: GraphTx, n: int, keys: list[str] | None = None) -> None:
    pid = f"prf_{n:04d}"
    tx.insert_profiles([ProfileRow(pid, WS, "users", 1.0, 1.0)])
    tx.upsert_identifiers(
        [IdentifierRow(WS, "users", k, pid, 1.0, "m1", "src_1", pid, 1.0) for k in (keys or [f"user_id:u{n}"])]
    )


def in_main_file(db: Path, scratch: Path) -> int:
    """Profiles in the database file itself, without its WAL: what checkpoints have copied."""
    copy = scratch / "copy.sqlite3"
    shutil.copyfile(db, copy)
    try:
        conn = sqlite3.connect(copy)
        try:
            return int(conn.execute("SELECT count(*) FROM idn_profiles").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return -1  # copied in the middle of a checkpoint's writes: look again


async def test_commits_reach_the_database_file_through_the_checkpoint_thread(
    store: SQLiteIdentityStore, tmp_path: Path
) -> None:
    writer = store._writer
    assert writer is not None
    # the committing connection itself only checkpoints as a backstop
    assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == identity_sqlite.SAFETY_CHECKPOINT
    for n in range(5):
        await store.transact(functools.partial(add, n=n), durable=False)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    db = Path(store.path)
    assert eventually(lambda: in_main_file(db, scratch), lambda found: found == 5) == 5
    checkpointer = store._checkpointer
    assert checkpointer is not None and checkpointer.runs >= 1
    # and the data reads back the same through the store
    found = await store.read(lambda tx: tx.lookup(WS, "users", [f"user_id:u{n}" for n in range(5)]))
    assert found == {f"user_id:u{n}": f"prf_{n:04d}" for n in range(5)}


async def test_close_stops_the_checkpoint_thread(tmp_path: Path) -> None:
    s = SQLiteIdentityStore(tmp_path / "state.sqlite3")
    await s.start()
    await s.transact(lambda tx: add(tx, 1))
    checkpointer = s._checkpointer
    assert checkpointer is not None
    await s.close()
    assert not checkpointer._thread.is_alive()
    assert s._checkpointer is None


async def test_a_failed_checkpoint_is_counted_and_the_next_commit_tries_again(
    store: SQLiteIdentityStore, tmp_path: Path
) -> None:
    checkpointer = store._checkpointer
    assert checkpointer is not None
    # a checkpointer whose database cannot be opened: it counts the failure and keeps going
    broken = identity_sqlite._Checkpointer(str(tmp_path / "missing" / "no.sqlite3"))
    try:
        broken.wake()
        assert eventually(lambda: broken.failures, lambda n: n >= 1) >= 1
        assert broken.runs == 0
    finally:
        broken.stop()
    await store.transact(lambda tx: add(tx, 7))
    assert eventually(lambda: checkpointer.runs, lambda n: n >= 1) >= 1


async def test_lookup_of_unusual_keys_matches_the_in_list(store: SQLiteIdentityStore) -> None:
    odd = [
        "user_id:a\x00b",  # SQLite's JSON ends a string at an escaped NUL: these take the IN list
        "user_id:é\u2028x",
        "user_id:q\"\\'",
        "user_id:tab\there",
        "user_id:emoji😀",
        "user_id:ctl\x01\x1f",
        "user_id:" + "x" * 3000,
    ]
    await store.transact(lambda tx: add(tx, 1, odd))
    await store.transact(lambda tx: add(tx, 2, [f"anonymous_id:a{i}" for i in range(2500)]))
    wanted = [*odd, "user_id:missing", *(f"anonymous_id:a{i}" for i in range(0, 3000, 7))]

    def both(keys: list[str]) -> Callable[[GraphTx], tuple[dict[str, str], dict[str, str]]]:
        def read(tx: GraphTx) -> tuple[dict[str, str], dict[str, str]]:
            assert isinstance(tx, SqlGraphTx)
            return tx.lookup(WS, "users", keys), SqlGraphTx.lookup(tx, WS, "users", keys)

        return read

    for keys in (wanted, [k for k in wanted if "\x00" not in k], [], ["user_id:a\x00b"]):
        fast, plain = await store.read(both(keys))
        assert fast == plain
        assert set(fast) == {k for k in keys if k in odd or (k.startswith("anonymous_id:a") and int(k[14:]) < 2500)}
