"""The webhook destination against a real HTTP server: payloads, signatures, batches, faults."""

from __future__ import annotations

import hashlib
import hmac
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventyard.destinations.base import DeleteSubject, DestinationContext, redact
from eventyard.destinations.webhook import WebhookDestination, WebhookSettings, sign, verify_signature
from eventyard.errors import ConfigError, Unavailable
from eventyard.testing import events
from eventyard.testing.faults import (
    Answer,
    FaultServer,
    error,
    fail_first,
    hang,
    ok,
    reset,
    slow,
    throttled,
)
from eventyard.testing.server import free_port

NOW = 1_795_000_000.0
SECRET = "whsec-test-5f2b9c7d1e"


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    async with FaultServer() as srv:
        yield srv


@asynccontextmanager
async def webhook(tmp_path: Path, url: str, **settings: Any) -> AsyncIterator[WebhookDestination]:
    context = DestinationContext("dst-1", "hook", tmp_path, clock=lambda: NOW)
    destination = WebhookDestination(WebhookSettings(url=url, **settings), context)
    await destination.start()
    try:
        yield destination
    finally:
        await destination.close()


async def test_each_payload_is_posted_as_json(tmp_path: Path, server: FaultServer) -> None:
    sent = events.sample(2)
    async with webhook(tmp_path, f"{server.url}/hook") as hook:
        outcomes = await hook.deliver(events.deliveries(sent))
    assert [(o.kind, o.status) for o in outcomes] == [("delivered", 200), ("delivered", 200)]
    assert [(r.method, r.path, r.headers["content-type"]) for r in server.requests] == [
        ("POST", "/hook", "application/json")
    ] * 2
    assert sorted(server.json_bodies(), key=lambda b: b["messageId"]) == sent


async def test_the_mapped_payload_is_what_is_sent(tmp_path: Path, server: FaultServer) -> None:
    item = events.delivery(events.track(), payload={"name": "order_completed", "value": 42.5})
    async with webhook(tmp_path, f"{server.url}/hook") as hook:
        await hook.deliver([item])
    assert server.json_bodies() == [{"name": "order_completed", "value": 42.5}]


async def test_method_and_configured_headers(tmp_path: Path, server: FaultServer) -> None:
    headers = {"Authorization": "Bearer tok-1", "X-Team": "growth"}
    async with webhook(tmp_path, f"{server.url}/in?v=2", method="PUT", headers=headers) as hook:
        await hook.deliver([events.delivery(events.identify())])
    [request] = server.requests
    assert (request.method, request.path, request.query) == ("PUT", "/in", {"v": "2"})
    assert request.headers["authorization"] == "Bearer tok-1"
    assert request.headers["x-team"] == "growth"


async def test_a_configured_content_type_replaces_the_default(tmp_path: Path, server: FaultServer) -> None:
    headers = {"content-type": "application/vnd.acme+json"}
    async with webhook(tmp_path, f"{server.url}/hook", headers=headers) as hook:
        await hook.deliver([events.delivery(events.track())])
    assert server.requests[0].headers["content-type"] == "application/vnd.acme+json"
    assert server.requests[0].json["messageId"] == "track-000001"


async def test_requests_are_signed_with_the_secret(tmp_path: Path, server: FaultServer) -> None:
    async with webhook(tmp_path, f"{server.url}/hook", secret=SECRET) as hook:
        await hook.deliver([events.delivery(events.track())])
    [request] = server.requests
    stamp = request.headers["x-eventyard-timestamp"]
    assert stamp == str(int(NOW))
    expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    signature = request.headers["x-eventyard-signature"]
    assert signature == f"sha256={expected}"
    assert verify_signature(SECRET, request.body, signature, stamp, now=NOW + 10)
    assert not verify_signature(SECRET, request.body + b" ", signature, stamp, now=NOW)
    assert not verify_signature("another-secret", request.body, signature, stamp, now=NOW)
    # the timestamp is signed: a replay with a fresh timestamp, or an old request, fails
    assert not verify_signature(SECRET, request.body, signature, str(int(NOW) + 600), now=NOW + 600)
    assert not verify_signature(SECRET, request.body, signature, stamp, now=NOW + 3600)


async def test_no_signature_without_a_secret(tmp_path: Path, server: FaultServer) -> None:
    async with webhook(tmp_path, f"{server.url}/hook") as hook:
        await hook.deliver([events.delivery(events.track())])
    assert "x-eventyard-signature" not in server.requests[0].headers
    assert "x-eventyard-timestamp" not in server.requests[0].headers


async def test_batch_mode_sends_one_signed_array(tmp_path: Path, server: FaultServer) -> None:
    sent = events.sample(5)
    async with webhook(tmp_path, f"{server.url}/hook", batch=True, secret=SECRET) as hook:
        outcomes = await hook.deliver(events.deliveries(sent))
    assert [o.kind for o in outcomes] == ["delivered"] * 5
    [request] = server.requests
    assert request.json == sent
    assert request.headers["x-eventyard-signature"] == sign(
        SECRET, request.body, request.headers["x-eventyard-timestamp"]
    )


