"""EventLog on NATS JetStream (records) with its queue index in PostgreSQL.

The scale-out log. Every record is a message in one replicated JetStream stream; its stream
sequence is its id. ``append`` returns once JetStream acknowledged the publish (with
``replicas=3``, once a majority of the cluster stored it), so a collect process needs only
NATS on the request path.

Processing goes through two steps:

1. *Intake*: each topic has a durable pull consumer. A process that leases pulls the topic's
   new records from it, adds a queue row per record to PostgreSQL and only then acks the pull,
   so a process that dies mid-way leaves the records to JetStream, which hands them to another
   process after ``INTAKE_ACK_WAIT``; rows are inserted idempotently.
2. *Leasing* runs in PostgreSQL (``jetstream_index``) with ``FOR UPDATE SKIP LOCKED``: due
   rows oldest first, per-key ordering, lease expiry, retries at a stored time, dead letters.
   Payloads of freshly taken-in records come with the pull; others are read from the stream.

``commit`` publishes its appends first (with a ``Nats-Msg-Id``: the append's idempotency name,
such as event position and destination, or else one derived from the records it finishes, so
a batch processed again after a crash is not appended twice inside the stream's duplicate
window), then acks/retries/dead-letters and writes the trace in one PostgreSQL transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence

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
from eventyard.log.jetstream_forget import forget
from eventyard.log.jetstream_index import Index
from eventyard.log.jetstream_names import LogUrl, Names, frame, unframe
from eventyard.log.jetstream_stream import Delivered, Stream

_PAGE = 1000
log = logging.getLogger(__name__)


def _tx_digest(tx: Transaction) -> str | None:
    """A stable name for the records a transaction finishes (``None`` when it finishes none)."""
    inputs = sorted({*tx.ack, *(r[0] for r in tx.retry), *(d[0] for d in tx.dead)})
    if not inputs:
        return None
    return hashlib.sha1(",".join(map(str, inputs)).encode()).hexdigest()


def _msg_ids(tx: Transaction) -> list[str | None]:
    """The ``Nats-Msg-Id`` of each append: its idempotency name when the transaction gives
    them (the same job of the same event, however the batch was composed), else one made from
    the records the transaction finishes and the append's place."""
    if tx.idempotency and len(tx.idempotency) == len(tx.appends):
        return list(tx.idempotency)
    digest = _tx_digest(tx)
    return [f"{digest}:{i}" if digest else None for i in range(len(tx.appends))]


