"""Schema evolution for a whole batch at once: one table's rows planned column by column, as Arrow.

``plan_columns`` decides exactly what ``plan_table`` decides (same added and widened columns,
same coerced values, same discards), but looks at a column's values together instead of one
value at a time, which is what makes loading fast:

* A column's type is settled from the set of Python types in it, not value by value. The
  widening lattice makes that safe: once a column is ``boolean``, ``timestamp`` or ``text`` no
  value changes it, and a numeric column ends at the join of everything it holds. Only a new
  column's first value is looked at on its own (it decides the type).
* The coerced values come out as typed ``pyarrow`` arrays, built in C++ from the Python lists.
  Timestamp strings in the shape eventyard's normalizer writes (``2026-11-29T02:30:03.123Z``)
  are recognised by one regular expression over the whole column and parsed by Arrow; only
  other strings (offsets, odd precision, garbage) go through ``parse_timestamp`` one by one.
* Anything unusual in a column (values of mixed or unexpected Python types, a timestamp Arrow
  refuses) sends that column, and only that column, through the value-by-value path of
  ``types.coerce``, so the result never depends on which path ran.

Timestamps are ``timestamp[us, tz=UTC]`` arrays; a backend whose column is a naive UTC
timestamp casts them to ``timestamp[us]`` (the instant is unchanged).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from eventyard.warehouse.discards import Discard
from eventyard.warehouse.naming import Dialect
from eventyard.warehouse.schema import STANDARD_COLUMN_TYPES, TooManyColumns
from eventyard.warehouse.types import (
    INT64_MAX,
    INT64_MIN,
    CannotCoerce,
    ColumnType,
    coerce,
    infer_type,
    merge_types,
    to_text,
)

UTC_MICROS = pa.timestamp("us", tz="UTC")

#: The Arrow type of each column type.
ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    ColumnType.BOOLEAN: pa.bool_(),
    ColumnType.BIGINT: pa.int64(),
    ColumnType.DOUBLE: pa.float64(),
    ColumnType.TIMESTAMP: UTC_MICROS,
    ColumnType.TEXT: pa.string(),
}

#: UTC date-times as eventyard's normalizer writes them, which Arrow parses exactly as
#: ``parse_timestamp`` does (year 0000 and more than 6 fractional digits are left to Python).
CANONICAL_TIMESTAMP = r"^(?:[1-9]\d{3}|0[1-9]\d\d|00[1-9]\d|000[1-9])-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z$"

_NONE = type(None)
_STR = frozenset({str})
_NUMBERS = frozenset({int, float})
#: Python types a column may hold and still take the fast path.
_FAST = frozenset({str, int, float, bool, datetime})
_STICKY = frozenset({ColumnType.BOOLEAN, ColumnType.TIMESTAMP, ColumnType.TEXT})


@dataclass
class ColumnarPlan:
    """What to do to ``table`` to load a batch: add, widen, then append ``arrays`` (``num_rows`` long)."""

    table: str
    num_rows: int
    #: New columns and their types (in first-seen order).
    add: dict[str, ColumnType] = field(default_factory=dict)
    #: Existing columns whose type changes, and the new type.
    widen: dict[str, ColumnType] = field(default_factory=dict)
    #: Every column of the table after the change, with its type.
    columns: dict[str, ColumnType] = field(default_factory=dict)
    #: The batch's values of each column that has at least one (first-seen order), coerced to the
    #: column's type, as an Arrow array of ``ARROW_TYPES[type]``; a discarded value is null here.
    arrays: dict[str, pa.Array] = field(default_factory=dict)
    #: Each timestamp column of ``arrays`` also as ISO 8601 text (the strings that were parsed),
    #: for backends that take text: formatting Arrow timestamps back to text is slow.
    timestamp_text: dict[str, pa.Array] = field(default_factory=dict)
    discards: list[Discard] = field(default_factory=list)
    #: The table's columns before the batch, and the Python types each planned column held.
    before: dict[str, ColumnType] = field(default_factory=dict)
    kinds: dict[str, frozenset[type]] = field(default_factory=dict)

    @property
    def changes_schema(self) -> bool:
        return bool(self.add or self.widen)

    def arrow(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The rows as an Arrow table: the batch's columns, or ``columns`` (missing ones all null)."""
        names = list(self.arrays) if columns is None else list(columns)
        arrays = [
            self.arrays[c] if c in self.arrays else pa.nulls(self.num_rows, ARROW_TYPES[self.columns[c]]) for c in names
        ]
        return pa.Table.from_arrays(arrays, names=names)

    def pylist(self) -> list[dict[str, Any]]:
        """The rows as dicts of Python values (for tests and small batches)."""
        if not self.arrays:
            return [{} for _ in range(self.num_rows)]
        rows: list[dict[str, Any]] = self.arrow().to_pylist()
        return rows


