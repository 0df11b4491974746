"""A token bound to one workspace can neither read nor change another workspace, on any endpoint.

The test walks every route the control app serves (so a new endpoint is covered the day it is
added) and calls every method with path parameters, query parameters and bodies that point at
the other workspace's objects. A bound owner token must get an error, or an answer that holds
nothing of the other workspace; and the other workspace's configuration must be unchanged.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.routing import Route

from eventyard.control import workspace_apply
from eventyard.state.ids import hash_token
from eventyard.testing.asgi import basic, call
from eventyard.testing.harness import AppHarness
from eventyard.testing.wait import eventually_async

OWNER = "eyt_isolation-owner-default"
OTHER_OWNER = "eyt_isolation-owner-other"
#: Strings that only the other workspace's data holds.
MARKERS = (
    "other-web",
    "wk-other-0001",
    "other-hook",
    "other-user",
    "other-msg-1",
    "other@example.com",
    "other-plan",
    "OtherCategory",
    "other-secret-field",
)
AUDIT = {"/api/v1/audit", "/api/v1/audit/export"}
#: Paths of the control plane that take an admin token.
ADMIN_PATHS = ("/api/", "/regulations", "/suppressions", "/v2/regulations")
#: Endpoints that stream forever; their scoping is tested on their own below.
STREAMS = {"/api/v1/live"}
#: The Profile API has its own auth (HTTP Basic with a profiles token), tested in test_profile_api.
OWN_AUTH = re.compile(r"^/v1/spaces/")
_PARAM = re.compile(r"{([A-Za-z_]+)(?::[a-z]+)?}")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


@pytest.fixture
async def other(harness: AppHarness) -> dict[str, str]:
    state = harness.components.state
    default = harness.source.workspace_id
    ws = await state.create_workspace("other")
    src = await state.create_source(ws.id, "other-web", write_key="wk-other-0001")
    dest = await state.create_destination(ws.id, "other-hook", "webhook", settings={"url": "http://127.0.0.1:9/x"})
    await state.set_connection(src.id, dest.id)
    await state.add_token("owner of default", "owner", hash_token(OWNER), default)
    other_token = await state.add_token("owner of other", "owner", hash_token(OTHER_OWNER), ws.id)
    await harness.components.sources.reload()
    sent = await call(
        harness.app,
        "POST",
        "/v1/identify",
        {"userId": "other-user", "traits": {"email": "other@example.com"}, "messageId": "other-msg-1"},
        {"Authorization": basic("wk-other-0001")},
    )
    assert sent.status == 200

    async def profile() -> int:
        path = "/api/v1/profiles/user_id:other-user?workspace=other"
        resp = await call(harness.app, "GET", path, headers=bearer(harness.admin_token))
        return resp.status

    assert await eventually_async(profile, lambda status: status == 200) == 200
    # Governance configuration and a regulation of the other workspace, made by its own owner.
    plan = {"name": "other-plan", "rules": [{"type": "TRACK", "key": "Other Event", "version": 1, "jsonSchema": {}}]}
    for method, path, body in (
        ("PUT", "/api/v1/tracking-plans/other-plan", plan),
        ("PUT", "/api/v1/sources/other-web/tracking-plan", {"plan": "other-plan"}),
        (
            "POST",
            "/api/v1/consent/categories",
            {"id": "OtherCategory", "name": "Other", "destinations": ["other-hook"]},
        ),
        ("PUT", "/api/v1/pii/rules", {"rules": [{"path": "properties.other-secret-field", "action": "drop"}]}),
    ):
        resp = await call(harness.app, method, path, body, bearer(OTHER_OWNER))
        assert resp.status in (200, 201), (path, resp.body)
    resp = await call(
        harness.app,
        "POST",
        "/api/v1/regulations",
        {"regulationType": "DELETE_ONLY", "subjectType": "USER_ID", "subjectIds": ["someone-else"]},
        bearer(OTHER_OWNER),
    )
    assert resp.status in (200, 201), resp.body
    regulation = resp.json()["data"]["regulateId"]
    return {
        "workspace": ws.id,
        "source": src.id,
        "destination": dest.id,
        "token": other_token.id,
        "regulation": regulation,
    }


#: What each path parameter is filled with: always an object of the other workspace.
def fillers(other: dict[str, str]) -> dict[str, str]:
    return {
        "source": "other-web",
        "destination": "other-hook",
        "message_id": "other-msg-1",
        "ref": "user_id:other-user",
        "token": other["token"],
        "workspace": "other",
        "plan": "other-plan",
        "category": "OtherCategory",
        "id": other["regulation"],
        "space": "other",
    }


async def snapshot(harness: AppHarness, workspace_id: str) -> Any:
    state = harness.components.state
    config = await workspace_apply.export(state, redact_settings=False, only={workspace_id})
    tokens = sorted(t.id for t in await state.list_tokens() if t.workspace_id == workspace_id)
    connections = sorted((c.source_id, c.destination_id, str(c.filters)) for c in await state.list_connections())
    documents = [
        (d.kind, d.name, d.version)
        for kind in ("tracking_plan", "tracking_plan_source", "consent", "pii_rules")
        for d in await state.list_documents(workspace_id, kind)
    ]
    regulations = [(r.id, r.status) for r in await state.list_regulations(workspace_id)]
    suppressions = await state.list_suppressions(workspace_id)
    return config, tokens, connections, documents, regulations, suppressions


async def test_every_endpoint_keeps_other_workspaces_out(harness: AppHarness, other: dict[str, str]) -> None:
    values = fillers(other)
    before = await snapshot(harness, other["workspace"])
    control = harness.app.fallback
    routes = [r for r in getattr(control, "routes", []) if isinstance(r, Route)]
    assert len(routes) > 20
    leaks: list[str] = []
    calls: list[tuple[str, str, int]] = []
    for route in routes:
        if route.path in STREAMS or OWN_AUTH.match(route.path) or not route.path.startswith(ADMIN_PATHS):
            continue
        params = _PARAM.findall(route.path)
        missing = [p for p in params if p not in values]
        assert not missing, f"add a value of the other workspace for {missing} of {route.path} to fillers()"
        path = _PARAM.sub(lambda m: values[m.group(1)], route.path)
        query = "?source=other-web&destination=other-hook&workspace=other"
        body = {
            "source": "other-web",
            "destination": "other-hook",
            "workspace": "other",
            "sources": ["other-web"],
            "name": "isolation-probe",
            "ids": [1],
            "merge": 1,
            "identifier": "email:other@example.com",
            "plan": "other-plan",
            "regulationType": "DELETE_ONLY",
            "subjectType": "USER_ID",
            "subjectIds": ["other-user"],
            "users": [{"userId": "other-user"}],
            "sourceIds": [values["source"]],
            "rules": [],
            "categories": [],
        }
        # Once naming the other workspace outright, once leaving the workspace to the token.
        plain = {k: v for k, v in body.items() if k != "workspace"}
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            for url, sent in ((path + query, body), (path, plain)):
                resp = await call(harness.app, method, url, sent, bearer(OWNER))
                calls.append((method, url, resp.status))
                text = resp.body.decode(errors="replace")
                # The audit trail records the caller's own probes, names included: there,
                # only entries of the other workspace would be a leak.
                markers = (other["workspace"], "owner of other") if route.path in AUDIT else MARKERS
                if 200 <= resp.status < 300 and any(m in text for m in markers):
                    leaks.append(f"{method} {route.path} -> {resp.status}: {text[:200]}")
    assert not leaks, "\n".join(leaks)
    assert len(calls) > 60 and any(200 <= status < 300 for _, _, status in calls)
    assert await snapshot(harness, other["workspace"]) == before


async def test_the_other_workspace_still_works_for_its_own_token(harness: AppHarness, other: dict[str, str]) -> None:
    resp = await call(harness.app, "GET", "/api/v1/profiles/user_id:other-user", headers=bearer(OTHER_OWNER))
    assert resp.status == 200 and "other@example.com" in resp.body.decode()
    resp = await call(harness.app, "GET", "/api/v1/profiles/user_id:other-user", headers=bearer(OWNER))
    assert resp.status == 404
    resp = await call(harness.app, "GET", "/api/v1/sources", headers=bearer(OTHER_OWNER))
    assert [s["name"] for s in resp.json()["data"]] == ["other-web"]
