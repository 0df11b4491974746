"""Querying and exporting the audit trail (``/api/v1/audit``), its errors, who may read it,
and the append-only guarantee (database triggers; no API that changes an entry)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from typing import Any

import pytest

from eventyard.control.app import create_control_app
from eventyard.state.audit_sqlite import audit_path_for
from eventyard.state.ids import hash_token
from eventyard.testing.asgi import Response, call
from eventyard.testing.harness import AppHarness


async def get(h: AppHarness, path: str, token: str | None = None) -> Response:
    return await call(h.app, "GET", path, headers={"authorization": f"Bearer {token or h.admin_token}"})


async def download(h: AppHarness, path: str) -> Response:
    """A GET whose client stays connected until the whole (streamed) answer is read."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path.partition("?")[0],
        "raw_path": path.partition("?")[0].encode(),
        "query_string": path.partition("?")[2].encode(),
        "headers": [(b"authorization", f"Bearer {h.admin_token}".encode()), (b"host", b"testserver")],
        "client": ("203.0.113.7", 51000),
        "server": ("testserver", 80),
    }
    response = Response(status=0, headers={})
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        assert not asked, "the export must not wait for the client"
        asked = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            response.status = message["status"]
            response.headers = {k.decode(): v.decode() for k, v in message.get("headers", [])}
        else:
            response.body += message.get("body", b"")

    await h.app(scope, receive, send)
    return response


@pytest.fixture
async def trail(harness: AppHarness) -> AppHarness:
    """Five entries at known times (1000..5000) besides whatever the test itself causes."""
    state = harness.components.state
    ws = await state.workspace_by_name("default")
    assert ws is not None
    other = await state.create_workspace("other")
    rows = [
        (ws.id, "tok_a:ci", "source.create", "web", "10.0.0.1", {"status": 201}),
        (ws.id, "tok_b:ana", "profile.read", "email:ana@example.com", "10.0.0.2", {"status": 200}),
        (ws.id, "tok_b:ana", "profile.explain", "user_id:42", "10.0.0.2", {"status": 200}),
        (other.id, "cli:root", "sql.query", '=HYPERLINK("x")', "cli:vm", {"sql": "SELECT 1"}),
        (ws.id, "tok_a:ci", "destination.update", "hook", "10.0.0.1", {"status": 400}),
    ]
    for i, (w, actor, action, target, origin, detail) in enumerate(rows, start=1):
        await state.append_audit(w, actor, action, target, origin, detail, at=i * 1000.0)
    return harness


def actions(body: dict[str, Any]) -> list[str]:
    return [e["action"] for e in body["data"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("since=1500&until=4000", ["profile.read", "profile.explain"]),
        ("since=1970-01-01T00:50:00Z&until=5000", ["profile.explain", "sql.query"]),
        ("actor=tok_a:ci&until=9999", ["source.create", "destination.update"]),
        ("action=profile.&until=9999", ["profile.read", "profile.explain"]),
        ("action=profile.read&until=9999", ["profile.read"]),
        ("workspace=other", ["sql.query"]),
        ("after=3&until=9999", ["sql.query", "destination.update"]),
    ],
)
async def test_filters_combine(trail: AppHarness, query: str, expected: list[str]) -> None:
    r = await get(trail, f"/api/v1/audit?{query}")
    assert r.status == 200, r.body
    assert actions(r.json()) == expected


async def test_pages_follow_the_cursor_and_the_read_is_recorded(trail: AppHarness) -> None:
    first = (await get(trail, "/api/v1/audit?limit=2&until=9999")).json()
    assert [e["id"] for e in first["data"]] == [1, 2] and first["next"] == 2
    second = (await get(trail, f"/api/v1/audit?limit=2&until=9999&after={first['next']}")).json()
    assert [e["id"] for e in second["data"]] == [3, 4]
    entry = second["data"][0]
    assert entry == {
        "id": 3,
        "at": "1970-01-01T00:50:00.000Z",
        "workspaceId": entry["workspaceId"],
        "actor": "tok_b:ana",
        "action": "profile.explain",
        "target": "user_id:42",
        "origin": "10.0.0.2",
        "detail": {"status": 200},
    }
    reads = (await get(trail, "/api/v1/audit?action=audit.")).json()["data"]
    assert [(e["action"], e["detail"]["limit"]) for e in reads] == [("audit.read", "2"), ("audit.read", "2")]
    assert reads[1]["detail"]["after"] == "2"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=yesterday", "`since` must be an age (30m, 24h, 7d), unix seconds or an ISO-8601 time"),
        ("until=2026-13-45", "`until` must be an age"),
        ("since=2000&until=1000", "`until` must be later than `since`"),
        ("limit=0", "`limit` must be between 1 and 1000"),
        ("limit=many", "`limit` must be a number"),
        ("after=-1", "`after` must be between 0"),
        ("who=ana", "unknown parameter(s) ['who']"),
        ("format=csv", "`format` belongs to /api/v1/audit/export"),
    ],
)
async def test_bad_queries_are_answered_400_with_what_is_wrong(trail: AppHarness, query: str, message: str) -> None:
    r = await get(trail, f"/api/v1/audit?{query}")
    assert r.status == 400
    assert r.json()["code"] == "invalid_parameter"
    assert message in r.json()["message"]