def plan_columns(
    table: str,
    existing: Mapping[str, ColumnType],
    rows: Sequence[Mapping[str, Any]],
    dialect: Dialect,
    fixed_types: Mapping[str, ColumnType] = STANDARD_COLUMN_TYPES,
    share: ColumnarPlan | None = None,
) -> ColumnarPlan:
    """Plan loading ``rows`` into ``table`` whose current columns are ``existing`` (empty: a new table).

    ``share``: the plan of another table whose rows these rows extend, value for value, under the
    same ids (``tracks`` for the table of a track event): a column both tables already have with
    the same type, which the other plan did not widen and which held values of one Python type
    only, comes out exactly as it did there, so its array is taken from the other plan (by id)
    instead of being built again. Raises ``TooManyColumns`` when the table would exceed
    ``dialect.max_columns``.
    """
    plan = ColumnarPlan(table, len(rows), columns=dict(existing))
    plan.before = dict(existing)
    types = plan.columns
    ordered, by_column = _transpose(rows)
    held: list[tuple[str, list[Any], set[type]]] = []
    shared: list[str] = []
    at = _rows_by_id(share, by_column.get("id")) if share is not None else None
    if at is None:
        share = None
    for column, values in by_column.items():
        if share is not None and column != "id" and _shareable(share, column, existing):
            shared.append(column)
            continue
        kinds = set(map(type, values))
        kinds.discard(_NONE)
        if not kinds:
            continue  # only nulls: no column is made for them
        current = types.get(column)
        settled = _start(column, current, rows, fixed_types)
        if settled not in _STICKY:  # numeric: widened to the join of its values
            settled = _join(settled, values, kinds)
        if current is None:
            plan.add[column] = settled
        elif settled != current:
            plan.widen[column] = settled
        types[column] = settled
        plan.kinds[column] = frozenset(kinds)
        held.append((column, values, kinds))
    if plan.add and len(types) > dialect.max_columns:
        raise TooManyColumns(table, len(types), dialect.max_columns, list(plan.add))
    for column, values, kinds in held:
        plan.arrays[column] = _convert(plan, column, types[column], values, kinds, ordered)
    if shared:
        assert share is not None and at is not None
        _take(plan, share, shared, at)
    return plan


def _rows_by_id(share: ColumnarPlan, ids: list[Any] | None) -> dict[str, int] | None:
    """Where each row of the other plan is, by id, when every one of ``ids`` is there."""
    if ids is None or "id" not in share.arrays or not all(i.__class__ is str for i in ids):
        return None
    at = {row_id: i for i, row_id in enumerate(share.arrays["id"].to_pylist())}
    return at if all(i in at for i in ids) else None


def _shareable(share: ColumnarPlan, column: str, existing: Mapping[str, ColumnType]) -> bool:
    current = existing.get(column)
    return (
        current is not None
        and share.before.get(column) == current
        and column not in share.widen
        and len(share.kinds.get(column, ())) == 1
    )


def _take(plan: ColumnarPlan, share: ColumnarPlan, columns: list[str], at: dict[str, int]) -> None:
    """``columns`` of ``plan``'s rows from ``share``, row by row through the ids."""
    ids = plan.arrays["id"].to_pylist()
    positions = pa.array([at[row_id] for row_id in ids], pa.int64())
    mine = set(ids)
    for column in columns:
        plan.arrays[column] = share.arrays[column].take(positions)
        plan.kinds[column] = share.kinds[column]
        text = share.timestamp_text.get(column)
        if text is not None:
            plan.timestamp_text[column] = text.take(positions)
    plan.discards.extend(
        Discard(plan.table, d.column, d.row_id, d.value, d.reason)
        for d in share.discards
        if d.column in columns and d.row_id in mine
    )


def _timestamps(plan: ColumnarPlan, column: str, text: pa.Array) -> pa.Array:
    """ISO 8601 strings (each valid) as a UTC timestamp column, keeping the text too."""
    plan.timestamp_text[column] = text
    return text.cast(UTC_MICROS)


def _transpose(rows: Sequence[Mapping[str, Any]]) -> tuple[Sequence[Mapping[str, Any]], dict[str, list[Any]]]:
    """The rows' values per column (``None`` where a row has no value), and the rows in the order
    of those lists.

    Rows with the same keys in the same order (most rows of a table: events of one kind from one
    SDK) are transposed together in C by ``zip``; the lists follow that grouping, not the
    batch's order, which no caller depends on (a load has no row order). When rows hardly share
    shapes, one list comprehension per column in the batch's order is cheaper.
    """
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        shape = tuple(row)
        found = groups.get(shape)
        if found is None:
            groups[shape] = [row]
        else:
            found.append(row)
    if len(groups) > 8 + len(rows) // 8:
        keys = dict.fromkeys(itertools.chain.from_iterable(rows))
        return rows, {column: [row.get(column) for row in rows] for column in keys}
    columns: dict[str, list[Any]] = {}
    done = 0
    for shape, group in groups.items():
        for column, group_values in zip(shape, zip(*[row.values() for row in group], strict=True), strict=True):
            values = columns.get(column)
            if values is None:
                columns[column] = values = [None] * done
            elif len(values) < done:
                values.extend([None] * (done - len(values)))
            values.extend(group_values)
        done += len(group)
    for values in columns.values():
        if len(values) < done:
            values.extend([None] * (done - len(values)))
    if len(groups) == 1:
        return rows, columns
    return list(itertools.chain.from_iterable(groups.values())), columns


