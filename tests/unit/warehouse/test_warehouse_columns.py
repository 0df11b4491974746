"""The columnar planner decides exactly what the row-by-row planner decides, whatever the values."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventyard.warehouse import DUCKDB, ColumnType, TooManyColumns, flatten_event, plan_table
from eventyard.warehouse.batch import Grouped, first_per_id, merge_users, plan_load
from eventyard.warehouse.columns import UTC_MICROS, plan_columns

B, N, F, T, S = ColumnType.BOOLEAN, ColumnType.BIGINT, ColumnType.DOUBLE, ColumnType.TIMESTAMP, ColumnType.TEXT

TIMESTAMP_TEXT = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%S") + (f".{d.microsecond:06d}"[: 1 + d.microsecond % 7] + "Z")
    ),
    st.datetimes(max_value=datetime(9999, 12, 30)).map(lambda d: d.isoformat() + "+02:00"),
    st.sampled_from(
        [
            "2026-11-29T02:30:03.123Z",
            "2026-11-29T02:30:03Z",
            "2026-11-29T02:30:03.123456789Z",
            "2026-11-29T02:30:03.1234567Z",
            "2026-02-30T00:00:00Z",
            "2026-11-29T24:00:00Z",
            "2026-11-29T23:59:60Z",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "2026-11-29",
            "2026-11-29 02:30",
            "2026-11-29t02:30:03z",
            "2026-13-01T00:00:00Z",
            "2026-00-10T00:00:00Z",
            "2026-01-00T00:00:00Z",
        ]
    ),
)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.integers(min_value=-5, max_value=5),
    st.floats(allow_nan=False),
    st.text(max_size=6),
    TIMESTAMP_TEXT,
    st.datetimes(timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=-3))])),
)
COLUMNS = ["id", "received_at", "a", "b", "c", "d"]
ROWS = st.lists(st.dictionaries(st.sampled_from(COLUMNS), VALUES, max_size=6), min_size=1, max_size=12)
EXISTING = st.dictionaries(st.sampled_from(COLUMNS), st.sampled_from(list(ColumnType)), max_size=4)


def _instant(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def _rows(rows: list[dict[str, Any]]) -> list[str]:
    """The rows without nulls, in a canonical order (a plan's rows have no order)."""
    return sorted(repr(sorted((k, _instant(v)) for k, v in row.items() if v is not None)) for row in rows)


def _discards(plan: Any) -> set[tuple[str, str, str, str, str]]:
    return {(d.table, d.column, d.row_id, d.value, d.reason) for d in plan.discards}


@settings(max_examples=400, deadline=None)
@given(rows=ROWS, existing=EXISTING)
def test_columnar_plan_equals_the_row_by_row_plan(rows: list[dict[str, Any]], existing: dict[str, ColumnType]) -> None:
    expected = plan_table("t", existing, rows, DUCKDB)
    got = plan_columns("t", existing, rows, DUCKDB)
    assert got.add == expected.add
    assert got.widen == expected.widen
    assert got.columns == expected.columns
    assert _rows(got.pylist()) == _rows(expected.rows)
    assert _discards(got) == _discards(expected)
    assert len(got.discards) == len(expected.discards)
    for column, text in got.timestamp_text.items():  # the text a backend may load instead
        assert text.cast(UTC_MICROS).equals(got.arrays[column])


SHAPES = st.lists(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=6, unique=True), min_size=1, max_size=3)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), shapes=SHAPES, existing=EXISTING)
def test_rows_of_a_few_shapes_are_planned_the_same(
    data: st.DataObject, shapes: list[list[str]], existing: dict[str, ColumnType]
) -> None:
    """Many rows with the keys of a few shapes: the path that transposes them in groups."""
    rows = [
        {column: data.draw(VALUES) for column in data.draw(st.sampled_from(shapes))}
        for _ in range(data.draw(st.integers(10, 60)))
    ]
    expected = plan_table("t", existing, rows, DUCKDB)
    got = plan_columns("t", existing, rows, DUCKDB)
    assert (got.add, got.widen, got.columns) == (expected.add, expected.widen, expected.columns)
    assert _rows(got.pylist()) == _rows(expected.rows)
    assert _discards(got) == _discards(expected)


