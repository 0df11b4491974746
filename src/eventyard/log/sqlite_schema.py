"""The SQLite log's tables, and the upgrade from the first layout.

Payloads and state live apart (schema version 2):

* ``records``: every record, written once and never updated (id, topic, key, payload,
  appended_at). Processed records stay here until the retention purges them.
* ``queue``: one narrow row per record that is still to be processed (``state`` 0) or was
  dead-lettered (``state`` 2): due time, attempts, lease owner, last error. Leasing, retrying
  and acking touch only these rows; an ack deletes the row. A record that is in ``records``
  but not in ``queue`` is acked. Only records with a key are in the ``queue_key`` index that
  ordered leasing needs: delivery jobs of destinations without ordering are appended without
  a key, because one index entry per user key is a random insert (and a random delete on
  ack) that dirtied a page of its own per job.
* ``trace``: one row per event and commit, the entries of that commit packed together (the
  pipeline's ``accepted`` with every ``queued``/``filtered`` decision; a worker's outcome),
  indexed by messageId only.
* ``trace_counts`` and ``delivery_latency``: what the delivery overview needs, counted when
  the entries are written (per 10 s, and a latency histogram per 60 s), so the overview never
  scans the trace.

Why: in the first layout (one ``records`` table with the state columns, one trace row per
entry with two indexes) every lease and every ack rewrote the whole record, payload included
(an ingest record holds a whole request, up to hundreds of kilobytes), and each event added
three or more trace rows. The writer thread spent most of its time writing those pages to the
WAL and checkpointing them.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Sequence
from itertools import accumulate
from operator import itemgetter

import msgspec

VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key TEXT NOT NULL,
    payload BLOB NOT NULL,
    appended_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS records_topic ON records (topic, id);
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    key TEXT NOT NULL,
    available_at REAL NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS queue_due ON queue (topic, available_at, id) WHERE state = 0;
CREATE INDEX IF NOT EXISTS queue_key ON queue (topic, key, id) WHERE state = 0 AND key != '';
CREATE INDEX IF NOT EXISTS queue_dead ON queue (topic, id) WHERE state = 2;
CREATE TABLE IF NOT EXISTS trace (
    message_id TEXT NOT NULL,
    at REAL NOT NULL,
    entries BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS trace_message ON trace (message_id);
CREATE TABLE IF NOT EXISTS trace_counts (
    bucket INTEGER NOT NULL,
    destination_id TEXT NOT NULL,
    step TEXT NOT NULL,
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (bucket, destination_id, step, reason)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS delivery_latency (
    bucket INTEGER NOT NULL,
    destination_id TEXT NOT NULL,
    bin INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (bucket, destination_id, bin)
) WITHOUT ROWID;
"""

#: Seconds per ``trace_counts`` bucket: ``trace_counts`` is exact for buckets that are multiples.
COUNT_SECONDS = 10
#: Seconds per ``delivery_latency`` bucket.
LATENCY_SECONDS = 60
#: Latency histogram bins grow by this factor: a percentile read from it is within ±2.5 %.
LATENCY_RATIO = 1.05
_LOG_RATIO = math.log(LATENCY_RATIO)
_encode = msgspec.json.encode
_TOPIC, _KEY, _PAYLOAD = itemgetter(0), itemgetter(1), itemgetter(2)


def latency_bin(ms: float) -> int:
    """The histogram bin of a latency: bin ``b`` holds (ratio^(b-1), ratio^b] ms; 0 holds ≤ 1 ms."""
    return 0 if ms <= 1.0 else math.ceil(math.log(ms) / _LOG_RATIO)


def bin_value(b: int) -> float:
    """The latency a bin stands for: the geometric middle of its bounds (0.5 ms for bin 0)."""
    return 0.5 if b <= 0 else LATENCY_RATIO ** (b - 0.5)


# ------------------------------------------------------------------ statements


def pack_records(records: Sequence[tuple[str, str, bytes]], at: Iterable[float]) -> tuple[bytes, bytes]:
    """``(topic, key, payload)`` records appended at ``at`` (one time per record), packed for
    ``INSERT INTO records ... FROM json_each(?)``: a JSON array of ``[topic, key, appended_at,
    offset, length]`` and the payloads concatenated (``substr(?, offset, length)``).

    One statement per insert, whatever its size (each SQLite step makes the writer thread take
    the GIL back from the event loop), and always the same statement, so it stays prepared.
    Built with C-level iterators: this runs on the event loop for every append and commit.
    """
    payloads = list(map(_PAYLOAD, records))
    sizes = list(map(len, payloads))
    offsets = list(accumulate(sizes, initial=1))[:-1]
    meta = zip(map(_TOPIC, records), map(_KEY, records), at, offsets, sizes, strict=True)
    return _encode(list(meta)), b"".join(payloads)


# ------------------------------------------------------------------- upgrade


def create_or_upgrade(conn: sqlite3.Connection) -> None:
    """Create the tables, or upgrade a log written in the first layout (in one transaction)."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    columns = {r[1] for r in conn.execute("PRAGMA table_info(records)")}
    if version >= VERSION or "state" not in columns:
        conn.executescript(SCHEMA)
        if version < VERSION:
            conn.execute(f"PRAGMA user_version = {VERSION}")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        _upgrade_from_v1(conn)
        conn.execute(f"PRAGMA user_version = {VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _upgrade_from_v1(conn: sqlite3.Connection) -> None:
    seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
    conn.execute("DROP INDEX IF EXISTS records_due")
    conn.execute("DROP INDEX IF EXISTS records_live_key")
    conn.execute("DROP INDEX IF EXISTS trace_message")
    conn.execute("DROP INDEX IF EXISTS trace_at")
    conn.execute("ALTER TABLE records RENAME TO records_v1")
    conn.execute("ALTER TABLE trace RENAME TO trace_v1")
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute(
        "INSERT INTO records (id, topic, key, payload, appended_at) "
        "SELECT id, topic, key, payload, appended_at FROM records_v1 ORDER BY id"
    )
    conn.execute(
        "INSERT INTO queue (id, topic, key, available_at, state, attempts, lease_owner, error) "
        "SELECT id, topic, key, available_at, state, attempts, lease_owner, error FROM records_v1 "
        "WHERE state IN (0, 2) ORDER BY id"
    )
    if seq is not None:
        conn.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'records'", (seq[0],))
    conn.execute("DROP TABLE records_v1")
    rows = conn.execute(
        "SELECT message_id, source_id, step, destination_id, reason, detail, attempt, latency_ms, at "
        "FROM trace_v1 ORDER BY rowid"
    )
    from eventyard.log.base import TraceEntry
    from eventyard.log.trace_rows import TraceWrite

    while chunk := rows.fetchmany(10_000):
        TraceWrite([TraceEntry(*r) for r in chunk], 0.0).apply(conn)
    conn.execute("DROP TABLE trace_v1")


__all__ = [
    "COUNT_SECONDS",
    "LATENCY_RATIO",
    "LATENCY_SECONDS",
    "SCHEMA",
    "VERSION",
    "bin_value",
    "create_or_upgrade",
    "latency_bin",
    "pack_records",
]
