"""The tracking API in-process: every path, every auth style, and the exact answers to bad input."""

from __future__ import annotations

import gzip
from typing import Any

import msgspec
import pytest

from eventyard.collect.ingest import INGEST_TOPIC, REJECTED_TOPIC
from eventyard.spec.limits import Limits
from eventyard.spec.stored import load
from eventyard.testing.asgi import basic, call
from eventyard.testing.harness import AppHarness


async def stored(h: AppHarness, topic: str = INGEST_TOPIC) -> list[dict[str, Any]]:
    records = await h.components.log.read(topic, limit=10_000)
    if topic == INGEST_TOPIC:
        return [event for r in records for event in load(r.payload)]
    return [msgspec.json.decode(r.payload) for r in records]


def auth(h: AppHarness) -> dict[str, str]:
    return {"Authorization": basic(h.write_key), "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/v1/track", "track"),
        ("/v1/identify", "identify"),
        ("/v1/page", "page"),
        ("/v1/screen", "screen"),
        ("/v1/group", "group"),
        ("/v1/alias", "alias"),
        ("/v1/t", "track"),
        ("/v1/i", "identify"),
        ("/v1/p", "page"),
        ("/v1/s", "screen"),
        ("/v1/g", "group"),
        ("/v1/a", "alias"),
        ("/v1/track/", "track"),
    ],
)
async def test_single_event_paths(harness: AppHarness, path: str, kind: str) -> None:
    body = {"userId": "u1", "event": "E", "groupId": "g1", "previousId": "p1", "messageId": f"m-{kind}"}
    resp = await call(harness.app, "POST", path, body, auth(harness))
    assert resp.status == 200, resp.body
    assert resp.json() == {"success": True}
    (event,) = await stored(harness)
    assert event["type"] == kind
    assert event["messageId"] == f"m-{kind}"


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/import", "/v1/b", "/b"])
async def test_batch_paths(harness: AppHarness, path: str) -> None:
    body = {
        "batch": [
            {"type": "track", "userId": "u1", "event": "A"},
            {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}},
        ],
        "context": {"library": {"name": "batch-lib"}},
        "integrations": {"All": False},
        "sentAt": "2026-11-29T00:00:00Z",
    }
    resp = await call(harness.app, "POST", path, body, auth(harness))
    assert resp.status == 200
    assert resp.json() == {"success": True, "accepted": 2}
    events = await stored(harness)
    assert [e["type"] for e in events] == ["track", "identify"]
    assert all(e["context"]["library"] == {"name": "batch-lib"} for e in events)
    assert all(e["integrations"] == {"All": False} for e in events)
    assert all(e["sentAt"] == "2026-11-29T00:00:00.000Z" for e in events)


async def test_write_key_in_body_with_text_plain_as_the_browser_sends_it(harness: AppHarness) -> None:
    body = {"writeKey": harness.write_key, "anonymousId": "a1", "event": "Clicked"}
    resp = await call(
        harness.app,
        "POST",
        "/v1/t",
        msgspec.json.encode(body),
        {"Content-Type": "text/plain", "Origin": "https://shop.example"},
    )
    assert resp.status == 200
    assert resp.headers["access-control-allow-origin"] == "https://shop.example"
    (event,) = await stored(harness)
    assert event["context"]["ip"] == "203.0.113.7"
    assert "writeKey" not in event


async def test_basic_auth_without_colon_or_with_password_works(harness: AppHarness) -> None:
    import base64

    for header in (
        "Basic " + base64.b64encode(harness.write_key.encode()).decode(),
        basic(harness.write_key, "ignored"),
    ):
        resp = await call(harness.app, "POST", "/v1/track", {"userId": "u", "event": "E"}, {"Authorization": header})
        assert resp.status == 200
    assert len(await stored(harness)) == 2


async def test_gzip_body_labelled_as_form_data_is_still_json(harness: AppHarness) -> None:
    body = {"batch": [{"type": "track", "userId": "u", "event": "Zipped"}]}
    headers = {**auth(harness), "Content-Type": "application/x-www-form-urlencoded"}
    resp = await call(harness.app, "POST", "/v1/batch", body, headers, gzip=True)
    assert resp.status == 200
    assert [e["event"] for e in await stored(harness)] == ["Zipped"]


async def test_gzip_without_header_is_detected(harness: AppHarness) -> None:
    raw = gzip.compress(b'{"userId":"u","event":"Magic"}')
    resp = await call(harness.app, "POST", "/v1/track", raw, {"Authorization": basic(harness.write_key)})
    assert resp.status == 200


async def test_chunked_body(harness: AppHarness) -> None:
    body = {"batch": [{"type": "track", "userId": "u", "event": f"E{i}"} for i in range(50)]}
    resp = await call(harness.app, "POST", "/v1/batch", body, auth(harness), chunk_size=100)
    assert resp.status == 200
    assert len(await stored(harness)) == 50


