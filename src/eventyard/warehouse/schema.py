"""Schema evolution: what a batch of rows needs from a table, decided before anything is loaded.

``plan_table`` walks the batch twice. First it settles each column's type: a column the
table does not have is added with the type of its first value (standard columns always get
their fixed type); a value of a wider type along the lattice (bigint -> double -> text)
widens the column. Then it coerces every value to its column's final type; a value that
still does not fit (a string in a timestamp column, a number in a boolean column) is left out
of the row and becomes a ``Discard`` with the reason. Nothing is ever silently NULL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventyard.warehouse.discards import Discard
from eventyard.warehouse.naming import Dialect
from eventyard.warehouse.types import CannotCoerce, ColumnType, coerce, infer_type, merge_types, to_text

#: Types of the standard columns, whatever their first value looks like.
STANDARD_COLUMN_TYPES: dict[str, ColumnType] = {
    "id": ColumnType.TEXT,
    "anonymous_id": ColumnType.TEXT,
    "user_id": ColumnType.TEXT,
    "received_at": ColumnType.TIMESTAMP,
    "sent_at": ColumnType.TIMESTAMP,
    "original_timestamp": ColumnType.TIMESTAMP,
    "timestamp": ColumnType.TIMESTAMP,
    "uuid_ts": ColumnType.TIMESTAMP,
    "event": ColumnType.TEXT,
    "event_text": ColumnType.TEXT,
    "name": ColumnType.TEXT,
    "group_id": ColumnType.TEXT,
    "previous_id": ColumnType.TEXT,
}


class TooManyColumns(ValueError):
    """Loading the batch would take a table past the backend's column cap."""

    def __init__(self, table: str, needed: int, limit: int, new_columns: Sequence[str]) -> None:
        shown = ", ".join(sorted(new_columns)[:10]) + (", ..." if len(new_columns) > 10 else "")
        super().__init__(
            f"table {table!r} would need {needed} columns, more than the {limit} this warehouse allows "
            f"(new columns: {shown}); drop or rename properties before they reach the warehouse "
            "(a destination filter or mapping), or load this event type elsewhere"
        )
        self.table = table
        self.needed = needed
        self.limit = limit


@dataclass
class TablePlan:
    """What to do to ``table`` to load a batch, in this order: add, widen, load ``rows``, discard."""

    table: str
    #: New columns and their types (in first-seen order).
    add: dict[str, ColumnType] = field(default_factory=dict)
    #: Existing columns whose type changes, and the new type.
    widen: dict[str, ColumnType] = field(default_factory=dict)
    #: Every column of the table after the change, with its type.
    columns: dict[str, ColumnType] = field(default_factory=dict)
    #: The rows, values coerced to their column's type (timestamps as aware UTC datetimes).
    rows: list[dict[str, Any]] = field(default_factory=list)
    discards: list[Discard] = field(default_factory=list)

    @property
    def changes_schema(self) -> bool:
        return bool(self.add or self.widen)


def plan_table(
    table: str,
    existing: Mapping[str, ColumnType],
    rows: Sequence[Mapping[str, Any]],
    dialect: Dialect,
    fixed_types: Mapping[str, ColumnType] = STANDARD_COLUMN_TYPES,
) -> TablePlan:
    """Plan loading ``rows`` into ``table`` whose current columns are ``existing`` (empty: a new table).

    Raises ``TooManyColumns`` when the table would exceed ``dialect.max_columns``.
    """
    plan = TablePlan(table, columns=dict(existing))
    types = plan.columns
    for row in rows:
        for column, value in row.items():
            incoming = infer_type(value)
            if incoming is None:
                continue
            current = types.get(column)
            if current is None:
                types[column] = plan.add[column] = fixed_types.get(column, incoming)
                continue
            merged = merge_types(current, incoming)
            if merged is None or merged == current:
                continue
            types[column] = merged
            if column in plan.add:
                plan.add[column] = merged
            else:
                plan.widen[column] = merged
    if plan.add and len(types) > dialect.max_columns:
        raise TooManyColumns(table, len(types), dialect.max_columns, list(plan.add))
    for row in rows:
        out: dict[str, Any] = {}
        for column, value in row.items():
            try:
                out[column] = coerce(value, types[column]) if value is not None else None
            except CannotCoerce as exc:
                plan.discards.append(Discard(table, column, str(row.get("id", "")), to_text(value), exc.reason))
        plan.rows.append(out)
    return plan
