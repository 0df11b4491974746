"""The OpenAPI document of the control plane, built from the routes the app really serves.

Every route is listed with its methods, path parameters, the first line of its endpoint's
docstring (or a summary made from the endpoint's name) and the one error shape. Request and
response bodies are described in docs/control-api.md; this document is for discovery and
client generation of paths and auth.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from starlette.routing import BaseRoute, Mount, Route

from eventyard import __version__

_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?}")
_ERROR = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string", "description": "machine-readable reason, e.g. not_found"},
        "message": {"type": "string", "description": "what is wrong and what to do"},
    },
}


def _summary(route: Route) -> str:
    doc = (getattr(route.endpoint, "__doc__", None) or "").strip()
    if doc and not doc.startswith(("Call self", "Create a new")):
        return doc.splitlines()[0]
    name = getattr(route.endpoint, "__name__", route.path)
    return name.replace("_", " ").strip().capitalize()


def _security(path: str) -> list[dict[str, list[str]]]:
    if path.startswith("/v1/spaces/"):
        return [{"profileToken": []}]
    if path in ("/health", "/ready", "/metrics", "/version") or path.startswith("/api/v1/openapi"):
        return []
    return [{"adminToken": []}]


def _routes(routes: Iterable[BaseRoute], prefix: str = "") -> Iterable[tuple[str, Route]]:
    for route in routes:
        if isinstance(route, Route):
            yield prefix + route.path, route
        elif isinstance(route, Mount):
            yield from _routes(route.routes, prefix + route.path)


def build(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for raw_path, route in _routes(routes):
        path = _PARAM.sub(lambda m: "{" + m.group(1) + "}", raw_path)
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(raw_path)
        ]
        item = paths.setdefault(path, {})
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            op: dict[str, Any] = {
                "summary": _summary(route),
                "operationId": f"{method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_')}",
                "security": _security(path),
                "responses": {
                    "200": {"description": "success"},
                    "default": {
                        "description": "an error",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                },
            }
            if params:
                op["parameters"] = params
            item[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "eventyard control plane",
            "version": __version__,
            "description": "Configuration, delivery, identity, privacy and quality APIs (docs/control-api.md).",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": _ERROR},
            "securitySchemes": {
                "adminToken": {"type": "http", "scheme": "bearer", "description": "owner, editor or viewer token"},
                "profileToken": {"type": "http", "scheme": "basic", "description": "Profile API token as user"},
            },
        },
    }
