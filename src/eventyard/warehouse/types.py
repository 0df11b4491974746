"""Column types of the warehouse schema, how a value's type is inferred, and the widening lattice.

Five types, as Segment loads them (``boolean``, ``integer``, ``float``, ``timestamp``,
``varchar``), named by what they hold::

    BIGINT ──▶ DOUBLE ──▶ TEXT        the only widenings: every value of the old type
                                      is exactly representable in the new one
    BOOLEAN, TIMESTAMP                never widened: a value that is not a boolean /
                                      timestamp goes to the discards table instead

A column keeps its type forever unless a batch brings a value of a wider type along the
lattice; widening a ``timestamp`` or ``boolean`` column to text would break every query that
compares or truncates it, so those values are discarded (with a reason) rather than loaded.
"""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime
from typing import Any

import msgspec

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: ISO 8601 / RFC 3339 date-times (a date alone is not taken for a timestamp).
_ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?$",
    re.IGNORECASE,
)


class ColumnType(enum.StrEnum):
    """A warehouse column type; backends map each to their own SQL type."""

    BOOLEAN = "boolean"
    BIGINT = "bigint"
    DOUBLE = "double"
    TIMESTAMP = "timestamp"
    TEXT = "text"


#: Numeric columns widen (to double, then text); boolean and timestamp columns never do.
_NUMERIC = frozenset({ColumnType.BIGINT, ColumnType.DOUBLE})


class CannotCoerce(ValueError):
    """A value does not fit a column type; ``reason`` is a stable code for the discards table."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_timestamp(value: str) -> datetime | None:
    """The UTC datetime of an ISO 8601 date-time string, or ``None`` when it is not one."""
    if not _ISO_DATETIME.match(value):
        return None
    text = value.upper().replace("Z", "+00:00")
    if "." in text:  # Python takes at most 6 fractional digits
        head, _, tail = text.partition(".")
        digits = len(tail) - len(tail.lstrip("0123456789"))
        text = head + "." + tail[: min(digits, 6)] + tail[digits:]
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # out of range, or past year 1/9999 once in UTC
        return None


def infer_type(value: Any) -> ColumnType | None:
    """The column type a value would create; ``None`` for ``None`` (no column is made for it).

    Strings that are ISO 8601 date-times are timestamps; integers outside 64 bits are text
    (a double would lose digits); lists and dicts are text (JSON).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return ColumnType.BOOLEAN
    if isinstance(value, int):
        return ColumnType.BIGINT if INT64_MIN <= value <= INT64_MAX else ColumnType.TEXT
    if isinstance(value, float):
        return ColumnType.DOUBLE
    if isinstance(value, datetime):
        return ColumnType.TIMESTAMP
    if isinstance(value, str) and parse_timestamp(value) is not None:
        return ColumnType.TIMESTAMP
    return ColumnType.TEXT


def merge_types(current: ColumnType, incoming: ColumnType) -> ColumnType | None:
    """The type a column of type ``current`` needs to hold a value of type ``incoming``.

    ``current`` itself when the value fits as it is (anything fits ``TEXT``; an integer fits
    ``DOUBLE``), the wider type on the lattice when widening is safe, else ``None``: the
    value must be discarded.
    """
    if current == incoming or current == ColumnType.TEXT:
        return current
    if current == ColumnType.DOUBLE and incoming == ColumnType.BIGINT:
        return current
    if current == ColumnType.BIGINT and incoming == ColumnType.DOUBLE:
        return ColumnType.DOUBLE
    if current in _NUMERIC:
        return ColumnType.TEXT
    return None


def to_text(value: Any) -> str:
    """A value as column text: strings as they are, lists/dicts as JSON, others as JSON scalars."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return msgspec.json.encode(value).decode()


def coerce(value: Any, column_type: ColumnType) -> Any:
    """``value`` as a Python value of ``column_type`` (timestamps as aware UTC datetimes).

    Raises ``CannotCoerce`` (with a reason code) when the value does not fit.
    """
    kind = infer_type(value)
    if kind is None:
        return None
    if column_type == ColumnType.TEXT:
        return to_text(value)
    if kind == column_type:
        if kind == ColumnType.TIMESTAMP:
            if isinstance(value, datetime):
                return value if value.tzinfo else value.replace(tzinfo=UTC)
            return parse_timestamp(value)
        return value
    if column_type == ColumnType.DOUBLE and kind == ColumnType.BIGINT:
        return float(value)
    raise CannotCoerce(
        f"not_{column_type.value}",
        f"a {kind.value} value does not fit the {column_type.value} column",
    )
