"""The audit trail of the control plane, through the whole app: a table of requests and the
entry each one leaves (or that it leaves none)."""

from __future__ import annotations

from typing import Any

import pytest

from eventyard.control import audit
from eventyard.testing.asgi import basic, call
from eventyard.testing.harness import AppHarness

PROFILE = "/v1/spaces/default/collections/users/profiles/email:ana@example.com/traits"
Case = tuple[str, str, Any, str, str, dict[str, Any]]

#: (method, path, body, action, target, detail subset). Regulation endpoints are recorded
#: whether or not their module answers in this build (the table is by path); "?": the target
#: of a create is the new object's id when the endpoint answers one.
CASES: list[Case] = [
    ("GET", "/api/v1/sources/web/events?limit=5", None, "event.read", "web", {"status": 200, "limit": "5"}),
    ("GET", "/api/v1/live?source=web", None, "event.stream", "web", {"status": 200, "source": "web"}),
    ("GET", "/api/v1/destinations/hook/dead-letters", None, "dead_letter.read", "hook", {"status": 200}),
    (
        "POST",
        "/api/v1/destinations/hook/dead-letters/resend",
        {"all": True},
        "dead_letter.resend",
        "hook",
        {"status": 200, "all": True},
    ),
    (
        "POST",
        "/api/v1/destinations/hook/replay",
        {"from": "2026-01-01T00:00:00Z"},
        "destination.replay",
        "hook",
        {"from": "2026-01-01T00:00:00Z"},
    ),
    (
        "PUT",
        "/api/v1/connections",
        {"source": "web", "destination": "hook", "filters": []},
        "connection.update",
        "web->hook",
        {"status": 200, "filters": 0},
    ),
    ("DELETE", "/api/v1/connections?source=web&destination=hook", None, "connection.delete", "web->hook", {}),
    ("POST", "/api/v1/sql", {"sql": "SELECT 1", "maxRows": 5}, "sql.query", "", {"sql": "SELECT 1", "maxRows": 5}),
    ("GET", "/api/v1/warehouse/describe", None, "warehouse.describe", "", {}),
    ("PUT", "/api/v1/identity/rules?workspace=default", {}, "identity_rules.update", "default", {"status": 200}),
    ("GET", "/api/v1/profiles/email:ana@example.com?events=3", None, "profile.read", "email:ana@example.com", {}),
    ("GET", "/api/v1/profiles/email:ana@example.com/explain", None, "profile.explain", "email:ana@example.com", {}),
    (
        "POST",
        "/api/v1/profiles/user_id:ana/remove-identifier",
        {"identifier": "email:ana@example.com", "block": True},
        "profile.remove_identifier",
        "user_id:ana",
        {"identifier_type": "email", "block": True},
    ),
    ("POST", "/api/v1/profiles/user_id:ana/split", {"merge": 7}, "profile.split", "user_id:ana", {"merge": 7}),
    (
        "POST",
        "/regulations",
        {"regulationType": "SUPPRESS_ONLY", "subjectType": "USER_ID", "subjectIds": ["u1", "u2"]},
        "regulation.create",
        "?",
        {"regulationType": "SUPPRESS_ONLY", "subjectIds": 2},
    ),
    (
        "POST",
        "/regulations/sources/web",
        {"regulationType": "DELETE_ONLY", "subjectType": "USER_ID", "subjectIds": ["u1"]},
        "regulation.create",
        "?",
        {"subjectIds": 1},
    ),
    ("DELETE", "/regulations/reg_1", None, "regulation.delete", "reg_1", {}),
    ("GET", "/regulations/reg_1", None, "regulation.read", "", {}),
    ("GET", "/suppressions", None, "suppression.read", "", {}),
    (
        "POST",
        "/v2/regulations",
        {"regulationType": "suppress", "users": [{"userId": "u1", "email": "u1@example.com"}]},
        "regulation.create",
        "?",
        {"regulationType": "suppress", "users": 1},
    ),
    ("DELETE", "/v2/regulations/r9", None, "regulation.delete", "r9", {}),
    ("GET", "/api/v1/audit?limit=5", None, "audit.read", "", {"status": 200, "limit": "5"}),
    ("POST", "/api/v1/regulations/sources/web", {"subjectIds": ["u1"]}, "regulation.create", "?", {"subjectIds": 1}),
    ("DELETE", "/api/v1/regulations/reg_2", None, "regulation.delete", "reg_2", {}),
    ("GET", "/api/v1/suppressions", None, "suppression.read", "", {}),
    ("PUT", "/api/v1/consent/categories", {"categories": []}, "consent.update", "", {}),
    ("DELETE", "/api/v1/consent/categories/ads", None, "consent_category.delete", "ads", {}),
    ("PUT", "/api/v1/pii/rules", {"rules": []}, "pii_rules.update", "", {}),
    ("POST", "/api/v1/pii/classify", {"value": "ana@example.com"}, "pii.classify", "", {}),
    ("PUT", "/api/v1/sources/web/tracking-plan", {"plan": "checkout"}, "tracking_plan.attach", "web", {}),
    ("PATCH", "/api/v1/sources/web", {"enabled": True}, "source.update", "web", {}),
    ("POST", "/api/v1/tokens", {"name": "ci", "role": "editor"}, "token.create", "?", {}),
]


