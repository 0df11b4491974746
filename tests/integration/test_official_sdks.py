"""The official Python SDKs from PyPI send every call type to a real running server, unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import rudderstack.analytics.client as rudder
import segment.analytics.client as segment

from eventyard.testing.server import ServerProcess, read_log
from eventyard.testing.wait import eventually

pytestmark = pytest.mark.slow


def wait_for(server: ServerProcess, n: int) -> list[dict[str, Any]]:
    return eventually(lambda: read_log(server.data_dir), lambda events: len(events) >= n)


def send_every_call_type(client: Any, prefix: str) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    client.identify(
        user_id=f"{prefix}-u1", traits={"email": "ana@example.com", "plan": "pro"}, message_id=f"{prefix}-1"
    )
    client.track(
        user_id=f"{prefix}-u1",
        event="Order Completed",
        properties={"order_id": "o-1", "revenue": 42.5, "products": [{"sku": "A", "quantity": 2}]},
        message_id=f"{prefix}-2",
        timestamp=when,
    )
    client.page(
        user_id=f"{prefix}-u1",
        category="Docs",
        name="Install",
        properties={"path": "/install"},
        message_id=f"{prefix}-3",
    )
    client.screen(user_id=f"{prefix}-u1", name="Home", properties={"tab": 1}, message_id=f"{prefix}-4")
    client.group(user_id=f"{prefix}-u1", group_id="acme", traits={"name": "Acme"}, message_id=f"{prefix}-5")
    client.alias(previous_id=f"{prefix}-anon", user_id=f"{prefix}-u1", message_id=f"{prefix}-6")
    client.track(anonymous_id=f"{prefix}-anon", event="Viewed", message_id=f"{prefix}-7")


def check(events: list[dict[str, Any]], prefix: str, library: str) -> None:
    by_id = {e["messageId"]: e for e in events}
    identify = by_id[f"{prefix}-1"]
    assert identify["type"] == "identify"
    assert identify["userId"] == f"{prefix}-u1"
    assert identify["traits"] == {"email": "ana@example.com", "plan": "pro"}
    assert identify["context"]["library"]["name"] == library

    track = by_id[f"{prefix}-2"]
    assert (track["type"], track["event"]) == ("track", "Order Completed")
    assert track["properties"]["revenue"] == 42.5
    assert track["properties"]["products"] == [{"sku": "A", "quantity": 2}]
    # A historical timestamp passed by the caller is the event time (clock skew ~0 here).
    assert track["timestamp"].startswith("2026-01-02T03:04:0")
    assert track["originalTimestamp"].startswith("2026-01-02T03:04:05")
    assert track["receivedAt"] and track["sentAt"]

    page = by_id[f"{prefix}-3"]
    assert (page["type"], page["name"], page["properties"]["path"]) == ("page", "Install", "/install")
    screen = by_id[f"{prefix}-4"]
    assert (screen["type"], screen["name"]) == ("screen", "Home")
    group = by_id[f"{prefix}-5"]
    assert (group["type"], group["groupId"], group["traits"]) == ("group", "acme", {"name": "Acme"})
    alias = by_id[f"{prefix}-6"]
    assert (alias["type"], alias["previousId"], alias["userId"]) == (
        "alias",
        f"{prefix}-anon",
        f"{prefix}-u1",
    )
    anon = by_id[f"{prefix}-7"]
    assert anon["anonymousId"] == f"{prefix}-anon" and "userId" not in anon
    # server-side traffic: no IP collected unless asked
    assert "ip" not in identify["context"]


@pytest.mark.parametrize("gzip", [False, True])
def test_segment_analytics_python(server: ServerProcess, gzip: bool) -> None:
    errors: list[Any] = []
    client = segment.Client(
        server.write_key,
        host=server.url,
        gzip=gzip,
        sync_mode=True,
        max_retries=0,
        on_error=lambda e, batch: errors.append(e),
    )
    send_every_call_type(client, "seg")
    client.flush()
    assert errors == []
    check(wait_for(server, 7), "seg", "analytics-python")


@pytest.mark.parametrize("gzip", [True, False])
def test_rudder_sdk_python(server: ServerProcess, gzip: bool) -> None:
    errors: list[Any] = []
    client = rudder.Client(
        server.write_key,
        host=server.url,
        gzip=gzip,
        sync_mode=True,
        max_retries=0,
        on_error=lambda e, batch: errors.append(e),
    )
    send_every_call_type(client, "rs")
    client.flush()
    assert errors == []
    events = wait_for(server, 7)
    check(events, "rs", "analytics-python")  # rudder-sdk-python names its library like this too
    assert all(e["channel"] == "server" for e in events)


def test_segment_sdk_in_background_mode_batches_many_events(server: ServerProcess) -> None:
    client = segment.Client(server.write_key, host=server.url, upload_size=100, max_retries=3)
    for i in range(1000):
        client.track(user_id=f"user-{i % 17}", event="Bulk", properties={"i": i}, message_id=f"bulk-{i}")
    client.flush()
    client.join()
    events = wait_for(server, 1000)
    assert sorted(int(e["messageId"].split("-")[1]) for e in events) == list(range(1000))


def test_sdk_gets_a_clear_error_for_a_bad_write_key(server: ServerProcess) -> None:
    from segment.analytics.request import APIError

    client = segment.Client("wrong-key", host=server.url, sync_mode=True, max_retries=0)
    with pytest.raises(APIError) as exc:
        client.track(user_id="u", event="E")
    assert exc.value.status == 401
    assert exc.value.code == "invalid_write_key"
    assert read_log(server.data_dir) == []
