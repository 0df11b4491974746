"""The msgspec fast path must never accept what JSON Schema (fastjsonschema) refuses."""

from __future__ import annotations

from typing import Any

import fastjsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventyard.unify.plan_fastpath import fast_check

SCHEMAS: list[dict[str, Any]] = [
    {"type": "string"},
    {"type": "string", "minLength": 2, "maxLength": 4},
    {"type": "string", "pattern": "^a+$"},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "email"},
    {"type": "string", "format": "ipv4"},
    {"type": "string", "format": "date"},
    {"type": "string", "format": "no-such-format"},
    {"type": "string", "enum": ["EUR", "USD"]},
    {"type": ["string", "null"], "enum": ["EUR", None]},
    {"type": "number", "minimum": 0, "exclusiveMaximum": 10},
    {"type": "integer", "maximum": 5},
    {"type": "boolean"},
    {"type": ["string", "null"]},
    {"type": ["integer", "string"]},
    {"type": "array", "items": {"type": "string"}, "maxItems": 2},
    {"type": "array"},
    {"type": "object"},
    {
        "type": "object",
        "required": ["id"],
        "properties": {"id": {"type": "string"}, "n": {"type": "integer"}, "odd key": {"type": "boolean"}},
    },
    {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False},
    {
        "type": "object",
        "properties": {"properties": {"type": "object", "required": ["x"], "properties": {"x": {"type": "number"}}}},
    },
]

VALUES: list[Any] = [
    None, True, False, 0, 1, 5, 6, -1, 1.5, 10, 10.0, 2**70, "", "a", "aa", "aaaaa", "ab", "EUR", "GBP",
    "2026-11-29T10:00:00Z", "2026-11-29T10:00:00", "2026-02-30T10:00:00Z", "2026-11-29", "a@b.co", "a@b",
    ".a@b.co", "10.0.0.1", "10.0.0.256", [], ["a"], ["a", "b", "c"], [1],
    {}, {"id": "x"}, {"id": 1}, {"id": "x", "n": True}, {"id": "x", "odd key": 1}, {"a": "x"}, {"a": "x", "b": 1},
    {"properties": {"x": 1}}, {"properties": {}}, {"properties": {"x": "1"}}, {"properties": 3},
]  # fmt: skip


@pytest.mark.parametrize("schema", SCHEMAS, ids=[str(s)[:60] for s in SCHEMAS])
def test_fast_path_agrees_with_json_schema(schema: dict[str, Any]) -> None:
    fast = fast_check(schema)
    assert fast is not None, "this schema is in the translated subset"
    slow = fastjsonschema.compile({**schema, "$schema": "http://json-schema.org/draft-07/schema#"}, use_default=False)
    for value in VALUES:
        try:
            slow(value)
            valid = True
        except fastjsonschema.JsonSchemaValueException:
            valid = False
        if fast(value):
            assert valid, f"fast path accepted {value!r}, JSON Schema refuses it"
        elif valid:
            # only stricter where documented: integers given as floats, integers too large
            assert isinstance(value, float | int), f"fast path refused {value!r}, JSON Schema accepts it"


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "format": "regex"},
        {"anyOf": [{"type": "string"}]},
        {"type": "object", "patternProperties": {"^x": {}}},
        {"type": "string", "enum": [1, "a"]},
        {"properties": {}},
        {"type": "object", "additionalProperties": {"type": "string"}},
    ],
)
def test_other_keywords_are_left_to_fastjsonschema(schema: dict[str, Any]) -> None:
    assert fast_check(schema) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.floats(-10, 10, allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["id", "n", "a", "x"]), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values, schema=st.sampled_from(SCHEMAS))
def test_fast_path_never_accepts_an_invalid_value(value: Any, schema: dict[str, Any]) -> None:
    fast = fast_check(schema)
    assert fast is not None
    if fast(value):
        fastjsonschema.validate(
            {**schema, "$schema": "http://json-schema.org/draft-07/schema#"}, value, use_default=False
        )