async def admin(h: AppHarness, method: str, path: str, body: Any = None, **headers: str) -> Any:
    return await call(h.app, method, path, body, {"authorization": f"Bearer {h.admin_token}", **headers})


async def entries(h: AppHarness) -> list[Any]:
    return await h.components.state.list_audit(limit=1000)


@pytest.fixture
async def hooked(harness: AppHarness) -> AppHarness:
    ws = await harness.components.state.workspace_by_name("default")
    assert ws is not None
    await harness.components.state.create_destination(ws.id, "hook", "webhook", settings={"url": "http://127.0.0.1:9"})
    return harness


@pytest.mark.parametrize(("method", "path", "body", "action", "target", "detail"), CASES, ids=[c[3] for c in CASES])
async def test_each_kind_of_request_leaves_its_entry(
    hooked: AppHarness, method: str, path: str, body: Any, action: str, target: str, detail: dict[str, Any]
) -> None:
    r = await admin(hooked, method, path, body)
    [entry] = await entries(hooked)
    ws = await hooked.components.state.workspace_by_name("default")
    assert ws is not None
    assert entry.action == action
    assert target == "?" or entry.target == (target or "*")
    assert entry.actor.endswith(":harness") and entry.actor.startswith("tok_")
    assert entry.origin == "203.0.113.7"
    assert entry.workspace_id == ws.id  # the only workspace
    assert entry.detail["status"] == r.status
    assert entry.detail["method"] == method
    assert detail.items() <= entry.detail.items()
    assert hooked.admin_token not in repr(entry)
    if method != "GET":
        assert "ana@example.com" not in repr(entry)  # bodies never reach the entry
    if r.status == 201 and isinstance(r.json(), dict) and "token" in r.json():
        assert r.json()["token"] not in repr(entry)


async def test_profile_api_reads_name_the_token_and_the_profile(harness: AppHarness) -> None:
    state = harness.components.state
    created = await admin(harness, "POST", "/api/v1/profile-tokens", {"name": "support desk"})
    assert created.status == 201
    secret, token_id = created.json()["token"], created.json()["id"]
    r = await call(harness.app, "GET", PROFILE, headers={"authorization": basic(secret)})
    assert r.status == 404  # no such profile yet: the read attempt is recorded all the same
    made, read = await entries(harness)
    assert (made.action, made.target, made.detail["name"]) == ("token.create", token_id, "support desk")
    assert secret not in repr(made)
    assert read.action == "profile.read"
    assert read.actor == f"{token_id}:support desk"
    assert read.target == "email:ana@example.com"
    assert read.detail["endpoint"] == "traits" and read.detail["collection"] == "users"
    assert secret not in repr(read)
    assert await state.list_audit(action="profile.") == [read]


async def test_callers_without_a_valid_token_are_recorded_too(harness: AppHarness) -> None:
    await call(harness.app, "GET", "/api/v1/sources/web/events")
    await call(harness.app, "GET", "/api/v1/sources/web/events", headers={"authorization": "Bearer eyt_wrong"})
    await call(harness.app, "GET", PROFILE, headers={"authorization": basic("eyt_wrong")})
    found = [(e.actor, e.action, e.detail["status"]) for e in await entries(harness)]
    assert found == [
        ("anonymous", "event.read", 401),
        ("invalid-token", "event.read", 401),
        ("invalid-token", "profile.read", 401),
    ]
    assert "eyt_wrong" not in repr(await entries(harness))


