"""The EventLog contract: a durable queue with leases, shared by every backend.

A topic holds records in append order. Consumers lease due records, then either ack them,
schedule a retry at a given time, or dead-letter them. A lease that is neither acked nor
retried before it expires makes the record due again, so a crashed consumer loses nothing.
Acked records are kept for the retention period so they can be read back (live tail,
replay, deletion requests); ``read`` and ``latest`` never lease.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec


class LogRecord(msgspec.Struct, frozen=True):
    """One record as read back from a topic."""

    id: int
    topic: str
    key: str
    payload: bytes
    appended_at: float


class LeasedRecord(msgspec.Struct, frozen=True):
    """A record handed to a consumer; ``attempts`` counts leases including this one."""

    id: int
    topic: str
    key: str
    payload: bytes
    appended_at: float
    attempts: int
    last_error: str | None


class TopicStats(msgspec.Struct, frozen=True):
    """Counts of a topic's records by state."""

    topic: str
    ready: int
    leased: int
    scheduled: int
    acked: int
    dead: int

    @property
    def backlog(self) -> int:
        """Records not yet acked or dead-lettered."""
        return self.ready + self.leased + self.scheduled


class DeadRecord(msgspec.Struct, frozen=True):
    id: int
    topic: str
    key: str
    payload: bytes
    appended_at: float
    attempts: int
    reason: str


class TraceEntry(msgspec.Struct, frozen=True, array_like=True):
    """One step in the life of an event: kept with the log, queried by ``messageId``.

    Encoded as a JSON array (``array_like``): the SQLite log stores entries packed that way.

    ``step`` is one of: ``accepted`` (left the ingest log into the pipeline), ``dropped``
    (a unify stage dropped it; ``reason`` says which), ``filtered`` (not sent to
    ``destination_id``; ``reason``: integrations, filter, mapping_trigger, unsupported_type,
    ...), ``queued`` (a delivery job exists), ``delivered``, ``retrying``, ``dead_lettered``,
    ``dropped_by_destination``, ``replayed``, ``resent``, ``discarded`` (a warehouse kept one of
    the event's values in its ``discards`` table instead of the column; ``reason`` says why).
    """

    message_id: str
    source_id: str
    step: str
    destination_id: str = ""
    reason: str = ""
    detail: str = ""
    attempt: int = 0
    #: Milliseconds from ``receivedAt`` to this step (set for ``delivered``).
    latency_ms: float | None = None
    at: float = 0.0


class Transaction(msgspec.Struct):
    """Writes applied atomically by ``EventLog.commit``: all of them or none."""

    #: (topic, key, payload) to append as live records.
    appends: list[tuple[str, str, bytes]] = []
    #: For each append, a name that is the same whenever the same input is processed again
    #: (the pipeline: the event's position and the destination), so a log that cannot append
    #: and ack in one transaction (JetStream) drops the repeat of a batch processed again after
    #: a crash whatever records that batch was leased with. Empty, or one name per append.
    idempotency: list[str] = []
    ack: list[int] = []
    #: (record id, due at, error)
    retry: list[tuple[int, float, str]] = []
    #: (record id, reason)
    dead: list[tuple[int, str]] = []
    trace: list[TraceEntry] = []


class ForgetCount(msgspec.Struct, frozen=True):
    """What ``EventLog.forget`` did to one topic."""

    deleted: int = 0
    rewritten: int = 0


#: Given a record that holds a needle: its payload unchanged (keep), ``None`` (delete) or a
#: new payload (rewrite). See ``EventLog.forget``.
Rewrite = Callable[[LogRecord], bytes | None]


class TraceCount(msgspec.Struct, frozen=True):
    bucket: float
    destination_id: str
    step: str
    reason: str
    count: int