async def test_an_unknown_workspace_is_404(trail: AppHarness) -> None:
    r = await get(trail, "/api/v1/audit?workspace=nowhere")
    assert (r.status, r.json()["code"]) == (404, "not_found")


async def test_only_owners_read_the_trail_and_a_bound_owner_sees_its_workspace(trail: AppHarness) -> None:
    state = trail.components.state
    other = await state.workspace_by_name("other")
    assert other is not None
    await state.add_token("their owner", "owner", hash_token("eyt_other-owner"), other.id)
    await state.add_token("desk", "profiles", hash_token("eyt_profiles"), other.id)
    bound = await get(trail, "/api/v1/audit?until=9999", "eyt_other-owner")
    assert actions(bound.json()) == ["sql.query"]
    assert (await get(trail, "/api/v1/audit?workspace=default", "eyt_other-owner")).status == 404
    refused = await get(trail, "/api/v1/audit", "eyt_profiles")
    assert refused.status == 403
    assert (await get(trail, "/api/v1/audit", "eyt_nobody")).status == 401


async def test_export_as_json_lines(trail: AppHarness) -> None:
    r = await download(trail, "/api/v1/audit/export?format=jsonl&until=9999")
    assert r.status == 200, r.body
    assert r.headers["content-type"] == "application/x-ndjson"
    assert 'filename="eventyard-audit.jsonl"' in r.headers["content-disposition"]
    lines = [json.loads(line) for line in r.body.decode().splitlines()]
    assert [e["id"] for e in lines] == [1, 2, 3, 4, 5]
    assert lines[1]["target"] == "email:ana@example.com"


async def test_export_as_csv_with_formulas_neutralised(trail: AppHarness) -> None:
    r = await download(trail, "/api/v1/audit/export?format=csv&action=sql.")
    assert r.status == 200, r.body
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.body.decode())))
    assert rows[0] == ["id", "at", "workspace_id", "actor", "action", "target", "origin", "status", "detail"]
    [row] = rows[1:]
    assert row[4:7] == ["sql.query", '\'=HYPERLINK("x")', "cli:vm"]
    assert json.loads(row[8]) == {"sql": "SELECT 1"}
    # the export itself is recorded
    [export] = await trail.components.state.list_audit(action="audit.export")
    assert export.detail["format"] == "csv" and export.detail["action"] == "sql."


@pytest.mark.parametrize(
    ("query", "message"),
    [("format=xml", "`format` must be jsonl or csv"), ("limit=5", "no `after` or `limit`")],
)
async def test_bad_export_requests(trail: AppHarness, query: str, message: str) -> None:
    r = await download(trail, f"/api/v1/audit/export?{query}")
    assert r.status == 400 and message in r.json()["message"]


async def test_the_database_refuses_to_change_or_delete_entries(trail: AppHarness) -> None:
    db = sqlite3.connect(audit_path_for(trail.components.settings.state_path()))  # the trail's own file
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE audit_log SET actor = 'someone else' WHERE id = 1")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM audit_log")
        assert db.execute("SELECT count(*), min(actor) FROM audit_log").fetchone() == (5, "cli:root")
    finally:
        db.close()


async def test_the_api_has_no_way_to_change_an_entry(trail: AppHarness) -> None:
    app = create_control_app(trail.components)
    audit_routes = [r for r in app.routes if "/audit" in getattr(r, "path", "")]
    assert audit_routes and all(getattr(r, "methods", set()) <= {"GET", "HEAD"} for r in audit_routes)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        r = await call(trail.app, method, "/api/v1/audit", {}, {"authorization": f"Bearer {trail.admin_token}"})
        assert r.status == 405, method
    assert len(await trail.components.state.list_audit(until=9999)) == 5