async def test_reads_of_configuration_and_unknown_paths_are_not_recorded(harness: AppHarness) -> None:
    for method, path in (
        ("GET", "/health"),
        ("GET", "/api/v1/sources"),
        ("GET", "/api/v1/overview"),
        ("GET", "/api/v1/identity/rules"),
        ("POST", "/api/v1/no-such-endpoint"),
        ("DELETE", "/api/v1/no/such/endpoint"),
        ("POST", "/ui/index.html"),  # the console's files: 405
        ("DELETE", "/api/v1/audit"),  # 405: there is no way to delete entries
    ):
        r = await admin(harness, method, path)
        assert r.status in (200, 404, 405), (path, r.status)
    assert await entries(harness) == []


async def test_the_command_line_names_itself_in_the_entries_of_its_calls(harness: AppHarness) -> None:
    await admin(harness, "GET", "/api/v1/sources/web/events", **{"user-agent": audit.cli_agent()})
    [entry] = await entries(harness)
    assert entry.detail["agent"].startswith("eventyard-cli/")
    assert audit.cli_actor() in entry.detail["agent"]


@pytest.mark.parametrize(
    ("method", "path", "action", "target"),
    [
        ("POST", "/api/v1/destinations", "destination.create", ""),
        ("PUT", "/api/v1/destinations/d1", "destination.update", "d1"),
        ("PATCH", "/api/v1/sources/s1", "source.update", "s1"),
        ("DELETE", "/api/v1/tracking-plans/checkout", "tracking_plan.delete", "checkout"),
        ("POST", "/api/v1/destinations/d1/test", "destination.test", "d1"),
        ("POST", "/api/v1/workspaces/w1/tokens", "token.create", "w1"),
        ("PUT", "/api/v1/consent", "consent.update", ""),
        ("POST", "/api/v1/policies", "policy.create", ""),
        ("PUT", "/api/v1/status", "status.update", ""),
        ("POST", "/tracking-plans", "tracking_plan.create", ""),
        ("POST", "/tracking-plans/tp1/rules", "rule.create", "tp1"),
        ("PATCH", "/v1/things/t1", "thing.update", "t1"),
    ],
)
def test_changes_of_other_endpoints_are_named_from_their_path(method: str, path: str, action: str, target: str) -> None:
    assert audit.derived_action(method, path) == (action, target)
    found = audit.match(method, path)
    assert found is not None and found.derived and found.rule.kind == audit.CHANGE


def test_the_rule_table_is_first_match_wins_and_reads_include_head() -> None:
    explain = audit.match("GET", "/api/v1/profiles/email:a@b.c/explain")
    show = audit.match("HEAD", "/api/v1/profiles/email:a@b.c")
    assert explain is not None and explain.rule.action == "profile.explain"
    assert show is not None and (show.rule.action, show.params["ref"]) == ("profile.read", "email:a@b.c")
    assert audit.match("GET", "/api/v1/destinations") is None


async def test_a_regulation_is_recorded_by_its_id_and_source_without_its_subjects(harness: AppHarness) -> None:
    body = {"regulationType": "SUPPRESS_WITH_DELETE", "subjectType": "USER_ID", "subjectIds": ["ana", "bob"]}
    r = await admin(harness, "POST", "/api/v1/regulations/sources/web", body)
    if r.status == 404 and r.json().get("code") == "not_found" and "no endpoint" in r.json().get("message", ""):
        pytest.skip("the regulations API is not mounted in this build")
    assert r.status == 200, r.body
    [entry] = await entries(harness)
    assert entry.action == "regulation.create"
    assert entry.target == r.json()["data"]["regulateId"]
    assert (entry.detail["within"], entry.detail["subjectIds"]) == ("web", 2)
    assert "ana" not in repr(entry) and "bob" not in repr(entry)


@pytest.mark.parametrize(
    ("header", "secret"),
    [
        ("Bearer eyt_abc", "eyt_abc"),
        ("bearer  eyt_abc ", "eyt_abc"),
        (basic("eyt_profile"), "eyt_profile"),
        ("Basic !!!not-base64", None),
        (basic(""), None),
        ("Token eyt_abc", None),
        ("", None),
    ],
)
def test_credentials_are_read_from_bearer_and_basic_headers_only(header: str, secret: str | None) -> None:
    assert audit.credentials(header) == secret
