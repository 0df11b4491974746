"""Stored ingest records: the request path's quick check agrees with full normalization."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from eventyard.spec import timestamps
from eventyard.spec.normalize import Envelope, EventRejected, normalize
from eventyard.spec.stored import Request, decode_head, load, pipeline_events, raw_events

RECEIVED = datetime(2026, 11, 29, 5, 30, 1, 234000, tzinfo=UTC)

STAMPS = [None, "", "2026-11-29T05:29:58.100Z", "2026-11-29T06:29:58+01:00", "2026-11-29", "yesterday", 5]
IDS = [None, "", "u-1", 0, 42, 1.5, 2.0, True, {}, "  "]
OBJECTS = [None, {}, {"a": 1}, [], "x", 3]
CONTEXTS = [
    None,
    {},
    {"library": {"name": "analytics.js", "version": "2.0"}},
    {"ip": "10.0.0.9", "direct": True},
    {"traits": {"email": "ann@example.com"}},
    "ctx",
]

fields = {
    "type": st.sampled_from(["track", "identify", "page", "screen", "group", "alias", "merge", "", None, 7, "bogus"]),
    "userId": st.sampled_from(IDS),
    "anonymousId": st.sampled_from(IDS),
    "event": st.sampled_from([None, "", " ", "Signed Up", 3]),
    "messageId": st.sampled_from([None, "", "m-1", 7, 1.5, "x" * 101, "y" * 100]),
    "timestamp": st.sampled_from(STAMPS),
    "originalTimestamp": st.sampled_from(STAMPS),
    "sentAt": st.sampled_from(STAMPS),
    "properties": st.sampled_from(OBJECTS),
    "traits": st.sampled_from(OBJECTS),
    "context": st.sampled_from(CONTEXTS),
    "integrations": st.sampled_from([None, {"All": False}, "no"]),
    "groupId": st.sampled_from(IDS),
    "previousId": st.sampled_from(IDS),
    "name": st.sampled_from([None, "Home", 4]),
    "writeKey": st.sampled_from([None, "wk"]),
    "mergeProperties": st.sampled_from([None, [{"type": "email", "value": "a@b.c"}, {"type": "id", "value": 1}]]),
}


@st.composite
def items(draw: st.DrawFn) -> dict[str, Any]:
    chosen = draw(st.sets(st.sampled_from(sorted(fields))))
    return {name: draw(fields[name]) for name in sorted(chosen)}


envelopes = st.builds(
    lambda context, integrations, sent_at, ip, browser: Envelope(
        received=RECEIVED,
        received_at=timestamps.format_utc(RECEIVED),
        context=context,
        integrations=integrations,
        sent_at=sent_at,
        client_ip=ip,
        browser=browser,
    ),
    st.sampled_from([None, {}, {"library": {"name": "analytics-python"}}, {"locale": "de"}]),
    st.sampled_from([None, {"Webhook": True}]),
    st.sampled_from([None, "2026-11-29T05:30:00.000Z", "not a time"]),
    st.sampled_from([None, "192.0.2.7"]),
    st.booleans(),
)


def admit_and_load(request: Request, item: dict[str, Any]) -> dict[str, Any]:
    raw = msgspec.json.encode(item)
    made_up = request.check(raw)
    [event] = load(request.value([raw], None if made_up is None else {0: made_up}))
    return event


def outcome(run: Any) -> Any:
    try:
        return run()
    except EventRejected as exc:
        return exc.reason


@settings(max_examples=2000, deadline=None)
@given(item=items(), env=envelopes, event_type=st.sampled_from([None, None, "track", "identify", "page"]))
def test_stored_then_loaded_is_exactly_the_normalized_event(
    item: dict[str, Any], env: Envelope, event_type: str | None
) -> None:
    expected = outcome(lambda: normalize(copy.deepcopy(item), event_type, env))
    got = outcome(lambda: admit_and_load(Request(env, event_type), item))
    if isinstance(expected, str):
        assert got == expected
        return
    assert isinstance(got, dict)
    if item.get("messageId") in (None, ""):
        # Made up on arrival, once: it is kept in the stored record.
        assert got["messageId"] != expected["messageId"]
        expected["messageId"] = got["messageId"]
    assert got == expected


def typical(**extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": "user-0001",
        "anonymousId": "anon-1",
        "messageId": "m-0001",
        "timestamp": "2026-11-29T05:29:58.100Z",
        "properties": {"total": 42.5, "items": [{"sku": "a"}]},
        "context": {"library": {"name": "analytics-python", "version": "2.3.3"}},
        "integrations": {},
        **extra,
    }


def test_well_formed_events_take_the_quick_check() -> None:
    request = Request(Envelope(received=RECEIVED, received_at=timestamps.format_utc(RECEIVED)))
    for event in (typical(), typical(type="identify", traits={"plan": "pro"}), typical(type="page", name="Home")):
        head = decode_head(msgspec.json.encode(event))
        assert head is not None
        assert request._check(head) == ""
    head = decode_head(msgspec.json.encode(typical(messageId=None)))
    assert head is not None and len(request._check(head) or "") == 36


def test_a_record_keeps_the_events_as_sent() -> None:
    sent = [typical(writeKey="secret", userId=17), typical(messageId=None), typical(type="page", messageId="p")]
    request = Request(Envelope(received=RECEIVED, received_at=timestamps.format_utc(RECEIVED), sent_at=None))
    raws = [msgspec.json.encode(e) for e in sent]
    made_up = {i: m for i, raw in enumerate(raws) if (m := request.check(raw)) is not None}
    assert list(made_up) == [1]
    value = request.value(raws, made_up)
    assert raw_events(value) == sent
    loaded = load(value)
    assert [e["messageId"] for e in loaded] == ["m-0001", made_up[1], "p"]
    assert loaded[0]["userId"] == "17" and "writeKey" not in loaded[0]
    assert {e["receivedAt"] for e in loaded} == {"2026-11-29T05:30:01.234Z"}
    # Each event has a position of its own, which dedupe uses to tell a re-read from a repeat.
    events = pipeline_events(7, "src", value, 1.0)
    assert [e.record_id for e in events] == [7, 7, 7]
    assert len({e.position for e in events}) == 3 and events[0].position == 7


def test_records_of_the_earlier_format_load_unchanged() -> None:
    normalized = {"type": "track", "event": "A", "messageId": "m", "receivedAt": "2026-11-29T05:30:01.234Z"}
    assert load(msgspec.json.encode(normalized)) == [normalized]
