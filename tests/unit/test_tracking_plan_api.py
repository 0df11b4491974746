"""The tracking-plan endpoints of the control API, and enforcement on a running app."""

from __future__ import annotations

from typing import Any

from eventyard.testing.asgi import basic, call
from eventyard.testing.harness import AppHarness
from eventyard.testing.recorder import WebhookRecorder
from eventyard.testing.wait import eventually_async

PLAN: dict[str, Any] = {
    "name": "shop",
    "description": "the shop's events",
    "rules": [
        {
            "type": "TRACK",
            "key": "Order Completed",
            "version": 1,
            "jsonSchema": {
                "type": "object",
                "properties": {
                    "properties": {
                        "type": "object",
                        "required": ["order_id"],
                        "properties": {"order_id": {"type": "string"}, "total": {"type": "number"}},
                    }
                },
            },
        },
        {
            "type": "IDENTIFY",
            "key": "",
            "version": 1,
            "jsonSchema": {
                "type": "object",
                "properties": {"traits": {"type": "object", "properties": {"email": {"type": "string"}}}},
            },
        },
    ],
}


def admin(h: AppHarness) -> dict[str, str]:
    return {"Authorization": f"Bearer {h.admin_token}", "Content-Type": "application/json"}


async def api(h: AppHarness, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    resp = await call(h.app, method, path, body, admin(h))
    return resp.status, resp.json()


async def test_needs_a_token(harness: AppHarness) -> None:
    for path in ("/api/v1/tracking-plans", "/api/v1/tracking-plans/shop", "/api/v1/sources/web/tracking-plan"):
        resp = await call(harness.app, "GET", path)
        assert (resp.status, resp.json()["code"]) == (401, "missing_token")


async def test_create_version_history_diff_export(harness: AppHarness) -> None:
    status, created = await api(harness, "PUT", "/api/v1/tracking-plans/shop", PLAN)
    assert status == 201 and created["version"] == 1
    status, same = await api(harness, "PUT", "/api/v1/tracking-plans/shop", PLAN)
    assert (status, same["version"], same["changed"]) == (200, 1, False), "an unchanged plan is no new version"

    changed = {**PLAN, "rules": [{**PLAN["rules"][0], "key": "Order Completed"}]}
    schema = changed["rules"][0]["jsonSchema"]["properties"]["properties"]
    schema["properties"] = {**schema["properties"], "coupon": {"type": "string"}, "total": {"type": "integer"}}
    status, second = await api(harness, "PUT", "/api/v1/tracking-plans/shop", changed)
    assert second["version"] == 2
    assert "- IDENTIFY v1" in second["changes"]

    status, hist = await api(harness, "GET", "/api/v1/tracking-plans/shop/history")
    assert [h["version"] for h in hist["data"]] == [1, 2]
    status, diff = await api(harness, "GET", "/api/v1/tracking-plans/shop/diff")
    assert (diff["from"], diff["to"]) == (1, 2)
    track = next(c for c in diff["changes"] if c["type"] == "TRACK")
    assert "+ properties.coupon (string)" in track["details"]
    assert "properties.total type number -> integer" in track["details"]

    status, v1 = await api(harness, "GET", "/api/v1/tracking-plans/shop?version=1")
    assert status == 200 and len(v1["rules"]) == 2 and v1["version"] == 1
    resp = await call(harness.app, "GET", "/api/v1/tracking-plans/shop?format=yaml", headers=admin(harness))
    assert resp.status == 200 and "Order Completed" in resp.body.decode()

    status, listed = await api(harness, "GET", "/api/v1/tracking-plans")
    assert [(p["name"], p["version"], p["rules"]) for p in listed["data"]] == [("shop", 2, 1)]


async def test_bad_input_gets_clear_errors(harness: AppHarness) -> None:
    bad_type = {"rules": [{"type": "TRAK", "key": "x", "jsonSchema": {}}]}
    status, err = await api(harness, "PUT", "/api/v1/tracking-plans/shop", bad_type)
    assert (status, err["code"]) == (400, "invalid_tracking_plan") and "TRAK" in err["message"]
    bad_schema = {"rules": [{"type": "TRACK", "key": "x", "jsonSchema": {"type": "nope"}}]}
    status, err = await api(harness, "PUT", "/api/v1/tracking-plans/shop", bad_schema)
    assert status == 400 and "rules[0].jsonSchema" in err["message"]
    status, err = await api(harness, "PUT", "/api/v1/tracking-plans/shop", {"rules": [{"key": "x"}]})
    assert status == 400 and "type" in err["message"]
    resp = await call(harness.app, "PUT", "/api/v1/tracking-plans/shop", b"{nope", admin(harness))
    assert (resp.status, resp.json()["code"]) == (400, "invalid_json")
    status, err = await api(harness, "GET", "/api/v1/tracking-plans/missing")
    assert (status, err["code"]) == (404, "not_found")
    status, err = await api(harness, "PUT", "/api/v1/sources/web/tracking-plan", {"plan": "missing"})
    assert status == 400 and "missing" in err["message"]
    await api(harness, "PUT", "/api/v1/tracking-plans/shop", PLAN)
    settings = {"plan": "shop", "enforcement": {"track_violations": "explode"}}
    status, err = await api(harness, "PUT", "/api/v1/sources/web/tracking-plan", settings)
    assert status == 400 and "track_violations" in err["message"]
    settings = {"plan": "shop", "enforcement": {"forward_blocked_to": "web"}}
    status, err = await api(harness, "PUT", "/api/v1/sources/web/tracking-plan", settings)
    assert status == 400 and "itself" in err["message"]
    status, err = await api(harness, "GET", "/api/v1/tracking-plans/shop/diff?from=x")
    assert (status, err["code"]) == (400, "invalid_parameter")


async def test_validate_is_a_dry_run(harness: AppHarness) -> None:
    await api(harness, "PUT", "/api/v1/tracking-plans/shop", PLAN)
    body = {
        "enforcement": {"track_violations": "block", "track_unplanned_properties": "omit"},
        "events": [
            {"type": "track", "event": "Order Completed", "properties": {"order_id": "1", "x": 1}},
            {"type": "track", "event": "Order Completed", "properties": {"total": 1}},
        ],
    }
    status, out = await api(harness, "POST", "/api/v1/tracking-plans/shop/validate", body)
    assert status == 200
    kept, blocked = out["results"]
    assert kept["outcome"] == "kept" and kept["event"]["properties"] == {"order_id": "1"}
    assert (blocked["outcome"], blocked["reason"]) == ("blocked", "tracking_plan_violation")
    assert blocked["violations"][0]["field"] == "properties.order_id"


async def send(h: AppHarness, path: str, body: dict[str, Any]) -> None:
    resp = await call(h.app, "POST", path, body, {"Authorization": basic(h.write_key)})
    assert resp.status == 200, resp.body


async def test_enforcement_on_a_running_app(harness: AppHarness) -> None:
    """Blocked, omitted and allowed events; the trace shows why; blocked events are
    quarantined; violations are counted and reported."""
    state = harness.components.state
    quarantine = await state.create_source(harness.source.workspace_id, "quarantine")
    reports = await state.create_source(harness.source.workspace_id, "violations")
    await api(harness, "PUT", "/api/v1/tracking-plans/shop", PLAN)
    settings = {
        "plan": "shop",
        "enforcement": {
            "track_unplanned_events": "block",
            "track_unplanned_properties": "omit",
            "track_violations": "block",
            "identify_unplanned_traits": "omit",
            "forward_blocked_to": "quarantine",
            "forward_violations_to": "violations",
        },
    }
    status, attached = await api(harness, "PUT", "/api/v1/sources/web/tracking-plan", settings)
    assert status == 200 and attached["plan"] == "shop"

    await send(harness, "/v1/track", {"userId": "u", "event": "Mystery", "messageId": "m-unplanned"})
    await send(
        harness,
        "/v1/track",
        {"userId": "u", "event": "Order Completed", "messageId": "m-bad", "properties": {"total": "x"}},
    )
    await send(
        harness,
        "/v1/track",
        {"userId": "u", "event": "Order Completed", "messageId": "m-ok", "properties": {"order_id": "o", "extra": 1}},
    )
    await send(harness, "/v1/identify", {"userId": "u", "messageId": "m-id", "traits": {"email": "a@b.c", "shoe": 42}})

    async def trace(mid: str) -> dict[str, Any]:
        return (await api(harness, "GET", f"/api/v1/trace/{mid}"))[1]

    def dropped_with(reason: str) -> Any:
        return lambda t: any(s.get("step") == "dropped" and s.get("reason") == reason for s in t.get("steps", []))

    unplanned = await eventually_async(lambda: trace("m-unplanned"), dropped_with("tracking_plan_unplanned"))
    step = next(s for s in unplanned["steps"] if s["step"] == "dropped")
    assert "Mystery" in step["detail"] and "quarantine" in step["detail"]
    bad = await eventually_async(lambda: trace("m-bad"), dropped_with("tracking_plan_violation"))
    assert "properties.order_id is required" in next(s for s in bad["steps"] if s["step"] == "dropped")["detail"]

    async def recent(source: str) -> list[dict[str, Any]]:
        return (await api(harness, "GET", f"/api/v1/sources/{source}/events?limit=50"))[1]["data"]

    held = await eventually_async(lambda: recent("quarantine"), lambda d: len(d) == 2)
    assert {i["event"]["messageId"] for i in held} == {"m-unplanned", "m-bad"}
    assert all(i["event"]["context"]["protocols"]["sourceId"] == harness.source.id for i in held)
    assert all(i["sourceId"] == quarantine.id for i in held)

    reported = await eventually_async(lambda: recent("violations"), lambda d: len(d) >= 3)
    props = [i["event"]["properties"] for i in reported]
    assert all(
        i["event"]["event"] == "Violation Generated" and i["event"]["userId"] == "schema-violations" for i in reported
    )
    assert {(p["eventMessageID"], p["violationType"], p["violationField"]) for p in props} >= {
        ("m-unplanned", "Unplanned", "event"),
        ("m-bad", "Required", "properties.order_id"),
        ("m-bad", "Type", "properties.total"),
    }
    assert all(i["sourceId"] == reports.id for i in reported)

    kept = await eventually_async(lambda: trace("m-ok"), lambda t: len(t.get("steps", [])) >= 1)
    assert not any(s["step"] == "dropped" for s in kept["steps"])

    status, counts = await api(harness, "GET", "/api/v1/tracking-plans/shop/violations")
    seen = {(v["eventName"], v["field"], v["violationType"]): v["counts"] for v in counts["data"]}
    assert seen[("Order Completed", "properties.extra", "Unplanned")] == {"1h": 1, "24h": 1, "7d": 1}
    assert seen[("Mystery", "event", "Unplanned")]["1h"] == 1
    assert ("", "traits.shoe", "Unplanned") in seen
    status, by_source = await api(harness, "GET", "/api/v1/sources/web/violations")
    assert len(by_source["data"]) == len(counts["data"])

    metrics = await call(harness.app, "GET", "/metrics")
    assert 'reason="tracking_plan_unplanned"' in metrics.body.decode()

    status, err = await api(harness, "DELETE", "/api/v1/tracking-plans/shop")
    assert (status, err["code"]) == (409, "conflict")
    status, _ = await api(harness, "DELETE", "/api/v1/sources/web/tracking-plan")
    assert status == 200
    status, _ = await api(harness, "DELETE", "/api/v1/tracking-plans/shop")
    assert status == 200


async def test_omitted_fields_reach_destinations_recorded_in_context(harness: AppHarness) -> None:
    state = harness.components.state
    await api(harness, "PUT", "/api/v1/tracking-plans/shop", PLAN)
    settings = {"plan": "shop", "enforcement": {"track_unplanned_properties": "omit", "track_violations": "omit"}}
    await api(harness, "PUT", "/api/v1/sources/web/tracking-plan", settings)
    async with WebhookRecorder() as hook:
        dest = await state.create_destination(
            harness.source.workspace_id, "hook", "webhook", settings={"url": hook.url}
        )
        await state.set_connection(harness.source.id, dest.id)
        props = {"order_id": "o", "total": "x", "y": 1}
        await send(
            harness, "/v1/track", {"userId": "u", "event": "Order Completed", "messageId": "m-om", "properties": props}
        )
        (request,) = await hook.wait_for(1)
    delivered = request.json
    assert delivered["messageId"] == "m-om"
    assert delivered["properties"] == {"order_id": "o"}
    assert delivered["context"]["protocols"] == {
        "sourceId": harness.source.id,
        "omitted": ["y"],
        "omitted_on_violation": ["total"],
    }
