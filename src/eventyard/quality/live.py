"""The live view of traffic: accepted and refused events as they are stored.

Both the SSE endpoint and ``eventyard tail`` read from here. It follows the log itself
(``ingest`` and ``rejected`` topics), so it shows what every collect process stored, not
only the local one, and it never leases or changes anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import msgspec

from eventyard.collect.ingest import INGEST_TOPIC, REJECTED_TOPIC
from eventyard.log.base import EventLog, LogRecord
from eventyard.spec import stored


@dataclass(frozen=True)
class LiveFilter:
    source_id: str | None = None
    types: frozenset[str] = frozenset()
    event_names: frozenset[str] = frozenset()
    include_rejected: bool = True
    #: When set, only these sources (a workspace-bound token sees its workspace's sources).
    source_ids: frozenset[str] | None = None

    def matches(self, item: dict[str, Any]) -> bool:
        if self.source_id and item["sourceId"] != self.source_id:
            return False
        if self.source_ids is not None and item["sourceId"] not in self.source_ids:
            return False
        if item["kind"] == "rejected":
            return self.include_rejected and not self.types and not self.event_names
        event = item["event"]
        if self.types and event.get("type") not in self.types:
            return False
        return not (self.event_names and event.get("event") not in self.event_names)


def to_items(record: LogRecord) -> list[dict[str, Any]]:
    """The live-view items of a record: one per event (a record holds one request's events)."""
    if record.topic == REJECTED_TOPIC:
        body = msgspec.json.decode(record.payload)
        return [{"id": record.id, "kind": "rejected", "sourceId": record.key, "rejection": body}]
    return [
        {"id": record.id, "kind": "event", "sourceId": record.key, "event": event}
        for event in stored.load(record.payload)
    ]


async def recent(log: EventLog, source_id: str | None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest accepted and refused events of a source (or of all), newest first."""
    records = await log.latest(INGEST_TOPIC, limit, source_id)
    records += await log.latest(REJECTED_TOPIC, limit, source_id)
    records.sort(key=lambda r: -r.id)
    items: list[dict[str, Any]] = []
    for record in records:  # a record may hold a whole batch: load no more than is shown
        items.extend(reversed(to_items(record)))
        if len(items) >= limit:
            break
    return items[:limit]


async def follow(
    log: EventLog, flt: LiveFilter, after: int | None = None, poll_seconds: float = 0.25
) -> AsyncGenerator[dict[str, Any], None]:
    """Yield items stored after ``after`` (default: from now on), forever, in id order."""
    cursor = await log.last_id() if after is None else after
    topics = [INGEST_TOPIC] + ([REJECTED_TOPIC] if flt.include_rejected else [])
    page = 500
    while True:
        batch: list[LogRecord] = []
        cap: int | None = None
        for topic in topics:
            got = await log.read(topic, cursor, page, flt.source_id)
            if len(got) == page:
                # This topic may hold more below other topics' records: read no further
                # than its last id this round, so nothing is skipped.
                cap = got[-1].id if cap is None else min(cap, got[-1].id)
            batch += got
        if cap is not None:
            batch = [r for r in batch if r.id <= cap]
        if not batch:
            await asyncio.sleep(poll_seconds)
            continue
        batch.sort(key=lambda r: r.id)
        cursor = batch[-1].id
        for record in batch:
            for item in to_items(record):
                if flt.matches(item):
                    yield item
