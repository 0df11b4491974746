"""The delivery endpoints of the control API, in-process, with a real webhook receiver."""

from __future__ import annotations

from typing import Any

from eventyard.testing import faults
from eventyard.testing.asgi import basic, call
from eventyard.testing.harness import AppHarness
from eventyard.testing.recorder import WebhookRecorder
from eventyard.testing.wait import eventually_async


def admin(h: AppHarness) -> dict[str, str]:
    return {"Authorization": f"Bearer {h.admin_token}", "Content-Type": "application/json"}


async def api(h: AppHarness, method: str, path: str, body: Any = None) -> Any:
    resp = await call(h.app, method, path, body, admin(h))
    return resp.status, resp.json()


async def test_admin_endpoints_need_a_valid_token(harness: AppHarness) -> None:
    for path in ("/api/v1/destinations", "/api/v1/overview", "/api/v1/connections", "/api/v1/trace/x"):
        resp = await call(harness.app, "GET", path)
        assert (resp.status, resp.json()["code"]) == (401, "missing_token")
        resp = await call(harness.app, "GET", path, headers={"Authorization": "Bearer nope"})
        assert (resp.status, resp.json()["code"]) == (401, "invalid_token")


async def test_connections_overview_trace_and_dead_letters(harness: AppHarness) -> None:
    state = harness.components.state
    async with WebhookRecorder(default=faults.error(400, "no thanks")) as hook:
        dest = await state.create_destination(
            harness.source.workspace_id, "hook", "webhook", settings={"url": hook.url, "secret": "super-secret-1"}
        )
        status, listed = await api(harness, "GET", "/api/v1/destinations")
        assert status == 200
        assert listed["data"][0]["settings"]["secret"] == "…et-1"

        status, err = await api(
            harness,
            "PUT",
            "/api/v1/connections",
            {"source": "web", "destination": "hook", "filters": [{"if": "event = ", "actions": [{"type": "drop"}]}]},
        )
        assert (status, err["code"]) == (400, "invalid_filter")
        assert "column" in err["message"]
        status, conn = await api(harness, "PUT", "/api/v1/connections", {"source": "web", "destination": "hook"})
        assert status == 200 and conn["destinationId"] == dest.id

        for mid in ("m-1", "m-2"):
            sent = await call(
                harness.app,
                "POST",
                "/v1/track",
                {"userId": "u", "event": "E", "messageId": mid},
                {"Authorization": basic(harness.write_key)},
            )
            assert sent.status == 200

        async def dead() -> list[Any]:
            return (await api(harness, "GET", "/api/v1/destinations/hook/dead-letters"))[1]["data"]

        letters = await eventually_async(dead, lambda d: len(d) == 2)
        assert {d["messageId"] for d in letters} == {"m-1", "m-2"}
        assert "HTTP 400" in letters[0]["error"]

        status, trace = await api(harness, "GET", "/api/v1/trace/m-1")
        assert [s["step"] for s in trace["steps"]] == ["accepted", "queued", "dead_lettered"]
        assert trace["steps"][1]["destination"] == "hook"
        status, missing = await api(harness, "GET", "/api/v1/trace/nope")
        assert (status, missing["code"]) == (404, "not_found")

        status, overview = await api(harness, "GET", "/api/v1/overview?window=600")
        (d,) = overview["destinations"]
        assert d["totals"]["dead_lettered"] == 2 and d["queue"]["dead_letters"] == 2

        status, resent = await api(harness, "POST", "/api/v1/destinations/hook/dead-letters/resend", {"all": True})
        assert resent == {"resent": 2}
        await hook.wait_for(4)
        status, bad = await api(harness, "POST", "/api/v1/destinations/hook/dead-letters/resend", {"ids": "x"})
        assert (status, bad["code"]) == (400, "invalid_body")

        status, bad = await api(harness, "POST", "/api/v1/destinations/hook/replay", {"to": "2026-01-01T00:00:00Z"})
        assert (status, bad["code"]) == (400, "invalid_body")
        status, bad = await api(harness, "POST", "/api/v1/destinations/nope/replay", {"from": 0})
        assert (status, bad["code"]) == (404, "not_found")

        status, deleted = await api(harness, "DELETE", "/api/v1/connections?source=web&destination=hook")
        assert deleted == {"deleted": True}
        status, _ = await api(harness, "DELETE", "/api/v1/connections?source=web&destination=hook")
        assert status == 404
