"""From a batch of flattened events to one plan per (schema, table), for any warehouse backend.

``Grouped`` holds every event's rows per (schema, table) with the index of the event in the
batch, so that anything decided per table can be traced back to events: ``plan_load`` plans
each table with ``plan_columns`` and, when a table would pass the column cap (or the
backend's own ``check`` refuses it), fails just the events with rows in that table and plans
the rest again. An event is loaded whole or not at all.

Before planning, rows with the same ``id`` in one batch are loaded once (the first one, as a
later load would keep the first one too), and the ``users`` rows of one user are merged
(newer ``received_at`` wins per trait, older rows only fill traits still empty).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eventyard.warehouse.columns import ColumnarPlan, plan_columns
from eventyard.warehouse.discards import Discard
from eventyard.warehouse.flatten import STANDARD_TABLES, TRACKS, USERS, Flattened
from eventyard.warehouse.naming import Dialect
from eventyard.warehouse.schema import TooManyColumns
from eventyard.warehouse.types import ColumnType, parse_timestamp

Key = tuple[str, str]
#: ``check(schema, table, plan)``: a reason the backend cannot take the plan, or ``None``.
Check = Callable[[str, str, ColumnarPlan], "str | None"]
_OLDEST = datetime.min.replace(tzinfo=UTC)


class Rows:
    """The rows of one (schema, table) and, for each, the index of its event in the batch."""

    __slots__ = ("indices", "rows")

    def __init__(self) -> None:
        self.indices: list[int] = []
        self.rows: list[dict[str, Any]] = []


@dataclass
class Grouped:
    """Rows per (schema, table), each with the index of its event in the batch.

    Kept as two flat lists per table (no object per row): a batch holds many thousands of rows,
    and every object that lives through the load is one more for the garbage collector to visit.
    """

    rows: dict[Key, Rows] = field(default_factory=dict)
    #: Values left out while flattening (reserved or colliding names), per schema, with their event.
    discards: dict[str, list[tuple[int, Discard]]] = field(default_factory=dict)
    #: The events, by index, in the order they were added.
    events: list[int] = field(default_factory=list)

    def add(self, index: int, schema: str, flat: Flattened) -> None:
        self.events.append(index)
        for table, row, _ in flat.rows:
            found = self.rows.get((schema, table))
            if found is None:
                found = self.rows[(schema, table)] = Rows()
            found.indices.append(index)
            found.rows.append(row)
        if flat.discards:
            self.discards.setdefault(schema, []).extend((index, d) for d in flat.discards)

    @classmethod
    def of(cls, events: Iterable[tuple[int, str, Flattened]]) -> Grouped:
        """``(event index, schema, flattened event)`` grouped."""
        grouped = cls()
        for index, schema, flat in events:
            grouped.add(index, schema, flat)
        return grouped

    def subset(self, keep: Collection[int]) -> Grouped:
        """The rows and discards of the events ``keep`` only."""
        wanted = set(keep)
        out = Grouped(events=[i for i in self.events if i in wanted])
        for key, found in self.rows.items():
            part = Rows()
            for i, row in zip(found.indices, found.rows, strict=True):
                if i in wanted:
                    part.indices.append(i)
                    part.rows.append(row)
            if part.rows:
                out.rows[key] = part
        for schema, discards in self.discards.items():
            kept = [(i, d) for i, d in discards if i in wanted]
            if kept:
                out.discards[schema] = kept
        return out


@dataclass
class LoadPlan:
    """Everything one load writes, and the events that cannot be loaded."""

    plans: dict[Key, ColumnarPlan] = field(default_factory=dict)
    #: Discarded values per schema, each with the index of the event it belongs to.
    discards: dict[str, list[tuple[int, Discard]]] = field(default_factory=dict)
    #: Event index -> why it cannot be loaded (reason code first: ``column_cap: ...``).
    failed: dict[int, str] = field(default_factory=dict)

    def discard_rows(self) -> dict[str, list[Discard]]:
        """The discards per schema, without their events."""
        return {schema: [d for _, d in found] for schema, found in self.discards.items() if found}


def _received(row: Mapping[str, Any]) -> datetime:
    value = row.get("received_at")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        return parse_timestamp(value) or _OLDEST
    return _OLDEST


def merge_users(indices: Sequence[int], rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One row per user id: later rows (by ``received_at``) overwrite earlier values that are not null.

    Returns the rows and, per user id, the event whose row is the newest (discards of the merged
    row are attributed to it).
    """
    merged: dict[Any, dict[str, Any]] = {}
    owners: dict[str, int] = {}
    for index, row in sorted(zip(indices, rows, strict=True), key=lambda item: _received(item[1])):
        target = merged.setdefault(row["id"], {})
        target.update({k: v for k, v in row.items() if v is not None})
        owners[str(row["id"])] = index
    return list(merged.values()), owners


def first_per_id(indices: Sequence[int], rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Rows whose ``id`` was seen before in the batch are dropped (the first one is loaded)."""
    seen: dict[str, int] = {}
    out = []
    for index, row in zip(indices, rows, strict=True):
        key = str(row.get("id", ""))
        if key not in seen:
            seen[key] = index
            out.append(row)
    return out, seen


def plan_load(
    grouped: Grouped,
    columns: Callable[[str, str], Mapping[str, ColumnType]],
    dialect: Dialect,
    check: Check | None = None,
) -> LoadPlan:
    """The load of ``grouped`` given each table's current ``columns(schema, table)``."""
    failed: dict[int, str] = {}
    # tracks first: the table of each track event takes its shared columns from it
    order = sorted(grouped.rows, key=lambda key: key[1] != TRACKS)
    while True:
        load = LoadPlan(failed=failed)
        owners: dict[Key, dict[str, int]] = {}
        newly_failed = False
        for schema, table in order:
            found = grouped.rows[(schema, table)]
            indices, live = found.indices, found.rows
            if failed:
                kept = [(i, row) for i, row in zip(indices, live, strict=True) if i not in failed]
                indices, live = [i for i, _ in kept], [row for _, row in kept]
            if not live:
                continue
            rows, owned = merge_users(indices, live) if table == USERS else first_per_id(indices, live)
            owners[(schema, table)] = owned
            share = None
            if table not in STANDARD_TABLES and (schema, TRACKS) in load.plans:
                tracks_owners = owners[(schema, TRACKS)]
                if all(tracks_owners.get(row_id) == i for row_id, i in owned.items()):
                    share = load.plans[(schema, TRACKS)]
            try:
                plan = plan_columns(table, columns(schema, table), rows, dialect, share=share)
                problem = check(schema, table, plan) if check is not None else None
            except TooManyColumns as exc:
                problem = str(exc)
            if problem:
                for i in indices:
                    failed[i] = f"column_cap: schema {schema!r}: {problem}"
                newly_failed = True
                continue
            load.plans[(schema, table)] = plan
        if not newly_failed:
            break
    for (schema, table), plan in load.plans.items():
        by_row = owners[(schema, table)]
        load.discards.setdefault(schema, []).extend((by_row.get(d.row_id, -1), d) for d in plan.discards)
    for schema, discards in grouped.discards.items():
        load.discards.setdefault(schema, []).extend((i, d) for i, d in discards if i not in failed)
    load.discards = {s: d for s, d in load.discards.items() if d}
    return load
