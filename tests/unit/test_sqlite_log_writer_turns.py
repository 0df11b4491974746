"""Writers of one SQLite log in several processes take turns through a file lock."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
from pathlib import Path

from eventyard.log.sqlite_writer import Writer


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
    return conn


def _try_lock(path: Path) -> bool:
    """Whether another process could take the writers' lock now."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops a lock taken here
    return True


async def test_a_write_transaction_holds_the_writers_lock_and_lets_go_after_commit(tmp_path: Path) -> None:
    db, lock = tmp_path / "log.sqlite3", tmp_path / "log.sqlite3-writer.lock"
    writer = Writer(lambda: _connect(db), str(lock))
    writer.start()
    inside, release = threading.Event(), threading.Event()

    def slow_insert(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t VALUES (1)")
        inside.set()
        release.wait(10)
        return 1

    try:
        pending = asyncio.ensure_future(writer.write(slow_insert))
        assert await asyncio.to_thread(inside.wait, 10)
        assert not _try_lock(lock)  # another process's writer would wait in the kernel, not poll SQLite
        release.set()
        assert await pending == 1
        assert _try_lock(lock)
    finally:
        release.set()
        await writer.stop()


async def test_a_writer_waits_for_the_lock_held_elsewhere_and_then_commits(tmp_path: Path) -> None:
    db, lock = tmp_path / "log.sqlite3", tmp_path / "log.sqlite3-writer.lock"
    writer = Writer(lambda: _connect(db), str(lock))
    writer.start()
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process is writing
    started = threading.Event()

    def insert(conn: sqlite3.Connection) -> int:
        started.set()
        return conn.execute("INSERT INTO t VALUES (2)").rowcount

    try:
        pending = asyncio.ensure_future(writer.write(insert))
        await asyncio.sleep(0)
        assert not started.is_set()
        fcntl.flock(fd, fcntl.LOCK_UN)
        assert await pending == 1
    finally:
        os.close(fd)
        await writer.stop()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [(2,)]


async def test_without_a_lock_path_no_lock_file_is_made(tmp_path: Path) -> None:
    db = tmp_path / "log.sqlite3"
    writer = Writer(lambda: _connect(db))
    writer.start()
    try:
        assert await writer.write(lambda c: c.execute("INSERT INTO t VALUES (3)").rowcount) == 1
    finally:
        await writer.stop()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".lock")) == []
