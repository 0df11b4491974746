"""EventLog in memory, for unit tests. Same contract as the durable logs, nothing persists."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec

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


@dataclass
class _Row:
    id: int
    topic: str
    key: str
    payload: bytes
    appended_at: float
    available_at: float
    state: int = 0
    attempts: int = 0
    owner: str | None = None
    error: str | None = None


class MemoryEventLog:
    """A dict of rows; ``clock`` can be replaced by a fake clock in tests."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._rows: dict[int, _Row] = {}
        self._next = 1
        self._trace: list[TraceEntry] = []
        self.clock = clock

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def append(self, topic: str, records: Sequence[tuple[str, bytes]], archive: bool = False) -> list[int]:
        now = self.clock()
        ids = []
        for key, payload in records:
            row = _Row(self._next, topic, key, bytes(payload), now, now, state=1 if archive else 0)
            self._rows[row.id] = row
            ids.append(row.id)
            self._next += 1
        return ids

    async def lease(
        self, topic: str, consumer: str, limit: int, lease_seconds: float = 30.0, ordered: bool = False
    ) -> list[LeasedRecord]:
        now = self.clock()
        live = sorted((r for r in self._rows.values() if r.topic == topic and r.state == 0), key=lambda r: r.id)
        first_of_key: dict[str, int] = {}
        for r in live:
            first_of_key.setdefault(r.key, r.id)
        due = sorted(
            (r for r in live if r.available_at <= now and (not ordered or not r.key or first_of_key[r.key] == r.id)),
            key=lambda r: (r.available_at, r.id),
        )[:limit]
        out = []
        for r in sorted(due, key=lambda r: r.id):
            r.available_at = now + lease_seconds
            r.owner = consumer
            r.attempts += 1
            out.append(LeasedRecord(r.id, r.topic, r.key, r.payload, r.appended_at, r.attempts, r.error))
        return out

    async def commit(self, tx: Transaction) -> list[int]:
        ids = []
        for topic, key, payload in tx.appends:
            ids += await self.append(topic, [(key, payload)])
        self._finish(tx.ack, 1, None)
        for rid, reason in tx.dead:
            self._finish([rid], 2, reason)
        for rid, at, error in tx.retry:
            await self.retry([rid], at, error)
        now = self.clock()
        self._trace += [msgspec.structs.replace(e, at=e.at or now) for e in tx.trace]
        return ids

    async def trace(self, message_id: str) -> list[TraceEntry]:
        return sorted((e for e in self._trace if e.message_id == message_id), key=lambda e: e.at)

    async def trace_counts(self, since: float, bucket_seconds: int = 300) -> list[TraceCount]:
        counts: dict[tuple[float, str, str, str], int] = {}
        for e in self._trace:
            if e.at >= since:
                k = (float(int(e.at / bucket_seconds) * bucket_seconds), e.destination_id, e.step, e.reason)
                counts[k] = counts.get(k, 0) + 1
        return [TraceCount(*k, n) for k, n in sorted(counts.items())]

    async def delivery_latencies(self, destination_id: str, since: float) -> list[tuple[float, int]]:
        counts: dict[float, int] = {}
        for e in self._trace:
            delivered = e.step == "delivered" and e.latency_ms is not None
            if delivered and e.at >= since and e.destination_id == destination_id and e.latency_ms is not None:
                counts[e.latency_ms] = counts.get(e.latency_ms, 0) + 1
        return sorted(counts.items())

    async def first_id_at(self, topic: str, at: float) -> int:
        later = [r.id for r in self._rows.values() if r.topic == topic and r.appended_at >= at]
        return min(later) - 1 if later else max((r.id for r in self._rows.values() if r.topic == topic), default=0)

    def _finish(self, ids: Sequence[int], state: int, error: str | None) -> None:
        for i in ids:
            r = self._rows.get(i)
            if r is not None and r.state == 0:
                r.state = state
                r.owner = None
                if error is not None:
                    r.error = error

    async def ack(self, ids: Sequence[int]) -> None:
        self._finish(ids, 1, None)

    async def dead_letter(self, ids: Sequence[int], reason: str) -> None:
        self._finish(ids, 2, reason)

    async def retry(self, ids: Sequence[int], at: float, error: str) -> None:
        for i in ids:
            r = self._rows.get(i)
            if r is not None and r.state == 0:
                r.available_at = at
                r.owner = None
                r.error = error

    async def dead_letters(self, topic: str, limit: int = 100, after: int = 0) -> list[DeadRecord]:
        rows = [r for r in self._rows.values() if r.topic == topic and r.state == 2 and r.id > after]
        rows.sort(key=lambda r: r.id)
        return [
            DeadRecord(r.id, r.topic, r.key, r.payload, r.appended_at, r.attempts, r.error or "") for r in rows[:limit]
        ]

    async def reschedule_waiting(self, topic: str, at: float) -> int:
        n = 0
        for r in self._rows.values():
            if r.topic == topic and r.state == 0 and r.owner is None:
                r.available_at = at
                n += 1
        return n

    async def requeue(self, ids: Sequence[int]) -> int:
        n = 0
        for i in ids:
            r = self._rows.get(i)
            if r is not None and r.state == 2:
                r.state, r.available_at, r.attempts, r.owner = 0, self.clock(), 0, None
                n += 1
        return n

    async def read(self, topic: str, after: int = 0, limit: int = 100, key: str | None = None) -> list[LogRecord]:
        rows = [r for r in self._rows.values() if r.topic == topic and r.id > after and (key is None or r.key == key)]
        rows.sort(key=lambda r: r.id)
        return [LogRecord(r.id, r.topic, r.key, r.payload, r.appended_at) for r in rows[:limit]]

    async def latest(self, topic: str, limit: int = 50, key: str | None = None) -> list[LogRecord]:
        rows = [r for r in self._rows.values() if r.topic == topic and (key is None or r.key == key)]
        rows.sort(key=lambda r: -r.id)
        return [LogRecord(r.id, r.topic, r.key, r.payload, r.appended_at) for r in rows[:limit]]

    async def last_id(self) -> int:
        return self._next - 1

    def backlog_topics(self) -> list[str]:
        return sorted({r.topic for r in self._rows.values() if r.state == 0})

    def backlog_estimate(self, topic: str) -> int:
        return sum(1 for r in self._rows.values() if r.topic == topic and r.state == 0)

    async def stats(self, topic: str) -> TopicStats:
        now = self.clock()
        rows = [r for r in self._rows.values() if r.topic == topic]
        live = [r for r in rows if r.state == 0]
        return TopicStats(
            topic,
            ready=sum(1 for r in live if r.available_at <= now),
            leased=sum(1 for r in live if r.available_at > now and r.owner is not None),
            scheduled=sum(1 for r in live if r.available_at > now and r.owner is None),
            acked=sum(1 for r in rows if r.state == 1),
            dead=sum(1 for r in rows if r.state == 2),
        )

    async def purge_acked(self, older_than: float) -> int:
        self._trace = [e for e in self._trace if e.at >= older_than]
        gone = [i for i, r in self._rows.items() if r.state == 1 and r.appended_at < older_than]
        for i in gone:
            del self._rows[i]
        return len(gone)

    async def forget(self, needles: Sequence[bytes], rewrite: Rewrite) -> dict[str, ForgetCount]:
        counts: dict[str, ForgetCount] = {}
        for rid in sorted(self._rows):
            r = self._rows[rid]
            if not any(n in r.payload for n in needles):
                continue
            new = rewrite(LogRecord(r.id, r.topic, r.key, r.payload, r.appended_at))
            if new is not None and new == r.payload:
                continue
            done = counts.get(r.topic, ForgetCount())
            if new is None:
                del self._rows[rid]
                counts[r.topic] = ForgetCount(done.deleted + 1, done.rewritten)
            else:
                r.payload = bytes(new)
                counts[r.topic] = ForgetCount(done.deleted, done.rewritten + 1)
        return counts
