"""A log written in the first SQLite layout (state in the records table, one trace row per
entry) is upgraded in place when the log starts: nothing is lost, ids keep growing."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from eventyard.log.sqlite import SQLiteEventLog

_V1 = """
CREATE TABLE records (
    id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key TEXT NOT NULL, payload BLOB NOT NULL,
    appended_at REAL NOT NULL, available_at REAL NOT NULL, state INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0, lease_owner TEXT, error TEXT
);
CREATE INDEX records_due ON records (topic, state, available_at, id);
CREATE INDEX records_live_key ON records (topic, key, id) WHERE state = 0;
CREATE TABLE trace (
    message_id TEXT NOT NULL, source_id TEXT NOT NULL, step TEXT NOT NULL, destination_id TEXT NOT NULL,
    reason TEXT NOT NULL, detail TEXT NOT NULL, attempt INTEGER NOT NULL, latency_ms REAL, at REAL NOT NULL
);
CREATE INDEX trace_message ON trace (message_id);
CREATE INDEX trace_at ON trace (at);
"""


def write_v1_log(path: Path, now: float) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(_V1)
    rows = [
        # topic, key, payload, appended_at, available_at, state, attempts, lease_owner, error
        ("ingest", "src", b"acked", now - 50, now - 50, 1, 1, None, None),
        ("ingest", "src", b"live", now - 40, now - 40, 0, 0, None, None),
        ("deliver.d", "u1", b"waiting", now - 30, now + 3600, 0, 2, None, "HTTP 503"),
        ("deliver.d", "u1", b"dead", now - 20, now - 20, 2, 5, None, "HTTP 400: bad"),
        ("deliver.d", "u2", b"gone", now - 10, now - 10, 1, 1, None, None),
    ]
    conn.executemany(
        "INSERT INTO records (topic, key, payload, appended_at, available_at, state, attempts, lease_owner, error) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.execute("DELETE FROM records WHERE id = 5")  # the highest id is gone; ids must not repeat
    conn.executemany(
        "INSERT INTO trace VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            ("m1", "src", "accepted", "", "", "", 0, None, now - 50),
            ("m1", "src", "queued", "d", "", "", 0, None, now - 49),
            ("m1", "src", "delivered", "d", "", "", 1, 120.0, now - 48),
        ],
    )
    conn.commit()
    conn.close()


async def test_a_first_layout_log_is_upgraded_without_losing_anything(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    now = time.time()
    write_v1_log(path, now)
    log = SQLiteEventLog(path)
    await log.start()
    try:
        assert [r.payload for r in await log.read("ingest")] == [b"acked", b"live"]
        assert [r.payload for r in await log.lease("ingest", "c", 10)] == [b"live"]
        assert await log.lease("deliver.d", "c", 10) == []  # waiting for its retry
        (dead,) = await log.dead_letters("deliver.d")
        assert (dead.payload, dead.reason, dead.attempts) == (b"dead", "HTTP 400: bad", 5)
        stats = await log.stats("deliver.d")
        assert (stats.scheduled, stats.dead, stats.acked) == (1, 1, 0)
        assert (await log.stats("ingest")).acked == 1
        assert log.backlog_estimate("deliver.d") == 1
        steps = [(e.step, e.destination_id, e.latency_ms) for e in await log.trace("m1")]
        assert steps == [("accepted", "", None), ("queued", "d", None), ("delivered", "d", 120.0)]
        counts = {(c.step, c.destination_id): c.count for c in await log.trace_counts(now - 3600)}
        assert counts == {("accepted", ""): 1, ("queued", "d"): 1, ("delivered", "d"): 1}
        assert [n for _, n in await log.delivery_latencies("d", now - 3600)] == [1]
        (new,) = await log.append("ingest", [("src", b"new")])
        assert new == 6  # after the deleted 5: AUTOINCREMENT's sequence survived
    finally:
        await log.close()
    # Starting again finds the new layout and changes nothing.
    again = SQLiteEventLog(path)
    await again.start()
    try:
        assert [r.payload for r in await again.read("ingest")] == [b"acked", b"live", b"new"]
    finally:
        await again.close()
