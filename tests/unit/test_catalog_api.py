"""The schema catalog and volume endpoints over events sent through the tracking API."""

from __future__ import annotations

from typing import Any

from eventyard.quality.catalog import Catalog, json_type
from eventyard.testing.asgi import basic, call
from eventyard.testing.harness import AppHarness


async def send(h: AppHarness, path: str, body: dict[str, Any]) -> None:
    resp = await call(h.app, "POST", path, body, {"Authorization": basic(h.write_key)})
    assert resp.status == 200, resp.body


async def get(h: AppHarness, path: str) -> tuple[int, Any]:
    resp = await call(h.app, "GET", path, headers={"Authorization": f"Bearer {h.admin_token}"})
    return resp.status, resp.json()


def test_json_types() -> None:
    cases = [(None, "null"), (True, "boolean"), (3, "integer"), (2.5, "number"), ("x", "string"), ([], "array")]
    assert [json_type(v) for v, _ in cases] == [t for _, t in cases]
    assert json_type({"a": 1}) == "object"


def test_catalog_counts_events_and_nested_properties() -> None:
    cat = Catalog()
    cat.add({"type": "track", "event": "Order", "properties": {"total": 10, "address": {"city": "Oslo"}}}, 100.0)
    cat.add({"type": "track", "event": "Order", "properties": {"total": 9.5}}, 50.0)
    cat.add({"type": "identify", "traits": {"email": "a@x.io"}}, 70.0)
    (order, identify) = cat.view("src")
    assert (order["event"], order["count"], order["firstSeen"], order["lastSeen"]) == ("Order", 2, 50.0, 100.0)
    props = {p["path"]: p for p in order["properties"]}
    assert props["properties.total"]["types"] == ["integer", "number"]
    assert props["properties.address.city"]["count"] == 1
    assert identify["event"] == "identify" and identify["properties"][0]["path"] == "traits.email"


async def test_catalog_and_volume_endpoints(harness: AppHarness) -> None:
    for i in range(3):
        await send(harness, "/v1/track", {"userId": "u", "event": "Signed Up", "properties": {"plan": "pro", "n": i}})
    await send(
        harness,
        "/v1/batch",
        {"batch": [{"type": "page", "anonymousId": "a", "name": "Home"}, {"type": "identify", "userId": "u"}]},
    )
    status, body = await get(harness, "/api/v1/catalog?source=web")
    assert status == 200 and body["complete"] is True
    by_name = {e["event"]: e for e in body["data"]}
    assert by_name["Signed Up"]["count"] == 3 and by_name["Home"]["type"] == "page"
    assert {p["path"]: p["types"] for p in by_name["Signed Up"]["properties"]} == {
        "properties.n": ["integer"],
        "properties.plan": ["string"],
    }
    status, body = await get(harness, "/api/v1/sources/web/volume?hours=1&bucket=300")
    assert status == 200
    data = body["data"]
    assert data["bucketSeconds"] == 300 and len(data["buckets"]) == len(data["series"][0]["counts"])
    totals = {s["event"]: sum(s["counts"]) for s in data["series"]}
    assert totals == {"Signed Up": 3, "Home": 1, "identify": 1}
    status, body = await get(harness, "/api/v1/sources/nope/volume")
    assert (status, body["code"]) == (404, "not_found")
    status, body = await get(harness, "/api/v1/sources/web/volume?hours=100&bucket=60")
    assert status == 400 and "bucket" in body["message"]