class JetStreamEventLog:
    """``url``: ``nats://host:4222[,nats://...][?prefix=eventyard&replicas=3]``;
    ``index_dsn``: the PostgreSQL database that holds queue state and traces."""

    def __init__(
        self,
        url: str,
        index_dsn: str,
        *,
        prefix: str | None = None,
        replicas: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        parsed = LogUrl(url)
        self.names = Names(prefix or parsed.prefix)
        self.max_lease = parsed.max_lease
        self.stream = Stream(parsed.servers, self.names, replicas or parsed.replicas, parsed.max_lease)
        self.index = Index(index_dsn, self.names.schema)
        self.clock = clock
        self._backlog: dict[str, int] = {}
        self._registered: set[str] = set()

    async def start(self) -> None:
        await self.index.start()
        await self.stream.start()

    async def close(self) -> None:
        await self.stream.close()
        await self.index.close()

    async def drop(self) -> None:
        """Delete the stream and the index schema (tests, and users starting over)."""
        await self.stream.delete()
        await self.index.drop()

    async def _register(self, topic: str) -> None:
        if topic not in self._registered:
            await self.index.register(topic)
            await self.stream.ensure_intake(topic)
            self._registered.add(topic)

    # ----------------------------------------------------------------- writing

    async def append(self, topic: str, records: Sequence[tuple[str, bytes]], archive: bool = False) -> list[int]:
        if not records:
            return []
        await self._register(topic)
        now = self.clock()
        if archive:
            subject = self.names.archive(topic)
            sends = [self.stream.publish(subject, frame(now, key, bytes(p))) for key, p in records]
        else:
            sends = [self.stream.publish(self.names.live(topic, key), frame(now, key, bytes(p))) for key, p in records]
        ids = list(await asyncio.gather(*sends))
        if not archive:
            self._backlog[topic] = self._backlog.get(topic, 0) + len(ids)
        return ids

    async def commit(self, tx: Transaction) -> list[int]:
        ids: list[int] = []
        if tx.appends:
            now = self.clock()
            for topic in {t for t, _, _ in tx.appends}:
                await self._register(topic)
            sends = [
                self.stream.publish(self.names.live(topic, key), frame(now, key, bytes(p)), msg_id)
                for (topic, key, p), msg_id in zip(tx.appends, _msg_ids(tx), strict=True)
            ]
            ids = list(await asyncio.gather(*sends))
            for topic, _, _ in tx.appends:
                self._backlog[topic] = self._backlog.get(topic, 0) + 1
        await self._finish(tx.ack, tx.retry, tx.dead, tx.trace)
        return ids

    async def _finish(
        self,
        ack: Sequence[int],
        retry: Sequence[tuple[int, float, str]],
        dead: Sequence[tuple[int, str]],
        trace: Sequence[TraceEntry],
        second: bool = False,
    ) -> None:
        bodies = await asyncio.gather(*(self.stream.get(i) for i, _ in dead))
        dead_rows = [
            (i, reason, unframe(body[1])[2] if body else None) for (i, reason), body in zip(dead, bodies, strict=True)
        ]
        done, missing = await self.index.finish(ack, retry, dead_rows, trace, self.clock())
        self._count_done(done)
        if missing and not second:
            # Records finished without a lease have no row yet: take their topics in, then
            # finish them (rare: workers finish what they leased).
            found = await asyncio.gather(*(self.stream.get(i) for i in missing))
            for topic in {self.names.topic_of(f[0]) for f in found if f is not None}:
                await self.take_in_all(topic)
            await self._finish(
                [i for i in ack if i in missing],
                [r for r in retry if r[0] in missing],
                [d for d in dead if d[0] in missing],
                [],
                second=True,
            )

    def forget_backlog(self, topic: str, n: int) -> None:
        self._count_done({topic: n})

    async def forget(self, needles: Sequence[bytes], rewrite: Rewrite) -> dict[str, ForgetCount]:
        """Rewritten records are deleted from the stream and their new payload kept in the
        PostgreSQL index under the same id (JetStream cannot change a stored message); see
        ``jetstream_forget``."""
        return await forget(self, needles, rewrite)

    def _count_done(self, done: dict[str, int]) -> None:
        for topic, n in done.items():
            self._backlog[topic] = max(0, self._backlog.get(topic, 0) - n)

    async def ack(self, ids: Sequence[int]) -> None:
        await self._finish(list(ids), [], [], [])

    async def retry(self, ids: Sequence[int], at: float, error: str) -> None:
        await self._finish([], [(i, at, error) for i in ids], [], [])

    async def dead_letter(self, ids: Sequence[int], reason: str) -> None:
        await self._finish([], [], [(i, reason) for i in ids], [])

    # ----------------------------------------------------------------- leasing

    async def _pull_new(self, topic: str, limit: int) -> tuple[list[Delivered], list[tuple[int, str, float]]]:
        got = await self.stream.pull(self.names.intake(topic), limit)
        new = []
        for d in got:
            at, key, _ = unframe(d.data)
            new.append((d.seq, key, at))
        return got, new

    async def take_in_all(self, topic: str) -> None:
        await self._register(topic)
        while True:
            async with self.index.intake(topic) as conn:
                got, new = await self._pull_new(topic, _PAGE)
                if not got:
                    return
                await self.index.take_in_and_lease(topic, new, "", 0, self.clock(), 0, False, None, conn)
                await self.stream.ack(got)

    async def _ordered_floor(self, topic: str, pulled: int) -> int:
        """The highest id up to which every record of ``topic`` has its queue row."""
        info = await self.stream.intake_info(topic)
        if int(info.num_ack_pending or 0) <= pulled:
            # nothing taken out by another process is in flight: all delivered ids are in
            return int(info.delivered.stream_seq or 0) if info.delivered else 0
        return int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0

    async def lease(
        self, topic: str, consumer: str, limit: int, lease_seconds: float = 30.0, ordered: bool = False
    ) -> list[LeasedRecord]:
        if limit <= 0:
            return []
        await self._register(topic)
        if self.max_lease is not None:
            lease_seconds = min(lease_seconds, self.max_lease)
        # Pull, record and ack under the topic's shared intake lock (see ``purge_acked``).
        async with self.index.intake(topic) as conn:
            got, new = await self._pull_new(topic, limit)
            floor = await self._ordered_floor(topic, len(got)) if ordered else None
            rows = await self.index.take_in_and_lease(
                topic, new, consumer, limit, self.clock(), lease_seconds, ordered, floor, conn
            )
            await self.stream.ack(got)
        bodies = {d.seq: d.data for d in got}
        missing = [r[0] for r in rows if r[0] not in bodies and r[5] is None]
        for seq, found in zip(missing, await asyncio.gather(*(self.stream.get(s) for s in missing)), strict=True):
            if found is not None:
                bodies[seq] = found[1]
        out = []
        for rid, key, appended_at, attempts, error, kept in rows:
            if kept is not None:
                payload = kept
            elif rid in bodies:
                payload = unframe(bodies[rid])[2]
            else:
                continue  # purged from the stream: nothing left to hand out
            out.append(LeasedRecord(rid, topic, key, payload, appended_at, attempts, error))
        return out

    async def dead_letters(self, topic: str, limit: int = 100, after: int = 0) -> list[DeadRecord]:
        rows = await self.index.dead_letters(topic, limit, after)
        return [DeadRecord(r[0], topic, r[1], bytes(r[2] or b""), r[3], r[4], r[5] or "") for r in rows]

    async def requeue(self, ids: Sequence[int]) -> int:
        done = await self.index.requeue(ids, self.clock())
        for topic, n in done.items():
            self._backlog[topic] = self._backlog.get(topic, 0) + n
        return sum(done.values())

    async def reschedule_waiting(self, topic: str, at: float) -> int:
        return await self.index.reschedule(topic, at)

    # ----------------------------------------------------------------- reading

    def _record(self, topic: str, d: Delivered) -> LogRecord:
        at, key, payload = unframe(d.data)
        return LogRecord(d.seq, topic, key, payload, at)

    async def read(self, topic: str, after: int = 0, limit: int = 100, key: str | None = None) -> list[LogRecord]:
        found = await self._read_stream(topic, after, limit, key)
        rewritten = await self.index.rewritten(topic, after, limit, key)
        if rewritten:
            found += [LogRecord(r[0], topic, r[1], bytes(r[2]), r[3]) for r in rewritten]
            found.sort(key=lambda r: r.id)
        return found[:limit]

    async def _read_stream(self, topic: str, after: int, limit: int, key: str | None) -> list[LogRecord]:
        flt = self.names.topic_filter(topic, key)
        if key is None:
            return [self._record(topic, d) for d in await self.stream.read(flt, after, limit)]
        out: list[LogRecord] = []
        cursor = after
        while len(out) < limit:
            page = await self.stream.read(flt, cursor, _PAGE)
            out += [r for r in (self._record(topic, d) for d in page) if r.key == key]
            if len(page) < _PAGE:
                break
            cursor = page[-1].seq
        return out[:limit]

    async def latest(self, topic: str, limit: int = 50, key: str | None = None) -> list[LogRecord]:
        state = (await self.stream.info()).state
        first, last = int(state.first_seq or 0), int(state.last_seq or 0)
        if last == 0 or limit <= 0:
            return []
        window = max(64, limit * 4)
        while True:
            start = max(first, last - window + 1)
            found = await self.read(topic, start - 1, window, key)
            found = [r for r in found if r.id <= last]
            if len(found) >= limit or start <= first:
                return sorted(found, key=lambda r: -r.id)[:limit]
            window *= 4

    async def last_id(self) -> int:
        return int((await self.stream.info()).state.last_seq or 0)

    async def first_id_at(self, topic: str, at: float) -> int:
        state = (await self.stream.info()).state
        lo, hi = int(state.first_seq or 0), int(state.last_seq or 0) + 1
        flt = self.names.topic_filter(topic)
        if hi <= 1 or await self.stream.next_of(flt, lo) is None:
            return 0
        while lo < hi:  # the smallest sequence whose next record of the topic is at or after ``at``
            mid = (lo + hi) // 2
            found = await self.stream.next_of(flt, mid)
            if found is None or unframe(found[1])[0] >= at:
                hi = mid
            else:
                lo = found[0] + 1
        found = await self.stream.next_of(flt, lo)
        if found is not None:
            return found[0] - 1
        newest = await self.latest(topic, 1)
        return newest[0].id if newest else 0

    # -------------------------------------------------------------------- trace

    async def trace(self, message_id: str) -> list[TraceEntry]:
        return await self.index.trace(message_id)

    async def trace_counts(self, since: float, bucket_seconds: int = 300) -> list[TraceCount]:
        return await self.index.trace_counts(since, bucket_seconds)

    async def delivery_latencies(self, destination_id: str, since: float) -> list[tuple[float, int]]:
        return await self.index.latencies(destination_id, since)

    # ------------------------------------------------------------------ counting

    def backlog_estimate(self, topic: str) -> int:
        return self._backlog.get(topic, 0)

    def backlog_topics(self) -> list[str]:
        return sorted(t for t, n in self._backlog.items() if n > 0)

    async def refresh_backlog(self) -> None:
        """Replace the estimates with exact counts (every process sees every topic's backlog)."""
        for topic in await self.index.topics():
            self._backlog[topic] = (await self.stats(topic)).backlog

    async def stats(self, topic: str) -> TopicStats:
        await self._register(topic)
        info = await self.stream.intake_info(topic)
        not_taken = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        ready, leased, scheduled, dead = await self.index.counts(topic, self.clock())
        total = await self.stream.count(self.names.live_filter(topic))
        acked = max(0, total - not_taken - ready - leased - scheduled - dead)
        return TopicStats(topic, ready=ready + not_taken, leased=leased, scheduled=scheduled, acked=acked, dead=dead)

    async def purge_acked(self, older_than: float) -> int:
        """Remove processed records older than ``older_than`` from the stream.

        A record's live subject is purged only below its intake consumer's ack floor and its
        oldest unfinished row, and only while no intake delivery awaits its ack: the purge holds
        the topic's exclusive intake lock (pulls hold it shared until they acked) and is put off
        to the next round when the consumer still has deliveries outstanding (a process that
        died mid-pull leaves them until ``INTAKE_ACK_WAIT``). nats-server before 2.9.15 drops
        every outstanding delivery of a consumer whose subjects a purge touches, and the records
        would never be handed out again.
        """
        purged = 0
        for topic in await self.index.topics():
            boundary = await self.first_id_at(topic, older_than) + 1
            async with self.index.intake(topic, exclusive=True):
                info = await self.stream.intake_info(topic)
                outstanding = int(info.num_ack_pending or 0)
                upper = min(boundary, int(info.ack_floor.stream_seq or 0) + 1 if info.ack_floor else 1)
                oldest = await self.index.oldest_live(topic)
                if oldest is not None:
                    upper = min(upper, oldest)
                if outstanding:
                    log.info("purge of %r put off: %d intake deliveries await their ack", topic, outstanding)
                elif upper > 1:
                    purged += await self.stream.purge_below(self.names.live_filter(topic), upper)
            if boundary > 1:
                purged += await self.stream.purge_below(self.names.archive(topic), boundary)
        await self.index.purge_trace(older_than)
        purged += await self.index.purge_rewritten(older_than)
        return purged
