"""Column types: inference, the widening lattice, coercion."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from eventyard.warehouse import CannotCoerce, ColumnType, coerce, infer_type, merge_types

B, N, F, T, S = ColumnType.BOOLEAN, ColumnType.BIGINT, ColumnType.DOUBLE, ColumnType.TIMESTAMP, ColumnType.TEXT


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (True, B),
        (3, N),
        (2**70, S),
        (1.5, F),
        ("2026-11-29T02:30:03.123Z", T),
        ("2026-11-29 02:30:03+01:00", T),
        ("2026-11-29", S),
        ("hello", S),
        ("[1, 2]", S),
        (None, None),
    ],
)
def test_infer_type(value: object, kind: ColumnType | None) -> None:
    assert infer_type(value) == kind


@pytest.mark.parametrize(
    ("current", "incoming", "result"),
    [
        (N, N, N),
        (N, F, F),
        (F, N, F),
        (N, S, S),
        (F, S, S),
        (F, B, S),
        (S, N, S),
        (S, T, S),
        (T, S, None),
        (T, N, None),
        (B, N, None),
        (B, S, None),
    ],
)
def test_widening_lattice(current: ColumnType, incoming: ColumnType, result: ColumnType | None) -> None:
    assert merge_types(current, incoming) == result


def test_coerce() -> None:
    assert coerce(3, F) == 3.0
    assert coerce(True, S) == "true"
    assert coerce(1.5, S) == "1.5"
    assert coerce("2026-11-29T02:30:03.123456789+01:00", T) == datetime(2026, 11, 29, 1, 30, 3, 123456, tzinfo=UTC)
    assert coerce("2026-11-29T02:30:03Z", S) == "2026-11-29T02:30:03Z"
    with pytest.raises(CannotCoerce) as info:
        coerce("soon", T)
    assert info.value.reason == "not_timestamp"
    with pytest.raises(CannotCoerce):
        coerce(1, B)
