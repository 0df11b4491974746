"""EventLog in memory, for unit tests. Same contract as the durable logs, nothing persists."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eventyard.log.base import DeadRecord, LeasedRecord, LogRecord, TopicStats


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

    async def lease(self, topic: str, consumer: str, limit: int, lease_seconds: float = 30.0) -> list[LeasedRecord]:
        now = self.clock()
        due = sorted(
            (r for r in self._rows.values() if r.topic == topic and r.state == 0 and r.available_at <= now),
            key=lambda r: (r.available_at, r.id),
        )[:limit]
        out = []
        for r in sorted(due, key=lambda r: r.id):
            r.available_at = now + lease_seconds
            r.owner = consumer
            r.attempts += 1
            out.append(LeasedRecord(r.id, r.topic, r.key, r.payload, r.appended_at, r.attempts, r.error))
        return out

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
        gone = [i for i, r in self._rows.items() if r.state == 1 and r.appended_at < older_than]
        for i in gone:
            del self._rows[i]
        return len(gone)
