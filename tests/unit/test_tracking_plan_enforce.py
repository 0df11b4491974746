"""Tracking plan enforcement decisions: a table of (settings, event) -> outcome."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from eventyard.quality.plan_format import Enforcement, parse_plan
from eventyard.unify.plan_compile import CompiledPlan
from eventyard.unify.plan_enforce import REASON_UNPLANNED, REASON_VIOLATION, SourcePlan, enforce

PLAN = parse_plan(
    {
        "name": "shop",
        "rules": [
            {
                "type": "COMMON",
                "jsonSchema": {
                    "type": "object",
                    "properties": {"context": {"type": "object", "properties": {"locale": {"type": "string"}}}},
                },
            },
            {
                "type": "TRACK",
                "key": "Order Completed",
                "version": 1,
                "jsonSchema": {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "properties": {
                        "properties": {
                            "type": "object",
                            "required": ["order_id", "total"],
                            "properties": {
                                "order_id": {"type": "string"},
                                "total": {"type": "number", "minimum": 0},
                                "currency": {"type": "string", "enum": ["EUR", "USD"]},
                                "coupon": {"type": ["string", "null"]},
                            },
                        }
                    },
                },
            },
            {
                "type": "TRACK",
                "key": "Order Completed",
                "version": 2,
                "jsonSchema": {
                    "type": "object",
                    "properties": {
                        "properties": {
                            "type": "object",
                            "required": ["order_id", "revenue"],
                            "properties": {"order_id": {"type": "string"}, "revenue": {"type": "number"}},
                        }
                    },
                },
            },
            {
                "type": "IDENTIFY",
                "jsonSchema": {
                    "type": "object",
                    "properties": {
                        "traits": {
                            "type": "object",
                            "properties": {"email": {"type": "string", "format": "email"}, "age": {"type": "integer"}},
                        }
                    },
                },
            },
            {
                "type": "PAGE",
                "jsonSchema": {
                    "type": "object",
                    "properties": {"properties": {"type": "object", "required": ["path"]}},
                },
            },
        ],
    }
)

GOOD = {"order_id": "o-1", "total": 10.5, "currency": "EUR"}


def track(props: dict[str, Any], name: str = "Order Completed", **extra: Any) -> dict[str, Any]:
    return {"type": "track", "event": name, "userId": "u1", "properties": props, "context": {}, **extra}


def identify(traits: dict[str, Any]) -> dict[str, Any]:
    return {"type": "identify", "userId": "u1", "traits": traits, "context": {}}


def source(**settings: Any) -> SourcePlan:
    return SourcePlan("src_web", "web", "ws_1", CompiledPlan(PLAN, 3), Enforcement(**settings))


CASES: list[tuple[str, dict[str, Any], dict[str, Any], str, dict[str, Any], list[tuple[str, str]]]] = [
    # id, settings, event, blocked reason, expected properties/traits after, violations (field, type)
    ("valid, defaults", {}, track(GOOD), "", GOOD, []),
    (
        "unplanned event allowed by default",
        {},
        track({"x": 1}, name="Mystery"),
        "",
        {"x": 1},
        [("event", "Unplanned")],
    ),
    (
        "unplanned event blocked",
        {"track_unplanned_events": "block"},
        track({}, name="Mystery"),
        REASON_UNPLANNED,
        {},
        [("event", "Unplanned")],
    ),
    (
        "unplanned property kept by default",
        {},
        track({**GOOD, "extra": 1}),
        "",
        {**GOOD, "extra": 1},
        [("properties.extra", "Unplanned")],
    ),
    (
        "unplanned property omitted",
        {"track_unplanned_properties": "omit"},
        track({**GOOD, "extra": 1}),
        "",
        GOOD,
        [("properties.extra", "Unplanned")],
    ),
    (
        "missing required allowed by default",
        {},
        track({"order_id": "o-1"}),
        "",
        {"order_id": "o-1"},
        [("properties.total", "Required")],
    ),
    (
        "missing required blocked",
        {"track_violations": "block"},
        track({"order_id": "o-1"}),
        REASON_VIOLATION,
        {"order_id": "o-1"},
        [("properties.total", "Required")],
    ),
    (
        "missing required cannot be omitted: kept",
        {"track_violations": "omit"},
        track({"order_id": "o-1"}),
        "",
        {"order_id": "o-1"},
        [("properties.total", "Required")],
    ),
    (
        "wrong type omitted",
        {"track_violations": "omit"},
        track({"order_id": "o-1", "total": "ten"}),
        "",
        {"order_id": "o-1"},
        [("properties.total", "Type")],
    ),
    (
        "several violations at once",
        {"track_violations": "omit"},
        track({"order_id": 5, "total": -1, "currency": "GBP"}),
        "",
        {},
        [("properties.order_id", "Type"), ("properties.total", "Value"), ("properties.currency", "Value")],
    ),
    (
        "nullable property",
        {"track_violations": "block"},
        track({**GOOD, "coupon": None}),
        "",
        {**GOOD, "coupon": None},
        [],
    ),
    (
        "event version 2 chosen by context.protocols.event_version",
        {"track_violations": "block"},
        track({"order_id": "o-1", "revenue": 3}, context={"protocols": {"event_version": 2}}),
        "",
        {"order_id": "o-1", "revenue": 3},
        [],
    ),
    (
        "version 1 when none is named",
        {"track_violations": "block"},
        track({"order_id": "o-1", "revenue": 3}),
        REASON_VIOLATION,
        {"order_id": "o-1", "revenue": 3},
        [("properties.total", "Required"), ("properties.revenue", "Unplanned")],
    ),
    (
        "common rule applies to track events",
        {"track_violations": "block"},
        track(GOOD, context={"locale": 7}),
        REASON_VIOLATION,
        GOOD,
        [("context.locale", "Type")],
    ),
    (
        "common rule applies to unplanned events",
        {"track_violations": "block"},
        track({}, name="Mystery", context={"locale": 7}),
        REASON_VIOLATION,
        {},
        [("event", "Unplanned"), ("context.locale", "Type")],
    ),
    ("identify valid", {"identify_violations": "block"}, identify({"email": "a@b.co"}), "", {"email": "a@b.co"}, []),
    (
        "identify unplanned trait omitted",
        {"identify_unplanned_traits": "omit"},
        identify({"email": "a@b.co", "plan": "pro"}),
        "",
        {"email": "a@b.co"},
        [("traits.plan", "Unplanned")],
    ),
    (
        "identify invalid trait blocked",
        {"identify_violations": "block"},
        identify({"age": "old"}),
        REASON_VIOLATION,
        {"age": "old"},
        [("traits.age", "Type")],
    ),
    (
        "identify invalid trait omitted",
        {"identify_violations": "omit"},
        identify({"age": 1.5, "email": "a@b.co"}),
        "",
        {"email": "a@b.co"},
        [("traits.age", "Type")],
    ),
    (
        "group without a GROUP rule: common only, nothing unplanned",
        {"group_unplanned_traits": "omit", "group_violations": "block"},
        {"type": "group", "userId": "u1", "groupId": "g", "traits": {"anything": 1}, "context": {}},
        "",
        {"anything": 1},
        [],
    ),
    (
        "page violations are recorded, never acted on",
        {"track_violations": "block"},
        {"type": "page", "userId": "u1", "name": "Home", "properties": {}, "context": {}},
        "",
        {},
        [("properties.path", "Required")],
    ),
]


@pytest.mark.parametrize(
    ("settings", "event", "reason", "after", "violations"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decisions(
    settings: dict[str, Any],
    event: dict[str, Any],
    reason: str,
    after: dict[str, Any],
    violations: list[tuple[str, str]],
) -> None:
    event = copy.deepcopy(event)
    decision = enforce(source(**settings), event)
    assert decision.blocked == reason
    assert sorted((v.field, v.type) for v in decision.violations) == sorted(violations)
    section = "traits" if event["type"] in ("identify", "group") else "properties"
    assert event[section] == after
    if reason:
        assert decision.detail and "shop" in decision.detail


def test_omitted_fields_are_recorded_in_context_protocols() -> None:
    event = track({"order_id": "o-1", "total": "ten", "extra": True}, context={"locale": "de"})
    decision = enforce(source(track_unplanned_properties="omit", track_violations="omit"), event)
    assert decision.omitted == ["extra"] and decision.omitted_on_violation == ["total"]
    assert event["context"] == {
        "locale": "de",
        "protocols": {"sourceId": "src_web", "omitted": ["extra"], "omitted_on_violation": ["total"]},
    }


def test_nothing_omitted_leaves_the_context_alone() -> None:
    event = track(GOOD)
    enforce(source(track_unplanned_properties="omit", track_violations="omit"), event)
    assert event["context"] == {}


def test_violation_descriptions_name_the_field() -> None:
    decision = enforce(source(), track({"order_id": "o-1", "total": "ten"}))
    (v,) = decision.violations
    assert "properties.total" in v.description and "number" in v.description
