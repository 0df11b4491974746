"""The ``discards`` table: every value that could not be loaded, with the reason.

A value is discarded when it fits neither its column's type nor a safe widening of it
(``not_timestamp``, ``not_boolean``, ...), or when its name collides with a standard column
(``reserved_column``), with another property of the same row (``duplicate_column``) or has
no letters or digits (``empty_column_name``). The row itself is loaded without the value; the
value is never silently NULL, because this table says where it went.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventyard.warehouse.types import ColumnType

DISCARDS_TABLE = "discards"

#: Columns of the discards table, in order.
DISCARDS_COLUMNS: dict[str, ColumnType] = {
    "table_name": ColumnType.TEXT,
    "column_name": ColumnType.TEXT,
    "row_id": ColumnType.TEXT,
    "column_value": ColumnType.TEXT,
    "reason": ColumnType.TEXT,
    "uuid_ts": ColumnType.TIMESTAMP,
}


@dataclass(frozen=True)
class Discard:
    """One value that was not loaded into ``table.column`` of the row whose ``id`` is ``row_id``."""

    table: str
    column: str
    row_id: str
    #: The value as text (JSON for lists, numbers and booleans).
    value: str
    reason: str

    def as_row(self, uuid_ts: datetime) -> dict[str, Any]:
        """The row of the discards table (keys: ``DISCARDS_COLUMNS``)."""
        return {
            "table_name": self.table,
            "column_name": self.column,
            "row_id": self.row_id,
            "column_value": self.value,
            "reason": self.reason,
            "uuid_ts": uuid_ts,
        }