async def test_batch_mode_splits_a_batch_larger_than_max_batch_size(tmp_path: Path, server: FaultServer) -> None:
    sent = events.sample(5)
    async with webhook(tmp_path, f"{server.url}/hook", batch=True, max_batch_size=2) as hook:
        outcomes = await hook.deliver(events.deliveries(sent))
    assert [o.kind for o in outcomes] == ["delivered"] * 5
    bodies = sorted(server.json_bodies(), key=lambda b: b[0]["messageId"])
    assert [len(b) for b in bodies] == [2, 2, 1]
    assert [e for b in bodies for e in b] == sent


async def test_in_batch_mode_the_answer_applies_to_every_event(tmp_path: Path, server: FaultServer) -> None:
    server.script(throttled(12, status=503))
    async with webhook(tmp_path, f"{server.url}/hook", batch=True) as hook:
        outcomes = await hook.deliver(events.deliveries(events.sample(3)))
    assert {(o.kind, o.status, o.retry_after) for o in outcomes} == {("retry", 503, 12.0)}
    assert len(outcomes) == 3


def test_capabilities_follow_the_settings() -> None:
    single = WebhookDestination.capabilities_for(WebhookSettings(url="https://example.com/h"))
    assert (single.batch_size, single.deletes) == (1, False)
    batched = WebhookDestination.capabilities_for(
        WebhookSettings(url="https://example.com/h", batch=True, max_batch_size=250, delete_events=True, concurrency=8)
    )
    assert (batched.batch_size, batched.deletes, batched.concurrency) == (250, True, 8)
    assert batched.batch_age_seconds > 0
    assert WebhookDestination.capabilities.batch_size == 1


@pytest.mark.parametrize(
    ("answer", "kind", "status", "retry_after", "text"),
    [
        (ok(204), "delivered", 204, None, ""),
        (error(500), "retry", 500, None, "HTTP 500"),
        (error(503, "down for maintenance"), "retry", 503, None, "down for maintenance"),
        (throttled(7), "retry", 429, 7.0, "HTTP 429"),
        (error(408), "retry", 408, None, "HTTP 408"),
        (error(400, '{"error":"bad email"}'), "failed", 400, None, "bad email"),
        (error(401), "failed", 401, None, "HTTP 401"),
        (error(404), "failed", 404, None, "HTTP 404"),
        (Answer(status=301, headers={"Location": "https://elsewhere.example/"}), "failed", 301, None, "HTTP 301"),
    ],
)
async def test_answers_are_classified(
    tmp_path: Path,
    server: FaultServer,
    answer: Answer,
    kind: str,
    status: int,
    retry_after: float | None,
    text: str,
) -> None:
    server.script(answer)
    async with webhook(tmp_path, f"{server.url}/hook") as hook:
        [outcome] = await hook.deliver([events.delivery(events.track())])
    assert (outcome.kind, outcome.status, outcome.retry_after) == (kind, status, retry_after)
    assert text in outcome.error
    assert len(server.requests) == 1  # redirects are not followed


async def test_a_timeout_is_a_retry(tmp_path: Path, server: FaultServer) -> None:
    server.script(hang())
    async with webhook(tmp_path, f"{server.url}/hook", timeout_seconds=0.2) as hook:
        [outcome] = await hook.deliver([events.delivery(events.track())])
    assert outcome.kind == "retry"
    assert outcome.error == f"timed out: no answer from 127.0.0.1:{server.url.rsplit(':', 1)[1]} within 0.2s"


async def test_a_slow_answer_within_the_timeout_is_delivered(tmp_path: Path, server: FaultServer) -> None:
    server.script(slow(0.05))
    async with webhook(tmp_path, f"{server.url}/hook") as hook:
        [outcome] = await hook.deliver([events.delivery(events.track())])
    assert outcome.kind == "delivered"


async def test_a_connection_reset_is_a_retry(tmp_path: Path, server: FaultServer) -> None:
    server.script(reset())
    async with webhook(tmp_path, f"{server.url}/hook") as hook:
        [outcome] = await hook.deliver([events.delivery(events.track())])
    assert outcome.kind == "retry"
    assert outcome.error.startswith("connection error talking to 127.0.0.1:")
    assert outcome.status is None


async def test_a_refused_connection_is_a_retry(tmp_path: Path) -> None:
    async with webhook(tmp_path, f"http://127.0.0.1:{free_port()}/hook") as hook:
        [outcome] = await hook.deliver([events.delivery(events.track())])
    assert outcome.kind == "retry"
    assert "connection error" in outcome.error


async def test_fail_first_then_succeed(tmp_path: Path, server: FaultServer) -> None:
    server.script(fail_first(2, error(503)))
    item = events.delivery(events.track())
    async with webhook(tmp_path, f"{server.url}/hook") as hook:
        kinds = [(await hook.deliver([item]))[0].kind for _ in range(3)]
    assert kinds == ["retry", "retry", "delivered"]
    assert len(server.requests) == 3
    assert server.pending == 0


