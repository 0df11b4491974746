"""Erasing a subject's data from the JetStream log (``EventLog.forget``).

JetStream cannot change a stored message, so a record to rewrite is deleted from the stream
and its new payload is kept in the log's PostgreSQL index (table ``rewritten``, and the queue
row's payload column while it is live or dead-lettered) under the same id: reads, leases and
dead-letter listings take the payload from there, so id, key, time, state and attempts stay.
A record to delete is deleted from the stream and loses its queue row.

Before scanning a topic every record still waiting for intake is taken in, so no live record
exists only in the stream when its message is deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from eventyard.log.base import ForgetCount, LogRecord, Rewrite
from eventyard.log.jetstream_names import unframe

if TYPE_CHECKING:
    from eventyard.log.jetstream import JetStreamEventLog

_PAGE = 1000


async def forget(log: JetStreamEventLog, needles: Sequence[bytes], rewrite: Rewrite) -> dict[str, ForgetCount]:
    counts: dict[str, ForgetCount] = {}
    if not needles:
        return counts
    for topic in await log.index.topics():
        await log.take_in_all(topic)
        deleted: list[int] = []
        rewritten: list[tuple[int, str, float, bytes]] = []
        seen: set[int] = set()

        def decide(
            record: LogRecord,
            deleted: list[int] = deleted,
            rewritten: list[tuple[int, str, float, bytes]] = rewritten,
        ) -> None:
            """List the record in ``deleted`` or ``rewritten`` when it holds a needle and changes."""
            if not any(n in record.payload for n in needles):
                return
            new = rewrite(record)
            if new is None:
                deleted.append(record.id)
            elif bytes(new) != record.payload:
                rewritten.append((record.id, record.key, record.appended_at, bytes(new)))

        kept = await log.index.kept_payloads(topic)
        for rid, key, at, payload in kept:
            seen.add(rid)
            decide(LogRecord(rid, topic, key, payload, at))
        cursor = 0
        while True:
            page = await log.stream.read(log.names.topic_filter(topic), cursor, _PAGE)
            for d in page:
                if d.seq not in seen:  # records with a payload in the index were decided on it
                    at, key, payload = unframe(d.data)
                    decide(LogRecord(d.seq, topic, key, payload, at))
            if len(page) < _PAGE:
                break
            cursor = page[-1].seq
        if not deleted and not rewritten:
            continue
        gone = await log.index.forget_rows(topic, deleted, rewritten)
        for seq in [*deleted, *(r[0] for r in rewritten)]:
            await log.stream.delete_msg(seq)  # also a dead letter's or a rewritten record's original
        log.forget_backlog(topic, gone)
        counts[topic] = ForgetCount(deleted=len(deleted), rewritten=len(rewritten))
    return counts