def test_canonical_timestamps_take_the_arrow_path_and_others_are_parsed_one_by_one() -> None:
    rows = [
        {"id": "a", "at": "2026-11-29T02:30:03.123Z"},
        {"id": "b", "at": "2026-11-29T03:30:03+01:00"},
        {"id": "c", "at": "2026-02-30T00:00:00Z"},
        {"id": "d", "at": None},
    ]
    plan = plan_columns("t", {"id": S, "at": T}, rows, DUCKDB)
    at = plan.arrays["at"].to_pylist()
    assert at[0] == datetime(2026, 11, 29, 2, 30, 3, 123000, tzinfo=UTC)
    assert at[1] == datetime(2026, 11, 29, 2, 30, 3, tzinfo=UTC)
    assert at[2] is None and at[3] is None
    assert _discards(plan) == {("t", "at", "c", "2026-02-30T00:00:00Z", "not_timestamp")}


def test_a_repeated_value_that_does_not_fit_is_discarded_for_every_row() -> None:
    rows = [{"id": str(i), "flag": "yes"} for i in range(3)]
    plan = plan_columns("t", {"id": S, "flag": B}, rows, DUCKDB)
    assert sorted(d.row_id for d in plan.discards) == ["0", "1", "2"]


def test_arrow_table_fills_columns_the_batch_does_not_have() -> None:
    plan = plan_columns("t", {"id": S, "old": N}, [{"id": "a", "n": 1}], DUCKDB)
    table = plan.arrow(list(plan.columns))
    assert table.column_names == ["id", "old", "n"]
    assert table.to_pylist() == [{"id": "a", "old": None, "n": 1}]


def test_column_cap() -> None:
    small = dataclasses.replace(DUCKDB, max_columns=3)
    with pytest.raises(TooManyColumns, match="would need 4 columns"):
        plan_columns("t", {"id": S}, [{"id": "a", "b": 1, "c": 2, "d": 3}], small)


CONTEXT_VALUES = st.one_of(st.none(), st.integers(-3, 3), st.floats(-2, 2), st.text(max_size=2), TIMESTAMP_TEXT)


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    names=st.lists(st.sampled_from(["Signed Up", "Clicked"]), min_size=1, max_size=25),
    tracks_types=st.dictionaries(
        st.sampled_from(["context_a", "context_b", "received_at"]), st.sampled_from(list(ColumnType))
    ),
    own_types=st.dictionaries(
        st.sampled_from(["context_a", "context_b", "received_at"]), st.sampled_from(list(ColumnType))
    ),
)
def test_event_tables_that_borrow_from_tracks_are_planned_as_if_alone(
    data: st.DataObject,
    names: list[str],
    tracks_types: dict[str, ColumnType],
    own_types: dict[str, ColumnType],
) -> None:
    uniform = data.draw(st.booleans())  # one Python type per column makes sharing possible
    flats = []
    for i, name in enumerate(names):
        ctx = {"a": data.draw(st.integers(0, 9) if uniform else CONTEXT_VALUES), "b": data.draw(CONTEXT_VALUES)}
        event = {
            "type": "track",
            "event": name,
            "messageId": f"m{i % 20}",  # some ids twice, some from different events
            "receivedAt": data.draw(TIMESTAMP_TEXT if not uniform else st.just("2026-11-29T00:00:00Z")),
            "context": ctx,
            "properties": {"n": data.draw(CONTEXT_VALUES)},
        }
        flats.append((i, "s", flatten_event(event, loaded_at=datetime(2026, 1, 1, tzinfo=UTC), dialect=DUCKDB)))
    catalog = {"tracks": {"id": S, **tracks_types}, "signed_up": {"id": S, **own_types}, "clicked": dict(tracks_types)}
    load = plan_load(Grouped.of(flats), lambda schema, table: catalog.get(table, {}), DUCKDB)
    grouped = Grouped.of(flats)
    for (schema, table), plan in load.plans.items():
        found = grouped.rows[(schema, table)]
        merge = merge_users if table == "users" else first_per_id
        rows, _ = merge(found.indices, found.rows)
        alone = plan_columns(table, catalog.get(table, {}), rows, DUCKDB)
        assert (plan.add, plan.widen, plan.columns) == (alone.add, alone.widen, alone.columns), table
        assert _rows(plan.pylist()) == _rows(alone.pylist()), table
        assert _discards(plan) == _discards(alone), table
        assert set(plan.timestamp_text) == set(alone.timestamp_text), table
