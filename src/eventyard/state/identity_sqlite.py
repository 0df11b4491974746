"""The identity store on SQLite, inside the state database file (``state.sqlite3``).

Its tables are prefixed ``idn_`` and versioned in a table of their own
(``idn_schema_version``), so they never interfere with the state store's migrations.

Writes go through one connection: ``transact`` runs in ``BEGIN IMMEDIATE``, which takes
SQLite's write lock first, so two workers (threads or processes) resolving the same person
take turns and each sees what the other committed. Reads use separate connections (WAL lets
them run beside a writer) and see one committed snapshot each.

``read_now`` is for the Profile API's short reads (a few index lookups): it runs on the
caller's thread, the event loop, over a read-only connection of its own whose busy timeout
is zero, so it never queues behind the pipeline's jobs in the worker threads and never
sleeps on a lock. Under WAL a reader does not wait for the writer; in the rare case SQLite
still answers "busy" (or the connection is in use), the read goes to the worker threads.

WAL checkpoints (copying committed pages from the ``-wal`` file into the database file, with
an fsync of each) run on a thread of their own, not inside the pipeline's commits: SQLite's
automatic checkpoint runs in whichever commit passes 1,000 pages of WAL, and that commit then
waits for the writes and the fsyncs (a third of the identity stage's wall-clock time in
``bench/identity.py``). The writer's automatic checkpoint is raised to ``SAFETY_CHECKPOINT``
pages, a backstop in case the thread falls behind; after a commit the thread is woken and
runs a ``PASSIVE`` checkpoint (which never blocks the writer or readers) at most every
``CHECKPOINT_INTERVAL`` seconds. Checkpoints do not change what is durable: a commit is as
durable as its ``synchronous`` setting made it before any checkpoint runs.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from eventyard.errors import Unavailable
from eventyard.state.identity_accounts import SCHEMA_V3
from eventyard.state.identity_base import GraphTx
from eventyard.state.identity_changes import SCHEMA_V2
from eventyard.state.identity_noted import SCHEMA_V4
from eventyard.state.identity_sql import SCHEMA_V1, SqlGraphTx
from eventyard.state.sqlite_connect import connect

T = TypeVar("T")

#: Address space each connection maps the database file into (not memory it takes).
MMAP_BYTES = 1 << 30
#: Seconds between the checkpoint thread's runs (at most; it runs only after commits).
CHECKPOINT_INTERVAL = 1.0
#: WAL pages after which a commit checkpoints by itself (SQLite's default: 1,000): only
#: reached when the checkpoint thread falls behind.
SAFETY_CHECKPOINT = 20_000
#: Values per ``IN (...)`` list (SQLite allows 32,766 variables; smaller lists plan faster).
CHUNK = 2000

_keys_json = msgspec.json.Encoder().encode

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        SCHEMA_V1.format(
            REAL="REAL", BLOB="BLOB", SERIAL="INTEGER PRIMARY KEY AUTOINCREMENT", NOROWID=" WITHOUT ROWID"
        ),
    ),
    (2, SCHEMA_V2.format(REAL="REAL", BLOB="BLOB", SERIAL="INTEGER PRIMARY KEY AUTOINCREMENT")),
    (3, SCHEMA_V3.format(REAL="REAL")),
    (4, SCHEMA_V4.format(REAL="REAL")),
]


class SQLiteGraphTx(SqlGraphTx):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def _x(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, params).rowcount

    def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def _q_in(
        self, sql: str, before: Sequence[Any], values: Sequence[Any], after: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        for i in range(0, len(values), CHUNK):
            chunk = values[i : i + CHUNK]
            marks = "IN (" + ",".join("?" * len(chunk)) + ")"
            out += self.conn.execute(sql.format(**{"in": marks}), (*before, *chunk, *after)).fetchall()
        return out

    def _x_in(self, sql: str, before: Sequence[Any], values: Sequence[Any], after: Sequence[Any] = ()) -> int:
        n = 0
        for i in range(0, len(values), CHUNK):
            chunk = values[i : i + CHUNK]
            marks = "IN (" + ",".join("?" * len(chunk)) + ")"
            n += self.conn.execute(sql.format(**{"in": marks}), (*before, *chunk, *after)).rowcount
        return n

    def lookup(self, workspace_id: str, collection: str, keys: Sequence[str]) -> dict[str, str]:
        # a batch's keys as one JSON array, in key order, each looked up in the primary key
        # (``CROSS JOIN`` keeps the array the outer loop): about 10 % less than ``IN (?, ...)``,
        # which first sorts the values into a temporary index. SQLite's JSON functions end a
        # string at an escaped NUL, so keys holding one take the ``IN`` list.
        if not keys:
            return {}
        if any("\x00" in k for k in keys):
            return super().lookup(workspace_id, collection, keys)
        rows = self.conn.execute(
            "SELECT i.key, i.profile_id FROM json_each(?) AS j CROSS JOIN idn_identifiers AS i "
            "WHERE i.workspace_id = ? AND i.collection = ? AND i.key = j.value",
            (_keys_json(sorted(keys)), workspace_id, collection),
        ).fetchall()
        return dict(rows)

    def purge(self, older_than: float, limit: int) -> int:
        n = self._x(
            "DELETE FROM idn_events WHERE rowid IN (SELECT rowid FROM idn_events WHERE received < ? LIMIT ?)",
            (older_than, limit),
        )
        n += self._x(
            "DELETE FROM idn_decisions WHERE rowid IN (SELECT rowid FROM idn_decisions WHERE at < ? LIMIT ?)",
            (older_than, limit),
        )
        n += self.purge_account_events(older_than)
        self.purge_noted(older_than)
        return n


def _connect(path: str, read_only: bool, busy_timeout_ms: int = 10000) -> sqlite3.Connection:
    conn = connect(path, read_only, busy_timeout_ms)
    conn.execute("PRAGMA cache_size=-65536")
    # reads through a memory map: no read() system call per page of the graph's indexes
    conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS idn_schema_version (version INTEGER NOT NULL)")
        current = conn.execute("SELECT max(version) FROM idn_schema_version").fetchone()[0] or 0
        for version, script in MIGRATIONS:
            if version > current:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO idn_schema_version (version) VALUES (?)", (version,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class SQLiteIdentityStore:
    kind = "sqlite"

    def __init__(self, path: str | Path, readers: int = 4) -> None:
        self.path = str(path)
        self._writer: sqlite3.Connection | None = None
        self._write_lock = threading.Lock()
        self._readers: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._reader_slots = threading.BoundedSemaphore(readers)
        self._open_readers: list[sqlite3.Connection] = []
        #: ``read_now``'s connection (busy timeout 0) and the lock that keeps it to one caller.
        self._now: sqlite3.Connection | None = None
        self._now_lock = threading.Lock()
        #: How many ``read_now`` calls went to the worker threads instead (busy or in use).
        self.read_now_deferred = 0
        self._checkpointer: _Checkpointer | None = None

    async def start(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)

        def open_() -> None:
            conn = _connect(self.path, read_only=False)
            try:
                migrate(conn)
                conn.execute(f"PRAGMA wal_autocheckpoint={SAFETY_CHECKPOINT}")
            except BaseException:
                conn.close()
                raise
            self._writer = conn

        await asyncio.to_thread(open_)
        self._checkpointer = _Checkpointer(self.path)

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        readers, self._open_readers = self._open_readers, []
        checkpointer, self._checkpointer = self._checkpointer, None

        def close_() -> None:
            if checkpointer is not None:
                checkpointer.stop()
            with self._write_lock:
                if writer is not None:
                    writer.close()
            for conn in readers:
                conn.close()
            with self._now_lock:
                now, self._now = self._now, None
                if now is not None:
                    now.close()

        await asyncio.to_thread(close_)

    def transact_sync(self, fn: Callable[[GraphTx], T], durable: bool = True) -> T:
        with self._write_lock:
            conn = self._writer
            if conn is None:
                raise Unavailable("the identity store is not started")
            try:
                if not durable:
                    conn.execute("PRAGMA synchronous=NORMAL")
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        result = fn(SQLiteGraphTx(conn))
                        conn.execute("COMMIT")
                        if self._checkpointer is not None:
                            self._checkpointer.wake()
                        return result
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                finally:
                    if not durable:
                        conn.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                raise Unavailable(f"the identity store failed: {exc}") from exc

    def read_sync(self, fn: Callable[[GraphTx], T]) -> T:
        if self._writer is None:
            raise Unavailable("the identity store is not started")
        with self._reader_slots:
            try:
                conn = self._readers.get_nowait()
            except queue.Empty:
                conn = _connect(self.path, read_only=True)
                self._open_readers.append(conn)
            try:
                conn.execute("BEGIN")
                try:
                    return fn(SQLiteGraphTx(conn))
                finally:
                    conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise Unavailable(f"the identity store failed: {exc}") from exc
            finally:
                self._readers.put(conn)

    async def transact(self, fn: Callable[[GraphTx], T], durable: bool = True) -> T:
        return await asyncio.to_thread(self.transact_sync, fn, durable)

    async def read(self, fn: Callable[[GraphTx], T]) -> T:
        return await asyncio.to_thread(self.read_sync, fn)

    async def read_now(self, fn: Callable[[GraphTx], T]) -> T:
        """``fn`` on this thread, without waiting for any lock (see the module docstring)."""
        if self._writer is None:
            raise Unavailable("the identity store is not started")
        if self._now_lock.acquire(blocking=False):
            try:
                return self._read_here(fn)
            except _Busy:
                pass
            finally:
                self._now_lock.release()
        self.read_now_deferred += 1
        return await self.read(fn)

    def _read_here(self, fn: Callable[[GraphTx], T]) -> T:
        conn = self._now
        try:
            if conn is None:
                conn = self._now = _connect(self.path, read_only=True, busy_timeout_ms=0)
            conn.execute("BEGIN")
            try:
                return fn(SQLiteGraphTx(conn))
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise _Busy from exc
            raise Unavailable(f"the identity store failed: {exc}") from exc
        except sqlite3.Error as exc:
            raise Unavailable(f"the identity store failed: {exc}") from exc


class _Busy(Exception):
    """SQLite answered busy to a read that must not wait: it is retried on a worker thread."""


class _Checkpointer:
    """A thread that checkpoints the WAL after commits, at most every ``CHECKPOINT_INTERVAL``
    seconds, on a connection of its own (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        #: Checkpoints run, and those SQLite refused (another checkpoint or a lock in the way).
        self.runs = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="identity-checkpoint", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wanted.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wanted.set()
        self._thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._wanted.wait()
                if self._stopping.is_set():
                    return
                self._wanted.clear()
                try:
                    if conn is None:
                        # busy timeout 0: a checkpoint never waits for a lock, the next one retries
                        conn = _connect(self.path, read_only=False, busy_timeout_ms=0)
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.runs += 1
                except sqlite3.Error:
                    # e.g. another process's checkpoint holds the lock: nothing is lost, the
                    # frames stay in the WAL for the next run
                    self.failures += 1
                if self._stopping.wait(CHECKPOINT_INTERVAL):
                    return
        finally:
            if conn is not None:
                conn.close()
