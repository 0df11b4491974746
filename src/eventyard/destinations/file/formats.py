"""How events become file content: JSON lines, or Parquet rows with a fixed schema.

The Parquet schema is the same for every event type and never changes with the data:
top-level columns for the fields every pipeline reads, and ``properties``, ``traits``,
``context`` and ``extra`` (every other top-level field) as JSON strings. Free-form objects
as typed columns would make each file's schema depend on the events in it, and files with
different schemas break readers (Spark, DuckDB, pandas) and ML feature pipelines; a JSON
string column is read the same way everywhere and unpacked with ``json_extract`` where needed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from eventyard.spec import timestamps

#: (column, event field) of the plain string columns.
STRING_COLUMNS = (
    ("message_id", "messageId"),
    ("event_type", "type"),
    ("event_name", "event"),
    ("name", "name"),
    ("user_id", "userId"),
    ("anonymous_id", "anonymousId"),
    ("group_id", "groupId"),
    ("previous_id", "previousId"),
)
#: (column, event field) of the UTC timestamp columns (milliseconds).
TIME_COLUMNS = (
    ("timestamp", "timestamp"),
    ("original_timestamp", "originalTimestamp"),
    ("sent_at", "sentAt"),
    ("received_at", "receivedAt"),
)
#: (column, event field) of the JSON string columns.
JSON_COLUMNS = (("properties", "properties"), ("traits", "traits"), ("context", "context"))
#: Every other top-level field goes, as one JSON object, into this column.
EXTRA_COLUMN = "extra"

_KNOWN = frozenset(f for _, f in STRING_COLUMNS + TIME_COLUMNS + JSON_COLUMNS)
#: Rough bytes per row beyond its JSON columns, to size Parquet files before writing them.
ROW_OVERHEAD = 256


def jsonl_line(payload: Any) -> bytes:
    """One JSON line; raises ``TypeError``/``ValueError`` when the payload is not JSON."""
    return msgspec.json.encode(payload) + b"\n"


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return timestamps.parse(value, "timestamp")
    except timestamps.InvalidTimestamp:
        return None


def _json(value: Any) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


def parquet_row(event: dict[str, Any]) -> dict[str, Any]:
    """The Parquet row of a normalized event; raises ``TypeError``/``ValueError`` for non-JSON values."""
    row: dict[str, Any] = {}
    for column, key in STRING_COLUMNS:
        row[column] = _text(event.get(key))
    for column, key in TIME_COLUMNS:
        row[column] = _time(event.get(key))
    for column, key in JSON_COLUMNS:
        row[column] = _json(event.get(key))
    extra = {k: v for k, v in event.items() if k not in _KNOWN}
    row[EXTRA_COLUMN] = _json(extra) if extra else None
    return row


def row_size(row: dict[str, Any]) -> int:
    """Estimated bytes of a Parquet row (uncompressed), for file rotation."""
    return ROW_OVERHEAD + sum(len(row[c] or "") for c, _ in (*JSON_COLUMNS, (EXTRA_COLUMN, "")))


def parquet_schema() -> Any:
    import pyarrow as pa

    fields = [pa.field(c, pa.string(), nullable=(c != "message_id")) for c, _ in STRING_COLUMNS]
    fields += [pa.field(c, pa.timestamp("ms", tz="UTC")) for c, _ in TIME_COLUMNS]
    fields += [pa.field(c, pa.string()) for c, _ in JSON_COLUMNS]
    fields.append(pa.field(EXTRA_COLUMN, pa.string()))
    return pa.schema(fields, metadata={b"eventyard.schema": b"events/1"})


def parquet_file(rows: list[dict[str, Any]], codec: str) -> bytes:
    """A complete Parquet file (one row group) holding ``rows``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=parquet_schema())
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=codec)
    data: bytes = sink.getvalue().to_pybytes()
    return data
