"""EventLog on SQLite in WAL mode, with group commit.

Every write goes through one writer thread that owns the write connection. Writers from
any number of asyncio tasks queue their operation and wait; the thread drains whatever is
queued, runs it in one transaction and commits once, so concurrent requests share one
fsync. Futures are resolved only after the commit returns: an appended record is durable
before its caller hears about it. Reads use their own connections and never block writes.

Record states: 0 live (due when ``available_at`` <= now; a lease pushes ``available_at``
forward, so an expired lease makes the record due again), 1 acked, 2 dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

from eventyard.errors import LogFull, Unavailable
from eventyard.log.base import (
    DeadRecord,
    LeasedRecord,
    LogRecord,
    TopicStats,
    TraceCount,
    TraceEntry,
    Transaction,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key TEXT NOT NULL,
    payload BLOB NOT NULL,
    appended_at REAL NOT NULL,
    available_at REAL NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS records_due ON records (topic, state, available_at, id);
CREATE INDEX IF NOT EXISTS records_live_key ON records (topic, key, id) WHERE state = 0;
CREATE TABLE IF NOT EXISTS trace (
    message_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    step TEXT NOT NULL,
    destination_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    latency_ms REAL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS trace_message ON trace (message_id);
CREATE INDEX IF NOT EXISTS trace_at ON trace (at);
"""

_TRACE_INSERT = (
    "INSERT INTO trace (message_id, source_id, step, destination_id, reason, detail, attempt, latency_ms, at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_LEASE = (
    "UPDATE records SET available_at = ?, lease_owner = ?, attempts = attempts + 1 "
    "WHERE id IN (SELECT id FROM records WHERE topic = ? AND state = 0 "
    "AND available_at <= ? ORDER BY available_at, id LIMIT ?) "
    "RETURNING id, topic, key, payload, appended_at, attempts, error"
)
# A record is leased only when no older unfinished record shares its key.
_LEASE_ORDERED = (
    "UPDATE records SET available_at = ?, lease_owner = ?, attempts = attempts + 1 "
    "WHERE id IN (SELECT r.id FROM records r WHERE r.topic = ? AND r.state = 0 AND r.available_at <= ? "
    "AND NOT EXISTS (SELECT 1 FROM records p WHERE p.topic = r.topic AND p.key = r.key "
    "AND p.state = 0 AND p.id < r.id) ORDER BY r.available_at, r.id LIMIT ?) "
    "RETURNING id, topic, key, payload, appended_at, attempts, error"
)

# Unfinished records per topic: the topics by skipping through the (topic, ...) index, then a
# count over each topic's live range of the same index.
_LIVE_COUNTS = (
    "WITH RECURSIVE topics(topic) AS (SELECT (SELECT min(topic) FROM records) "
    "UNION ALL SELECT (SELECT min(topic) FROM records WHERE topic > topics.topic) FROM topics "
    "WHERE topic IS NOT NULL) "
    "SELECT topic, (SELECT count(*) FROM records r WHERE r.topic = topics.topic AND r.state = 0) "
    "FROM topics WHERE topic IS NOT NULL"
)


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _set_state(conn: sqlite3.Connection, ids: list[int], state: int, error: str | None) -> dict[str, int]:
    """Finish live records (ack or dead); returns how many changed per topic."""
    changed: dict[str, int] = {}
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        for (topic,) in conn.execute(
            f"UPDATE records SET state = ?, lease_owner = NULL, error = coalesce(?, error) "
            f"WHERE state = 0 AND id IN ({marks}) RETURNING topic",
            (state, error, *chunk),
        ).fetchall():
            changed[topic] = changed.get(topic, 0) + 1
    return changed


def _reschedule(conn: sqlite3.Connection, items: Sequence[tuple[int, float, str]]) -> None:
    conn.executemany(
        "UPDATE records SET available_at = ?, lease_owner = NULL, error = ? WHERE state = 0 AND id = ?",
        [(at, error, rid) for rid, at, error in items],
    )


def _trace_rows(entries: Sequence[TraceEntry], now: float) -> list[tuple[Any, ...]]:
    return [
        (e.message_id, e.source_id, e.step, e.destination_id, e.reason, e.detail, e.attempt, e.latency_ms, e.at or now)
        for e in entries
    ]


_LIVE, _ACKED, _DEAD = 0, 1, 2
_MAX_GROUP = 4096
_STOP = object()

Op = Callable[[sqlite3.Connection], Any]


