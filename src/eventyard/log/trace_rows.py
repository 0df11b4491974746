"""Trace entries as the SQLite log stores them: packed per event, counted as they are written.

A commit's entries are grouped by messageId into one ``trace`` row each, whose ``entries``
column is the JSON array of those entries (``TraceEntry`` encodes as an array). The pipeline's
commit thus writes one row per event (``accepted`` plus every ``queued``/``filtered``/
``dropped`` decision) and a worker's commit one row per delivered, retried or dead-lettered
job, each with one messageId index entry. What the delivery overview needs is added up at the
same time into ``trace_counts`` (per 10 s, step, destination and reason) and
``delivery_latency`` (a histogram per 60 s and destination), one statement each.
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from collections.abc import Sequence
from itertools import accumulate
from operator import attrgetter
from typing import Any

import msgspec

from eventyard.log.base import TraceEntry
from eventyard.log.sqlite_schema import COUNT_SECONDS, LATENCY_RATIO, LATENCY_SECONDS

_encode = msgspec.json.encode
_decode = msgspec.json.Decoder(list[TraceEntry]).decode
_replace = msgspec.structs.replace
_LOG_RATIO = math.log(LATENCY_RATIO)
_MESSAGE_ID = attrgetter("message_id")
_DESTINATION = attrgetter("destination_id")
_STEP = attrgetter("step")
_REASON = attrgetter("reason")

_INSERT = (
    "INSERT INTO trace (message_id, at, entries) SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), "
    "substr(?1, json_extract(j.value, '$[2]'), json_extract(j.value, '$[3]')) FROM json_each(?2) AS j"
)
# Counts are added with one statement each, from a JSON array of rows (one SQLite step, not
# one per row: the writer thread retakes the GIL after every step).
_COUNT = (
    "INSERT INTO trace_counts (bucket, destination_id, step, reason, count) "
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), "
    "json_extract(value, '$[3]'), json_extract(value, '$[4]') FROM json_each(?) WHERE true "
    "ON CONFLICT (bucket, destination_id, step, reason) DO UPDATE SET count = count + excluded.count"
)
_LATENCY = (
    "INSERT INTO delivery_latency (bucket, destination_id, bin, count) "
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), "
    "json_extract(value, '$[3]') FROM json_each(?) WHERE true "
    "ON CONFLICT (bucket, destination_id, bin) DO UPDATE SET count = count + excluded.count"
)


class TraceWrite:
    """The rows one commit's trace entries become (built before the writer thread takes them).

    A row's ``at`` is the latest time of its entries, the commit's time standing in for
    entries without one (they are stored with ``at`` 0 and read back with the row's time).
    """

    __slots__ = ("counts", "data", "latencies", "meta")

    def __init__(self, entries: Sequence[TraceEntry], now: float) -> None:
        # Written for speed (it runs on the event loop for every commit): C-level map, zip,
        # Counter and accumulate where they fit, one encoder call per entry.
        mids = list(map(_MESSAGE_ID, entries))
        ats = [e.at or now for e in entries]
        packed = [b"[" + e + b"]" for e in map(_encode, entries)]
        if len(set(mids)) == len(mids):
            row_ats = ats
        else:  # several entries of one event (the pipeline's): one row, the latest time
            rows: dict[str, tuple[float, bytes]] = {}
            for mid, at, one in zip(mids, ats, packed, strict=True):
                row = rows.get(mid)
                rows[mid] = (at, one) if row is None else (max(at, row[0]), row[1][:-1] + b"," + one[1:])
            mids = list(rows)
            row_ats = [at for at, _ in rows.values()]
            packed = [one for _, one in rows.values()]
        sizes = list(map(len, packed))
        offsets = list(accumulate(sizes, initial=1))[:-1]
        self.meta = _encode(list(zip(mids, row_ats, offsets, sizes, strict=True)))
        self.data = b"".join(packed)
        buckets = {at: int(at // COUNT_SECONDS) * COUNT_SECONDS for at in set(ats)}
        counts = Counter(
            zip(
                map(buckets.__getitem__, ats),
                map(_DESTINATION, entries),
                map(_STEP, entries),
                map(_REASON, entries),
                strict=True,
            )
        )
        self.counts = _encode([(*k, n) for k, n in counts.items()])
        log, ceil = math.log, math.ceil
        latencies = Counter(
            (
                int(at // LATENCY_SECONDS) * LATENCY_SECONDS,
                e.destination_id,
                0 if e.latency_ms <= 1.0 else ceil(log(e.latency_ms) / _LOG_RATIO),
            )
            for e, at in zip(entries, ats, strict=True)
            if e.latency_ms is not None and e.step == "delivered"
        )
        self.latencies = _encode([(*k, n) for k, n in latencies.items()]) if latencies else None

    def apply(self, conn: sqlite3.Connection) -> None:
        conn.execute(_INSERT, (self.data, self.meta))
        conn.execute(_COUNT, (self.counts,))
        if self.latencies is not None:
            conn.execute(_LATENCY, (self.latencies,))


def unpack(rows: Sequence[tuple[Any, ...]]) -> list[TraceEntry]:
    """``(at, entries)`` rows back into entries, oldest first (stable for equal times).

    An entry written without a time (``at`` 0) took the commit's time, which is its row's.
    """
    out = [e if e.at else _replace(e, at=at) for at, packed in rows for e in _decode(packed)]
    out.sort(key=lambda e: e.at)
    return out


__all__ = ["TraceWrite", "unpack"]