async def test_sent_at_on_batch_and_on_events(harness: AppHarness) -> None:
    body = {
        "batch": [
            {"type": "track", "userId": "u", "event": "Own", "sentAt": "2026-01-01T00:00:01Z"},
            {"type": "track", "userId": "u", "event": "Batch"},
        ],
        "sentAt": "2026-01-01T00:00:02Z",
    }
    await call(harness.app, "POST", "/v1/batch", body, auth(harness))
    own, batch = await stored(harness)
    assert own["sentAt"] == "2026-01-01T00:00:01.000Z"
    assert batch["sentAt"] == "2026-01-01T00:00:02.000Z"


async def test_merge(harness: AppHarness) -> None:
    body = {
        "userId": "u1",
        "mergeProperties": [{"type": "email", "value": "a@b.c"}, {"type": "user_id", "value": "u1"}],
    }
    resp = await call(harness.app, "POST", "/v1/merge", body, auth(harness))
    assert resp.status == 200
    (event,) = await stored(harness)
    assert event["type"] == "merge"


async def test_pixel(harness: AppHarness) -> None:
    url = (
        f"/pixel/v1/track?writeKey={harness.write_key}&anonymousId=a1&event=Email%20Opened"
        "&properties.campaign=fall&context.page.path=/x"
    )
    resp = await call(harness.app, "GET", url)
    assert resp.status == 200
    assert resp.headers["content-type"] == "image/gif"
    assert resp.body.startswith(b"GIF89a")
    (event,) = await stored(harness)
    assert event["event"] == "Email Opened"
    assert event["properties"] == {"campaign": "fall"}
    assert event["context"]["page"] == {"path": "/x"}
    page = await call(harness.app, "GET", f"/pixel/v1/page?writeKey={harness.write_key}&anonymousId=a1&name=Home")
    assert page.status == 200


async def test_beacon_with_write_key_in_query(harness: AppHarness) -> None:
    body = {
        "batch": [{"type": "page", "anonymousId": "a1", "name": "Exit"}],
        "sentAt": "2026-11-29T00:00:00Z",
    }
    resp = await call(
        harness.app,
        "POST",
        f"/beacon/v1/batch?writeKey={harness.write_key}",
        body,
        {"Content-Type": "text/plain"},
    )
    assert resp.status == 200
    assert [e["name"] for e in await stored(harness)] == ["Exit"]


async def test_cors_preflight_on_tracking_and_config_paths(harness: AppHarness) -> None:
    for path in (
        "/v1/t",
        "/v1/batch",
        "/sourceConfig/",
        f"/v1/projects/{harness.write_key}/settings",
        "/pixel/v1/track",
    ):
        resp = await call(
            harness.app,
            "OPTIONS",
            path,
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,anonymousid,sentat",
            },
        )
        assert resp.status == 204, path
        assert resp.headers["access-control-allow-origin"] == "https://app.example"
        assert "authorization" in resp.headers["access-control-allow-headers"].lower()
        assert "anonymousid" in resp.headers["access-control-allow-headers"].lower()
        assert "POST" in resp.headers["access-control-allow-methods"]


async def test_retry_after_is_exposed_to_browsers(harness: AppHarness) -> None:
    resp = await call(
        harness.app,
        "POST",
        "/v1/t",
        {"userId": "u", "event": "E"},
        {**auth(harness), "Origin": "https://a.example"},
    )
    assert "Retry-After" in resp.headers["access-control-expose-headers"]


async def test_segment_cdn_settings_point_the_sdk_here(harness: AppHarness) -> None:
    resp = await call(
        harness.app,
        "GET",
        f"/v1/projects/{harness.write_key}/settings",
        headers={"Host": "collect.local:9000"},
    )
    assert resp.status == 200
    settings = resp.json()
    segment = settings["integrations"]["Segment.io"]
    assert segment["apiKey"] == harness.write_key
    assert segment["apiHost"] == "collect.local:9000/v1"
    assert segment["protocol"] == "http"
    assert settings["metrics"]["sampleRate"] == 0
    missing = await call(harness.app, "GET", "/v1/projects/nope/settings")
    assert missing.status == 401


async def test_rudderstack_source_config(harness: AppHarness) -> None:
    resp = await call(harness.app, "GET", "/sourceConfig/?p=npm&v=3.0&writeKey=" + harness.write_key)
    assert resp.status == 200
    source = resp.json()["source"]
    assert source["id"] == harness.source.id
    assert source["writeKey"] == harness.write_key
    assert source["enabled"] is True
    assert source["config"] == {} and source["destinations"] == []
    by_auth = await call(harness.app, "GET", "/sourceConfig/", headers={"Authorization": basic(harness.write_key)})
    assert by_auth.status == 200