async def test_a_payload_that_is_not_json_fails_alone(tmp_path: Path, server: FaultServer) -> None:
    bad = events.delivery(events.track(), payload={"when": object()})
    good = events.delivery(events.identify())
    async with webhook(tmp_path, f"{server.url}/hook", batch=True) as hook:
        outcomes = await hook.deliver([bad, good])
    assert [o.kind for o in outcomes] == ["failed", "delivered"]
    assert "cannot be encoded as JSON" in outcomes[0].error
    assert server.json_bodies() == [[good.payload]]


async def test_deliver_before_start_opens_the_session(tmp_path: Path, server: FaultServer) -> None:
    context = DestinationContext("dst-1", "hook", tmp_path)
    hook = WebhookDestination(WebhookSettings(url=f"{server.url}/hook"), context)
    try:
        [outcome] = await hook.deliver([events.delivery(events.track())])
    finally:
        await hook.close()
    assert outcome.kind == "delivered"


async def test_check_sends_nothing_without_a_check_url(tmp_path: Path, server: FaultServer) -> None:
    async with webhook(tmp_path, f"{server.url}/hook") as hook:
        await hook.check()
    assert server.requests == []


async def test_check_fetches_the_check_url(tmp_path: Path, server: FaultServer) -> None:
    context = DestinationContext("dst-1", "hook", tmp_path)
    hook = WebhookDestination(WebhookSettings(url=f"{server.url}/hook", check_url=f"{server.url}/health"), context)
    await hook.check()  # not started: a session just for the check
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/health")]


@pytest.mark.parametrize(("answer", "raised"), [(error(503), Unavailable), (error(404), ConfigError)])
async def test_check_url_failures(tmp_path: Path, server: FaultServer, answer: Answer, raised: type[Exception]) -> None:
    server.script(answer)
    async with webhook(tmp_path, f"{server.url}/hook", check_url=f"{server.url}/health") as hook:
        with pytest.raises(raised, match="/health"):
            await hook.check()


async def test_check_of_an_unreachable_check_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with webhook(tmp_path, f"{url}/hook", check_url=f"{url}/health") as hook:
        with pytest.raises(Unavailable, match="cannot reach"):
            await hook.check()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"url": "ftp://example.com/x"}, "http:// or https://"),
        ({"url": "http:///path"}, "no host"),
        ({"url": "https://example.com:99999/"}, "invalid port"),
        ({"url": "https://example.com/", "method": "GET"}, "method"),
        ({"url": "https://example.com/", "headers": {"X-A": "1\r\nX-B: 2"}}, "invalid header"),
        ({"url": "https://example.com/", "headers": {"X-Eventyard-Signature": "x"}}, "set by eventyard"),
        ({"url": "https://example.com/", "timeout_seconds": 0}, "timeout_seconds"),
        ({"url": "https://example.com/", "check_url": "localhost/health"}, "check_url"),
        ({"url": "https://example.com/", "batch_size": 10}, "unknown field"),
    ],
)
def test_invalid_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert(settings, WebhookSettings)


def test_redact_hides_the_secret() -> None:
    shown = redact(WebhookSettings(url="https://example.com/h", secret=SECRET))
    assert shown["secret"] == "…" + SECRET[-4:]
    assert SECRET not in repr(shown)


@pytest.mark.parametrize("batch", [False, True])
async def test_delete_user_sends_a_delete_event(tmp_path: Path, server: FaultServer, batch: bool) -> None:
    subject = DeleteSubject(user_id="user-0042", identifiers={"email": "ada@example.com"})
    async with webhook(tmp_path, f"{server.url}/hook", delete_events=True, batch=batch, secret=SECRET) as hook:
        outcome = await hook.delete_user(subject)
    assert outcome.kind == "delivered"
    [request] = server.requests
    body = request.json[0] if batch else request.json
    assert body["type"] == "delete"
    assert body["userId"] == "user-0042"
    assert body["identifiers"] == {"email": "ada@example.com"}
    assert body["timestamp"] == "2026-11-18T11:06:40.000Z"
    assert body["messageId"].startswith("delete-")
    stamp = request.headers["x-eventyard-timestamp"]
    assert verify_signature(SECRET, request.body, request.headers["x-eventyard-signature"], stamp, now=float(stamp))


async def test_delete_user_fails_when_delete_events_is_off(tmp_path: Path, server: FaultServer) -> None:
    async with webhook(tmp_path, f"{server.url}/hook") as hook:
        outcome = await hook.delete_user(DeleteSubject(user_id="user-0042"))
    assert outcome.kind == "failed"
    assert "delete_events" in outcome.error
    assert server.requests == []


def test_the_fault_server_runs_in_a_thread_for_sync_tests() -> None:
    with FaultServer(error(503, "busy")).in_thread() as srv:
        request = urllib.request.Request(f"{srv.url}/hook", data=b'{"a":1}', method="POST")
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(request, timeout=10)
        failed.value.close()
        srv.script(ok(202))
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 202
        assert [r.json for r in srv.wait_for(2)] == [{"a": 1}, {"a": 1}]
    assert failed.value.code == 503
