"""Arrow columns as PostgreSQL's binary COPY format, built by Arrow's kernels (no Python per value).

Binary COPY spares the server parsing every value from text (a timestamp is the costliest),
which on a loaded machine is about half of what COPY costs it per row. The format is a
signature, then per row a 16-bit field count and per field a 32-bit length (``-1``: null)
followed by the value in network byte order: ``text`` as its UTF-8 bytes, ``bigint`` and
``double precision`` as 8 bytes, ``boolean`` as one, ``timestamptz`` as microseconds since
2000-01-01 UTC.

Each column becomes one or two Arrow binary arrays holding, per row, its field's bytes: the
lengths (byte-swapped in C by ``array.array``) and the values (strings as they are, numbers
byte-swapped); ``binary_join_element_wise`` then concatenates a row's fields, and the joined
array's data buffer is the COPY body. Binary COPY is only for columns whose type is exactly the
one eventyard creates (``SQL_TYPES``): a column someone altered by hand (``integer``,
``varchar``, ``timestamp``) would refuse these bytes, so the loader sends CSV to such a table.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_EPOCH_2000_MICROS = 946_684_800_000_000
_NULL_FIELD = b"\xff\xff\xff\xff"
_NULL = pa.scalar(_NULL_FIELD, pa.binary())
_EMPTY = pa.scalar(b"", pa.binary())
_SWAP = sys.byteorder == "little"
_EIGHT = b"\x00\x00\x00\x08"


class _Fields:
    """Binary arrays of ``n`` values each (the offsets of each fixed width made once)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._offsets: dict[int, pa.Buffer] = {}
        self._constants: dict[bytes, pa.Array] = {}

    def fixed(self, data: Any, width: int) -> pa.Array:
        offsets = self._offsets.get(width)
        if offsets is None:
            offsets = self._offsets[width] = pa.py_buffer(array("i", range(0, width * (self.n + 1), width)))
        return pa.Array.from_buffers(pa.binary(), self.n, [None, offsets, pa.py_buffer(data)])

    def constant(self, value: bytes) -> pa.Array:
        found = self._constants.get(value)
        if found is None:
            found = self._constants[value] = self.fixed(value * self.n, len(value))
        return found


def _network_order(values: pa.Array, code: str, width: int) -> array[Any]:
    """A fixed-width Arrow array without nulls as big-endian bytes."""
    out: array[Any] = array(code)
    start = values.offset * width
    out.frombytes(memoryview(values.buffers()[1])[start : start + len(values) * width])
    if _SWAP:
        out.byteswap()
    return out


def _column(fields: _Fields, column: pa.Array) -> list[pa.Array]:
    """The column's fields (length and value) per row, as binary arrays to be joined."""
    n = len(column)
    kind = column.type
    nulls = column.null_count
    if nulls == n:
        return [fields.constant(_NULL_FIELD)]
    if pa.types.is_string(kind):
        lengths = pc.binary_length(column)
        values = column.view(pa.binary())
        if nulls:
            lengths, values = lengths.fill_null(-1), values.fill_null(b"")
        return [fields.fixed(_network_order(lengths, "i", 4), 4), values]
    valid = column.is_valid() if nulls else None
    if nulls:
        column = column.fill_null(False if pa.types.is_boolean(kind) else 0)
    if pa.types.is_timestamp(kind):
        micros = pc.subtract(column.view(pa.int64()), _EPOCH_2000_MICROS)
        length, values = _EIGHT, fields.fixed(_network_order(micros, "q", 8), 8)
    elif pa.types.is_int64(kind):
        length, values = _EIGHT, fields.fixed(_network_order(column, "q", 8), 8)
    elif pa.types.is_float64(kind):
        length, values = _EIGHT, fields.fixed(_network_order(column, "d", 8), 8)
    elif pa.types.is_boolean(kind):
        length, values = b"\x00\x00\x00\x01", fields.fixed(_network_order(column.cast(pa.uint8()), "B", 1), 1)
    else:
        raise TypeError(f"no binary COPY encoding for Arrow type {kind}")
    if valid is None:
        return [fields.constant(length), values]
    return [pc.if_else(valid, fields.constant(length), _NULL), pc.if_else(valid, values, _EMPTY)]


def _without_nul(columns: list[pa.Array]) -> list[pa.Array]:
    """Text columns with NUL characters removed (PostgreSQL refuses them in text), when any has one."""
    data = [c.buffers()[2] for c in columns if pa.types.is_string(c.type) and c.buffers()[2] is not None]
    if not data or b"\x00" not in b"".join(data):
        return columns
    return [pc.replace_substring(c, "\x00", "") if pa.types.is_string(c.type) else c for c in columns]


def binary_of(columns: Sequence[pa.Array]) -> bytes:
    """Arrow arrays of one length (string, int64, float64, bool, timestamp[us]), the fields of
    each row in order, as a binary COPY stream."""
    n = len(columns[0]) if columns else 0
    if not n:
        return b""
    if len(columns) > 0x7FFF:
        raise ValueError("binary COPY takes at most 32767 columns")
    fields = _Fields(n)
    parts = [fields.constant(len(columns).to_bytes(2, "big"))]
    for column in _without_nul(list(columns)):
        parts.extend(_column(fields, column))
    joined = pc.binary_join_element_wise(*parts, _EMPTY)
    bounds: array[int] = array("i")
    start = joined.offset * 4
    bounds.frombytes(memoryview(joined.buffers()[1])[start : start + (n + 1) * 4])
    return b"".join((SIGNATURE, memoryview(joined.buffers()[2])[bounds[0] : bounds[n]], TRAILER))
