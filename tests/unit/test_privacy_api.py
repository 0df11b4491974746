"""Consent categories and PII rules through the control API, workspace.yaml and the
analytics.js settings: validation, scoping, versions, the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eventyard.control import workspace_apply
from eventyard.control.workspace_file import parse
from eventyard.errors import ConfigFileError
from eventyard.privacy.pii_classify import hash_value
from eventyard.state.base import PiiFinding
from eventyard.state.ids import hash_token
from eventyard.state.sqlite import SQLiteStateStore
from eventyard.testing.asgi import call
from eventyard.testing.harness import AppHarness


async def api(h: AppHarness, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token or h.admin_token}", "Content-Type": "application/json"}
    resp = await call(h.app, method, path, body, headers)
    return resp.status, resp.json()


@pytest.fixture
async def dests(harness: AppHarness) -> dict[str, str]:
    state = harness.components.state
    out = {}
    for name in ("ads", "warehouse"):
        d = await state.create_destination(
            harness.source.workspace_id, name, "webhook", settings={"url": "http://127.0.0.1:9/x"}
        )
        await state.set_connection(harness.source.id, d.id)
        out[name] = d.id
    return out


async def test_consent_categories_crud(harness: AppHarness, dests: dict[str, str]) -> None:
    status, body = await api(harness, "GET", "/api/v1/consent/categories")
    assert status == 200 and body["data"] == {"workspace": "default", "version": 0, "categories": []}
    status, body = await api(
        harness, "POST", "/api/v1/consent/categories", {"id": "Advertising", "destinations": [dests["ads"]]}
    )
    assert status == 201
    assert body["data"]["categories"] == [{"id": "Advertising", "name": "Advertising", "destinations": ["ads"]}]
    assert body["data"]["version"] == 1
    status, body = await api(harness, "POST", "/api/v1/consent/categories", {"id": "Advertising"})
    assert (status, body["code"]) == (409, "conflict")
    status, body = await api(
        harness,
        "PUT",
        "/api/v1/consent/categories/Analytics",
        {"name": "Site analytics", "destinations": ["ads", "warehouse"]},
    )
    assert status == 200 and [c["id"] for c in body["data"]["categories"]] == ["Advertising", "Analytics"]
    status, body = await api(harness, "GET", "/api/v1/consent/categories/Analytics")
    assert body["data"] == {"id": "Analytics", "name": "Site analytics", "destinations": ["ads", "warehouse"]}
    status, body = await api(harness, "DELETE", "/api/v1/consent/categories/Analytics")
    assert status == 200 and body["data"] == {"id": "Analytics", "deleted": True}
    status, body = await api(harness, "GET", "/api/v1/consent/categories/Analytics")
    assert (status, body["code"]) == (404, "not_found")
    status, body = await api(
        harness,
        "PUT",
        "/api/v1/consent/categories",
        {"categories": [{"id": "Ads", "destinations": ["ads"]}], "strategies": {"ads": "or"}},
    )
    assert status == 200 and body["data"]["strategies"] == {"ads": "or"}
    history = await harness.components.state.document_history(harness.source.workspace_id, "consent", "categories")
    assert [d.version for d in history] == [1, 2, 3, 4]
    assert history[-1].actor.endswith(":harness")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "words"),
    [
        ("POST", "/api/v1/consent/categories", {"id": "1st"}, 400, "invalid_body", "must not start with a digit"),
        ("POST", "/api/v1/consent/categories", {"id": "x" * 35}, 400, "invalid_body", "at most 34"),
        (
            "POST",
            "/api/v1/consent/categories",
            {"id": "Ads", "destinations": ["nope"]},
            400,
            "unknown_destination",
            "no destination 'nope'",
        ),
        ("PUT", "/api/v1/consent/categories", {"strategies": {"ads": "xor"}}, 400, "invalid_body", "'and' or 'or'"),
        (
            "PUT",
            "/api/v1/consent/categories",
            {"categories": [], "strategies": {"gone": "or"}},
            400,
            "unknown_destination",
            "'gone'",
        ),
        ("PUT", "/api/v1/consent/categories/Ads", {"id": "Other"}, 400, "invalid_body", "differs from the path"),
        ("PUT", "/api/v1/consent/categories", [1], 400, "invalid_body", "JSON object"),
        (
            "PUT",
            "/api/v1/pii/rules",
            {"rules": [{"action": "encrypt", "kind": "email"}]},
            400,
            "invalid_body",
            "action must be one of",
        ),
        (
            "PUT",
            "/api/v1/pii/rules",
            {"rules": [{"action": "hash", "kind": "email", "destinations": {"nope": "allow"}}]},
            400,
            "unknown_destination",
            "'nope'",
        ),
        ("POST", "/api/v1/pii/classify", {"value": 3}, 400, "invalid_body", "`value`"),
        ("POST", "/api/v1/pii/classify", {"value": "x", "kind": "dna"}, 400, "invalid_body", "`kind` must be one of"),
        ("GET", "/api/v1/pii/report?source=nope", None, 404, "not_found", "no source"),
        ("GET", "/api/v1/consent/categories?workspace=nope", None, 404, "not_found", "no workspace"),
    ],
)
async def test_bad_input_gets_a_clear_error(
    harness: AppHarness, dests: dict[str, str], method: str, path: str, body: Any, status: int, code: str, words: str
) -> None:
    got, answer = await api(harness, method, path, body)
    assert (got, answer["code"]) == (status, code)
    assert words in answer["message"]


async def test_viewers_read_and_cannot_change(harness: AppHarness, dests: dict[str, str]) -> None:
    await harness.components.state.add_token("v", "viewer", hash_token("eyt_viewer"), harness.source.workspace_id)
    status, _ = await api(harness, "GET", "/api/v1/pii/rules", token="eyt_viewer")
    assert status == 200
    status, body = await api(harness, "PUT", "/api/v1/pii/rules", {"rules": []}, token="eyt_viewer")
    assert (status, body["code"]) == (403, "forbidden")
    status, body = await api(harness, "GET", "/api/v1/consent/categories", token="eyt_nope")
    assert (status, body["code"]) == (401, "invalid_token")


async def test_pii_rules_report_and_classify(harness: AppHarness, dests: dict[str, str]) -> None:
    status, body = await api(harness, "GET", "/api/v1/pii/rules")
    assert body["data"] == {"workspace": "default", "version": 0, "detect": False, "rules": []}
    rules = {
        "detect": True,
        "rules": [
            {
                "path": "properties.email",
                "kind": "email",
                "action": "hash",
                "destinations": {dests["warehouse"]: "allow"},
            }
        ],
    }
    status, body = await api(harness, "PUT", "/api/v1/pii/rules", rules)
    assert status == 200
    assert body["data"]["rules"][0]["destinations"] == {"warehouse": "allow"}, "stored by destination name"
    ws, src = harness.source.workspace_id, harness.source.id
    await harness.components.state.record_pii_findings(
        [
            PiiFinding(ws, src, "properties.email", "email", 5, 10.0, 20.0),
            PiiFinding(ws, src, "context.ip", "ip", 2, 10.0, 20.0),
        ]
    )
    status, body = await api(harness, "GET", "/api/v1/pii/report?source=web")
    assert status == 200
    assert [(r["path"], r["kind"], r["count"], r["action"], r["destinations"]) for r in body["data"]] == [
        ("context.ip", "ip", 2, "none", {}),
        ("properties.email", "email", 5, "hash", {"warehouse": "allow"}),
    ]
    assert body["data"][0]["source"] == "web"
    status, body = await api(harness, "POST", "/api/v1/pii/classify", {"value": " Ana@Example.com"})
    assert body["data"] == {
        "kind": "email",
        "normalized": "ana@example.com",
        "hash": hash_value("email", "ana@example.com"),
        "mask": "A***@Example.com",
    }
    status, body = await api(harness, "DELETE", "/api/v1/pii/report?source=web")
    assert body["data"]["cleared"] == 2
    status, body = await api(harness, "DELETE", "/api/v1/pii/rules")
    assert body["data"]["deleted"] is True
    status, body = await api(harness, "GET", "/api/v1/pii/rules")
    assert body["data"]["version"] == 0


async def test_analytics_js_settings_carry_consent_settings(harness: AppHarness, dests: dict[str, str]) -> None:
    path = f"/v1/projects/{harness.write_key}/settings"
    settings = (await call(harness.app, "GET", path)).json()
    assert settings["consentSettings"] == {"allCategories": [], "hasUnmappedDestinations": False}
    await api(
        harness, "PUT", "/api/v1/consent/categories", {"categories": [{"id": "Advertising", "destinations": ["ads"]}]}
    )
    await harness.components.sources.reload()
    settings = (await call(harness.app, "GET", path)).json()
    assert settings["consentSettings"] == {"allCategories": ["Advertising"], "hasUnmappedDestinations": True}
    await api(harness, "PUT", "/api/v1/consent/categories/Analytics", {"destinations": ["warehouse"]})
    await harness.components.sources.reload()
    settings = (await call(harness.app, "GET", path)).json()
    assert settings["consentSettings"] == {
        "allCategories": ["Advertising", "Analytics"],
        "hasUnmappedDestinations": False,
    }


FILE = """\
workspaces:
  - name: acme
    sources:
      - name: web
        write_key: acme-web-key-1
    destinations:
      - name: ads
        type: webhook
        settings: {url: "http://127.0.0.1:9/ads"}
      - name: warehouse
        type: webhook
        settings: {url: "http://127.0.0.1:9/wh"}
    consent:
      categories:
        - {id: Advertising, name: Ads, destinations: [ads]}
      strategies: {ads: or}
    pii:
      detect: true
      rules:
        - {path: properties.email, kind: email, action: hash, destinations: {warehouse: allow}}
