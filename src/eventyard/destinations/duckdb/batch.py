"""From a batch of events to a ``Load``: flatten, group per (schema, table), plan each table.

Pure apart from reading the store's current columns. Events whose rows cannot be loaded at
all (a table past the column cap) are reported per event and left out of every table, so an
event is either loaded whole or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eventyard.destinations.duckdb.store import Columns, Load
from eventyard.warehouse import USERS, Dialect, Discard, TableRow, TooManyColumns, plan_table


@dataclass
class Grouped:
    """Rows per (schema, table), each with the index of its event in the batch."""

    rows: dict[tuple[str, str], list[tuple[int, TableRow]]] = field(default_factory=dict)
    discards: dict[str, list[tuple[int, Discard]]] = field(default_factory=dict)

    def add(self, index: int, schema: str, rows: list[TableRow], discards: list[Discard]) -> None:
        for row in rows:
            self.rows.setdefault((schema, row.table), []).append((index, row))
        for discard in discards:
            self.discards.setdefault(schema, []).append((index, discard))


def merge_users(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per user id: later rows (by ``received_at``) overwrite earlier values that are not null."""
    merged: dict[Any, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: str(r.get("received_at") or "")):
        target = merged.setdefault(row["id"], {})
        target.update({k: v for k, v in row.items() if v is not None})
    return list(merged.values())


def first_per_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with an ``id`` seen before in the batch are dropped (the first one is loaded)."""
    seen: set[Any] = set()
    out = []
    for row in rows:
        if row.get("id") not in seen:
            seen.add(row.get("id"))
            out.append(row)
    return out


def plan_load(
    grouped: Grouped, columns: Callable[[str, str], Columns], dialect: Dialect
) -> tuple[Load, dict[int, str]]:
    """The load for ``grouped`` and, per event that cannot be loaded, why."""
    failed: dict[int, str] = {}
    while True:
        load = Load()
        newly_failed = False
        for (schema, table), items in grouped.rows.items():
            rows = [tr.row for i, tr in items if i not in failed]
            rows = merge_users(rows) if table == USERS else first_per_id(rows)
            try:
                load.plans[(schema, table)] = plan_table(table, columns(schema, table), rows, dialect)
            except TooManyColumns as exc:
                for i, _ in items:
                    if i not in failed:
                        failed[i] = f"schema {schema!r}: {exc}"
                        newly_failed = True
        if not newly_failed:
            break
    for (schema, _), plan in load.plans.items():
        load.discards.setdefault(schema, []).extend(plan.discards)
    for schema, discards in grouped.discards.items():
        load.discards.setdefault(schema, []).extend(d for i, d in discards if i not in failed)
    load.discards = {s: d for s, d in load.discards.items() if d}
    return load, failed


def discard_counts(load: Load) -> Mapping[tuple[str, str], int]:
    """Discarded values per (schema, table), for metrics and logs."""
    counts: dict[tuple[str, str], int] = {}
    for schema, discards in load.discards.items():
        for d in discards:
            counts[(schema, d.table)] = counts.get((schema, d.table), 0) + 1
    return counts
