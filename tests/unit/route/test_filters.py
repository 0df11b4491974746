"""Destination filters: validation, Segment's order of actions, deterministic sampling, property edits.

Semantics from Segment's docs: segmentio/segment-docs src/connections/destinations/destination-filters.md
("Segment applies destination filters in the following order: Sample, Drop, Drop Properties,
Allow Properties"; arrays: "properties.products.newElement" blocks newElement in every product).
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventyard.errors import ConfigError
from eventyard.route import fql
from eventyard.route.filters import (
    FILTER_DROP,
    FILTER_ERROR,
    FILTER_SAMPLE,
    CompiledFilter,
    FilterAction,
    FilterSpec,
    Sample,
    apply_filters,
    bucket,
    compile_filters,
)


def track(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "m-1",
        "userId": "u-1",
        "properties": {"email": "a@example.com", "total": 30, "products": [{"sku": "a", "price": 10}, {"sku": "b"}]},
        "context": {"ip": "10.0.0.1", "library": {"name": "analytics.js"}},
    }
    event.update(overrides)
    return event


def run(specs: list[dict[str, Any]], event: dict[str, Any]) -> Any:
    before = copy.deepcopy(event)
    result = apply_filters(compile_filters(specs), event)
    assert event == before, "the input event must never change"
    return result


DROP_PROPS = "drop_properties"


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"actions": [{"type": "drop"}]}, "missing required field `if`"),
        ({"if": "all", "actions": []}, "at least one action"),
        ({"if": "event = ", "actions": [{"type": "drop"}]}, "`if` is not valid FQL: expected a value after '='"),
        ({"if": "all", "actions": [{"type": "drop"}], "extra": 1}, "unknown field `extra`"),
        ({"if": "all", "actions": [{"type": "explode"}]}, "unknown action type 'explode'"),
        ({"if": "all", "actions": [{"type": "drop", "percent": 5}]}, "a drop action takes no `percent`"),
        ({"if": "all", "actions": [{"type": "sample"}]}, "needs `percent` from 0 to 100"),
        ({"if": "all", "actions": [{"type": "sample", "percent": 101}]}, "needs `percent` from 0 to 100, got 101"),
        ({"if": "all", "actions": [{"type": "sample", "percent": -1}]}, "from 0 to 100"),
        ({"if": "all", "actions": [{"type": "sample", "percent": "10"}]}, "Expected `float | null`, got `str`"),
        ({"if": "all", "actions": [{"type": "SAMPLE", "percent": 10}]}, "a fraction from 0 to 1"),
        ({"if": "all", "actions": [{"type": "sample", "percent": 5, "path": "user id"}]}, "is not a field path"),
        ({"if": "all", "actions": [{"type": "sample", "percent": 5, "fields": {}}]}, "takes no `fields`"),
        ({"if": "all", "actions": [{"type": DROP_PROPS}]}, "needs `fields`"),
        ({"if": "all", "actions": [{"type": DROP_PROPS, "fields": {"properties": []}}]}, "needs a list of field names"),
        ({"if": "all", "actions": [{"type": DROP_PROPS, "fields": {"properties": [""]}}]}, "needs a list of field"),
        ({"if": "all", "actions": [{"type": DROP_PROPS, "fields": {"a..b": ["x"]}}]}, "is not a field path"),
        ({"if": "all", "actions": [{"type": "allow_properties", "fields": {"p": ["x"]}, "path": "a"}]}, "no `path`"),
    ],
)
def test_invalid_filters_are_refused_when_configured(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match="filter 1") as info:
        compile_filters([spec])
    assert message in str(info.value)


def test_the_error_names_the_filter_by_position_and_title() -> None:
    good = {"if": "all", "actions": [{"type": "drop"}]}
    with pytest.raises(ConfigError, match=r"^filter 2 \('No tests'\): `if` is not valid FQL"):
        compile_filters([good, {"title": "No tests", "if": "a = ", "actions": [{"type": "drop"}]}])


def test_specs_round_trip_and_accept_segment_spelling() -> None:
    # Segment's Public API: upper-case types, SAMPLE percent as a fraction.
    specs = compile_filters(
        [{"if": "type = 'identify'", "title": "5%", "actions": [{"type": "SAMPLE", "percent": 0.05, "path": "userId"}]}]
    )
    action = specs[0].spec.actions[0]
    assert (action.kind, action.share) == ("sample", 0.05)
    assert FilterAction(type="sample", percent=5).share == 0.05
    spec = FilterSpec(if_="all", actions=[FilterAction(type="drop")], title="t")
    assert compile_filters([spec])[0].spec is spec
    assert msgspec.to_builtins(spec) == {
        "if": "all",
        "actions": [{"type": "drop"}],
        "enabled": True,
        "title": "t",
        "id": "",
        "description": "",
    }


# -- drop -------------------------------------------------------------------------------------


def test_drop_matching_events_and_keep_the_rest() -> None:
    specs = [{"id": "f1", "title": "No test events", "if": "match(event, 'Test *')", "actions": [{"type": "drop"}]}]
    result = run(specs, track(event="Test Clicked"))
    assert (result.kept, result.reason, result.filter_id, result.title) == (False, FILTER_DROP, "f1", "No test events")
    assert result.detail == "dropped by filter 'No test events'"
    kept = run(specs, event := track())
    assert kept.kept and kept.event is event and not kept.changed and kept.detail == ""


def test_only_send_is_a_drop_of_everything_else() -> None:
    # Segment: "'Only Sends' are Drops"
    only = [{"if": "!(event in ['User Signed Up', 'Demo Requested'])", "actions": [{"type": "drop"}]}]
    assert run(only, track(event="User Signed Up")).kept
    assert not run(only, track(event="Order Completed")).kept
    # two conflicting "only send" filters let nothing through (Segment FAQ)
    conflicting = [*only, {"if": "!(event = 'Order Completed')", "actions": [{"type": "drop"}]}]
    assert not run(conflicting, track(event="User Signed Up")).kept
    assert not run(conflicting, track(event="Order Completed")).kept


def test_all_matches_every_event_and_disabled_filters_do_nothing() -> None:
    assert not run([{"if": "all", "actions": [{"type": "drop"}]}], {"type": "identify"}).kept
    assert run([{"if": "all", "enabled": False, "actions": [{"type": "drop"}]}], track()).kept


def test_label_falls_back_to_id_then_condition() -> None:
    result = run([{"if": "type = 'track'", "actions": [{"type": "drop"}]}], track())
    assert result.title == "type = 'track'"


# -- sample -----------------------------------------------------------------------------------


def sample_spec(percent: float, path: str | None = "userId", cond: str = "all") -> dict[str, Any]:
    action: dict[str, Any] = {"type": "sample", "percent": percent}
    if path is not None:
        action["path"] = path
    return {"if": cond, "title": "sampled", "actions": [action]}


def test_sampling_keeps_about_the_percentage_and_is_deterministic_by_key() -> None:
    filters = compile_filters([sample_spec(25)])
    kept = {f"u{n}" for n in range(10_000) if apply_filters(filters, track(userId=f"u{n}")).kept}
    assert 2300 < len(kept) < 2700
    # the same user is always in or always out, whatever the event
    for n in range(300):
        user = f"u{n}"
        fate = apply_filters(filters, track(userId=user, messageId=f"other-{n}", event="Other")).kept
        assert fate == (user in kept)
    dropped = apply_filters(filters, track(userId=next(u for u in (f"u{n}" for n in range(99)) if u not in kept)))
    assert (dropped.reason, dropped.title, dropped.detail) == (
        FILTER_SAMPLE,
        "sampled",
        "sampled out by filter 'sampled'",
    )


def test_sampling_falls_back_to_message_id() -> None:
    filters = compile_filters([sample_spec(50)])
    no_user = [track(userId=None, messageId=f"m{n}") for n in range(2000)]
    fates = [apply_filters(filters, e).kept for e in no_user]
    assert 850 < sum(fates) < 1150
    assert fates == [apply_filters(filters, e).kept for e in no_user]
    by_message = compile_filters([sample_spec(50, path=None)])
    assert [apply_filters(by_message, e).kept for e in no_user] == fates


def test_sampling_edges_and_nested_keys() -> None:
    assert all(run([sample_spec(100)], track(userId=f"u{n}")).kept for n in range(200))
    assert not any(run([sample_spec(0)], track(userId=f"u{n}")).kept for n in range(200))
    nested = compile_filters([sample_spec(50, path="context.traits.email")])
    a = track(context={"traits": {"email": "x@example.com"}}, messageId="1")
    b = track(context={"traits": {"email": "x@example.com"}}, messageId="2")
    assert apply_filters(nested, a).kept == apply_filters(nested, b).kept
    # numbers and their text hash alike, so an id sent as 42 or "42" has one fate
    assert bucket(42) == bucket("42")


def test_sampling_only_applies_to_matching_events() -> None:
    spec = sample_spec(0, cond="type = 'identify'")
    assert run([spec], track()).kept
    assert not run([spec], {"type": "identify", "userId": "u"}).kept


# -- order ------------------------------------------------------------------------------------


def test_sample_runs_before_drop() -> None:
    specs = [{"if": "all", "title": "drop", "actions": [{"type": "drop"}]}, sample_spec(0)]
    assert run(specs, track()).reason == FILTER_SAMPLE


def test_drop_wins_over_property_edits() -> None:
    specs = [
        {"if": "all", "actions": [{"type": DROP_PROPS, "fields": {"properties": ["email"]}}]},
        {"if": "all", "title": "gone", "actions": [{"type": "drop"}]},
    ]
    assert run(specs, track()).reason == FILTER_DROP


def test_conditions_see_the_event_as_it_arrived() -> None:
    specs = [
        {"if": "all", "actions": [{"type": DROP_PROPS, "fields": {"properties": ["email"]}}]},
        {
            "if": "contains(properties.email, '@example.com')",
            "actions": [{"type": DROP_PROPS, "fields": {"": ["userId"]}}],
        },
    ]
    result = run(specs, track())
    assert "email" not in result.event["properties"]
    assert "userId" not in result.event


def test_drop_properties_runs_before_allow_properties() -> None:
    specs = [
        {"if": "all", "actions": [{"type": "allow_properties", "fields": {"properties": ["email", "total"]}}]},
        {"if": "all", "actions": [{"type": DROP_PROPS, "fields": {"properties": ["email"]}}]},
    ]
    assert run(specs, track()).event["properties"] == {"total": 30}


# -- property edits ---------------------------------------------------------------------------


def test_drop_properties_in_objects_and_at_the_top_level() -> None:
    spec = {
        "if": "type = 'track'",
        "actions": [{"type": DROP_PROPS, "fields": {"properties": ["email"], "context": ["ip"], "": ["userId"]}}],
    }
    event = track()
    result = run([spec], event)
    assert result.kept and result.changed and result.detail == "changed by filters"
    assert "email" not in result.event["properties"] and "ip" not in result.event["context"]
    assert "userId" not in result.event
    assert result.event["properties"]["products"] is event["properties"]["products"]  # untouched parts are shared
    assert result.event["context"]["library"] is event["context"]["library"]


def test_drop_properties_of_every_object_in_an_array() -> None:
    spec = {"if": "all", "actions": [{"type": DROP_PROPS, "fields": {"properties.products": ["price"]}}]}
    assert run([spec], track()).event["properties"]["products"] == [{"sku": "a"}, {"sku": "b"}]
    # the UI's notation: "products.price" under "properties"
    spec = {"if": "all", "actions": [{"type": DROP_PROPS, "fields": {"properties": ["products.price"]}}]}
    assert run([spec], track()).event["properties"]["products"] == [{"sku": "a"}, {"sku": "b"}]


def test_a_dotted_name_drops_the_literal_key_and_the_nested_field() -> None:
    spec = {"if": "all", "actions": [{"type": DROP_PROPS, "fields": {"traits": ["address.city"]}}]}
    event = {"type": "identify", "traits": {"address.city": "x", "address": {"city": "Paris", "zip": "75001"}}}
    assert run([spec], event).event["traits"] == {"address": {"zip": "75001"}}


def test_nothing_to_drop_returns_the_same_event() -> None:
    spec = {"if": "all", "actions": [{"type": DROP_PROPS, "fields": {"properties": ["ssn"], "traits": ["x"]}}]}
    event = track()
    result = run([spec], event)
    assert result.event is event and not result.changed


def test_allow_properties_keeps_only_the_listed_fields() -> None:
    spec = {
        "if": "all",
        "actions": [
            {"type": "allow_properties", "fields": {"properties": ["total", "missing"], "context": ["library"]}}
        ],
    }
    result = run([spec], track())
    assert result.event["properties"] == {"total": 30}
    assert result.event["context"] == {"library": {"name": "analytics.js"}}
    assert result.event["userId"] == "u-1"  # objects that are not listed are untouched


def test_allow_properties_at_the_top_level_and_nested() -> None:
    top = {"if": "all", "actions": [{"type": "allow_properties", "fields": {"": ["type", "event", "messageId"]}}]}
    assert run([top], track()).event == {"type": "track", "event": "Order Completed", "messageId": "m-1"}
    nested = {"if": "all", "actions": [{"type": "allow_properties", "fields": {"properties.products": ["sku"]}}]}
    result = run([nested], track())
    assert result.event["properties"]["products"] == [{"sku": "a"}, {"sku": "b"}]
    assert result.event["properties"]["email"] == "a@example.com"


def test_allow_properties_ignores_absent_or_non_object_targets() -> None:
    spec = {"if": "all", "actions": [{"type": "allow_properties", "fields": {"traits": ["email"], "event": ["x"]}}]}
    event = track()
    assert run([spec], event).event is event


def test_several_filters_edit_one_copy() -> None:
    specs = [
        {"if": "all", "actions": [{"type": DROP_PROPS, "fields": {"properties": ["email"]}}]},
        {"if": "all", "actions": [{"type": DROP_PROPS, "fields": {"properties": ["total"], "context": ["ip"]}}]},
    ]
    result = run(specs, track())
    assert set(result.event["properties"]) == {"products"}
    assert result.event["context"] == {"library": {"name": "analytics.js"}}


# -- failing closed ---------------------------------------------------------------------------


def test_a_filter_that_fails_on_an_event_drops_it() -> None:
    def broken_key(event: Any) -> Any:
        raise RuntimeError("boom")

    spec = FilterSpec(if_="all", actions=[FilterAction(type="sample", percent=50)], id="f9", title="broken")
    broken = CompiledFilter(spec, None, (Sample(2**63, broken_key),), False, (), ())
    result = apply_filters([broken], track())
    assert (result.kept, result.reason, result.filter_id) == (False, FILTER_ERROR, "f9")
    assert "dropped rather than sent unfiltered" in result.detail


def test_no_filters_keep_the_event_as_is() -> None:
    event = track()
    assert apply_filters([], event).event is event


# -- properties -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from("abcxyz"), children, max_size=3),
    max_leaves=15,
)
random_events = st.fixed_dictionaries(
    {"type": st.sampled_from(["track", "identify"])},
    optional={
        "userId": json_values,
        "messageId": st.text(max_size=5),
        "properties": json_values,
        "context": json_values,
        "traits": json_values,
        "a": json_values,
    },
)
FILTER_SET = [
    sample_spec(60),
    {"if": "properties.a = 1", "actions": [{"type": "drop"}]},
    {
        "if": "all",
        "actions": [{"type": DROP_PROPS, "fields": {"properties": ["a", "b.c"], "": ["a"], "context.x": ["y"]}}],
    },
    {
        "if": "type = 'track'",
        "actions": [{"type": "allow_properties", "fields": {"traits": ["a"], "context": ["x", "z"]}}],
    },
]


@settings(max_examples=300, deadline=None)
@given(random_events)
def test_filters_never_raise_and_never_change_the_input(event: dict[str, Any]) -> None:
    filters = compile_filters(FILTER_SET)
    before = copy.deepcopy(event)
    result = apply_filters(filters, event)
    assert event == before
    assert result.reason in ("", FILTER_DROP, FILTER_SAMPLE)
    assert result.kept == (result.event is not None)
    if result.kept:
        assert apply_filters(filters, event) == result  # deterministic
        props = result.event.get("properties")
        if isinstance(props, dict):
            assert "a" not in props
        assert fql.compile("properties.a = 1").matches(result.event) is False