"""


async def test_workspace_file_applies_diffs_and_exports_consent_and_pii(tmp_path: Path) -> None:
    state = SQLiteStateStore(tmp_path / "s.sqlite3")
    await state.start()
    try:
        changes = [c.describe() for c in await workspace_apply.apply(state, parse(FILE))]
        assert "+ consent categories acme" in changes and "+ pii rules acme" in changes
        assert await workspace_apply.apply(state, parse(FILE)) == [], "idempotent"
        edited = FILE.replace("action: hash", "action: mask")
        changes = [c.describe() for c in await workspace_apply.plan(state, parse(edited))]
        assert changes == ["~ pii rules acme: version 1 -> 2"]
        exported = await workspace_apply.export(state)
        again = parse(exported)
        (ws,) = again.workspaces
        assert (
            ws.consent is not None and ws.consent.categories[0].name == "Ads" and ws.consent.strategies == {"ads": "or"}
        )
        assert ws.pii is not None and ws.pii.rules[0].destinations == {"warehouse": "allow"}
        again_changes = await workspace_apply.plan(state, again)
        assert [c for c in again_changes if c.kind in ("consent categories", "pii rules")] == [], "export round-trips"
    finally:
        await state.close()


@pytest.mark.parametrize(
    ("edit", "line", "words"),
    [
        (("destinations: [ads]", "destinations: [ad]"), 13, "no destination 'ad'"),
        (("id: Advertising", "id: 1Advertising"), 14, "must not start with a digit"),
        (("action: hash", "action: scramble"), 20, "action must be one of"),
        (("{warehouse: allow}", "{lake: allow}"), 17, "no destination 'lake'"),
        (("strategies: {ads: or}", "strategies: {ads: xor}"), 13, "'and' or 'or'"),
    ],
)
def test_file_errors_point_at_the_section(edit: tuple[str, str], line: int, words: str) -> None:
    with pytest.raises(ConfigFileError) as info:
        parse(FILE.replace(*edit), "ws.yaml")
    assert words in str(info.value)
    assert info.value.line is not None and abs(info.value.line - line) <= 3, str(info.value)
