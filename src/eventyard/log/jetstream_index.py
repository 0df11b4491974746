"""The part of the JetStream log kept in PostgreSQL: queue state and traces.

JetStream holds the records. What it cannot hold is kept here, in a schema of its own
(``<prefix>_log``): per-record queue state for records that were taken in for processing
(lease owner and expiry, attempts, retry time and last error, dead letters with a copy of their
payload), which gives exact per-key ordered leasing, ack by id from any process, retries at any
time and exact counts; and the trace entries, queried by messageId and counted for the overview.
A record in the stream with no row here is either not taken in yet (the intake consumer has it)
or finished (acked).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
import psycopg
from psycopg import sql

from eventyard.errors import Unavailable
from eventyard.log.base import TraceCount, TraceEntry

SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS queue (
    id BIGINT PRIMARY KEY,
    topic TEXT NOT NULL,
    key TEXT NOT NULL,
    appended_at DOUBLE PRECISION NOT NULL,
    available_at DOUBLE PRECISION NOT NULL,
    state SMALLINT NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    error TEXT,
    payload BYTEA
);
CREATE INDEX IF NOT EXISTS queue_due ON queue (topic, available_at, id) WHERE state = 0;
CREATE INDEX IF NOT EXISTS queue_key ON queue (topic, key, id) WHERE state = 0 AND key <> '';
CREATE INDEX IF NOT EXISTS queue_dead ON queue (topic, id) WHERE state = 2;
CREATE TABLE IF NOT EXISTS trace (
    n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    destination_id TEXT NOT NULL,
    step TEXT NOT NULL,
    reason TEXT NOT NULL,
    latency_ms DOUBLE PRECISION,
    entry TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS trace_message ON trace (message_id);
CREATE TABLE IF NOT EXISTS rewritten (
    id BIGINT PRIMARY KEY,
    topic TEXT NOT NULL,
    key TEXT NOT NULL,
    appended_at DOUBLE PRECISION NOT NULL,
    payload BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS rewritten_topic ON rewritten (topic, id);
CREATE INDEX IF NOT EXISTS trace_at ON trace (at);
"""

_LOCK = 0x6579_6C67  # advisory lock while creating the schema
_INTAKE_LOCK = 0x6579_696E  # advisory locks (with the topic) around intake and purges
_PURGE_LOCK_TIMEOUT = "10s"

#: (id, key, appended_at, attempts, error, payload)
Row = tuple[int, str, float, int, str | None, bytes | None]
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(TraceEntry)


def _ids(ids: Sequence[int] | set[int]) -> str:
    """Ids as an array literal (``{1,2,3}``) for ``%s::int8[]``: one text parameter is far
    cheaper to send than a list psycopg dumps element by element in Python."""
    return "{" + ",".join(map(str, ids)) + "}"


def _json(rows: object) -> str:
    """Rows as one JSON text for ``json_array_elements(%s::json)`` (the same reason)."""
    return _encoder.encode(rows).decode()