async def test_sdk_metrics_are_acknowledged_not_stored(harness: AppHarness) -> None:
    resp = await call(harness.app, "POST", "/v1/m", {"series": []}, {"Content-Type": "text/plain"})
    assert resp.status == 200
    assert await stored(harness) == []


# --------------------------------------------------------------------------- bad input

BAD_REQUESTS: list[tuple[str, str, Any, dict[str, str] | None, int, str]] = [
    # (name, path, body, headers (None = valid auth), status, code)
    ("malformed json", "/v1/track", b'{"userId": "u", "event":', None, 400, "invalid_json"),
    ("not an object", "/v1/track", b"[1, 2]", None, 400, "invalid_body"),
    ("empty body", "/v1/track", b"", None, 400, "invalid_json"),
    ("batch not a list", "/v1/batch", {"batch": {"a": 1}}, None, 400, "invalid_body"),
    ("empty batch", "/v1/batch", {"batch": []}, None, 400, "empty_batch"),
    ("batch without batch", "/v1/batch", {}, None, 400, "empty_batch"),
    (
        "all events invalid",
        "/v1/batch",
        {"batch": [{"type": "track", "event": "x"}]},
        None,
        400,
        "no_valid_events",
    ),
    ("no user", "/v1/track", {"event": "x"}, None, 400, "missing_user_id"),
    ("track without event", "/v1/track", {"userId": "u"}, None, 400, "missing_event"),
    (
        "properties not an object",
        "/v1/track",
        {"userId": "u", "event": "E", "properties": "p"},
        None,
        400,
        "invalid_field",
    ),
    ("bad gzip", "/v1/track", b"\x1f\x8b\x08garbage", None, 400, "invalid_encoding"),
    ("no write key", "/v1/track", {"userId": "u", "event": "E"}, {}, 401, "missing_write_key"),
    (
        "unknown write key",
        "/v1/track",
        {"userId": "u", "event": "E"},
        {"Authorization": basic("nope")},
        401,
        "invalid_write_key",
    ),
    (
        "unknown key in body",
        "/v1/batch",
        {"writeKey": "nope", "batch": [{"type": "track"}]},
        {},
        401,
        "invalid_write_key",
    ),
    ("wrong method", "/v1/track", None, {"X-Method": "GET"}, 405, "method_not_allowed"),
]


@pytest.mark.parametrize(
    ("name", "path", "body", "headers", "status", "code"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS]
)
async def test_bad_input_gets_a_clear_answer(
    harness: AppHarness,
    name: str,
    path: str,
    body: Any,
    headers: dict[str, str] | None,
    status: int,
    code: str,
) -> None:
    method = "POST"
    if headers is None:
        headers = auth(harness)
    elif "X-Method" in headers:
        method = headers.pop("X-Method")
        headers = auth(harness)
    resp = await call(harness.app, method, path, body, headers)
    assert resp.status == status
    answer = resp.json()
    assert answer["success"] is False
    assert answer["code"] == code
    assert isinstance(answer["message"], str) and answer["message"]
    assert await stored(harness) == []


async def test_refused_events_are_recorded_for_the_debugger(harness: AppHarness) -> None:
    await call(harness.app, "POST", "/v1/track", {"userId": "u", "messageId": "m-9"}, auth(harness))
    await call(harness.app, "POST", "/v1/track", b"{broken", auth(harness))
    first, second = await stored(harness, REJECTED_TOPIC)
    assert first["reason"] == "missing_event"
    assert first["messageId"] == "m-9"
    assert first["sourceId"] == harness.source.id
    assert first["event"]["userId"] == "u"
    assert second["reason"] == "invalid_json"
    assert second["excerpt"] == "{broken"


async def test_one_bad_event_does_not_sink_the_batch(harness: AppHarness) -> None:
    body = {
        "batch": [
            {"type": "track", "userId": "u", "event": "Good 1"},
            {"type": "track", "event": "No user", "messageId": "bad-1"},
            {"type": "track", "userId": "u"},
            "not an object",
            {"type": "track", "userId": "u", "event": "Good 2"},
        ]
    }
    resp = await call(harness.app, "POST", "/v1/batch", body, auth(harness))
    assert resp.status == 200
    answer = resp.json()
    assert answer["accepted"] == 2
    assert [(r["index"], r["reason"]) for r in answer["rejected"]] == [
        (1, "missing_user_id"),
        (2, "missing_event"),
        (3, "not_an_object"),
    ]
    assert answer["rejected"][0]["messageId"] == "bad-1"
    assert [e["event"] for e in await stored(harness)] == ["Good 1", "Good 2"]
    assert [r["reason"] for r in await stored(harness, REJECTED_TOPIC)] == [
        "missing_user_id",
        "missing_event",
        "not_an_object",
    ]
    metrics = harness.components.metrics.render().decode()
    assert 'eventyard_events_rejected_total{reason="missing_user_id"} 1.0' in metrics
    assert f'eventyard_events_received_total{{source_id="{harness.source.id}"}} 2.0' in metrics


