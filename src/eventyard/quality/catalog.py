"""The schema catalog and event volume of a source, read from the events the log retains.

The catalog lists every event seen (track events by name, other calls by type) with how often
and when it was first and last seen, and every property (traits for identify and group) with
the JSON types its values had. Volume counts events per name in time buckets, for charts.

Both scan the source's retained ingest records newest first, at most ``max_records`` records
(requests), so a request costs a bounded amount of work whatever the traffic; the answer says
whether the scan was cut short (``complete: false``: older events are left out). What the
log no longer retains (``log_retention_hours``) is not in the catalog.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from eventyard.collect.ingest import INGEST_TOPIC
from eventyard.log.base import EventLog
from eventyard.spec import stored

#: How deep nested objects are listed (``properties.address.city`` is depth 2).
MAX_DEPTH = 3


class Property(msgspec.Struct):
    path: str
    types: set[str] = msgspec.field(default_factory=set)
    count: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0


class Entry(msgspec.Struct):
    type: str
    event: str
    count: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    properties: dict[str, Property] = msgspec.field(default_factory=dict)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def event_label(event: dict[str, Any]) -> tuple[str, str]:
    """``(type, name)``: track events by their name, page/screen by name if any, others by type."""
    kind = str(event.get("type", ""))
    if kind == "track":
        return kind, str(event.get("event", ""))
    if kind in ("page", "screen") and event.get("name"):
        return kind, str(event["name"])
    return kind, kind


def _fields(event: dict[str, Any]) -> dict[str, Any]:
    kind = event.get("type")
    if kind in ("identify", "group"):
        traits = event.get("traits")
        return {"traits": traits} if isinstance(traits, dict) else {}
    props = event.get("properties")
    return {"properties": props} if isinstance(props, dict) else {}


def _walk(prefix: str, value: Any, depth: int, out: list[tuple[str, Any]]) -> None:
    if isinstance(value, dict) and depth < MAX_DEPTH:
        for key, inner in value.items():
            _walk(f"{prefix}.{key}", inner, depth + 1, out)
    else:
        out.append((prefix, value))


class Catalog:
    """Counts events and properties as they are added."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], Entry] = {}

    def add(self, event: dict[str, Any], at: float) -> None:
        kind, name = event_label(event)
        entry = self.entries.get((kind, name))
        if entry is None:
            entry = self.entries[(kind, name)] = Entry(kind, name, first_seen=at, last_seen=at)
        entry.count += 1
        entry.first_seen = min(entry.first_seen, at)
        entry.last_seen = max(entry.last_seen, at)
        pairs: list[tuple[str, Any]] = []
        for root, value in _fields(event).items():
            for key, inner in value.items():
                _walk(f"{root}.{key}", inner, 1, pairs)
        for path, value in pairs:
            prop = entry.properties.get(path)
            if prop is None:
                prop = entry.properties[path] = Property(path, first_seen=at, last_seen=at)
            prop.types.add(json_type(value))
            prop.count += 1
            prop.first_seen = min(prop.first_seen, at)
            prop.last_seen = max(prop.last_seen, at)

    def view(self, source_id: str) -> list[dict[str, Any]]:
        out = []
        for entry in sorted(self.entries.values(), key=lambda e: (-e.count, e.type, e.event)):
            out.append(
                {
                    "sourceId": source_id,
                    "type": entry.type,
                    "event": entry.event,
                    "count": entry.count,
                    "firstSeen": entry.first_seen,
                    "lastSeen": entry.last_seen,
                    "properties": [
                        {
                            "path": p.path,
                            "types": sorted(p.types),
                            "count": p.count,
                            "firstSeen": p.first_seen,
                            "lastSeen": p.last_seen,
                        }
                        for p in sorted(entry.properties.values(), key=lambda p: p.path)
                    ],
                }
            )
        return out


async def scan(log: EventLog, source_id: str, since: float, max_records: int, visit: Any) -> tuple[int, bool]:
    """Call ``visit(event, received_at)`` for the source's retained events received after
    ``since``, newest records first, from at most ``max_records`` records (one record holds
    the events of one request); returns (events seen, complete)."""
    records = await log.latest(INGEST_TOPIC, max_records, source_id)
    seen = 0
    for record in records:
        if record.appended_at < since:
            return seen, True
        for event in stored.load(record.payload):
            visit(event, record.appended_at)
            seen += 1
    return seen, len(records) < max_records


async def catalog(log: EventLog, source_id: str, hours: float, max_records: int = 20_000) -> dict[str, Any]:
    cat = Catalog()
    seen, complete = await scan(log, source_id, time.time() - hours * 3600, max_records, cat.add)
    return {"events": cat.view(source_id), "scanned": seen, "complete": complete, "hours": hours}


async def volume(
    log: EventLog, source_id: str, hours: float, bucket_seconds: int, top: int = 10, max_records: int = 50_000
) -> dict[str, Any]:
    """Events per name per bucket; names beyond the ``top`` busiest are summed as ``(other)``."""
    now = time.time()
    first = (now - hours * 3600) // bucket_seconds * bucket_seconds
    n = int((now - first) // bucket_seconds) + 1
    counts: dict[str, list[int]] = {}

    def visit(event: dict[str, Any], at: float) -> None:
        name = event_label(event)[1]
        row = counts.get(name)
        if row is None:
            row = counts[name] = [0] * n
        i = int((at - first) // bucket_seconds)
        if 0 <= i < n:
            row[i] += 1

    seen, complete = await scan(log, source_id, first, max_records, visit)
    ranked = sorted(counts.items(), key=lambda kv: -sum(kv[1]))
    series = [{"event": name, "counts": row} for name, row in ranked[:top]]
    if len(ranked) > top:
        other = [sum(col) for col in zip(*(row for _, row in ranked[top:]), strict=True)]
        series.append({"event": "(other)", "counts": other})
    return {
        "bucketSeconds": bucket_seconds,
        "buckets": [first + i * bucket_seconds for i in range(n)],
        "series": series,
        "scanned": seen,
        "complete": complete,
    }
