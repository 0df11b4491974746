"""The StateStore contract: every backend must pass every test here."""

from __future__ import annotations

import pytest

from eventyard.errors import NotFound, Terminal
from eventyard.spec.limits import Limits
from eventyard.state.base import StateStore


async def test_workspaces_and_sources(state_store: StateStore) -> None:
    v0 = await state_store.config_version()
    ws = await state_store.create_workspace("acme")
    assert await state_store.config_version() > v0
    assert await state_store.workspace_by_name("acme") == ws
    assert await state_store.workspace_by_name("nope") is None
    src = await state_store.create_source(ws.id, "web", write_key="key-web-123")
    assert src.limits == Limits()
    assert await state_store.source_by_write_key("key-web-123") == src
    assert await state_store.list_sources(ws.id) == [src]
    generated = await state_store.create_source(ws.id, "ios")
    assert len(generated.write_key) >= 24
    assert {s.name for s in await state_store.list_sources()} == {"web", "ios"}


async def test_update_source(state_store: StateStore) -> None:
    ws = await state_store.create_workspace("acme")
    src = await state_store.create_source(ws.id, "web")
    limits = Limits(max_event_bytes=1000, max_request_bytes=5000, max_batch_events=10)
    updated = await state_store.update_source(src.id, enabled=False, limits=limits)
    assert (updated.enabled, updated.limits, updated.write_key) == (False, limits, src.write_key)
    assert await state_store.source_by_write_key(src.write_key) == updated
    with pytest.raises(NotFound):
        await state_store.update_source("src_missing", enabled=True)


async def test_names_and_write_keys_are_unique(state_store: StateStore) -> None:
    ws = await state_store.create_workspace("acme")
    with pytest.raises(Terminal):
        await state_store.create_workspace("acme")
    await state_store.create_source(ws.id, "web", write_key="same-key-1")
    with pytest.raises(Terminal):
        await state_store.create_source(ws.id, "web")
    with pytest.raises(Terminal):
        await state_store.create_source(ws.id, "other", write_key="same-key-1")


async def test_tokens_are_found_by_hash(state_store: StateStore) -> None:
    tok = await state_store.add_token("ci", "owner", "abc123hash")
    assert await state_store.token_by_hash("abc123hash") == tok
    assert await state_store.token_by_hash("other") is None
    assert await state_store.list_tokens() == [tok]


async def test_meta(state_store: StateStore) -> None:
    assert await state_store.get_meta("x") is None
    await state_store.set_meta("x", "1")
    await state_store.set_meta("x", "2")
    assert await state_store.get_meta("x") == "2"


async def test_destinations_and_connections(state_store: StateStore) -> None:
    from eventyard.state.base import DeliveryPolicy

    ws = await state_store.create_workspace("acme")
    src = await state_store.create_source(ws.id, "web")
    v = await state_store.config_version()
    dest = await state_store.create_destination(
        ws.id, "hook", "webhook", settings={"url": "http://x"}, actions=[{"name": "a", "trigger": "all"}]
    )
    assert await state_store.config_version() > v
    assert dest.delivery == DeliveryPolicy()
    assert await state_store.list_destinations(ws.id) == [dest]
    policy = DeliveryPolicy(max_attempts=3, ordering=True)
    updated = await state_store.update_destination(dest.id, enabled=False, delivery=policy)
    assert (updated.enabled, updated.delivery, updated.settings) == (False, policy, {"url": "http://x"})
    conn = await state_store.set_connection(src.id, dest.id, [{"if": "all", "actions": [{"type": "drop"}]}])
    assert await state_store.list_connections() == [conn]
    again = await state_store.set_connection(src.id, dest.id, [])
    assert await state_store.list_connections() == [again]
    assert await state_store.delete_connection(src.id, dest.id) is True
    assert await state_store.delete_connection(src.id, dest.id) is False
    with pytest.raises(NotFound):
        await state_store.update_destination("dst_missing", enabled=True)


async def test_mark_seen_finds_duplicates_within_the_window(state_store: StateStore) -> None:
    v = await state_store.config_version()
    assert await state_store.mark_seen("s", [("m1", 1), ("m2", 2)], now=1000.0, window_seconds=60) == set()
    # the same records again (a retried batch) are not duplicates
    assert await state_store.mark_seen("s", [("m1", 1)], now=1001.0, window_seconds=60) == set()
    # another record with a known message id is
    assert await state_store.mark_seen("s", [("m1", 7), ("m3", 8)], now=1002.0, window_seconds=60) == {7}
    # a repeat inside one batch is a duplicate too; the retried first record is not
    assert await state_store.mark_seen("s", [("m9", 10), ("m9", 11)], now=1002.0, window_seconds=60) == {11}
    assert await state_store.mark_seen("s", [("m9", 10), ("m9", 12)], now=1002.0, window_seconds=60) == {12}
    # per source
    assert await state_store.mark_seen("other", [("m1", 9)], now=1003.0, window_seconds=60) == set()
    # outside the window it is new again
    assert await state_store.mark_seen("s", [("m2", 12)], now=2000.0, window_seconds=60) == set()
    assert await state_store.purge_seen(1500.0) >= 3
    assert await state_store.config_version() == v  # not configuration


async def test_destination_health(state_store: StateStore) -> None:
    await state_store.set_destination_health("d1", "degraded", "20 failures in a row", 5.0)
    await state_store.set_destination_health("d1", "healthy", "", 6.0)
    (health,) = await state_store.list_destination_health()
    assert (health.status, health.since) == ("healthy", 6.0)
