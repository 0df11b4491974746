"""Group commit for the SQLite log: one writer thread owns the only write connection.

Writers from any number of asyncio tasks (on any loop) queue an operation and wait on a
future. The thread takes everything queued, runs it in one ``BEGIN IMMEDIATE … COMMIT`` and
resolves the futures only after the commit returned, so concurrent callers share one fsync
and nothing is reported durable before it is. Consecutive appends of a group are inserted
together. If one operation of a group fails, the group is rolled back and each operation is
re-run alone, so one bad call cannot fail its neighbours.

Several processes may write one log (``workers``, or collect workers beside a pipeline
process). SQLite lets one write transaction in at a time; the others would have to poll for
it (``begin`` retries in steps of up to 2 ms, each retry also waiting for the GIL), so a
waiting group stalled after the lock was free. With ``lock_path`` every writer first takes an
exclusive ``flock`` on that file (the thread sleeps in the kernel and wakes the moment the
other process lets go), so the writers of all processes take turns without polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from itertools import repeat
from typing import Any, TypeVar

from eventyard.errors import LogFull, Unavailable
from eventyard.log.sqlite_schema import pack_records

T = TypeVar("T")

Op = Callable[[sqlite3.Connection], Any]

_MAX_GROUP = 4096
_STOP = object()
# Any number of records in one statement (see ``blob_rows``); ids follow the array's order.
_INSERT_RECORDS = (
    "INSERT INTO records (topic, key, appended_at, payload) SELECT json_extract(j.value, '$[0]'), "
    "json_extract(j.value, '$[1]'), json_extract(j.value, '$[2]'), "
    "substr(?1, json_extract(j.value, '$[3]'), json_extract(j.value, '$[4]')) FROM json_each(?2) AS j"
)
# The queue rows of freshly appended live records, copied from the rows just inserted.
_QUEUE_RANGE = (
    "INSERT INTO queue (id, topic, key, available_at) "
    "SELECT id, topic, key, appended_at FROM records WHERE id BETWEEN ? AND ?"
)


def translate(exc: sqlite3.Error) -> Exception:
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL:
        return LogFull("the event log's disk is full; free space, then retry", retry_after=30)
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return Unavailable("the event log is locked by another process; retry shortly")
    return Unavailable(f"the event log failed: {exc}")


class Append:
    """The operation of one ``append`` (or of a commit's appends): ``(topic, key, payload)``
    records appended at ``at``. They are packed for the INSERT here, on the caller's thread:
    the writer thread holds the GIL as little as it can. Consecutive appends of a group are
    inserted together."""

    __slots__ = ("at", "count", "data", "live", "meta", "records")

    def __init__(self, records: Sequence[tuple[str, str, bytes]], at: float, live: bool) -> None:
        self.records = records
        self.at = at
        self.count = len(records)
        self.live = live
        self.meta, self.data = pack_records(records, repeat(at, self.count))


def insert_records(conn: sqlite3.Connection, batches: Sequence[Append]) -> list[list[int]]:
    """Insert the records of several appends in order, in one statement; live ones also get
    their queue rows. Returns each batch's ids (consecutive: one writer, AUTOINCREMENT)."""
    total = sum(b.count for b in batches)
    if not total:
        return [[] for _ in batches]
    if len(batches) == 1:
        meta, data = batches[0].meta, batches[0].data
    else:
        meta, data = pack_records(
            [r for b in batches for r in b.records], [b.at for b in batches for _ in range(b.count)]
        )
    last = conn.execute(_INSERT_RECORDS, (data, meta)).lastrowid
    assert last is not None
    start = last - total + 1
    out: list[list[int]] = []
    live_from: int | None = None
    for b in batches:
        end = start + b.count
        out.append(list(range(start, end)))
        if b.live and live_from is None:
            live_from = start
        elif not b.live and live_from is not None:
            conn.execute(_QUEUE_RANGE, (live_from, start - 1))
            live_from = None
        start = end
    if live_from is not None:
        conn.execute(_QUEUE_RANGE, (live_from, last))
    return out


class _Pending:
    __slots__ = ("fn", "fut", "loop")

    def __init__(self, fn: Op | Append, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.loop = loop
        self.fut = fut


#: How long the writer waits for another process's write transaction before giving up.
BUSY_SECONDS = 10.0


def begin(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, waiting in short steps while another process writes.

    The writer connection has no busy timeout: SQLite's own busy handler sleeps 1, 2, 5, 10,
    ... ms between tries, so two processes sharing a log (roles split) kept waiting several
    milliseconds for transactions that take one or two.
    """
    deadline = time.monotonic() + BUSY_SECONDS
    delay = 0.0001
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.002)


def _settle(items: list[tuple[asyncio.Future[Any], Any, bool]]) -> None:
    for fut, value, failed in items:
        if fut.done():
            continue
        if failed:
            fut.set_exception(value)
        else:
            fut.set_result(value)


def _rollback(conn: sqlite3.Connection) -> None:
    # The failed statement may already have ended the transaction.
    with contextlib.suppress(sqlite3.Error):
        conn.execute("ROLLBACK")


def transact(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn(conn)`` inside ``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back if anything fails)."""
    begin(conn)
    try:
        value = fn(conn)
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return value


class Writer:
    """The writer thread and its queue."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], lock_path: str | None = None) -> None:
        self._connect = connect
        self._lock_path = lock_path
        self._lock_fd: int | None = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="eventyard-log-writer", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._queue.put(_STOP)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    async def write(self, fn: Op | Append) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Pending(fn, loop, fut))
        return await fut

    # ------------------------------------------------------------ the thread

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """The writers' turn across processes (see the module docstring)."""
        fd = self._lock_fd
        if fd is None:
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _run(self) -> None:
        conn = self._connect()
        if self._lock_path is not None:
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            ops: list[_Pending] = [first]
            # The group is taken once it is this process's turn: what arrived while another
            # process was writing joins this commit instead of waiting for the next one.
            with self._turn():
                while len(ops) < _MAX_GROUP:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stopping = True
                        break
                    ops.append(nxt)
                results = self._run_group(conn, ops)
            _answer(results)
        conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)

    def _run_group(self, conn: sqlite3.Connection, ops: list[_Pending]) -> list[tuple[_Pending, Any, bool]]:
        """Commit ``ops`` together (or, after a failure, each alone): each op's value or error."""
        results: list[tuple[_Pending, Any, bool]] = []
        try:
            values = transact(conn, lambda c: _apply(c, ops))
            results = [(op, v, False) for op, v in zip(ops, values, strict=True)]
        except sqlite3.Error as exc:
            if len(ops) == 1 or getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                err = translate(exc)
                results = [(op, err, True) for op in ops]
            else:
                results = [self._run_one(conn, op) for op in ops]
        except Exception:
            # One operation is at fault (bad arguments): isolate it, keep the others.
            results = [self._run_one(conn, op) for op in ops]
        return results

    def _run_one(self, conn: sqlite3.Connection, op: _Pending) -> tuple[_Pending, Any, bool]:
        try:
            return op, transact(conn, lambda c: _apply(c, [op]))[0], False
        except sqlite3.Error as exc:
            return op, translate(exc), True
        except Exception as exc:
            return op, exc, True


def _answer(results: list[tuple[_Pending, Any, bool]]) -> None:
    """Resolve the futures of a finished group, one call per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, bool]]] = {}
    for op, value, failed in results:
        by_loop.setdefault(op.loop, []).append((op.fut, value, failed))
    for loop, items in by_loop.items():
        # A loop that closed while we wrote has nobody waiting.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, items)


def _apply(conn: sqlite3.Connection, ops: list[_Pending]) -> list[Any]:
    """Run a group's operations in order; each run of consecutive appends is one insert."""
    values: list[Any] = []
    i = 0
    while i < len(ops):
        fn = ops[i].fn
        if not isinstance(fn, Append):
            values.append(fn(conn))
            i += 1
            continue
        appends: list[Append] = []
        while i < len(ops) and isinstance(fn := ops[i].fn, Append):
            appends.append(fn)
            i += 1
        values += insert_records(conn, appends)
    return values


__all__ = ["Append", "Op", "Writer", "insert_records", "transact", "translate"]