class Index:
    """A few async connections to PostgreSQL, handed out one per call."""

    def __init__(self, dsn: str, schema: str, size: int = 4) -> None:
        self.dsn = dsn
        self.schema = schema
        self.size = size
        self._idle: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
        self._slots = asyncio.Semaphore(size)
        self._open: list[psycopg.AsyncConnection[Any]] = []

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=10,
                application_name="eventyard-log",
                options=f"-c search_path={self.schema}",
            )
        except psycopg.Error as exc:
            raise Unavailable(f"cannot connect to PostgreSQL for the log's index: {exc}") from exc
        self._open.append(conn)
        return conn

    async def start(self) -> None:
        conn = await self._connect()
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
                await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        await conn.execute(statement.encode())
        except psycopg.Error as exc:
            raise Unavailable(f"cannot prepare the log's index schema {self.schema!r}: {exc}") from exc
        self._idle.put_nowait(conn)

    async def close(self) -> None:
        conns, self._open = self._open, []
        for conn in conns:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def drop(self) -> None:
        async with self._tx() as conn:
            await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection of the pool for the length of the block (closed if PostgreSQL failed)."""
        async with self._slots:
            conn = self._idle.get_nowait() if not self._idle.empty() else await self._connect()
            try:
                yield conn
            except psycopg.Error as exc:
                with contextlib.suppress(psycopg.Error):
                    await conn.close()
                raise Unavailable(f"the log's index in PostgreSQL failed: {exc}") from exc
            if not conn.closed:
                self._idle.put_nowait(conn)

    @contextlib.asynccontextmanager
    async def _tx(
        self, conn: psycopg.AsyncConnection[Any] | None = None
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A transaction, on ``conn`` when given (one the caller holds), else on a pooled one."""
        if conn is not None:
            try:
                async with conn.transaction():
                    yield conn
            except psycopg.Error as exc:
                raise Unavailable(f"the log's index in PostgreSQL failed: {exc}") from exc
            return
        async with self._conn() as c, c.transaction():
            yield c

    @contextlib.asynccontextmanager
    async def intake(self, topic: str, exclusive: bool = False) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """Hold ``topic``'s intake lock: shared while a process pulls records from the intake
        consumer until it has acked them, exclusive while processed records are purged.

        nats-server before 2.9.15 forgets every delivery still awaiting its ack when a purge
        touches the consumer's subjects (the records are then never handed out again), so a
        purge runs only while nobody is between pull and ack; see ``JetStreamEventLog.purge_acked``.
        Yields the connection that holds the lock (usable for the intake's own transaction).
        """
        key = (_INTAKE_LOCK, f"{self.schema}/{topic}")
        mode = "" if exclusive else "_shared"
        async with self._conn() as conn:
            if exclusive:
                # Waits for the pulls in progress (milliseconds); new ones queue behind it.
                await conn.execute(f"SET lock_timeout = '{_PURGE_LOCK_TIMEOUT}'")
                try:
                    await conn.execute(f"SELECT pg_advisory_lock{mode}(%s, hashtext(%s))", key)
                finally:
                    await conn.execute("RESET lock_timeout")
            else:
                await conn.execute(f"SELECT pg_advisory_lock{mode}(%s, hashtext(%s))", key)
            try:
                yield conn
            finally:
                try:
                    await conn.execute(f"SELECT pg_advisory_unlock{mode}(%s, hashtext(%s))", key)
                except BaseException:
                    # Closing the session releases its locks.
                    with contextlib.suppress(psycopg.Error):
                        await conn.close()
                    raise

    # ------------------------------------------------------------------ leasing

    async def register(self, topic: str) -> None:
        async with self._tx() as c:
            await c.execute("INSERT INTO topics (name) VALUES (%s) ON CONFLICT DO NOTHING", (topic,))

    async def topics(self) -> list[str]:
        async with self._tx() as c:
            cur = await c.execute("SELECT name FROM topics ORDER BY name")
            return [r[0] for r in await cur.fetchall()]

    async def take_in_and_lease(
        self,
        topic: str,
        new: Sequence[tuple[int, str, float]],
        consumer: str,
        limit: int,
        now: float,
        lease_seconds: float,
        ordered: bool,
        floor: int | None,
        conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> list[Row]:
        """Add rows for newly taken-in records, then lease up to ``limit`` due records.

        ``floor``: for ordered leasing, the highest id below which every record is known to
        have its row (so an older record of the same key cannot be missing). ``conn``: the
        connection holding the topic's intake lock, if the caller holds it.
        """
        async with self._tx(conn) as c:
            if new:
                await c.execute(
                    "INSERT INTO queue (id, topic, key, appended_at, available_at) "
                    "SELECT (e->>0)::int8, %s, e->>1, (e->>2)::float8, (e->>2)::float8 "
                    "FROM json_array_elements(%s::json) AS e ON CONFLICT (id) DO NOTHING",
                    (topic, _json(new)),
                )
            if limit <= 0:
                return []
            order = ""
            params: list[Any] = [topic, now]
            if ordered:
                order = (
                    " AND q.id <= %s AND (q.key = '' OR NOT EXISTS (SELECT 1 FROM queue o WHERE o.topic = q.topic"
                    " AND o.key = q.key AND o.state = 0 AND o.id < q.id))"
                )
                params.append(floor if floor is not None else 0)
            params += [limit, now + lease_seconds, consumer]
            cur = await c.execute(
                "WITH c AS (SELECT q.id FROM queue q WHERE q.topic = %s AND q.state = 0 AND q.available_at <= %s"
                + order
                + " ORDER BY q.available_at, q.id LIMIT %s FOR UPDATE SKIP LOCKED) "
                "UPDATE queue SET available_at = %s, owner = %s, attempts = queue.attempts + 1 FROM c "
                "WHERE queue.id = c.id RETURNING queue.id, queue.key, queue.appended_at, queue.attempts, "
                "queue.error, queue.payload",
                params,
            )
            rows = await cur.fetchall()
        return sorted((r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows)

    async def finish(
        self,
        ack: Sequence[int],
        retry: Sequence[tuple[int, float, str]],
        dead: Sequence[tuple[int, str, bytes | None]],
        trace: Sequence[TraceEntry],
        now: float,
    ) -> tuple[dict[str, int], set[int]]:
        """Ack, reschedule, dead-letter and trace in one transaction.

        Returns, per topic, how many records left the backlog, and the ids that matched no row
        at all (not taken in yet, or already finished).
        """
        done: dict[str, int] = {}
        wanted = {*ack, *(r[0] for r in retry), *(d[0] for d in dead)}
        if not wanted and not trace:
            return done, set()
        async with self._tx() as c:
            if wanted:
                cur = await c.execute("SELECT id FROM queue WHERE id = ANY(%s::int8[])", (_ids(wanted),))
                known = {r[0] for r in await cur.fetchall()}
            else:
                known = set()
            if ack:
                cur = await c.execute(
                    "DELETE FROM queue WHERE id = ANY(%s::int8[]) AND state = 0 RETURNING topic", (_ids(ack),)
                )
                for (topic,) in await cur.fetchall():
                    done[topic] = done.get(topic, 0) + 1
            if retry:
                await c.execute(
                    "UPDATE queue SET available_at = (e->>1)::float8, owner = NULL, error = e->>2 "
                    "FROM json_array_elements(%s::json) AS e "
                    "WHERE queue.id = (e->>0)::int8 AND queue.state = 0",
                    (_json(retry),),
                )
            if dead:
                cur = await c.execute(
                    "UPDATE queue SET state = 2, owner = NULL, error = t.reason, payload = t.payload "
                    "FROM unnest(%s::int8[], %s::text[], %s::bytea[]) AS t(i, reason, payload) "
                    "WHERE queue.id = t.i AND queue.state = 0 RETURNING queue.topic",
                    ([d[0] for d in dead], [d[1] for d in dead], [d[2] for d in dead]),
                )
                for (topic,) in await cur.fetchall():
                    done[topic] = done.get(topic, 0) + 1
            if trace:
                await self._add_trace(c, trace, now)
        return done, wanted - known

    async def _add_trace(self, c: psycopg.AsyncConnection[Any], trace: Sequence[TraceEntry], now: float) -> None:
        # TraceEntry encodes as a JSON array: [message_id, source_id, step, destination_id,
        # reason, detail, attempt, latency_ms, at]; the row keeps the columns it is queried by.
        entries = [e if e.at else msgspec.structs.replace(e, at=now) for e in trace]
        await c.execute(
            "INSERT INTO trace (message_id, at, destination_id, step, reason, latency_ms, entry) "
            "SELECT e->>0, (e->>8)::float8, e->>3, e->>2, e->>4, (e->>7)::float8, e::text "
            "FROM json_array_elements(%s::json) AS e",
            (_json(entries),),
        )

    async def dead_letters(self, topic: str, limit: int, after: int) -> list[tuple[Any, ...]]:
        async with self._tx() as c:
            cur = await c.execute(
                "SELECT id, key, payload, appended_at, attempts, error FROM queue "
                "WHERE topic = %s AND state = 2 AND id > %s ORDER BY id LIMIT %s",
                (topic, after, limit),
            )
            return list(await cur.fetchall())

    async def requeue(self, ids: Sequence[int], now: float) -> dict[str, int]:
        async with self._tx() as c:
            cur = await c.execute(
                "UPDATE queue SET state = 0, available_at = %s, attempts = 0, owner = NULL "
                "WHERE id = ANY(%s::int8[]) AND state = 2 RETURNING topic",
                (now, _ids(ids)),
            )
            out: dict[str, int] = {}
            for (topic,) in await cur.fetchall():
                out[topic] = out.get(topic, 0) + 1
            return out

    async def reschedule(self, topic: str, at: float) -> int:
        async with self._tx() as c:
            cur = await c.execute(
                "UPDATE queue SET available_at = %s WHERE topic = %s AND state = 0 AND owner IS NULL", (at, topic)
            )
            return cur.rowcount

    async def counts(self, topic: str, now: float) -> tuple[int, int, int, int]:
        """(ready, leased, scheduled, dead) among the rows of ``topic``."""
        async with self._tx() as c:
            cur = await c.execute(
                "SELECT count(*) FILTER (WHERE state = 0 AND available_at <= %s), "
                "count(*) FILTER (WHERE state = 0 AND available_at > %s AND owner IS NOT NULL), "
                "count(*) FILTER (WHERE state = 0 AND available_at > %s AND owner IS NULL), "
                "count(*) FILTER (WHERE state = 2) FROM queue WHERE topic = %s",
                (now, now, now, topic),
            )
            row = await cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    async def oldest_live(self, topic: str) -> int | None:
        async with self._tx() as c:
            cur = await c.execute("SELECT min(id) FROM queue WHERE topic = %s AND state = 0", (topic,))
            row = await cur.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # ------------------------------------------------------------ forgetting

    async def rewritten(self, topic: str, after: int, limit: int, key: str | None) -> list[tuple[Any, ...]]:
        """Records of ``topic`` whose payload was rewritten (the stream no longer holds them)."""
        async with self._tx() as c:
            cur = await c.execute(
                "SELECT id, key, payload, appended_at FROM rewritten WHERE topic = %s AND id > %s "
                "AND (%s::text IS NULL OR key = %s) ORDER BY id LIMIT %s",
                (topic, after, key, key, limit),
            )
            return list(await cur.fetchall())

    async def kept_payloads(self, topic: str) -> list[tuple[int, str, float, bytes]]:
        """Payloads held here rather than in the stream: rewritten records and dead letters."""
        async with self._tx() as c:
            cur = await c.execute(
                "SELECT id, key, appended_at, payload FROM rewritten WHERE topic = %s UNION "
                "SELECT id, key, appended_at, payload FROM queue WHERE topic = %s AND payload IS NOT NULL "
                "AND id NOT IN (SELECT id FROM rewritten WHERE topic = %s) ORDER BY 1",
                (topic, topic, topic),
            )
            return [(r[0], r[1], r[2], bytes(r[3])) for r in await cur.fetchall()]

    async def forget_rows(
        self, topic: str, deleted: Sequence[int], rewritten: Sequence[tuple[int, str, float, bytes]]
    ) -> int:
        """Delete rows of erased records; store rewritten payloads. Returns how many live rows
        were deleted (they leave the backlog)."""
        async with self._tx() as c:
            gone = 0
            if deleted:
                cur = await c.execute("DELETE FROM queue WHERE id = ANY(%s::int8[]) RETURNING state", (_ids(deleted),))
                gone = sum(1 for (state,) in await cur.fetchall() if state == 0)
                await c.execute("DELETE FROM rewritten WHERE id = ANY(%s::int8[])", (_ids(deleted),))
            if rewritten:
                ids, keys, ats, payloads = ([r[i] for r in rewritten] for i in range(4))
                await c.execute(
                    "INSERT INTO rewritten (id, topic, key, appended_at, payload) "
                    "SELECT i, %s, k, a, p FROM unnest(%s::int8[], %s::text[], %s::float8[], %s::bytea[]) "
                    "AS t(i, k, a, p) ON CONFLICT (id) DO UPDATE SET payload = excluded.payload",
                    (topic, ids, keys, ats, payloads),
                )
                await c.execute(
                    "UPDATE queue SET payload = t.p FROM unnest(%s::int8[], %s::bytea[]) AS t(i, p) "
                    "WHERE queue.id = t.i",
                    (ids, payloads),
                )
            return gone

    async def purge_rewritten(self, older_than: float) -> int:
        async with self._tx() as c:
            cur = await c.execute(
                "DELETE FROM rewritten WHERE appended_at < %s AND id NOT IN (SELECT id FROM queue)", (older_than,)
            )
            return cur.rowcount

    # -------------------------------------------------------------------- trace

    async def add_trace(self, trace: Sequence[TraceEntry], now: float) -> None:
        async with self._tx() as c:
            await self._add_trace(c, trace, now)

    async def trace(self, message_id: str) -> list[TraceEntry]:
        async with self._tx() as c:
            cur = await c.execute("SELECT entry FROM trace WHERE message_id = %s ORDER BY at, n", (message_id,))
            return [_decoder.decode(r[0]) for r in await cur.fetchall()]

    async def trace_counts(self, since: float, bucket: int) -> list[TraceCount]:
        async with self._tx() as c:
            cur = await c.execute(
                "SELECT floor(at / %s) * %s AS b, destination_id, step, reason, count(*) FROM trace "
                "WHERE at >= %s GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
                (bucket, bucket, since),
            )
            return [TraceCount(float(r[0]), r[1], r[2], r[3], int(r[4])) for r in await cur.fetchall()]

    async def latencies(self, destination_id: str, since: float) -> list[tuple[float, int]]:
        async with self._tx() as c:
            cur = await c.execute(
                "SELECT latency_ms, count(*) FROM trace WHERE step = 'delivered' AND destination_id = %s "
                "AND at >= %s AND latency_ms IS NOT NULL GROUP BY 1 ORDER BY 1",
                (destination_id, since),
            )
            return [(float(r[0]), int(r[1])) for r in await cur.fetchall()]

    async def purge_trace(self, older_than: float) -> int:
        async with self._tx() as c:
            cur = await c.execute("DELETE FROM trace WHERE at < %s", (older_than,))
            return cur.rowcount
