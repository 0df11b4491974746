"""The Segment-compatible Profile API and the admin profile API, in-process over a real
SQLite log, state store and identity store (events go through the tracking API and the
pipeline, as in production)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from eventyard.control import profile_api
from eventyard.runtime.app import create_app
from eventyard.testing.asgi import Response, basic, call
from eventyard.testing.clock import FakeClock
from eventyard.testing.harness import AppHarness
from eventyard.testing.wait import eventually_async

BASE = "/v1/spaces/default/collections"


async def send(h: AppHarness, path: str, body: dict[str, Any]) -> None:
    r = await call(h.app, "POST", path, body, {"authorization": basic(h.write_key)})
    assert r.status == 200, r.body


async def get(h: AppHarness, path: str, token: str | None = None) -> Response:
    headers = {"authorization": basic(token if token is not None else h.admin_token)}
    return await call(h.app, "GET", path, headers=headers)


async def admin(h: AppHarness, method: str, path: str, body: Any = None) -> Response:
    return await call(h.app, method, path, body, {"authorization": f"Bearer {h.admin_token}"})


async def until_found(h: AppHarness, path: str, check: Any = lambda body: True) -> dict[str, Any]:
    async def probe() -> Response:
        return await get(h, path)

    r = await eventually_async(probe, lambda r: r.status == 200 and check(r.json()))
    assert r.status == 200, r.body
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture
async def ana(harness: AppHarness) -> AppHarness:
    await send(harness, "/v1/page", {"anonymousId": "anon-1", "name": "Home", "timestamp": "2026-03-01T10:00:00Z"})
    await send(
        harness,
        "/v1/identify",
        {
            "anonymousId": "anon-1",
            "userId": "ana",
            "traits": {"email": "ana@example.com", "name": "Ana", "plan": "pro", "age": 41},
            "timestamp": "2026-03-01T10:01:00Z",
        },
    )
    for i in range(5):
        await send(
            harness,
            "/v1/track",
            {
                "userId": "ana",
                "event": f"Step {i % 2}",
                "properties": {"i": i},
                "timestamp": f"2026-03-01T10:0{2 + i}:00Z",
            },
        )
    await send(harness, "/v1/group", {"userId": "ana", "groupId": "acme", "traits": {"name": "Acme Inc"}})
    await until_found(harness, f"{BASE}/accounts/profiles/group_id:acme/links", lambda b: len(b["data"]) == 1)
    await until_found(harness, f"{BASE}/users/profiles/user_id:ana/events?limit=100", lambda b: len(b["data"]) == 8)
    return harness


async def test_traits_with_include_verbose_and_cursor(ana: AppHarness) -> None:
    body = (await get(ana, f"{BASE}/users/profiles/email:ana@example.com/traits")).json()
    assert body["traits"] == {"age": 41, "email": "ana@example.com", "name": "Ana", "plan": "pro"}
    assert body["cursor"] == {
        "url": f"{BASE}/users/profiles/email:ana@example.com/traits",
        "has_more": False,
        "next": "",
    }
    page = (await get(ana, f"{BASE}/users/profiles/user_id:ana/traits?limit=3")).json()
    assert list(page["traits"]) == ["age", "email", "name"] and page["cursor"]["has_more"] is True
    rest = (await get(ana, f"{BASE}/users/profiles/user_id:ana/traits?limit=3&next={page['cursor']['next']}")).json()
    assert rest["traits"] == {"plan": "pro"} and rest["cursor"]["has_more"] is False
    verbose = (await get(ana, f"{BASE}/users/profiles/anonymous_id:anon-1/traits?include=plan&verbose=true")).json()
    assert verbose["traits"]["plan"]["value"] == "pro"
    assert verbose["traits"]["plan"]["source_id"] == ana.source.id
    assert verbose["traits"]["plan"]["updated_at"] == "2026-03-01T10:01:00.000Z"
    assert (await get(ana, f"{BASE}/users/profiles/user_id:ana/traits?class=audience")).json()["traits"] == {}


async def test_events_external_ids_metadata_and_links(ana: AppHarness) -> None:
    events = (await get(ana, f"{BASE}/users/profiles/user_id:ana/events?limit=3")).json()
    assert [e.get("event") for e in events["data"]] == [None, "Step 0", "Step 1"]  # newest first: group, step 4, 3
    assert events["data"][1]["properties"] == {"i": 4} and events["data"][1]["source_id"] == ana.source.id
    assert events["cursor"]["has_more"] is True
    seen = [e["message_id"] for e in events["data"]]
    cursor = events["cursor"]["next"]
    while cursor:
        more = (await get(ana, f"{BASE}/users/profiles/user_id:ana/events?limit=3&next={cursor}")).json()
        seen += [e["message_id"] for e in more["data"]]
        cursor = more["cursor"]["next"]
    assert len(seen) == len(set(seen)) == 8
    only = (await get(ana, f"{BASE}/users/profiles/user_id:ana/events?include=Step%201&sort=asc")).json()
    assert [e["properties"]["i"] for e in only["data"]] == [1, 3]
    window = await get(
        ana,
        f"{BASE}/users/profiles/user_id:ana/events?start=2026-03-01T10:03:00Z&end=2026-03-01T10:05:00Z&exclude=Step%200",
    )
    assert [e["properties"]["i"] for e in window.json()["data"]] == [1]

    ids = (await get(ana, f"{BASE}/users/profiles/user_id:ana/external_ids")).json()
    first = await get(ana, f"{BASE}/users/profiles/user_id:ana/external_ids?limit=2")
    assert len(first.json()["data"]) == 2 and first.json()["cursor"]["has_more"] is True
    rest = await get(
        ana, f"{BASE}/users/profiles/user_id:ana/external_ids?limit=2&next={first.json()['cursor']['next']}"
    )
    assert [i["type"] for i in rest.json()["data"]] == ["user_id"] and rest.json()["cursor"]["has_more"] is False
    assert [(i["type"], i["id"], i["collection"], i["encoding"]) for i in ids["data"]] == [
        ("anonymous_id", "anon-1", "users", "none"),
        ("email", "ana@example.com", "users", "none"),
        ("user_id", "ana", "users", "none"),
    ]
    emails = (await get(ana, f"{BASE}/users/profiles/user_id:ana/external_ids?include=email")).json()
    assert [i["type"] for i in emails["data"]] == ["email"] and emails["data"][0]["first_message_id"]

    meta = (await get(ana, f"{BASE}/users/profiles/user_id:ana/metadata")).json()["metadata"]
    assert meta["first_source_id"] == meta["last_source_id"] == ana.source.id
    assert meta["first_seen_at"] == "2026-03-01T10:00:00.000Z" and meta["expires_at"] is not None
    assert set(meta) >= {"created_at", "updated_at", "first_message_id", "last_message_id"}

    links = (await get(ana, f"{BASE}/users/profiles/user_id:ana/links")).json()
    [link] = links["data"]
    assert link["to_collection"] == "accounts" and link["external_ids"][0]["type"] == "group_id"
    account = (await get(ana, f"{BASE}/accounts/profiles/group_id:acme/traits")).json()
    assert account["traits"] == {"name": "Acme Inc"}
    back = (await get(ana, f"{BASE}/accounts/profiles/group_id:acme/links")).json()
    assert {e["id"] for e in back["data"][0]["external_ids"]} == {"ana", "anon-1", "ana@example.com"}
    by_id = await get(ana, f"{BASE}/users/profiles/segment_id:{meta['profile_id']}/traits")
    assert by_id.json()["traits"]["name"] == "Ana"


async def test_errors_have_segments_shape(ana: AppHarness) -> None:
    missing = await get(ana, f"{BASE}/users/profiles/user_id:nobody/traits")
    assert (missing.status, missing.json()) == (
        404,
        {"error": {"code": "not_found", "message": "Profile was not found."}},
    )
    no_auth = await call(ana.app, "GET", f"{BASE}/users/profiles/user_id:ana/traits")
    assert no_auth.status == 401 and no_auth.json()["error"]["code"] == "unauthorized"
    bad = await get(ana, f"{BASE}/users/profiles/user_id:ana/traits", token="wrong-token")
    assert bad.status == 401
    assert (await get(ana, "/v1/spaces/nope/collections/users/profiles/user_id:ana/traits")).status == 404
    assert (await get(ana, f"{BASE}/things/profiles/user_id:ana/traits")).json()["error"]["code"] == "not_found"
    limit = await get(ana, f"{BASE}/users/profiles/user_id:ana/traits?limit=500")
    assert limit.status == 400 and limit.json()["error"]["code"] == "bad_request"
    assert (await get(ana, f"{BASE}/users/profiles/ana/traits")).status == 400
    text = ana.components.metrics.render().decode()
    assert 'eventyard_profile_api_requests_total{endpoint="traits",status="404"}' in text


async def test_profile_tokens_are_scoped_to_their_workspace(ana: AppHarness) -> None:
    created = await admin(ana, "POST", "/api/v1/profile-tokens", {"name": "crm"})
    assert created.status == 201
    token = created.json()["token"]
    assert (await get(ana, f"{BASE}/users/profiles/user_id:ana/traits", token=token)).status == 200
    other = await ana.components.state.create_workspace("other")
    ok = await admin(ana, "POST", "/api/v1/profile-tokens", {"name": "other", "workspace": other.id})
    foreign = await get(ana, f"{BASE}/users/profiles/user_id:ana/traits", token=ok.json()["token"])
    assert foreign.status == 403 and foreign.json()["error"]["code"] == "forbidden"


async def test_admin_show_explain_rules_and_status(ana: AppHarness) -> None:
    shown = (await admin(ana, "GET", "/api/v1/profiles/email:ana@example.com?events=2")).json()
    assert shown["traits"]["name"] == "Ana" and len(shown["events"]) == 2 and shown["workspace"] == "default"
    explained = (await admin(ana, "GET", "/api/v1/profiles/user_id:ana/explain")).json()
    assert {i["identifier"] for i in explained["identifiers"]} == {
        "anonymous_id:anon-1",
        "user_id:ana",
        "email:ana@example.com",
    }
    assert (await admin(ana, "GET", "/api/v1/profiles/user_id:ghost")).status == 404
    rules = (await admin(ana, "GET", "/api/v1/identity/rules")).json()["rules"]
    assert rules["max_merges"] == 100
    changed = await admin(ana, "PUT", "/api/v1/identity/rules", "max_merges: 5\nblocked_values: [nobody]\n")
    assert changed.status == 200 and changed.json()["rules"]["max_merges"] == 5
    assert (await admin(ana, "GET", "/api/v1/identity/rules")).json()["rules"]["blocked_values"] == ["nobody"]
    wrong = await admin(ana, "PUT", "/api/v1/identity/rules", {"identifiers": [{"type": "email", "limit": 0}]})
    assert wrong.status == 400 and wrong.json()["code"] == "invalid_rules"
    status = (await admin(ana, "GET", "/api/v1/identity/status")).json()
    assert status["store"] == "sqlite" and status["events"] == 8 and status["profiles"] == 2


async def test_admin_remove_identifier_and_split(ana: AppHarness) -> None:
    await send(ana, "/v1/identify", {"userId": "bo", "anonymousId": "anon-2", "timestamp": "2026-03-01T11:00:00Z"})
    await send(
        ana, "/v1/track", {"userId": "bo", "event": "x", "timestamp": "2026-03-01T11:01:00Z", "anonymousId": "anon-3"}
    )
    await send(ana, "/v1/track", {"anonymousId": "anon-3", "event": "y", "timestamp": "2026-03-01T11:02:00Z"})
    await until_found(ana, f"{BASE}/users/profiles/user_id:bo/events", lambda b: len(b["data"]) == 3)
    removed = await admin(
        ana, "POST", "/api/v1/profiles/user_id:bo/remove-identifier", {"identifier": "anonymous_id:anon-3"}
    )
    assert removed.status == 200, removed.body
    parts = {p["status"]: p for p in removed.json()["profiles"]}
    assert parts["kept"]["identifiers"] == ["anonymous_id:anon-2", "user_id:bo"]
    assert parts["new"]["identifiers"] == ["anonymous_id:anon-3"] and parts["new"]["events"] == 1
    wrong = await admin(ana, "POST", "/api/v1/profiles/user_id:bo/split", {"merge": 999})
    assert wrong.status == 404
    missing = await admin(ana, "POST", "/api/v1/profiles/user_id:bo/remove-identifier", {"identifier": "email:no@x.io"})
    assert missing.status == 404
    assert (await admin(ana, "POST", "/api/v1/profiles/user_id:bo/split", {"merge": "x"})).status == 400


async def test_account_events_list_the_group_calls_of_every_member(ana: AppHarness) -> None:
    await send(ana, "/v1/group", {"userId": "ben", "groupId": "acme", "timestamp": "2026-03-02T09:00:00Z"})
    await send(ana, "/v1/group", {"userId": "ben", "groupId": "other", "timestamp": "2026-03-02T09:01:00Z"})
    body = await until_found(ana, f"{BASE}/accounts/profiles/group_id:acme/events", lambda b: len(b["data"]) == 2)
    assert [(e["type"], e["user_id"]) for e in body["data"]] == [("group", "ana"), ("group", "ben")]  # newest first
    assert all(e["group_id"] == "acme" for e in body["data"])
    assert body["data"][0]["related"]["accounts"] == body["data"][1]["related"]["accounts"]
    page = (await get(ana, f"{BASE}/accounts/profiles/group_id:acme/events?limit=1&sort=asc")).json()
    assert [e["user_id"] for e in page["data"]] == ["ben"] and page["cursor"]["has_more"] is True
    rest = await get(
        ana, f"{BASE}/accounts/profiles/group_id:acme/events?limit=1&sort=asc&next={page['cursor']['next']}"
    )
    assert [e["user_id"] for e in rest.json()["data"]] == ["ana"] and rest.json()["cursor"]["has_more"] is False
    late = await get(
        ana, f"{BASE}/accounts/profiles/group_id:acme/events?start=2026-03-02T00:00:00Z&end=2026-03-03T00:00:00Z"
    )
    assert [e["user_id"] for e in late.json()["data"]] == ["ben"]
    other = (await get(ana, f"{BASE}/accounts/profiles/group_id:other/events")).json()
    assert [e["user_id"] for e in other["data"]] == ["ben"]


async def test_each_token_is_rate_limited_with_retry_after(ana: AppHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(profile_api, "CLOCK", clock)
    components = ana.components
    components.settings = msgspec.structs.replace(components.settings, profile_api_rate_limit_per_second=2)
    app = create_app(components.settings, components)
    other = (await admin(ana, "POST", "/api/v1/profile-tokens", {"name": "other"})).json()["token"]
    path = f"{BASE}/users/profiles/user_id:ana/traits"

    async def traits(token: str) -> Response:
        return await call(app, "GET", path, headers={"authorization": basic(token)})

    for _ in range(4):  # a burst of twice the rate
        assert (await traits(ana.admin_token)).status == 200
    refused = await traits(ana.admin_token)
    assert refused.status == 429
    assert refused.json()["error"]["code"] == "too_many_requests"
    assert "2 requests per second" in refused.json()["error"]["message"]
    assert refused.headers["retry-after"] == "1"
    assert (await traits(other)).status == 200  # every token has its own budget
    clock.advance(0.5)  # one request's worth comes back
    assert (await traits(ana.admin_token)).status == 200
    assert (await traits(ana.admin_token)).status == 429
    components.settings = msgspec.structs.replace(components.settings, profile_api_rate_limit_per_second=0)
    unlimited = create_app(components.settings, components)
    for _ in range(10):
        r = await call(unlimited, "GET", path, headers={"authorization": basic(ana.admin_token)})
        assert r.status == 200
