"""The regulations API: Segment's Public API shape, RudderStack's /v2/regulations shape, bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from eventyard.runtime.app import create_app
from eventyard.runtime.components import build
from eventyard.runtime.settings import Settings
from eventyard.state.ids import hash_token
from eventyard.testing.asgi import call
from eventyard.testing.harness import AppHarness


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


async def api(h: AppHarness, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    resp = await call(h.app, method, path, body, bearer(token or h.admin_token))
    return resp.status, resp.json() if resp.body else None


def regulation(kind: str = "SUPPRESS_ONLY", ids: Any = None, subject: str = "USER_ID") -> dict[str, Any]:
    return {"regulationType": kind, "subjectType": subject, "subjectIds": ["ana"] if ids is None else ids}


async def test_segment_create_get_list_and_suppressions(harness: AppHarness) -> None:
    status, body = await api(harness, "POST", "/regulations", regulation("SUPPRESS_ONLY", ["ana", "bob", "ana"]))
    assert status == 200 and set(body) == {"data"} and set(body["data"]) == {"regulateId"}
    reg_id = body["data"]["regulateId"]

    status, body = await api(harness, "GET", f"/regulations/{reg_id}")
    reg = body["data"]["regulation"]
    assert status == 200
    assert reg["id"] == reg_id and reg["workspaceId"] == harness.source.workspace_id
    assert (reg["overallStatus"], reg["regulationType"], reg["subjectIds"]) == (
        "FINISHED",
        "SUPPRESS_ONLY",
        ["ana", "bob"],
    )
    assert reg["createdAt"].endswith("Z") and reg["finishedAt"]
    assert reg["streamStatus"] == [{"id": harness.source.workspace_id, "destinationStatus": []}]
    assert reg["stores"]["suppression"]["status"] == "FINISHED"
    assert reg["stores"]["suppression"]["removed"] == {"added": 2}

    status, body = await api(harness, "GET", "/api/v1/suppressions")
    assert status == 200
    assert [(s["subjectType"], s["subjectId"], s["regulationId"]) for s in body["data"]["suppressed"]] == [
        ("USER_ID", "ana", reg_id),
        ("USER_ID", "bob", reg_id),
    ]
    assert body["data"]["pagination"]["totalEntries"] == 2

    await api(harness, "POST", "/regulations", regulation("UNSUPPRESS", ["bob"]))
    status, body = await api(harness, "GET", "/regulations?pagination.count=1")
    assert status == 200 and len(body["data"]["regulations"]) == 1
    assert body["data"]["regulations"][0]["regulationType"] == "UNSUPPRESS"  # newest first
    page = body["data"]["pagination"]
    assert page["totalEntries"] == 2 and "next" in page
    status, body = await api(harness, "GET", f"/regulations?pagination.count=1&pagination.cursor={page['next']}")
    assert [r["id"] for r in body["data"]["regulations"]] == [reg_id]
    status, body = await api(harness, "GET", "/regulations?regulationTypes=UNSUPPRESS&status=FINISHED")
    assert [r["regulationType"] for r in body["data"]["regulations"]] == ["UNSUPPRESS"]
    status, body = await api(harness, "GET", "/suppressions")
    assert [s["subjectId"] for s in body["data"]["suppressed"]] == ["ana"]


async def test_source_scoped_regulations_are_listed_per_source(harness: AppHarness) -> None:
    source = harness.source
    status, body = await api(harness, "POST", f"/regulations/sources/{source.id}", regulation("DELETE_INTERNAL"))
    assert status == 200
    reg_id = body["data"]["regulateId"]
    await api(harness, "POST", "/regulations", regulation("SUPPRESS_ONLY", ["zoe"]))
    status, body = await api(harness, "GET", f"/regulations/sources/{source.name}")
    assert [r["id"] for r in body["data"]["regulations"]] == [reg_id]
    assert body["data"]["regulations"][0]["sourceId"] == source.id
    status, body = await api(harness, "POST", "/regulations/sources/nope", regulation())
    assert status == 404 and body["errors"][0]["type"] == "not-found"


@pytest.fixture
async def without_route(tmp_path: Path) -> AsyncIterator[AppHarness]:
    """The app without the route role: nothing works regulations off, they stay INITIALIZED."""
    settings = Settings(data_dir=str(tmp_path / "data"), admin_rate_limit_per_second=0, roles=("collect", "control"))
    components = build(settings)
    app = create_app(settings, components)
    await components.start()
    try:
        ws = await components.state.create_workspace("default")
        source = await components.state.create_source(ws.id, "web", write_key="wk-test-0001")
        h = AppHarness(app, components, source, tmp_path / "data")
        await components.state.add_token("harness", "owner", hash_token(h.admin_token))
        yield h
    finally:
        await components.close()


async def test_only_an_initialized_regulation_can_be_deleted(without_route: AppHarness) -> None:
    harness = without_route
    _, body = await api(harness, "POST", "/regulations", regulation("DELETE_ONLY"))
    reg_id = body["data"]["regulateId"]
    state = harness.components.state
    reg = await state.get_regulation(reg_id)
    assert reg is not None and reg.status == "INITIALIZED"
    status, body = await api(harness, "DELETE", f"/regulations/{reg_id}")
    assert (status, body) == (200, {"data": {"status": "SUCCESS"}})
    assert await state.get_regulation(reg_id) is None
    _, body = await api(harness, "POST", "/regulations", regulation("SUPPRESS_ONLY"))
    finished = body["data"]["regulateId"]
    status, body = await api(harness, "DELETE", f"/regulations/{finished}")
    assert status == 422 and "only an INITIALIZED regulation" in body["errors"][0]["message"]
    status, body = await api(harness, "DELETE", "/regulations/reg_missing")
    assert status == 404 and body == {"errors": [{"type": "not-found", "message": "no regulation 'reg_missing'"}]}


@pytest.mark.parametrize(
    ("body", "status", "field", "words"),
    [
        ("not json", 400, None, "not valid JSON"),
        ([1, 2], 422, None, "JSON object"),
        (regulation("ERASE"), 422, "regulationType", "must be one of"),
        (regulation(subject="EMAIL"), 422, "subjectType", "USER_ID, ANONYMOUS_ID"),
        (regulation("DELETE_ONLY", subject="ANONYMOUS_ID"), 422, "subjectType", "delete by USER_ID"),
        (regulation(ids=[]), 422, "subjectIds", "non-empty list"),
        (regulation(ids="ana"), 422, "subjectIds", "non-empty list"),
        (regulation(ids=["ok", ""]), 422, "subjectIds", "subjectIds[1]"),
        (regulation(ids=["ok", None]), 422, "subjectIds", "subjectIds[1]"),
        (regulation(ids=[f"u{i}" for i in range(5001)]), 422, "subjectIds", "at most 5000"),
        ({**regulation(), "extra": 1}, 422, "extra", "unknown field"),
    ],
)
async def test_bad_requests_say_what_is_wrong(
    harness: AppHarness, body: Any, status: int, field: str | None, words: str
) -> None:
    got, answer = await api(harness, "POST", "/regulations", body)
    assert got == status
    (error,) = answer["errors"]
    assert words in error["message"]
    assert error.get("field") == field
    assert await harness.components.state.list_regulations(harness.source.workspace_id) == []


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("status=DONE", "`status` must be one of"),
        ("regulationTypes=ERASE", "unknown regulation type"),
        ("pagination.count=0", "`pagination.count` must be 1..200"),
        ("pagination.count=x", "must be a number"),
        ("pagination.cursor=!!", "not a cursor"),
    ],
)
async def test_bad_list_parameters_say_what_is_wrong(harness: AppHarness, query: str, words: str) -> None:
    status, body = await api(harness, "GET", f"/regulations?{query}")
    assert status == 400 and words in body["errors"][0]["message"]


async def test_auth_is_required_and_viewers_cannot_create(harness: AppHarness) -> None:
    resp = await call(harness.app, "POST", "/regulations", regulation(), {"Content-Type": "application/json"})
    assert resp.status == 401 and resp.json()["errors"][0]["type"] == "unauthorized"
    await harness.components.state.add_token("v", "viewer", hash_token("eyt_viewer"), harness.source.workspace_id)
    status, body = await api(harness, "POST", "/regulations", regulation(), token="eyt_viewer")
    assert status == 403 and "read-only" in body["errors"][0]["message"]
    status, _ = await api(harness, "GET", "/regulations", token="eyt_viewer")
    assert status == 200


async def test_5000_ids_are_accepted(harness: AppHarness) -> None:
    status, _ = await api(harness, "POST", "/regulations", regulation(ids=[f"u{i}" for i in range(5000)]))
    assert status == 200
    assert len(await harness.components.state.list_suppressions(harness.source.workspace_id)) == 5000


async def test_rudderstack_create_list_and_cancel(harness: AppHarness) -> None:
    state = harness.components.state
    hook = await state.create_destination(
        harness.source.workspace_id, "hook", "webhook", settings={"url": "http://127.0.0.1:9/x"}
    )
    body = {
        "regulationType": "suppress_with_delete",
        "destinationIds": [hook.id],
        "users": [{"userId": "ana", "email": "ana@example.com"}, {"userId": "bob"}],
    }
    status, created = await api(harness, "POST", "/v2/regulations", body)
    assert status == 201 and isinstance(created, list) and len(created) == 2
    first = created[0]
    assert first["regulationType"] == "suppress_with_delete" and first["canceled"] is False
    assert first["attributes"] == {"userId": "ana", "email": "ana@example.com"}
    assert first["destinationIds"] == [hook.id] and first["workspaceId"] == harness.source.workspace_id
    assert created[1]["id"] == first["id"] and created[1]["attributes"] == {"userId": "bob"}
    reg = await state.get_regulation(first["id"])
    assert reg is not None and reg.regulation_type == "SUPPRESS_WITH_DELETE" and reg.subject_ids == ["ana", "bob"]
    assert set(reg.stores) == {"suppression", "log", "identity", f"destination:{hook.id}"}

    await api(harness, "POST", "/v2/regulations", {"regulationType": "suppress", "users": [{"userId": "zoe"}]})
    status, listed = await api(harness, "GET", "/v2/regulations?limit=2")
    assert status == 200 and listed["paging"]["total"] == 3 and listed["paging"]["next"].endswith("start=2&limit=2")
    assert [(e["regulationType"], e["attributes"]["userId"]) for e in listed["data"]] == [
        ("suppress", "zoe"),
        ("suppress_with_delete", "ana"),
    ]

    resp = await call(harness.app, "DELETE", f"/v2/regulations/{first['id']}", None, bearer(harness.admin_token))
    assert resp.status == 204
    assert [s.subject_id for s in await state.list_suppressions(harness.source.workspace_id)] == ["zoe"]
    _, listed = await api(harness, "GET", "/v2/regulations")
    canceled = {e["attributes"]["userId"]: e["canceled"] for e in listed["data"] if e["regulationType"] != "unsuppress"}
    assert canceled == {"zoe": False, "ana": True, "bob": True}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"regulationType": "delete", "users": [{"userId": "a"}]}, "`suppress` or `suppress_with_delete`"),
        ({"regulationType": "suppress", "users": []}, "non-empty list"),
        ({"regulationType": "suppress", "users": [{"email": "a@b.c"}]}, "needs a `userId`"),
        ({"regulationType": "suppress", "users": [{"userId": "a"}], "sourceIds": "x"}, "list of ids"),
        ({"regulationType": "suppress", "users": [{"userId": "a"}], "sourceIds": ["nope"]}, "no source"),
        (
            {"regulationType": "suppress_with_delete", "users": [{"userId": "a"}], "destinationIds": ["d"]},
            "no destination",
        ),
    ],
)
async def test_rudderstack_bad_requests(harness: AppHarness, body: dict[str, Any], words: str) -> None:
    status, answer = await api(harness, "POST", "/v2/regulations", body)
    assert status in (400, 404) and words in answer["error"]


async def test_workspaces_are_named_when_the_token_sees_several(harness: AppHarness) -> None:
    state = harness.components.state
    other = await state.create_workspace("other")
    status, body = await api(harness, "POST", "/regulations", regulation())
    assert status == 400 and "several workspaces exist" in body["errors"][0]["message"]
    status, body = await api(harness, "POST", "/regulations?workspace=other", regulation())
    assert status == 200
    reg_id = body["data"]["regulateId"]
    status, body = await api(harness, "GET", f"/regulations/{reg_id}")  # the id names its workspace
    assert status == 200 and body["data"]["regulation"]["workspaceId"] == other.id
    await state.add_token("d", "owner", hash_token("eyt_default_owner"), harness.source.workspace_id)
    status, body = await api(harness, "GET", f"/regulations/{reg_id}", token="eyt_default_owner")
    assert status == 404  # another workspace's regulation is not seen
    status, body = await api(harness, "GET", "/suppressions", token="eyt_default_owner")
    assert status == 200 and body["data"]["suppressed"] == []
