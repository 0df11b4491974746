"""Normalization of single events, as Segment does it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from eventyard.spec import timestamps
from eventyard.spec.normalize import Envelope, EventRejected, normalize

RECEIVED = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def env(**kw: Any) -> Envelope:
    return Envelope(received=RECEIVED, received_at=timestamps.format_utc(RECEIVED), **kw)


def test_clock_skew_is_removed_from_timestamp() -> None:
    # The device clock is 1 hour behind; the call happened 5 s before sending.
    out = normalize(
        {
            "userId": "u1",
            "event": "E",
            "timestamp": "2026-11-29T10:59:55.000Z",
            "sentAt": "2026-11-29T11:00:00.000Z",
        },
        "track",
        env(),
    )
    assert out["originalTimestamp"] == "2026-11-29T10:59:55.000Z"
    assert out["sentAt"] == "2026-11-29T11:00:00.000Z"
    assert out["receivedAt"] == "2026-11-29T12:00:00.000Z"
    assert out["timestamp"] == "2026-11-29T11:59:55.000Z"


def test_original_timestamp_is_used_when_sent_by_rudderstack_sdks() -> None:
    out = normalize(
        {"anonymousId": "a", "originalTimestamp": "2026-11-29T11:59:59+00:00"},
        "page",
        env(sent_at="2026-11-29T12:00:00Z"),
    )
    assert out["timestamp"] == "2026-11-29T11:59:59.000Z"
    assert out["originalTimestamp"] == "2026-11-29T11:59:59+00:00"


def test_timestamp_without_sent_at_is_kept_and_no_timestamp_means_server_time() -> None:
    kept = normalize({"userId": "u", "timestamp": "2020-01-01T00:00:00Z"}, "identify", env())
    assert kept["timestamp"] == "2020-01-01T00:00:00.000Z"
    now = normalize({"userId": "u"}, "identify", env())
    assert now["timestamp"] == now["receivedAt"] == now["originalTimestamp"] == "2026-11-29T12:00:00.000Z"


def test_timezone_offsets_are_converted_to_utc() -> None:
    out = normalize(
        {"userId": "u", "timestamp": "2026-11-29T13:00:00+01:00", "sentAt": "2026-11-29T13:00:00+01:00"},
        "identify",
        env(),
    )
    assert out["timestamp"] == "2026-11-29T12:00:00.000Z"


@pytest.mark.parametrize(
    ("item", "kind", "reason"),
    [
        ({"event": "E"}, "track", "missing_user_id"),
        ({"userId": "", "anonymousId": None, "event": "E"}, "track", "missing_user_id"),
        ({"userId": "u"}, "track", "missing_event"),
        ({"userId": "u", "event": "  "}, "track", "missing_event"),
        ({"userId": "u", "event": 5}, "track", "missing_event"),
        ({"userId": "u"}, "group", "missing_group_id"),
        ({"userId": "u"}, "alias", "missing_previous_id"),
        ({"anonymousId": "a", "previousId": "p"}, "alias", "missing_user_id"),
        ({"userId": "u", "properties": "x"}, "track", "invalid_field"),
        ({"userId": "u", "context": []}, "page", "invalid_field"),
        ({"userId": "u", "messageId": "m" * 101}, "page", "message_id_too_long"),
        ({"userId": "u", "timestamp": "yesterday"}, "page", "invalid_timestamp"),
        ({"userId": "u"}, None, "missing_type"),
        ({"userId": "u", "type": "purchase"}, None, "invalid_type"),
        ({"mergeProperties": [{"type": "email", "value": "a@b"}]}, "merge", "invalid_merge"),
    ],
)
def test_invalid_events_are_rejected_with_a_reason(item: dict[str, Any], kind: str | None, reason: str) -> None:
    with pytest.raises(EventRejected) as exc:
        normalize(item, kind, env())
    assert exc.value.reason == reason
    assert exc.value.message


def test_invalid_field_names_the_field() -> None:
    with pytest.raises(EventRejected, match=r"\$\.properties"):
        normalize({"userId": "u", "event": "E", "properties": [1]}, "track", env())


def test_ids_empty_or_null_count_as_absent_and_numbers_become_strings() -> None:
    out = normalize({"userId": None, "anonymousId": 42, "event": "E"}, "track", env())
    assert "userId" not in out
    assert out["anonymousId"] == "42"
    out = normalize({"userId": "", "anonymousId": "a", "event": "E"}, "track", env())
    assert "userId" not in out
    out = normalize({"userId": 7.0, "event": "E"}, "track", env())
    assert out["userId"] == "7"


def test_message_id_is_kept_or_generated() -> None:
    assert normalize({"userId": "u", "messageId": "m-1"}, "page", env())["messageId"] == "m-1"
    assert normalize({"userId": "u", "messageId": 12}, "page", env())["messageId"] == "12"
    generated = normalize({"userId": "u"}, "page", env())["messageId"]
    assert len(generated) == 36


def test_identify_takes_traits_from_context_when_missing() -> None:
    out = normalize({"userId": "u", "context": {"traits": {"email": "a@b.c"}}}, "identify", env())
    assert out["traits"] == {"email": "a@b.c"}
    own = normalize({"userId": "u", "traits": {"x": 1}, "context": {"traits": {"y": 2}}}, "identify", env())
    assert own["traits"] == {"x": 1}


def test_batch_context_and_integrations_merge_under_the_events_own() -> None:
    out = normalize(
        {"userId": "u", "event": "E", "context": {"locale": "fr"}, "integrations": {"Mixpanel": False}},
        "track",
        env(context={"locale": "en", "library": {"name": "lib"}}, integrations={"All": True}),
    )
    assert out["context"] == {"locale": "fr", "library": {"name": "lib"}}
    assert out["integrations"] == {"All": True, "Mixpanel": False}


def test_ip_is_filled_for_browser_traffic_only() -> None:
    browser = normalize({"anonymousId": "a"}, "page", env(client_ip="198.51.100.1", browser=True))
    assert browser["context"]["ip"] == "198.51.100.1"
    server = normalize({"userId": "u"}, "page", env(client_ip="198.51.100.1"))
    assert "ip" not in server["context"]
    direct = normalize({"userId": "u", "context": {"direct": True}}, "page", env(client_ip="198.51.100.1"))
    assert direct["context"]["ip"] == "198.51.100.1"
    library = normalize(
        {"userId": "u", "context": {"library": {"name": "analytics.js"}}},
        "page",
        env(client_ip="198.51.100.1"),
    )
    assert library["context"]["ip"] == "198.51.100.1"
    own = normalize({"anonymousId": "a", "context": {"ip": "10.0.0.1"}}, "page", env(client_ip="1.1.1.1", browser=True))
    assert own["context"]["ip"] == "10.0.0.1"


def test_write_key_does_not_travel_downstream_and_library_is_kept() -> None:
    out = normalize(
        {
            "userId": "u",
            "writeKey": "secret",
            "context": {"library": {"name": "analytics-python", "version": "2"}},
        },
        "identify",
        env(),
    )
    assert "writeKey" not in out
    assert out["context"]["library"] == {"name": "analytics-python", "version": "2"}


def test_unknown_fields_are_kept() -> None:
    out = normalize({"userId": "u", "event": "E", "custom": {"a": 1}}, "track", env())
    assert out["custom"] == {"a": 1}


def test_merge_event() -> None:
    out = normalize(
        {"mergeProperties": [{"type": "email", "value": "a@b.c"}, {"type": "user_id", "value": "u1"}]},
        "merge",
        env(),
    )
    assert out["type"] == "merge"
