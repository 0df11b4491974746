"""The StateStore contract: every backend must pass every test here."""

from __future__ import annotations

import asyncio

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


# ------------------------------------------------------------------ documents, audit, regulations


async def test_documents_keep_every_version(state_store: StateStore) -> None:
    ws = await state_store.create_workspace("acme")
    v0 = await state_store.config_version()
    first = await state_store.put_document(ws.id, "tracking_plan", "web", {"rules": [1]}, actor="tok_1:ci")
    assert (first.version, first.actor, first.deleted) == (1, "tok_1:ci", False)
    assert await state_store.config_version() > v0
    same = await state_store.put_document(ws.id, "tracking_plan", "web", {"rules": [1]})
    assert same == first
    second = await state_store.put_document(ws.id, "tracking_plan", "web", {"rules": [1, 2]})
    assert second.version == 2
    assert await state_store.get_document(ws.id, "tracking_plan", "web") == second
    assert await state_store.get_document(ws.id, "tracking_plan", "web", 1) == first
    assert await state_store.get_document(ws.id, "tracking_plan", "nope") is None
    await state_store.put_document(ws.id, "tracking_plan", "app", {"rules": []})
    await state_store.put_document(ws.id, "consent", "categories", {"c": 1})
    names = [d.name for d in await state_store.list_documents(ws.id, "tracking_plan")]
    assert names == ["app", "web"]
    assert [d.kind for d in await state_store.list_documents(None, "consent")] == ["consent"]
    assert await state_store.delete_document(ws.id, "tracking_plan", "app", actor="cli")
    assert not await state_store.delete_document(ws.id, "tracking_plan", "app")
    assert await state_store.get_document(ws.id, "tracking_plan", "app") is None
    assert [d.name for d in await state_store.list_documents(ws.id, "tracking_plan")] == ["web"]
    history = await state_store.document_history(ws.id, "tracking_plan", "app")
    assert [(d.version, d.deleted) for d in history] == [(1, False), (2, True)]
    revived = await state_store.put_document(ws.id, "tracking_plan", "app", {"rules": []})
    assert (revived.version, revived.deleted) == (3, False)


async def test_audit_trail_is_append_only_and_filterable(state_store: StateStore) -> None:
    ws = await state_store.create_workspace("acme")
    v0 = await state_store.config_version()
    a = await state_store.append_audit(ws.id, "tok_1:ci", "source.create", "web", "127.0.0.1", {"k": 1}, at=100.0)
    b = await state_store.append_audit(ws.id, "tok_2:ana", "profile.read", "email:a@x.io", "10.0.0.2", at=200.0)
    c = await state_store.append_audit(None, "cli", "workspace.create", "other", "cli", at=300.0)
    assert await state_store.config_version() == v0
    assert a.id < b.id < c.id and a.detail == {"k": 1}
    assert await state_store.list_audit() == [a, b, c]
    assert await state_store.list_audit(ws.id) == [a, b]
    assert await state_store.list_audit(action="profile") == [b]
    assert await state_store.list_audit(actor="cli") == [c]
    assert await state_store.list_audit(since=150.0, until=300.0) == [b]
    assert await state_store.list_audit(after_id=a.id, limit=1) == [b]


async def test_concurrent_audit_entries_share_commits_and_keep_their_order(state_store: StateStore) -> None:
    writes = getattr(state_store, "audit_writes")  # noqa: B009 - the stores' group writer, not in the protocol
    commits = writes.commits
    entries = await asyncio.gather(
        *(state_store.append_audit(None, "tok_1:api", "profile.read", f"user_id:{i}", "10.0.0.1") for i in range(50))
    )
    ids = [e.id for e in entries]
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert [(e.id, e.target) for e in await state_store.list_audit()] == [(e.id, e.target) for e in entries]
    assert 1 <= writes.commits - commits < 50  # entries that arrive together are committed together


async def test_regulation_status_follows_its_stores(state_store: StateStore) -> None:
    ws = await state_store.create_workspace("acme")
    reg = await state_store.create_regulation(
        ws.id, "SUPPRESS_WITH_DELETE", "USER_ID", ["u1", "u2"], stores=["log", "warehouse:dw"]
    )
    assert reg.status == "INITIALIZED" and set(reg.stores) == {"log", "warehouse:dw"}
    assert await state_store.get_regulation(reg.id) == reg
    running = await state_store.set_regulation_store(reg.id, "log", "RUNNING")
    assert running.status == "RUNNING" and running.finished_at is None
    await state_store.set_regulation_store(reg.id, "log", "FINISHED", removed={"events": 3})
    done = await state_store.set_regulation_store(reg.id, "warehouse:dw", "FINISHED", detail="2 tables")
    assert done.status == "FINISHED" and done.finished_at is not None
    assert done.stores["log"].removed == {"events": 3}
    assert (await state_store.get_regulation(reg.id)) == done
    partial = await state_store.create_regulation(ws.id, "DELETE_ONLY", "USER_ID", ["u3"], stores=["a", "b"])
    await state_store.set_regulation_store(partial.id, "a", "FAILED", detail="timeout")
    assert (await state_store.set_regulation_store(partial.id, "b", "FINISHED")).status == "PARTIAL_SUCCESS"
    assert [r.id for r in await state_store.list_regulations(ws.id)] == [partial.id, reg.id]
    assert [r.id for r in await state_store.list_regulations(ws.id, status="FINISHED")] == [reg.id]
    with pytest.raises(NotFound):
        await state_store.set_regulation_store("reg_missing", "a", "FINISHED")
    with pytest.raises(Terminal):
        await state_store.delete_regulation(reg.id)
    fresh = await state_store.create_regulation(ws.id, "SUPPRESS_ONLY", "USER_ID", ["u4"], stores=["suppression"])
    assert await state_store.delete_regulation(fresh.id)
    assert await state_store.get_regulation(fresh.id) is None


async def test_suppressions(state_store: StateStore) -> None:
    ws = await state_store.create_workspace("acme")
    v0 = await state_store.config_version()
    assert await state_store.add_suppressions(ws.id, "USER_ID", ["u1", "u2"], "reg_1") == 2
    assert await state_store.config_version() > v0
    assert await state_store.add_suppressions(ws.id, "USER_ID", ["u1"], "reg_2") == 0
    assert {s.subject_id for s in await state_store.list_suppressions(ws.id)} == {"u1", "u2"}
    assert await state_store.remove_suppressions(ws.id, "USER_ID", ["u1", "u9"]) == 1
    assert [(s.subject_id, s.regulation_id) for s in await state_store.list_suppressions()] == [("u2", "reg_1")]


async def test_tokens_can_be_revoked(state_store: StateStore) -> None:
    ws = await state_store.create_workspace("acme")
    token = await state_store.add_token("ci", "editor", "a" * 64, ws.id)
    assert await state_store.token_by_hash("a" * 64) == token
    assert await state_store.delete_token(token.id)
    assert not await state_store.delete_token(token.id)
    assert await state_store.token_by_hash("a" * 64) is None
    assert token not in await state_store.list_tokens()
