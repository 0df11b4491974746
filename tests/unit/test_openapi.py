"""The OpenAPI document lists every route the control app serves."""

from __future__ import annotations

from starlette.routing import Route

from eventyard.testing.asgi import call
from eventyard.testing.harness import AppHarness


async def test_openapi_document_covers_every_route(harness: AppHarness) -> None:
    resp = await call(harness.app, "GET", "/api/v1/openapi.json")
    assert resp.status == 200
    doc = resp.json()
    assert doc["openapi"] == "3.1.0"
    paths = doc["paths"]
    control = harness.app.fallback
    served = [r for r in getattr(control, "routes", []) if isinstance(r, Route)]
    assert served
    for route in served:
        path = route.path.replace(":path", "")
        assert path in paths, path
        for method in (route.methods or {"GET"}) - {"HEAD"}:
            op = paths[path][method.lower()]
            assert op["summary"] and op["responses"]["default"]["content"]
    assert paths["/api/v1/sources/{source}"]["patch"]["parameters"][0]["name"] == "source"
    assert paths["/api/v1/sources"]["get"]["security"] == [{"adminToken": []}]
    assert paths["/health"]["get"]["security"] == []
    op_ids = [op["operationId"] for item in paths.values() for op in item.values()]
    assert len(op_ids) == len(set(op_ids))
