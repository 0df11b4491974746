"""The configuration endpoints of the control API: roles, workspace isolation, validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from eventyard.control.auth import RateLimiter
from eventyard.runtime.app import create_app
from eventyard.runtime.components import build
from eventyard.runtime.settings import Settings
from eventyard.state.ids import hash_token
from eventyard.testing.asgi import call
from eventyard.testing.clock import FakeClock
from eventyard.testing.harness import AppHarness


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


async def api(h: AppHarness, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    resp = await call(h.app, method, path, body, bearer(token or h.admin_token))
    return resp.status, resp.json()


async def add_token(h: AppHarness, role: str, workspace_id: str | None, secret: str) -> str:
    await h.components.state.add_token(f"{role}-token", role, hash_token(secret), workspace_id)
    return secret


@pytest.fixture
async def two_workspaces(harness: AppHarness) -> dict[str, str]:
    """Workspace ``default`` (the harness's, with source ``web``) and ``other`` with its own
    source and destination; tokens of each role bound to ``default`` and one owner of ``other``."""
    state = harness.components.state
    default = harness.source.workspace_id
    other = await state.create_workspace("other")
    await state.create_source(other.id, "other-web", write_key="wk-other-0001")
    await state.create_destination(other.id, "other-hook", "webhook", settings={"url": "http://127.0.0.1:9/x"})
    return {
        "default": default,
        "other": other.id,
        "owner": await add_token(harness, "owner", default, "eyt_owner-default"),
        "editor": await add_token(harness, "editor", default, "eyt_editor-default"),
        "viewer": await add_token(harness, "viewer", default, "eyt_viewer-default"),
        "profiles": await add_token(harness, "profiles", default, "eyt_profiles-default"),
        "other_owner": await add_token(harness, "owner", other.id, "eyt_owner-other"),
    }


async def test_me_tells_role_and_workspace(harness: AppHarness, two_workspaces: dict[str, str]) -> None:
    status, body = await api(harness, "GET", "/api/v1/me")
    assert status == 200 and body["data"]["role"] == "owner" and body["data"]["workspaceId"] is None
    status, body = await api(harness, "GET", "/api/v1/me", token=two_workspaces["viewer"])
    assert body["data"] | {"tokenId": "x"} == {
        "tokenId": "x",
        "name": "viewer-token",
        "role": "viewer",
        "workspaceId": two_workspaces["default"],
    }


async def test_profile_tokens_and_viewers_are_limited(harness: AppHarness, two_workspaces: dict[str, str]) -> None:
    status, body = await api(harness, "GET", "/api/v1/sources", token=two_workspaces["profiles"])
    assert (status, body["code"]) == (403, "forbidden")
    assert "Profile API" in body["message"]
    status, body = await api(harness, "GET", "/api/v1/sources", token=two_workspaces["viewer"])
    assert status == 200 and [s["name"] for s in body["data"]] == ["web"]
    status, body = await api(harness, "POST", "/api/v1/sources", {"name": "ios"}, token=two_workspaces["viewer"])
    assert (status, body["code"]) == (403, "forbidden")
    assert "read-only" in body["message"]
    status, body = await api(harness, "POST", "/api/v1/sources", {"name": "ios"}, token=two_workspaces["editor"])
    assert status == 201 and body["data"]["workspaceId"] == two_workspaces["default"]


async def test_workspace_bound_tokens_never_see_other_workspaces(
    harness: AppHarness, two_workspaces: dict[str, str]
) -> None:
    tok = two_workspaces["owner"]
    cases = [
        ("GET", "/api/v1/sources/other-web", None),
        ("PATCH", "/api/v1/sources/other-web", {"enabled": False}),
        ("GET", "/api/v1/sources/other-web/events", None),
        ("GET", "/api/v1/destinations/other-hook", None),
        ("PATCH", "/api/v1/destinations/other-hook", {"enabled": False}),
        ("POST", "/api/v1/sources", {"name": "sneaky", "workspace": "other"}),
        ("POST", "/api/v1/destinations", {"name": "s", "type": "webhook", "workspace": "other", "settings": {}}),
    ]
    for method, path, body in cases:
        status, answer = await api(harness, method, path, body, token=tok)
        assert (status, answer["code"]) == (404, "not_found"), (method, path, answer)
    for path, key in (
        ("/api/v1/sources", "name"),
        ("/api/v1/destinations", "name"),
        ("/api/v1/workspaces", "name"),
        ("/api/v1/tokens", "workspaceId"),
    ):
        status, listed = await api(harness, "GET", path, token=tok)
        assert status == 200
        values = {item[key] for item in listed["data"]}
        assert not values & {"other-web", "other-hook", "other", two_workspaces["other"]}, (path, values)
    # The global owner sees both.
    status, listed = await api(harness, "GET", "/api/v1/sources")
    assert {s["name"] for s in listed["data"]} == {"web", "other-web"}
    status, body = await api(harness, "POST", "/api/v1/workspaces", {"name": "third"}, token=tok)
    assert (status, body["code"]) == (403, "forbidden")


async def test_sources_create_update_and_validate(harness: AppHarness) -> None:
    status, body = await api(harness, "POST", "/api/v1/sources", {"name": "ios", "writeKey": "wk-ios-000001"})
    assert status == 201 and body["data"]["writeKey"] == "wk-ios-000001"
    status, body = await api(harness, "POST", "/api/v1/sources", {"name": "ios"})
    assert status == 409 and body["code"] == "conflict"
    status, body = await api(harness, "POST", "/api/v1/sources", {"name": "bad name!"})
    assert status == 400 and "must be 1-64" in body["message"]
    status, body = await api(harness, "POST", "/api/v1/sources", {"name": "x", "limits": {"max_event_bytes": -1}})
    assert status == 400 and "max_event_bytes" in body["message"]
    status, body = await api(harness, "PATCH", "/api/v1/sources/ios", {"enabled": False, "limits": {}})
    assert status == 200 and body["data"]["enabled"] is False
    status, body = await api(harness, "PATCH", "/api/v1/sources/ios", {"name": "renamed"})
    assert status == 400 and "cannot change" in body["message"]
    status, body = await api(harness, "POST", "/api/v1/workspaces", {"name": "second"})
    assert status == 201
    status, body = await api(harness, "POST", "/api/v1/sources", {"name": "android"})
    assert (status, body["code"]) == (400, "missing_workspace")
    status, body = await api(harness, "POST", "/api/v1/sources", {"name": "android", "workspace": "second"})
    assert status == 201


async def test_destinations_keep_secrets_and_describe_their_settings(harness: AppHarness) -> None:
    status, types = await api(harness, "GET", "/api/v1/destination-types")
    assert status == 200
    webhook = next(t for t in types["data"] if t["type"] == "webhook")
    props = webhook["settingsSchema"]["properties"]
    assert props["secret"].get("writeOnly") is True and "url" in props
    created = {
        "name": "hook",
        "type": "webhook",
        "settings": {"url": "http://127.0.0.1:9/h", "secret": "s3cret-value-1"},
    }
    status, body = await api(harness, "POST", "/api/v1/destinations", created)
    assert status == 201 and body["data"]["settings"]["secret"] == "…ue-1"
    redacted = body["data"]["settings"]
    status, body = await api(
        harness, "PATCH", "/api/v1/destinations/hook", {"settings": {**redacted, "url": "http://127.0.0.1:9/new"}}
    )
    assert status == 200
    stored = next(d for d in await harness.components.state.list_destinations() if d.name == "hook")
    assert stored.settings["secret"] == "s3cret-value-1" and stored.settings["url"] == "http://127.0.0.1:9/new"
    status, body = await api(harness, "POST", "/api/v1/destinations", {**created, "type": "nope"})
    assert (status, body["code"]) == (400, "unknown_type")
    status, body = await api(harness, "POST", "/api/v1/destinations", {**created, "name": "h2", "settings": {}})
    assert status == 400 and "url" in body["message"]


async def test_tokens_are_created_once_listed_without_secrets_and_revoked(
    harness: AppHarness, two_workspaces: dict[str, str]
) -> None:
    status, body = await api(
        harness, "POST", "/api/v1/tokens", {"name": "ci", "role": "editor"}, two_workspaces["owner"]
    )
    assert status == 201 and body["data"]["token"].startswith("eyt_")
    secret, token_id = body["data"]["token"], body["data"]["id"]
    assert body["data"]["workspaceId"] == two_workspaces["default"]
    status, listed = await api(harness, "GET", "/api/v1/tokens", token=two_workspaces["owner"])
    assert all("token" not in t and "token_hash" not in t for t in listed["data"])
    assert (await api(harness, "GET", "/api/v1/me", token=secret))[0] == 200
    status, body = await api(harness, "POST", "/api/v1/tokens", {"name": "x", "role": "editor"}, secret)
    assert (status, body["code"]) == (403, "forbidden")
    status, body = await api(harness, "POST", "/api/v1/tokens", {"name": "x", "role": "god"})
    assert status == 400 and "role" in body["message"]
    status, body = await api(harness, "DELETE", f"/api/v1/tokens/{token_id}", token=two_workspaces["other_owner"])
    assert status == 404
    status, body = await api(harness, "DELETE", f"/api/v1/tokens/{token_id}", token=two_workspaces["owner"])
    assert status == 200
    assert (await api(harness, "GET", "/api/v1/me", token=secret))[0] == 401


def test_rate_limiter_refills_over_time() -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter(2.0, clock=clock)
    assert [limiter.wait_seconds("t") for _ in range(4)] == [0.0] * 4  # a burst of twice the rate
    assert limiter.wait_seconds("t") == pytest.approx(0.5)
    assert limiter.wait_seconds("other") == 0.0
    clock.advance(0.5)
    assert limiter.wait_seconds("t") == 0.0
    assert RateLimiter(0).wait_seconds("t") == 0.0


async def test_admin_api_answers_429_with_retry_after(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"), admin_rate_limit_per_second=1.0)
    components = build(settings)
    app = create_app(settings, components)
    await components.start()
    try:
        await components.state.add_token("t", "owner", hash_token("eyt_rate-limited"))
        statuses = [(await call(app, "GET", "/api/v1/me", headers=bearer("eyt_rate-limited"))) for _ in range(3)]
        assert [r.status for r in statuses] == [200, 200, 429]
        assert statuses[2].json()["code"] == "rate_limited"
        assert statuses[2].headers["retry-after"] == "1"
    finally:
        await components.close()


async def test_bound_tokens_cannot_query_the_shared_warehouse(
    harness: AppHarness, two_workspaces: dict[str, str]
) -> None:
    status, body = await api(harness, "POST", "/api/v1/sql", {"sql": "SELECT 1"}, token=two_workspaces["owner"])
    assert (status, body["code"]) == (403, "forbidden")
    status, body = await api(harness, "GET", "/api/v1/warehouse/describe", token=two_workspaces["viewer"])
    assert (status, body["code"]) == (403, "forbidden")


async def test_export_reads_back_the_callers_workspaces(harness: AppHarness, two_workspaces: dict[str, str]) -> None:
    resp = await call(harness.app, "GET", "/api/v1/export", headers=bearer(two_workspaces["viewer"]))
    assert resp.status == 200 and resp.headers["content-type"].startswith("application/yaml")
    doc = yaml.safe_load(resp.body)
    assert [w["name"] for w in doc["workspaces"]] == ["default"]
    resp = await call(harness.app, "GET", "/api/v1/export", headers=bearer(harness.admin_token))
    doc = yaml.safe_load(resp.body)
    other = next(w for w in doc["workspaces"] if w["name"] == "other")
    assert other["sources"][0]["write_key"] == "wk-other-0001"
    assert other["destinations"][0]["settings"]["url"] == "http://127.0.0.1:9/x"