async def _limited(h: AppHarness, **limits: int) -> None:
    await h.components.state.update_source(h.source.id, limits=Limits(**limits))
    await h.components.sources.reload()


async def test_limits_are_enforced_per_source(harness: AppHarness) -> None:
    await _limited(harness, max_event_bytes=200, max_request_bytes=1000, max_batch_events=3)
    big = {"userId": "u", "event": "E", "properties": {"x": "y" * 300}}
    resp = await call(harness.app, "POST", "/v1/track", big, auth(harness))
    assert (resp.status, resp.json()["code"]) == (413, "request_too_large")

    batch = {"batch": [{"type": "track", "userId": "u", "event": "E"}] * 4}
    resp = await call(harness.app, "POST", "/v1/batch", batch, auth(harness))
    assert (resp.status, resp.json()["code"]) == (400, "too_many_events")

    batch = {"batch": [{"type": "track", "userId": "u", "event": "E"}, big]}
    resp = await call(harness.app, "POST", "/v1/batch", batch, auth(harness))
    assert resp.status == 200
    assert [r["reason"] for r in resp.json()["rejected"]] == ["event_too_large"]

    huge = {"batch": [{"type": "track", "userId": "u", "event": "E" * 400}] * 3}
    resp = await call(harness.app, "POST", "/v1/batch", huge, auth(harness))
    assert (resp.status, resp.json()["code"]) == (413, "request_too_large")


async def test_gzip_bomb_is_refused_by_decompressed_size(harness: AppHarness) -> None:
    await _limited(harness, max_event_bytes=1000, max_request_bytes=10_000, max_batch_events=10)
    bomb = gzip.compress(b'{"batch":[' + b" " * 1_000_000 + b"]}")
    resp = await call(harness.app, "POST", "/v1/batch", bomb, {"Authorization": basic(harness.write_key)})
    assert (resp.status, resp.json()["code"]) == (413, "request_too_large")


async def test_default_limits_match_segment(harness: AppHarness) -> None:
    event = {"type": "track", "userId": "u", "event": "E", "properties": {"p": "x" * (32 * 1024)}}
    resp = await call(harness.app, "POST", "/v1/batch", {"batch": [event]}, auth(harness))
    assert resp.json()["code"] == "no_valid_events"
    assert resp.json()["rejected"][0]["reason"] == "event_too_large"
    many = {"batch": [{"type": "track", "userId": "u", "event": "E"}] * 2501}
    resp = await call(harness.app, "POST", "/v1/batch", many, auth(harness))
    assert (resp.status, resp.json()["code"]) == (400, "too_many_events")
    over = {"batch": [{"type": "track", "userId": "u", "event": "E", "properties": {"p": "x" * 30_000}}] * 18}
    resp = await call(harness.app, "POST", "/v1/batch", over, auth(harness))
    assert (resp.status, resp.json()["code"]) == (413, "request_too_large")


async def test_disabled_source_is_refused(harness: AppHarness) -> None:
    await harness.components.state.update_source(harness.source.id, enabled=False)
    await harness.components.sources.reload()
    resp = await call(harness.app, "POST", "/v1/track", {"userId": "u", "event": "E"}, auth(harness))
    assert (resp.status, resp.json()["code"]) == (403, "source_disabled")


async def test_backlog_over_the_limit_answers_429_with_retry_after(harness: AppHarness) -> None:
    harness.app.backlog_limit = 2
    for _ in range(2):
        ok = await call(harness.app, "POST", "/v1/track", {"userId": "u", "event": "E"}, auth(harness))
        assert ok.status == 200
    resp = await call(harness.app, "POST", "/v1/track", {"userId": "u", "event": "E"}, auth(harness))
    assert (resp.status, resp.json()["code"]) == (429, "backlog_full")
    assert int(resp.headers["retry-after"]) >= 1
    assert len(await stored(harness)) == 2


async def test_a_full_disk_answers_503_and_stores_nothing(harness: AppHarness) -> None:
    from eventyard.errors import LogFull

    async def full(*args: object, **kwargs: object) -> list[int]:
        raise LogFull("disk full", retry_after=30)

    harness.app.ingestor.log.append = full  # type: ignore[method-assign]
    resp = await call(harness.app, "POST", "/v1/track", {"userId": "u", "event": "E"}, auth(harness))
    assert (resp.status, resp.json()["code"]) == (503, "log_full")
    assert resp.headers["retry-after"] == "30"
