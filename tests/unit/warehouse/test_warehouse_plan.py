"""The schema planner: columns to add and widen, coerced rows, discards, the column cap."""

from __future__ import annotations

import dataclasses

import pytest

from eventyard.warehouse import DUCKDB, ColumnType, TooManyColumns, plan_table

B, N, F, T, S = ColumnType.BOOLEAN, ColumnType.BIGINT, ColumnType.DOUBLE, ColumnType.TIMESTAMP, ColumnType.TEXT


def test_new_table_takes_the_types_of_the_first_values_and_fixed_standard_types() -> None:
    rows = [{"id": "2026-11-29T00:00:00Z", "n": 1, "x": None}, {"id": "b", "n": 2.5, "ok": True}]
    plan = plan_table("t", {}, rows, DUCKDB)
    assert plan.add == {"id": S, "n": F, "ok": B}
    assert plan.widen == {}
    assert plan.rows == [{"id": "2026-11-29T00:00:00Z", "n": 1.0, "x": None}, {"id": "b", "n": 2.5, "ok": True}]


def test_existing_columns_are_widened_along_the_lattice() -> None:
    plan = plan_table("t", {"id": S, "n": N, "m": F}, [{"id": "a", "n": 1.5, "m": "many"}], DUCKDB)
    assert plan.widen == {"n": F, "m": S}
    assert plan.rows == [{"id": "a", "n": 1.5, "m": "many"}]
    assert plan.columns == {"id": S, "n": F, "m": S}


def test_values_that_fit_nowhere_are_discarded_never_nulled_silently() -> None:
    existing = {"id": S, "at": T, "flag": B}
    plan = plan_table("t", existing, [{"id": "r1", "at": "tomorrow", "flag": 1}], DUCKDB)
    assert plan.widen == {} and plan.add == {}
    assert plan.rows == [{"id": "r1"}]
    got = {(d.table, d.column, d.row_id, d.value, d.reason) for d in plan.discards}
    assert got == {("t", "at", "r1", "tomorrow", "not_timestamp"), ("t", "flag", "r1", "1", "not_boolean")}


def test_column_cap_is_a_clear_error() -> None:
    small = dataclasses.replace(DUCKDB, max_columns=3)
    with pytest.raises(TooManyColumns, match="would need 4 columns, more than the 3"):
        plan_table("t", {"id": S}, [{"id": "a", "b": 1, "c": 2, "d": 3}], small)
    assert plan_table("t", {"id": S}, [{"id": "a", "b": 1, "c": 2}], small).add == {"b": N, "c": N}
