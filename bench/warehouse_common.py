"""Shared by the warehouse benchmarks: the events, the plain rows, how busy the machine is."""

from __future__ import annotations

import gc
import os
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from eventyard.warehouse import USERS, ColumnType, Dialect, flatten_event
from eventyard.warehouse.columns import plan_columns
from ingest import EventGenerator, busy_cpus

SOURCE = "bench"
DEFAULT_SEED = 20261129


def batches(count: int, size: int, seed: int = DEFAULT_SEED) -> Iterator[list[dict[str, Any]]]:
    """``count`` generated events (track 60 %, page 25 %, identify 15 %) in lists of ``size``:
    ``messageId`` ``bench-<n>``, ``receivedAt`` and ``originalTimestamp`` set as the normalizer would."""
    gen = EventGenerator(seed)
    n = 0
    while n < count:
        out = []
        for _ in range(min(size, count - n)):
            event = gen.event()
            event["messageId"] = f"bench-{n}"
            event["receivedAt"] = event["timestamp"]
            event.setdefault("originalTimestamp", event["timestamp"])
            out.append(event)
            n += 1
        yield out


def all_batches(count: int, size: int, seed: int) -> list[list[dict[str, Any]]]:
    t0 = time.perf_counter()
    out = list(batches(count, size, seed))
    # The events stay in memory for the whole run; without this every full garbage collection
    # during the timed loads would walk all of them (a server holds one batch at a time).
    gc.collect()
    gc.freeze()
    print(f"generated {count:,} events (seed {seed}) in {time.perf_counter() - t0:.1f} s (not timed)", flush=True)
    return out


def plain_columns(
    batch: list[dict[str, Any]],
    tables: Mapping[str, Mapping[str, ColumnType]],
    seen_users: set[str],
    dialect: Dialect,
    naive: bool = True,
) -> dict[str, dict[str, list[Any]]]:
    """The batch's rows per table as column lists, coerced exactly as eventyard coerces them
    (timestamps as UTC datetimes, naive unless ``naive=False``), in each table's column order.
    ``users``: each user's first row only, since a plain append cannot upsert."""
    now = datetime.now(UTC)
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in batch:
        for row in flatten_event(event, loaded_at=now, dialect=dialect).rows:
            grouped[row.table].append(row.row)
    out: dict[str, dict[str, list[Any]]] = {}
    for table, rows in grouped.items():
        if table == USERS:
            fresh = {r["id"]: r for r in rows if r["id"] not in seen_users}
            seen_users.update(fresh)
            rows = list(fresh.values())
        names = list(tables[table])
        plan = plan_columns(table, tables[table], rows, dialect)
        arrow = plan.arrow(names)
        columns: dict[str, list[Any]] = {}
        for name, column in zip(names, arrow.columns, strict=True):
            values = column.to_pylist()
            if naive and tables[table][name] == ColumnType.TIMESTAMP:
                values = [None if v is None else v.replace(tzinfo=None) for v in values]
            columns[name] = values
        out[table] = columns
    return out


def machine_load() -> str:
    """How busy the machine is right now: load averages and CPUs busy over the last second."""
    one, five, fifteen = os.getloadavg()
    busy = busy_cpus()
    cpus = f"{busy:.2f} of {os.cpu_count()} CPUs busy" if busy is not None else "CPU use unknown"
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}; {cpus}"
