"""SQLite queries for tracking-plan violation counts (table ``plan_violations``, migration 4).

Plain functions over a connection inside the store's transaction; ``state.sqlite`` wraps them.
Counts live in buckets of ``VIOLATION_BUCKET_SECONDS``; a summary adds buckets up per window.
"""

from __future__ import annotations

import math
import sqlite3

import msgspec

from eventyard.state.base import VIOLATION_BUCKET_SECONDS, ViolationCount, ViolationSummary

_KEY = "workspace_id, source_id, plan, event_type, event_name, field, violation_type"

HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY


def bucket_of(at: float) -> float:
    return math.floor(at / VIOLATION_BUCKET_SECONDS) * VIOLATION_BUCKET_SECONDS


def record(c: sqlite3.Connection, counts: list[ViolationCount]) -> None:
    if not counts:
        return
    rows = [
        [
            v.workspace_id,
            v.source_id,
            v.plan,
            v.event_type,
            v.event_name,
            v.field,
            v.violation_type,
            bucket_of(v.at),
            v.count,
            v.at,
            v.description,
        ]
        for v in counts
    ]
    # One statement for the whole batch (see ``mark_seen`` on why not executemany).
    c.execute(
        f"INSERT INTO plan_violations ({_KEY}, bucket, count, last_seen, description) "
        "SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, "
        "value ->> 7, value ->> 8, value ->> 9, value ->> 10 FROM json_each(?) WHERE true "
        f"ON CONFLICT ({_KEY}, bucket) DO UPDATE SET count = count + excluded.count, "
        "last_seen = max(last_seen, excluded.last_seen), "
        "description = CASE WHEN excluded.last_seen >= last_seen THEN excluded.description ELSE description END",
        (msgspec.json.encode(rows),),
    )


def summary(
    c: sqlite3.Connection, workspace_id: str, now: float, plan: str | None, source_id: str | None
) -> list[ViolationSummary]:
    where = ["workspace_id = ?", "bucket >= ?"]
    args: list[object] = [workspace_id, now - WEEK]
    if plan is not None:
        where.append("plan = ?")
        args.append(plan)
    if source_id is not None:
        where.append("source_id = ?")
        args.append(source_id)
    rows = c.execute(
        # SQLite takes a bare column (description) from the row that holds the max().
        "SELECT source_id, plan, event_type, event_name, field, violation_type, description, max(last_seen), "
        "sum(CASE WHEN bucket >= ? THEN count ELSE 0 END), "
        "sum(CASE WHEN bucket >= ? THEN count ELSE 0 END), "
        "sum(count) "
        f"FROM plan_violations v WHERE {' AND '.join(where)} "
        f"GROUP BY {_KEY} ORDER BY max(last_seen) DESC, event_name, field",
        [now - HOUR, now - DAY, *args],
    ).fetchall()
    return [ViolationSummary(*row) for row in rows]


def purge(c: sqlite3.Connection, older_than: float) -> int:
    return c.execute("DELETE FROM plan_violations WHERE bucket < ?", (older_than,)).rowcount