def _translate(exc: sqlite3.Error) -> Exception:
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL:
        return LogFull("the event log's disk is full; free space, then retry", retry_after=30)
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return Unavailable("the event log is locked by another process; retry shortly")
    return Unavailable(f"the event log failed: {exc}")


#: Rows per INSERT statement at most (6 parameters each: within SQLite's oldest limit of 999).
_INSERT_ROWS = 128


@functools.cache
def _insert_sql(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * rows)
    return f"INSERT INTO records (topic, key, payload, appended_at, available_at, state) VALUES {values}"


def _insert(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> list[int]:
    """Insert rows in order with multi-row INSERTs; returns their ids.

    One statement per 128 rows instead of one per row (each sqlite3 step releases and
    retakes the GIL the event loop needs). Statement sizes are 128 or powers of two, so only
    eight statements are ever prepared and all stay in the connection's cache.
    """
    done = 0
    while done < len(rows):
        size = min(_INSERT_ROWS, 1 << ((len(rows) - done).bit_length() - 1))
        conn.execute(_insert_sql(size), list(chain.from_iterable(rows[done : done + size])))
        done += size
    last: int = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
    return list(range(last - len(rows) + 1, last + 1))


#: Rows per trace INSERT statement at most (9 parameters each: within SQLite's oldest limit of 999).
_TRACE_ROWS = 64


@functools.cache
def _trace_sql(rows: int) -> str:
    return _TRACE_INSERT + ", (?, ?, ?, ?, ?, ?, ?, ?, ?)" * (rows - 1)


def _insert_trace(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert trace rows with multi-row INSERTs, for the same reason as ``_insert``."""
    done = 0
    while done < len(rows):
        size = min(_TRACE_ROWS, 1 << ((len(rows) - done).bit_length() - 1))
        conn.execute(_trace_sql(size), list(chain.from_iterable(rows[done : done + size])))
        done += size


class _Append:
    """The operation of one ``append``: consecutive appends of a group are inserted together."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows

    def __call__(self, conn: sqlite3.Connection) -> list[int]:
        return _insert(conn, self.rows)


def _apply(conn: sqlite3.Connection, ops: list[_Pending]) -> list[Any]:
    """Run a group's operations in order; each run of consecutive appends is one insert."""
    values: list[Any] = []
    i = 0
    while i < len(ops):
        if not isinstance(ops[i].fn, _Append):
            values.append(ops[i].fn(conn))
            i += 1
            continue
        appends: list[_Append] = []
        while i < len(ops) and isinstance(fn := ops[i].fn, _Append):
            appends.append(fn)
            i += 1
        ids = _insert(conn, [row for a in appends for row in a.rows])
        start = 0
        for a in appends:
            values.append(ids[start : start + len(a.rows)])
            start += len(a.rows)
    return values


def _rollback(conn: sqlite3.Connection) -> None:
    # The failed statement may already have ended the transaction.
    with contextlib.suppress(sqlite3.Error):
        conn.execute("ROLLBACK")


class _Pending:
    __slots__ = ("fn", "fut", "loop")

    def __init__(self, fn: Op, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.loop = loop
        self.fut = fut


def _settle(items: list[tuple[asyncio.Future[Any], Any, bool]]) -> None:
    for fut, value, failed in items:
        if fut.done():
            continue
        if failed:
            fut.set_exception(value)
        else:
            fut.set_result(value)


class SQLiteEventLog:
    """The embedded default log: one SQLite file, group-committed appends."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.path = str(path)
        self.synchronous = synchronous.upper()
        if self.synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("synchronous must be FULL, NORMAL or EXTRA")
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._local = threading.local()
        self._backlog: dict[str, int] = {}
        self._backlog_lock = threading.Lock()
        self._started = False

    # ----------------------------------------------------------------- lifecycle

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        return conn

    async def start(self) -> None:
        if self._started:
            return
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            conn.executescript(_SCHEMA)
            rows = conn.execute(_LIVE_COUNTS).fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        finally:
            conn.close()
        self._backlog = {topic: n for topic, n in rows if n}
        self._thread = threading.Thread(target=self._writer, name="eventyard-log-writer", daemon=True)
        self._thread.start()
        self._started = True

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        self._queue.put(_STOP)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()

    # ------------------------------------------------------------ writer thread

    def _writer(self) -> None:
        conn = self._connect()
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            ops: list[_Pending] = [first]
            while len(ops) < _MAX_GROUP:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                ops.append(nxt)
            self._run_group(conn, ops)
        conn.close()

    def _run_group(self, conn: sqlite3.Connection, ops: list[_Pending]) -> None:
        results: list[tuple[_Pending, Any, bool]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                values = _apply(conn, ops)
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
            results = [(op, v, False) for op, v in zip(ops, values, strict=True)]
        except sqlite3.Error as exc:
            if len(ops) == 1 or getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                err = _translate(exc)
                results = [(op, err, True) for op in ops]
            else:
                results = [self._run_one(conn, op) for op in ops]
        except Exception:
            # One operation is at fault (bad arguments): isolate it, keep the others.
            results = [self._run_one(conn, op) for op in ops]
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, bool]]] = {}
        for op, value, failed in results:
            by_loop.setdefault(op.loop, []).append((op.fut, value, failed))
        for loop, items in by_loop.items():
            # A loop that closed while we wrote has nobody waiting.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, items)

    def _run_one(self, conn: sqlite3.Connection, op: _Pending) -> tuple[_Pending, Any, bool]:
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                value = op.fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
            return op, value, False
        except sqlite3.Error as exc:
            return op, _translate(exc), True
        except Exception as exc:
            return op, exc, True

    async def _write(self, fn: Op) -> Any:
        if not self._started:
            raise Unavailable("the event log is not started")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Pending(fn, loop, fut))
        return await fut

    # -------------------------------------------------------------------- reads

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    async def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        def run() -> list[Any]:
            try:
                return self._reader().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise _translate(exc) from exc

        return await asyncio.to_thread(run)

    # ----------------------------------------------------------------- contract

    async def append(self, topic: str, records: Sequence[tuple[str, bytes]], archive: bool = False) -> list[int]:
        if not records:
            return []
        now = self.clock()
        state = _ACKED if archive else _LIVE
        rows = [(topic, key, payload, now, now, state) for key, payload in records]
        n = len(rows)
        ids: list[int] = await self._write(_Append(rows))
        if not archive:
            with self._backlog_lock:
                self._backlog[topic] = self._backlog.get(topic, 0) + n
        return ids

    async def lease(
        self, topic: str, consumer: str, limit: int, lease_seconds: float = 30.0, ordered: bool = False
    ) -> list[LeasedRecord]:
        sql = _LEASE_ORDERED if ordered else _LEASE

        def run(conn: sqlite3.Connection) -> list[Any]:
            now = self.clock()
            return conn.execute(sql, (now + lease_seconds, consumer, topic, now, limit)).fetchall()

        rows = await self._write(run)
        rows.sort(key=lambda r: r[0])
        return [LeasedRecord(r[0], r[1], r[2], bytes(r[3]), r[4], r[5], r[6]) for r in rows]

    def _adjust_backlog(self, changes: dict[str, int], sign: int) -> None:
        with self._backlog_lock:
            for topic, n in changes.items():
                self._backlog[topic] = max(0, self._backlog.get(topic, 0) + sign * n)

    async def _finish(self, ids: Sequence[int], state: int, error: str | None) -> None:
        if not ids:
            return
        id_list = list(ids)

        def run(conn: sqlite3.Connection) -> dict[str, int]:
            return _set_state(conn, id_list, state, error)

        self._adjust_backlog(await self._write(run), -1)

    async def commit(self, tx: Transaction) -> list[int]:
        now = self.clock()

        def run(conn: sqlite3.Connection) -> tuple[list[int], dict[str, int]]:
            rows = [(topic, key, payload, now, now, _LIVE) for topic, key, payload in tx.appends]
            ids = _insert(conn, rows) if rows else []
            finished = _set_state(conn, list(tx.ack), _ACKED, None)
            for rid, reason in tx.dead:
                for topic, n in _set_state(conn, [rid], _DEAD, reason).items():
                    finished[topic] = finished.get(topic, 0) + n
            if tx.retry:
                _reschedule(conn, tx.retry)
            if tx.trace:
                _insert_trace(conn, _trace_rows(tx.trace, now))
            return ids, finished

        result: tuple[list[int], dict[str, int]] = await self._write(run)
        ids, finished = result
        added: dict[str, int] = {}
        for topic, _, _ in tx.appends:
            added[topic] = added.get(topic, 0) + 1
        self._adjust_backlog(added, +1)
        self._adjust_backlog(finished, -1)
        return ids

    async def trace(self, message_id: str) -> list[TraceEntry]:
        rows = await self._read(
            "SELECT message_id, source_id, step, destination_id, reason, detail, attempt, latency_ms, at "
            "FROM trace WHERE message_id = ? ORDER BY at, rowid",
            (message_id,),
        )
        return [TraceEntry(*r) for r in rows]

    async def trace_counts(self, since: float, bucket_seconds: int = 300) -> list[TraceCount]:
        rows = await self._read(
            "SELECT CAST(at / ? AS INTEGER) * ?, destination_id, step, reason, count(*) FROM trace "
            "WHERE at >= ? GROUP BY 1, 2, 3, 4 ORDER BY 1",
            (bucket_seconds, bucket_seconds, since),
        )
        return [TraceCount(float(r[0]), r[1], r[2], r[3], int(r[4])) for r in rows]

    async def delivery_latencies(self, destination_id: str, since: float) -> list[float]:
        rows = await self._read(
            "SELECT latency_ms FROM trace WHERE at >= ? AND destination_id = ? AND step = 'delivered' "
            "AND latency_ms IS NOT NULL",
            (since, destination_id),
        )
        return [float(r[0]) for r in rows]

    async def first_id_at(self, topic: str, at: float) -> int:
        # Ids grow with append time, so a binary search over ids by point lookups finds the spot.
        first = "SELECT id, appended_at FROM records WHERE topic = ? AND id >= ? ORDER BY id LIMIT 1"
        bounds = await self._read(
            "SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM records WHERE topic = ?", (topic,)
        )
        lo, hi = int(bounds[0][0]), int(bounds[0][1]) + 1
        while lo < hi:
            mid = (lo + hi) // 2
            found = await self._read(first, (topic, mid))
            if found and found[0][1] < at:
                lo = int(found[0][0]) + 1
            else:
                hi = mid
        return max(0, lo - 1)

    async def ack(self, ids: Sequence[int]) -> None:
        await self._finish(ids, _ACKED, None)

    async def dead_letter(self, ids: Sequence[int], reason: str) -> None:
        await self._finish(ids, _DEAD, reason)

    async def retry(self, ids: Sequence[int], at: float, error: str) -> None:
        if not ids:
            return
        items = [(rid, at, error) for rid in ids]

        def run(conn: sqlite3.Connection) -> None:
            _reschedule(conn, items)

        await self._write(run)

    async def dead_letters(self, topic: str, limit: int = 100, after: int = 0) -> list[DeadRecord]:
        rows = await self._read(
            "SELECT id, topic, key, payload, appended_at, attempts, error FROM records "
            "WHERE topic = ? AND state = 2 AND id > ? ORDER BY id LIMIT ?",
            (topic, after, limit),
        )
        return [DeadRecord(r[0], r[1], r[2], bytes(r[3]), r[4], r[5], r[6] or "") for r in rows]

    async def reschedule_waiting(self, topic: str, at: float) -> int:
        def run(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE records SET available_at = ? WHERE topic = ? AND state = 0 AND lease_owner IS NULL",
                (at, topic),
            ).rowcount

        count: int = await self._write(run)
        return count

    async def requeue(self, ids: Sequence[int]) -> int:
        if not ids:
            return 0
        id_list = list(ids)

        def run(conn: sqlite3.Connection) -> list[tuple[str, int]]:
            now = self.clock()
            changed: dict[str, int] = {}
            for start in range(0, len(id_list), 500):
                chunk = id_list[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for (topic,) in conn.execute(
                    f"UPDATE records SET state = 0, available_at = ?, attempts = 0, "
                    f"lease_owner = NULL WHERE state = 2 AND id IN ({marks}) RETURNING topic",
                    (now, *chunk),
                ).fetchall():
                    changed[topic] = changed.get(topic, 0) + 1
            return list(changed.items())

        total = 0
        for topic, n in await self._write(run):
            total += n
            with self._backlog_lock:
                self._backlog[topic] = self._backlog.get(topic, 0) + n
        return total

    async def read(self, topic: str, after: int = 0, limit: int = 100, key: str | None = None) -> list[LogRecord]:
        if key is None:
            rows = await self._read(
                "SELECT id, topic, key, payload, appended_at FROM records "
                "WHERE id > ? AND topic = ? ORDER BY id LIMIT ?",
                (after, topic, limit),
            )
        else:
            rows = await self._read(
                "SELECT id, topic, key, payload, appended_at FROM records "
                "WHERE id > ? AND topic = ? AND key = ? ORDER BY id LIMIT ?",
                (after, topic, key, limit),
            )
        return [LogRecord(r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]

    async def latest(self, topic: str, limit: int = 50, key: str | None = None) -> list[LogRecord]:
        # Scan newest first by primary key; bounded so a quiet key cannot cost a full scan.
        sql = (
            "SELECT id, topic, key, payload, appended_at FROM "
            "(SELECT * FROM records ORDER BY id DESC LIMIT 200000) "
            "WHERE topic = ?" + (" AND key = ?" if key is not None else "") + " LIMIT ?"
        )
        params: tuple[Any, ...] = (topic, key, limit) if key is not None else (topic, limit)
        rows = await self._read(sql, params)
        return [LogRecord(r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]

    async def last_id(self) -> int:
        rows = await self._read("SELECT coalesce(max(id), 0) FROM records", ())
        return int(rows[0][0])

    def backlog_estimate(self, topic: str) -> int:
        return self._backlog.get(topic, 0)

    def backlog_topics(self) -> list[str]:
        return sorted(self._backlog)

    async def refresh_backlog(self) -> None:
        """Recount unfinished records (other processes may have acked some).

        Topic by topic through the ``(topic, state, ...)`` index, so the cost follows the live
        records, not every processed record kept for the retention period (a ``GROUP BY`` over
        ``state = 0`` scans the whole index: 0.3 s every 5 s at 2 million records).
        """
        rows = await self._read(_LIVE_COUNTS, ())
        with self._backlog_lock:
            self._backlog = {topic: n for topic, n in rows if n}

    async def stats(self, topic: str) -> TopicStats:
        now = self.clock()
        rows = await self._read(
            "SELECT "
            "coalesce(sum(state = 0 AND available_at <= ?), 0), "
            "coalesce(sum(state = 0 AND available_at > ? AND lease_owner IS NOT NULL), 0), "
            "coalesce(sum(state = 0 AND available_at > ? AND lease_owner IS NULL), 0), "
            "coalesce(sum(state = 1), 0), coalesce(sum(state = 2), 0) "
            "FROM records WHERE topic = ?",
            (now, now, now, topic),
        )
        ready, leased, scheduled, acked, dead = (int(x) for x in rows[0])
        return TopicStats(topic, ready, leased, scheduled, acked, dead)

    async def topics(self) -> list[str]:
        rows = await self._read("SELECT DISTINCT topic FROM records", ())
        return sorted(r[0] for r in rows)

    async def purge_acked(self, older_than: float) -> int:
        # Ids grow with append time: the last id appended before `older_than` bounds the scan to
        # a primary-key range. Without it every run (at start, then hourly) scanned the whole
        # table inside the writer thread, holding up every append (10 s for 2 million records
        # with a cold cache). `appended_at < ?` stays in the statement, so a clock step back can
        # only leave an old record for the next run, never delete a young one.
        bound = await self._last_id_before(older_than)

        def run(conn: sqlite3.Connection) -> tuple[int, int]:
            cur = conn.execute(
                "DELETE FROM records WHERE id IN (SELECT id FROM records "
                "WHERE id <= ? AND state = 1 AND appended_at < ? ORDER BY id LIMIT 20000)",
                (bound, older_than),
            )
            records = cur.rowcount
            cur = conn.execute(
                "DELETE FROM trace WHERE rowid IN (SELECT rowid FROM trace WHERE at < ? LIMIT 20000)", (older_than,)
            )
            return records, cur.rowcount

        total = 0
        while True:
            done: tuple[int, int] = await self._write(run)
            records, traces = done
            total += records
            # There are several trace entries per record: go on until both are done.
            if records < 20000 and traces < 20000:
                return total

    async def _last_id_before(self, at: float) -> int:
        """The id of the last record appended before ``at`` (0 if none), by binary search on ids."""
        first = "SELECT id, appended_at FROM records WHERE id >= ? ORDER BY id LIMIT 1"
        bounds = await self._read("SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM records", ())
        lo, hi = int(bounds[0][0]), int(bounds[0][1]) + 1
        while lo < hi:
            mid = (lo + hi) // 2
            found = await self._read(first, (mid,))
            if found and found[0][1] < at:
                lo = int(found[0][0]) + 1
            else:
                hi = mid
        return max(0, lo - 1)

    def disk_bytes(self) -> int:
        """Size of the log's files on disk (database and write-ahead log)."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                total += os.path.getsize(self.path + suffix)
        return total