def _start(
    column: str, current: ColumnType | None, rows: Sequence[Mapping[str, Any]], fixed_types: Mapping[str, ColumnType]
) -> ColumnType:
    """The column's type before the batch: as it is, its fixed type, or its first value's type.

    ``boolean``, ``timestamp`` and ``text`` columns keep that type whatever the batch brings
    (values that do not fit are discarded, or are text already); numeric ones go on to ``_join``.
    """
    if current is None:
        current = fixed_types.get(column)
        if current is None:
            first = next(v for v in (row.get(column) for row in rows) if v is not None)
            current = infer_type(first)
            assert current is not None
    return current


def _join(current: ColumnType, values: list[Any], kinds: set[type]) -> ColumnType:
    """The type of a numeric column after ``values`` (``merge_types`` folded over them: the order
    does not matter, the result is the join of the types on the lattice)."""
    if not kinds <= _FAST:
        return _fold(current, values)
    if kinds - _NUMBERS:
        return ColumnType.TEXT  # a boolean, string or date-time in a numeric column
    if int in kinds:
        ints = [v for v in values if v.__class__ is int]
        if min(ints) < INT64_MIN or max(ints) > INT64_MAX:
            return ColumnType.TEXT
    return ColumnType.DOUBLE if float in kinds else current


def _fold(current: ColumnType, values: list[Any]) -> ColumnType:
    for value in values:
        incoming = infer_type(value)
        if incoming is None:
            continue
        merged = merge_types(current, incoming)
        if merged is not None:
            current = merged
    return current


def _convert(
    plan: ColumnarPlan,
    column: str,
    kind: ColumnType,
    values: list[Any],
    kinds: set[type],
    rows: Sequence[Mapping[str, Any]],
) -> pa.Array:
    """The column's values coerced to ``kind`` as an Arrow array (discards added to the plan)."""
    if kind == ColumnType.TEXT:
        if kinds <= _STR:
            return pa.array(values, pa.string())
        if kinds <= _FAST:
            return pa.array([v if v is None or v.__class__ is str else to_text(v) for v in values], pa.string())
    elif kind == ColumnType.TIMESTAMP:
        if kinds <= _STR:
            fast = _canonical_timestamps(values)
            if fast is not None:
                plan.timestamp_text[column] = fast[0]
                return fast[1]
    elif len(kinds) == 1:
        if (kind == ColumnType.BIGINT and int in kinds) or (kind == ColumnType.BOOLEAN and bool in kinds):
            return pa.array(values, ARROW_TYPES[kind])
        if kind == ColumnType.DOUBLE and kinds <= _NUMBERS:
            return _doubles(values)
    elif kind == ColumnType.DOUBLE and kinds <= _NUMBERS:
        return _doubles(values)
    return _one_by_one(plan, column, kind, values, rows)


def _doubles(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # integers past 2**53: round like float()
        return pa.array([None if v is None else float(v) for v in values], pa.float64())


def _canonical_timestamps(values: list[Any]) -> tuple[pa.Array, pa.Array] | None:
    """The strings (and as timestamps) when every one is in the canonical UTC shape and valid."""
    strings = pa.array(values, pa.string())
    if pc.any(pc.invert(pc.match_substring_regex(strings, CANONICAL_TIMESTAMP))).as_py():
        return None
    try:
        return strings, strings.cast(UTC_MICROS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a shape-valid but impossible date (02-30)
        return None


def _one_by_one(
    plan: ColumnarPlan, column: str, kind: ColumnType, values: list[Any], rows: Sequence[Mapping[str, Any]]
) -> pa.Array:
    """The exact value-by-value coercion of ``types.coerce``; values that do not fit are discarded."""
    out: list[Any] = []
    # Values repeat (the load time in every row, a property's few values): coerce each once.
    memo: dict[Any, tuple[Any, str]] = {}
    for row, value in zip(rows, values, strict=True):
        if value is None:
            out.append(None)
            continue
        key: Any = (value.__class__, value)
        try:
            done, reason = memo[key]
        except KeyError:
            done, reason = memo[key] = _coerce_one(value, kind)
        except TypeError:  # unhashable: a list or dict from a caller that did not flatten
            done, reason = _coerce_one(value, kind)
        if reason:
            plan.discards.append(Discard(plan.table, column, str(row.get("id", "")), to_text(value), reason))
        out.append(done)
    if kind == ColumnType.TIMESTAMP:
        return _timestamps(plan, column, pa.array(out, pa.string()))
    return pa.array(out, ARROW_TYPES[kind])


def _coerce_one(value: Any, kind: ColumnType) -> tuple[Any, str]:
    """(the coerced value, "") or (None, the reason it does not fit)."""
    try:
        done = coerce(value, kind)
    except CannotCoerce as exc:
        return None, exc.reason
    if kind == ColumnType.TIMESTAMP:
        done = done.isoformat()
    return done, ""
