"""EventLog on SQLite in WAL mode, with group commit.

Every write goes through one writer thread that owns the write connection (``sqlite_writer``):
concurrent callers share one transaction and one fsync, and hear back only after the commit.
Reads use their own connections and never block writes.

Payloads and state live apart (``sqlite_schema``): a record's row in ``records`` is written
once; whether it is still to be processed, leased, waiting for a retry or dead-lettered is a
narrow row in ``queue`` (due time, attempts, lease owner, last error) that leasing, retrying
and acking update (an ack deletes it). A lease pushes the due time forward, so a consumer that
dies makes its records due again without any sweeper; a retry is just a new due time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from eventyard.errors import Unavailable
from eventyard.log.base import (
    DeadRecord,
    ForgetCount,
    LeasedRecord,
    LogRecord,
    Rewrite,
    TopicStats,
    TraceCount,
    TraceEntry,
    Transaction,
)
from eventyard.log.sqlite_schema import COUNT_SECONDS, LATENCY_SECONDS, bin_value, create_or_upgrade
from eventyard.log.sqlite_writer import Append, Writer, insert_records, transact, translate
from eventyard.log.trace_rows import TraceWrite, unpack

_ids = msgspec.json.encode

# Writes run in the writer thread, which has to take the GIL back after every SQLite step (a
# fetched row is a step): while the event loop is busy that wait can last a switch interval.
# So every statement below is one step or two (a single aggregated row), however many records
# it touches: ids go in as one JSON array (``json_each``), and leased records come out as one
# JSON array of their fields plus their payloads concatenated (``group_concat``; the writer
# connection returns text as bytes, so any payload bytes come through unchanged).
# Leasing marks the due records with the lease's end and a token of its own, then reads the
# marked records back by (topic, due time, token) through ``queue_due``.
_MARK_DUE = (
    "UPDATE queue SET available_at = ?, lease_owner = ?, attempts = attempts + 1 "
    "WHERE id IN (SELECT id FROM queue WHERE topic = ? AND state = 0 AND available_at <= ? "
    "ORDER BY available_at, id LIMIT ?)"
)
# A record is leased only when no older unfinished record shares its key (an empty key holds
# nothing back).
_MARK_DUE_ORDERED = (
    "UPDATE queue SET available_at = ?, lease_owner = ?, attempts = attempts + 1 "
    "WHERE id IN (SELECT q.id FROM queue q WHERE q.topic = ? AND q.state = 0 AND q.available_at <= ? "
    "AND (q.key = '' OR NOT EXISTS (SELECT 1 FROM queue p WHERE p.topic = q.topic AND p.key = q.key "
    "AND p.state = 0 AND p.key != '' AND p.id < q.id)) ORDER BY q.available_at, q.id LIMIT ?)"
)
_LEASED = (
    "SELECT json_group_array(json_array(r.id, r.key, printf('%!.17g', r.appended_at), q.attempts, q.error, "
    "length(r.payload))), CAST(group_concat(r.payload, '') AS BLOB) "
    "FROM queue q JOIN records r ON r.id = q.id "
    "WHERE q.topic = ? AND q.state = 0 AND q.available_at = ? AND q.lease_owner = ?"
)
_ACK = "DELETE FROM queue WHERE state = 0 AND id IN (SELECT value FROM json_each(?))"
# (id, reason) pairs as a JSON array of arrays.
_DEAD = (
    "UPDATE queue SET state = 2, lease_owner = NULL, error = json_extract(j.value, '$[1]') "
    "FROM json_each(?) AS j WHERE queue.state = 0 AND queue.id = json_extract(j.value, '$[0]')"
)
# (id, due at, error) triples as a JSON array of arrays.
_RETRY = (
    "UPDATE queue SET available_at = json_extract(j.value, '$[1]'), lease_owner = NULL, "
    "error = json_extract(j.value, '$[2]') "
    "FROM json_each(?) AS j WHERE queue.state = 0 AND queue.id = json_extract(j.value, '$[0]')"
)
_DEAD_OF = (
    "SELECT json_group_object(topic, n) FROM (SELECT topic, count(*) AS n FROM queue "
    "WHERE state = 2 AND id IN (SELECT value FROM json_each(?)) GROUP BY topic)"
)
_REQUEUE = (
    "UPDATE queue SET state = 0, available_at = ?, attempts = 0, lease_owner = NULL "
    "WHERE state = 2 AND id IN (SELECT value FROM json_each(?))"
)
_LIVE_COUNTS = "SELECT topic, count(*) FROM queue WHERE state = 0 GROUP BY topic"
_LEASE_OWNERS = "SELECT DISTINCT lease_owner FROM queue WHERE state = 0 AND lease_owner IS NOT NULL"


def _owner_gone(owner: str, host: str) -> bool:
    """Whether a lease token (``host:pid#nonce``) belongs to a process of this host that no
    longer runs. A pid in use again, or any doubt, counts as running: its lease just expires."""
    consumer = owner.partition("#")[0]
    owner_host, _, pid = consumer.rpartition(":")
    if owner_host != host or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def release_dead_leases(conn: sqlite3.Connection, now: float) -> int:
    """Make the leases of this machine's processes that died (``kill -9``, a crash) due now.

    A restarted server would otherwise wait out the lease of its previous life (deliveries lease
    for minutes) before the jobs it held are tried again. Leases of other machines and of
    running processes are left alone."""
    host = socket.gethostname()
    gone = [o for (o,) in conn.execute(_LEASE_OWNERS).fetchall() if _owner_gone(o, host)]
    if not gone:
        return 0
    marks = ",".join("?" * len(gone))
    release = (
        f"UPDATE queue SET available_at = min(available_at, ?), lease_owner = NULL "
        f"WHERE state = 0 AND lease_owner IN ({marks})"
    )
    return transact(conn, lambda c: c.execute(release, (now, *gone)).rowcount)
# Waiting (unleased) records of a topic, by id, a step at a time.
_WAITING_BOUND = (
    "SELECT max(id) FROM (SELECT id FROM queue WHERE topic = ? AND state = 0 AND lease_owner IS NULL AND id > ? "
    "ORDER BY id LIMIT ?)"
)
_RESCHEDULE = (
    "UPDATE queue SET available_at = ? WHERE topic = ? AND state = 0 AND lease_owner IS NULL AND id > ? AND id <= ?"
)
#: Matching records ``forget`` reads and changes per write transaction.
FORGET_STEP = 500
#: Records ``reschedule_waiting`` changes per transaction.
RESCHEDULE_STEP = 50_000
#: Leased record ids remembered with their topic (for the backlog estimate) at most.
_MAX_LEASED_TOPICS = 1_000_000

_counts = msgspec.json.Decoder(dict[str, int]).decode
_leased = msgspec.json.Decoder(list[tuple[int, str, str, int, str | None, int]]).decode


def _one(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Any:
    """The single value of a one-row, one-column query."""
    return conn.execute(sql, params).fetchall()[0][0]


#: Page cache of the writer connection (KiB): the queue, the indexes' hot pages and a batch.
WRITER_CACHE_KIB = 8 * 1024
#: The interpreter's switch interval while a log runs (seconds). The writer thread gives up
#: the GIL for every SQLite step and must take it back from the event loop; at Python's
#: default of 5 ms a busy loop made each step wait up to 5 ms, and a commit of a few
#: statements took 15-25 ms of which little was work.
SWITCH_INTERVAL = 0.0005


class SQLiteEventLog:
    """The embedded default log: one SQLite file, group-committed writes."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.path = str(path)
        self.synchronous = synchronous.upper()
        if self.synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("synchronous must be FULL, NORMAL or EXTRA")
        self._writer: Writer | None = None
        self._local = threading.local()
        self._backlog: dict[str, int] = {}
        self._backlog_lock = threading.Lock()
        self._started = False
        # Topic of each record leased through this instance and not finished yet.
        self._leased: dict[int, str] = {}
        self._leases = itertools.count(1)
        self._nonce = secrets.token_hex(4)

    # ----------------------------------------------------------------- lifecycle

    def _connect(self, cache_kib: int | None = None) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        if cache_kib:
            conn.execute(f"PRAGMA cache_size=-{cache_kib}")
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        conn = self._connect(WRITER_CACHE_KIB)
        conn.execute("PRAGMA busy_timeout=0")  # the writer waits for other processes itself
        conn.text_factory = bytes
        return conn

    async def start(self) -> None:
        if self._started:
            return
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)

        def prepare() -> list[Any]:
            conn = self._connect()
            try:
                create_or_upgrade(conn)
                release_dead_leases(conn, self.clock())
                return conn.execute(_LIVE_COUNTS).fetchall()
            except sqlite3.Error as exc:
                raise translate(exc) from exc
            finally:
                conn.close()

        rows = await asyncio.to_thread(prepare)
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        self._backlog = {topic: n for topic, n in rows if n}
        self._writer = Writer(self._connect_writer, self.path + "-writer.lock")
        self._writer.start()
        self._started = True

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        if self._writer is not None:
            await self._writer.stop()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()

    async def _write(self, fn: Callable[[sqlite3.Connection], Any] | Append) -> Any:
        if not self._started or self._writer is None:
            raise Unavailable("the event log is not started")
        return await self._writer.write(fn)

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
                raise translate(exc) from exc

        return await asyncio.to_thread(run)

    # ------------------------------------------------------------- backlog

    def _adjust_backlog(self, changes: dict[str, int], sign: int) -> None:
        if not changes:
            return
        with self._backlog_lock:
            for topic, n in changes.items():
                self._backlog[topic] = max(0, self._backlog.get(topic, 0) + sign * n)

    def backlog_estimate(self, topic: str) -> int:
        return self._backlog.get(topic, 0)

    def backlog_topics(self) -> list[str]:
        return sorted(self._backlog)

    async def refresh_backlog(self) -> None:
        """Recount unfinished records (other processes may have acked some).

        Only ``queue`` is counted, through its ``queue_due`` index: the cost follows the
        unfinished records, not every processed record kept for the retention period.
        """
        rows = await self._read(_LIVE_COUNTS, ())
        with self._backlog_lock:
            self._backlog = {topic: n for topic, n in rows if n}

    # ----------------------------------------------------------------- contract

    async def append(self, topic: str, records: Sequence[tuple[str, bytes]], archive: bool = False) -> list[int]:
        if not records:
            return []
        op = Append([(topic, key, payload) for key, payload in records], self.clock(), not archive)
        ids: list[int] = await self._write(op)
        if not archive:
            self._adjust_backlog({topic: len(ids)}, +1)
        return ids

    async def lease(
        self, topic: str, consumer: str, limit: int, lease_seconds: float = 30.0, ordered: bool = False
    ) -> list[LeasedRecord]:
        if limit <= 0:
            return []
        mark = _MARK_DUE_ORDERED if ordered else _MARK_DUE
        token = f"{consumer}#{self._nonce}{next(self._leases)}"

        def run(conn: sqlite3.Connection) -> tuple[bytes, bytes | None]:
            now = self.clock()
            until = now + lease_seconds
            if not conn.execute(mark, (until, token, topic, now, limit)).rowcount:
                return b"[]", None
            row = conn.execute(_LEASED, (topic, until, token)).fetchall()[0]
            return row[0], row[1]

        got: tuple[bytes, bytes | None] = await self._write(run)
        fields, payloads = got
        if payloads is None:
            return []
        out = []
        offset = 0
        leased = self._leased
        for rid, key, appended_at, attempts, error, size in _leased(fields):
            end = offset + size
            out.append(LeasedRecord(rid, topic, key, payloads[offset:end], float(appended_at), attempts, error))
            offset = end
            leased[rid] = topic
        out.sort(key=lambda r: r.id)
        if len(leased) > _MAX_LEASED_TOPICS:
            leased.clear()
        return out

    async def commit(self, tx: Transaction) -> list[int]:
        now = self.clock()
        appended = Append(tx.appends, now, True) if tx.appends else None
        acks = _ids(list(tx.ack)) if tx.ack else None
        dead = _ids(tx.dead) if tx.dead else None
        retry = _ids(tx.retry) if tx.retry else None
        trace = TraceWrite(tx.trace, now) if tx.trace else None

        def run(conn: sqlite3.Connection) -> tuple[list[int], int, int]:
            ids = insert_records(conn, [appended])[0] if appended is not None else []
            acked = conn.execute(_ACK, (acks,)).rowcount if acks is not None else 0
            dead_lettered = conn.execute(_DEAD, (dead,)).rowcount if dead is not None else 0
            if retry is not None:
                conn.execute(_RETRY, (retry,))
            if trace is not None:
                trace.apply(conn)
            return ids, acked, dead_lettered

        result: tuple[list[int], int, int] = await self._write(run)
        ids, acked, dead_lettered = result
        if tx.appends:
            added: dict[str, int] = {}
            for topic, _, _ in tx.appends:
                added[topic] = added.get(topic, 0) + 1
            self._adjust_backlog(added, +1)
        self._finished(tx.ack, acked)
        self._finished([rid for rid, _ in tx.dead], dead_lettered)
        for rid, _, _ in tx.retry:
            self._leased.pop(rid, None)
        return ids

    def _finished(self, ids: Sequence[int], changed: int) -> None:
        """Take finished records off the backlog estimate, by the topics they were leased from.

        When the log changed fewer rows than were named (some were finished elsewhere), the
        estimate is left for ``refresh_backlog`` to correct.
        """
        if not ids:
            return
        counts: dict[str, int] = {}
        leased = self._leased
        for rid in ids:
            topic = leased.pop(rid, None)
            if topic is not None:
                counts[topic] = counts.get(topic, 0) + 1
        if sum(counts.values()) == changed:
            self._adjust_backlog(counts, -1)

    async def ack(self, ids: Sequence[int]) -> None:
        if ids:
            await self.commit(Transaction(ack=list(ids)))

    async def dead_letter(self, ids: Sequence[int], reason: str) -> None:
        if ids:
            await self.commit(Transaction(dead=[(rid, reason) for rid in ids]))

    async def retry(self, ids: Sequence[int], at: float, error: str) -> None:
        if ids:
            await self.commit(Transaction(retry=[(rid, at, error) for rid in ids]))

    async def reschedule_waiting(self, topic: str, at: float) -> int:
        # In steps of RESCHEDULE_STEP records, oldest first, each its own transaction: one
        # UPDATE of a million queue rows held every other write (ingest included) for seconds.
        def step(after: int) -> Callable[[sqlite3.Connection], tuple[int, int]]:
            def run(conn: sqlite3.Connection) -> tuple[int, int]:
                bound = conn.execute(_WAITING_BOUND, (topic, after, RESCHEDULE_STEP)).fetchall()[0][0]
                if bound is None:
                    return 0, after
                changed = conn.execute(_RESCHEDULE, (at, topic, after, bound)).rowcount
                return changed, bound

            return run

        total, after = 0, 0
        while True:
            done: tuple[int, int] = await self._write(step(after))
            changed, bound = done
            if bound == after:
                return total
            total, after = total + changed, bound

    async def requeue(self, ids: Sequence[int]) -> int:
        if not ids:
            return 0
        id_list = _ids(list(ids))

        def run(conn: sqlite3.Connection) -> bytes:
            counts: bytes = _one(conn, _DEAD_OF, (id_list,))
            conn.execute(_REQUEUE, (self.clock(), id_list))
            return counts

        changed = _counts(await self._write(run))
        self._adjust_backlog(changed, +1)
        return sum(changed.values())

    async def dead_letters(self, topic: str, limit: int = 100, after: int = 0) -> list[DeadRecord]:
        rows = await self._read(
            "SELECT q.id, r.topic, r.key, r.payload, r.appended_at, q.attempts, q.error "
            "FROM queue q JOIN records r ON r.id = q.id "
            "WHERE q.topic = ? AND q.state = 2 AND q.id > ? ORDER BY q.id LIMIT ?",
            (topic, after, limit),
        )
        return [DeadRecord(r[0], r[1], r[2], bytes(r[3]), r[4], r[5], r[6] or "") for r in rows]

    # ------------------------------------------------------------------ trace

    async def trace(self, message_id: str) -> list[TraceEntry]:
        sql = "SELECT at, entries FROM trace WHERE message_id = ? ORDER BY rowid"
        return unpack(await self._read(sql, (message_id,)))

    async def trace_counts(self, since: float, bucket_seconds: int = 300) -> list[TraceCount]:
        # Counts are kept per 10 s: a 10 s bucket that ends after `since` counts whole.
        rows = await self._read(
            "SELECT (bucket / ?) * ?, destination_id, step, reason, sum(count) FROM trace_counts "
            "WHERE bucket > ? GROUP BY 1, 2, 3, 4 ORDER BY 1",
            (bucket_seconds, bucket_seconds, since - COUNT_SECONDS),
        )
        return [TraceCount(float(r[0]), r[1], r[2], r[3], int(r[4])) for r in rows]

    async def delivery_latencies(self, destination_id: str, since: float) -> list[tuple[float, int]]:
        rows = await self._read(
            "SELECT bin, sum(count) FROM delivery_latency WHERE destination_id = ? AND bucket > ? GROUP BY bin "
            "ORDER BY bin",
            (destination_id, since - LATENCY_SECONDS),
        )
        return [(bin_value(int(b)), int(n)) for b, n in rows]

    # ------------------------------------------------------------------ reads

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

    async def read(self, topic: str, after: int = 0, limit: int = 100, key: str | None = None) -> list[LogRecord]:
        if key is None:
            rows = await self._read(
                "SELECT id, topic, key, payload, appended_at FROM records "
                "WHERE topic = ? AND id > ? ORDER BY id LIMIT ?",
                (topic, after, limit),
            )
        else:
            rows = await self._read(
                "SELECT id, topic, key, payload, appended_at FROM records "
                "WHERE topic = ? AND id > ? AND key = ? ORDER BY id LIMIT ?",
                (topic, after, key, limit),
            )
        return [LogRecord(r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]

    async def latest(self, topic: str, limit: int = 50, key: str | None = None) -> list[LogRecord]:
        if key is None:
            sql = "SELECT id, topic, key, payload, appended_at FROM records WHERE topic = ? ORDER BY id DESC LIMIT ?"
            params: tuple[Any, ...] = (topic, limit)
        else:
            # Bounded to the topic's newest 200,000 records, so a quiet key cannot cost a full scan.
            sql = (
                "SELECT r.id, r.topic, r.key, r.payload, r.appended_at FROM "
                "(SELECT id FROM records WHERE topic = ? ORDER BY id DESC LIMIT 200000) AS n "
                "JOIN records r ON r.id = n.id WHERE r.key = ? ORDER BY r.id DESC LIMIT ?"
            )
            params = (topic, key, limit)
        rows = await self._read(sql, params)
        return [LogRecord(r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]

    async def last_id(self) -> int:
        rows = await self._read("SELECT coalesce(max(id), 0) FROM records", ())
        return int(rows[0][0])

    async def stats(self, topic: str) -> TopicStats:
        now = self.clock()
        rows = await self._read(
            "SELECT "
            "coalesce(sum(state = 0 AND available_at <= ?), 0), "
            "coalesce(sum(state = 0 AND available_at > ? AND lease_owner IS NOT NULL), 0), "
            "coalesce(sum(state = 0 AND available_at > ? AND lease_owner IS NULL), 0), "
            "coalesce(sum(state = 2), 0), count(*), "
            "(SELECT count(*) FROM records WHERE topic = ?) "
            "FROM queue WHERE topic = ?",
            (now, now, now, topic, topic),
        )
        ready, leased, scheduled, dead, unfinished, total = (int(x) for x in rows[0])
        return TopicStats(topic, ready, leased, scheduled, max(0, total - unfinished), dead)

    async def topics(self) -> list[str]:
        rows = await self._read(
            "WITH RECURSIVE t(topic) AS (SELECT (SELECT min(topic) FROM records) "
            "UNION ALL SELECT (SELECT min(topic) FROM records WHERE topic > t.topic) FROM t WHERE topic IS NOT NULL) "
            "SELECT topic FROM t WHERE topic IS NOT NULL",
            (),
        )
        return [r[0] for r in rows]

    # ----------------------------------------------------------- housekeeping

    async def purge_acked(self, older_than: float) -> int:
        # Ids (and trace rowids) grow with time: the last one written before `older_than` bounds
        # each delete to a key range, instead of a scan of the whole table inside the writer
        # thread. The time condition stays in the statements, so a clock step back can only leave
        # an old row for the next run, never delete a young one.
        bound = await self._last_before("records", "id", "appended_at", older_than)
        trace_bound = await self._last_before("trace", "rowid", "at", older_than)

        def run(conn: sqlite3.Connection) -> tuple[int, int]:
            records = conn.execute(
                "DELETE FROM records WHERE id IN (SELECT id FROM records r WHERE id <= ? AND appended_at < ? "
                "AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.id = r.id) ORDER BY id LIMIT 20000)",
                (bound, older_than),
            ).rowcount
            traces = conn.execute(
                "DELETE FROM trace WHERE rowid IN (SELECT rowid FROM trace WHERE rowid <= ? AND at < ? "
                "ORDER BY rowid LIMIT 20000)",
                (trace_bound, older_than),
            ).rowcount
            conn.execute("DELETE FROM trace_counts WHERE bucket <= ?", (older_than - COUNT_SECONDS,))
            conn.execute("DELETE FROM delivery_latency WHERE bucket <= ?", (older_than - LATENCY_SECONDS,))
            return records, traces

        total = 0
        while True:
            done: tuple[int, int] = await self._write(run)
            records, traces = done
            total += records
            if records < 20000 and traces < 20000:
                return total

    async def _last_before(self, table: str, key: str, column: str, at: float) -> int:
        """The largest ``key`` of ``table`` whose row's ``column`` is before ``at`` (0 if none),
        by binary search on the key (rows are written in time order)."""
        first = f"SELECT {key}, {column} FROM {table} WHERE {key} >= ? ORDER BY {key} LIMIT 1"
        bounds = await self._read(f"SELECT coalesce(min({key}), 0), coalesce(max({key}), 0) FROM {table}", ())
        lo, hi = int(bounds[0][0]), int(bounds[0][1]) + 1
        while lo < hi:
            mid = (lo + hi) // 2
            found = await self._read(first, (mid,))
            if found and found[0][1] < at:
                lo = int(found[0][0]) + 1
            else:
                hi = mid
        return max(0, lo - 1)

    # ------------------------------------------------------------- regulations

    async def forget(self, needles: Sequence[bytes], rewrite: Rewrite) -> dict[str, ForgetCount]:
        """See ``EventLog.forget``: payloads are changed in place, a step of
        ``FORGET_STEP`` matching records per write transaction (found by ``instr`` on the
        stored bytes, a scan of ``records`` outside the writer thread)."""
        if not needles:
            return {}
        match = " OR ".join("instr(r.payload, ?) > 0" for _ in needles)
        sql = (
            "SELECT r.id, r.topic, r.key, r.payload, r.appended_at, q.state FROM records r "
            f"LEFT JOIN queue q ON q.id = r.id WHERE r.id > ? AND ({match}) ORDER BY r.id LIMIT ?"
        )
        blobs = [bytes(n) for n in needles]
        counts: dict[str, ForgetCount] = {}
        after = 0
        while True:
            rows = await self._read(sql, (after, *blobs, FORGET_STEP))
            if not rows:
                return counts
            after = int(rows[-1][0])
            gone: list[tuple[int, str, int | None]] = []
            changed: list[tuple[bytes, int]] = []
            for rid, topic, key, payload, appended_at, state in rows:
                payload = bytes(payload)
                new = rewrite(LogRecord(rid, topic, key, payload, appended_at))
                if new is None:
                    gone.append((rid, topic, state))
                elif new != payload:
                    changed.append((bytes(new), rid))
                else:
                    continue
                done = counts.get(topic, ForgetCount())
                counts[topic] = (
                    ForgetCount(done.deleted + 1, done.rewritten)
                    if new is None
                    else ForgetCount(done.deleted, done.rewritten + 1)
                )
            if gone or changed:
                await self._apply_forget(gone, changed)

    async def _apply_forget(self, gone: list[tuple[int, str, int | None]], changed: list[tuple[bytes, int]]) -> None:
        ids = _ids([rid for rid, _, _ in gone])

        def run(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM queue WHERE id IN (SELECT value FROM json_each(?))", (ids,))
            deleted = conn.execute("DELETE FROM records WHERE id IN (SELECT value FROM json_each(?))", (ids,)).rowcount
            conn.executemany("UPDATE records SET payload = ? WHERE id = ?", changed)
            return int(deleted)

        await self._write(run)
        live: dict[str, int] = {}
        for rid, topic, state in gone:
            self._leased.pop(rid, None)
            if state == 0:
                live[topic] = live.get(topic, 0) + 1
        self._adjust_backlog(live, -1)

    def disk_bytes(self) -> int:
        """Size of the log's files on disk (database and write-ahead log)."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                total += os.path.getsize(self.path + suffix)
        return total
