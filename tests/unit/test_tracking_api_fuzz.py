"""Property: no body, header or path combination makes the tracking API answer 500."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventyard.testing.asgi import basic, call
from eventyard.testing.harness import AppHarness

PATHS = [
    "/v1/track",
    "/v1/identify",
    "/v1/page",
    "/v1/group",
    "/v1/alias",
    "/v1/batch",
    "/v1/b",
    "/v1/merge",
    "/v1/t",
]
EXPECTED = {200, 400, 401, 403, 405, 413}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
field_values = st.one_of(json_values, st.text(max_size=120), st.just(""), st.just("2026-11-29T00:00:00Z"))
event_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["track", "identify", "page", "screen", "group", "alias", "merge", "x", ""])
        | field_values,
        "userId": field_values,
        "anonymousId": field_values,
        "event": field_values,
        "messageId": field_values,
        "properties": field_values,
        "traits": field_values,
        "context": field_values,
        "integrations": field_values,
        "timestamp": field_values,
        "originalTimestamp": field_values,
        "sentAt": field_values,
        "groupId": field_values,
        "previousId": field_values,
        "mergeProperties": field_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(msgspec.json.encode),
    event_like.map(msgspec.json.encode),
    st.fixed_dictionaries(
        {"batch": st.lists(st.one_of(event_like, json_values), max_size=5)},
        optional={
            "context": field_values,
            "integrations": field_values,
            "sentAt": field_values,
            "writeKey": field_values,
        },
    ).map(msgspec.json.encode),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(PATHS),
    body=bodies,
    with_auth=st.booleans(),
    content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]),
    gzip=st.booleans(),
)
async def test_random_requests_never_answer_500(
    harness: AppHarness, path: str, body: bytes, with_auth: bool, content_type: str, gzip: bool
) -> None:
    headers: dict[str, Any] = {"Content-Type": content_type} if content_type else {}
    if with_auth:
        headers["Authorization"] = basic(harness.write_key)
    resp = await call(harness.app, "POST", path, body, headers, gzip=gzip)
    assert resp.status in EXPECTED, resp.body
    answer = resp.json()
    if resp.status != 200:
        assert answer["success"] is False
        assert answer["code"] and answer["message"]