class EventLog(Protocol):
    """Durable topics of records. Every method is safe to call from many tasks at once."""

    async def start(self) -> None:
        """Open connections and create what is missing."""

    async def close(self) -> None:
        """Flush and release resources; pending appends complete first."""

    async def append(self, topic: str, records: Sequence[tuple[str, bytes]], archive: bool = False) -> list[int]:
        """Append ``(key, payload)`` records; return their ids only once they are durable.

        ``archive=True`` stores records that no consumer has to process (they are born
        acked): readable through ``read``/``latest`` until the retention purges them.

        Raises ``LogFull`` when the log cannot take them (caller answers 429/503) and
        ``Unavailable`` when the backend cannot be reached.
        """
        ...

    async def lease(
        self, topic: str, consumer: str, limit: int, lease_seconds: float = 30.0, ordered: bool = False
    ) -> list[LeasedRecord]:
        """Lease up to ``limit`` due records, oldest first.

        ``ordered=True`` leases a record only when no older unfinished record has the same key,
        so one key's records are processed strictly in order while other keys flow. Records
        with an empty key are never held back (append them so when order does not matter:
        a backend may then skip indexing their key).
        """
        ...

    async def commit(self, tx: Transaction) -> list[int]:
        """Apply ``tx`` atomically; returns the ids of its appends."""
        ...

    async def trace(self, message_id: str) -> list[TraceEntry]:
        """Every trace entry of an event, oldest first."""
        ...

    async def trace_counts(self, since: float, bucket_seconds: int = 300) -> list[TraceCount]:
        """Trace entries since ``since`` counted per time bucket, destination, step and reason.

        A backend may count in coarser steps than single entries' times (SQLite: per 10 s,
        so a window may include up to 10 s before ``since``, and buckets that are not a
        multiple of 10 s are approximate).
        """
        ...

    async def delivery_latencies(self, destination_id: str, since: float) -> list[tuple[float, int]]:
        """Latencies (``latency_ms`` of ``delivered`` entries) of a destination since ``since``,
        as ``(latency_ms, deliveries)`` pairs in ascending latency.

        A backend may keep a histogram instead of every value (SQLite: bins 5 % wide, per
        60 s), so a percentile read from these pairs is within a few percent.
        """
        ...

    async def first_id_at(self, topic: str, at: float) -> int:
        """The id just before the first record of ``topic`` appended at or after ``at``."""
        ...

    async def ack(self, ids: Sequence[int]) -> None:
        """Mark leased records done."""

    async def retry(self, ids: Sequence[int], at: float, error: str) -> None:
        """Make records due again at unix time ``at``, keeping ``error`` as the last error."""

    async def dead_letter(self, ids: Sequence[int], reason: str) -> None:
        """Park records for good; they stay readable through ``dead_letters``."""

    async def dead_letters(self, topic: str, limit: int = 100, after: int = 0) -> list[DeadRecord]:
        """Dead-lettered records of a topic, oldest first."""
        ...

    async def reschedule_waiting(self, topic: str, at: float) -> int:
        """Make every unleased record of ``topic`` (waiting for a retry or never tried) due at
        ``at``, all at the same time, so they are leased oldest first (used when a destination
        recovers); returns how many.

        A backend may do this in steps, oldest records first, so other writes go on meanwhile;
        an ``at`` earlier than every due time in the topic (the worker passes 0) keeps the
        oldest-first order while the steps go through.
        """
        ...

    async def requeue(self, ids: Sequence[int]) -> int:
        """Make dead-lettered records due again now; returns how many were requeued."""
        ...

    async def read(self, topic: str, after: int = 0, limit: int = 100, key: str | None = None) -> list[LogRecord]:
        """Records with id greater than ``after`` in id order, whatever their state."""
        ...

    async def latest(self, topic: str, limit: int = 50, key: str | None = None) -> list[LogRecord]:
        """The newest ``limit`` records of a topic, newest first."""
        ...

    async def last_id(self) -> int:
        """The highest record id in the log (0 when empty)."""
        ...

    def backlog_estimate(self, topic: str) -> int:
        """A cheap, possibly stale count of unfinished records, for admission control."""
        ...

    def backlog_topics(self) -> list[str]:
        """Topics that have (or recently had) unfinished records, cheaply."""
        ...

    async def stats(self, topic: str) -> TopicStats:
        """Exact counts by state."""
        ...

    async def purge_acked(self, older_than: float) -> int:
        """Delete acked records appended before ``older_than``; returns how many."""
        ...

    async def forget(self, needles: Sequence[bytes], rewrite: Rewrite) -> dict[str, ForgetCount]:
        """Erase a subject's data from every topic (regulations); per topic, what was done.

        Every record of every topic, whatever its state (live, leased, waiting for a retry,
        dead-lettered, or acked and kept for the retention), whose payload contains at least
        one of ``needles`` as a byte substring is passed to ``rewrite`` (as a ``LogRecord``);
        records that hold no needle are not passed. ``rewrite`` answers:

        * the record's payload, unchanged (equal bytes): the record stays as it is;
        * ``None``: the record is deleted, in whatever state it is: a live record is never
          leased again, a lease on it ends (its ack, retry or dead-letter then changes
          nothing), a dead letter is gone, and ``read``/``latest`` no longer return it;
        * other bytes: the record's payload becomes those bytes; its id, topic, key,
          ``appended_at``, state, due time and attempts stay. (A backend that cannot change a
          stored payload in place may delete it and append the new payload instead, with the
          same key and state; it must say so in its docstring.)

        ``rewrite`` is pure and cheap and may be called more than once for the same record.
        Only records whose ``rewrite`` answered ``None`` or different bytes are counted, in
        ``ForgetCount.deleted`` and ``ForgetCount.rewritten``; topics with neither are left
        out of the answer. Trace entries are not changed (they hold message ids, steps and
        reason codes, no event data). Records appended while ``forget`` runs may be missed:
        suppress the subject first. Raises ``Unavailable`` when the backend cannot be
        reached; running ``forget`` again then completes the work (it is idempotent).
        """
        ...
