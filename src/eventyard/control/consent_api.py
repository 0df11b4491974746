"""Control API of consent categories: ``/api/v1/consent/categories``.

A workspace's categories are one versioned document (``privacy.consent``); every change is a
new version. Destinations are named by name or id in requests and stored by name.

- ``GET  /api/v1/consent/categories[?workspace=W]``: the categories and strategies;
- ``PUT  /api/v1/consent/categories``: replace them all (``{categories, strategies}``);
- ``POST /api/v1/consent/categories``: add one (``{id, name, destinations}``), 409 if it exists;
- ``GET|PUT|DELETE /api/v1/consent/categories/{id}``: one category (PUT creates or replaces).
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventyard.control.auth import Authenticator, principal_of, target_workspace
from eventyard.control.http import ApiError, json_object, json_response
from eventyard.errors import ConfigError
from eventyard.privacy import consent
from eventyard.runtime.components import Components
from eventyard.state.base import StateStore, Workspace


async def destination_names(state: StateStore, workspace: Workspace, refs: list[Any], what: str) -> list[str]:
    """Destination names for ``refs`` (names or ids) of the workspace; 400 for unknown ones."""
    dests = await state.list_destinations(workspace.id)
    by_ref = {d.name: d.name for d in dests} | {d.id: d.name for d in dests}
    out = []
    for ref in refs:
        if not isinstance(ref, str) or ref not in by_ref:
            raise ApiError(
                400, "unknown_destination", f"{what}: no destination {ref!r} in workspace {workspace.name!r}"
            )
        out.append(by_ref[ref])
    return out


def view(workspace: Workspace, config: consent.ConsentConfig, version: int) -> dict[str, Any]:
    return {"workspace": workspace.name, "version": version, **consent.to_body(config)}


def parse_or_400(body: Any) -> consent.ConsentConfig:
    try:
        return consent.parse(body)
    except ConfigError as exc:
        raise ApiError(400, "invalid_body", str(exc)) from None


def consent_routes(components: Components, auth: Authenticator) -> list[Route]:
    state = components.state

    async def workspace_of(request: Request, body: dict[str, Any] | None = None) -> Workspace:
        principal = await auth.authenticate(request)
        ref = (body or {}).pop("workspace", None) or request.query_params.get("workspace")
        return await target_workspace(state, principal, ref)

    async def current(ws: Workspace) -> tuple[consent.ConsentConfig, int]:
        doc = await state.get_document(ws.id, consent.DOC_KIND, consent.DOC_NAME)
        return (consent.parse(doc.body), doc.version) if doc else (consent.ConsentConfig(), 0)

    async def normalized(ws: Workspace, config: consent.ConsentConfig) -> consent.ConsentConfig:
        cats = [
            consent.ConsentCategory(
                c.id, c.display_name, await destination_names(state, ws, list(c.destinations), f"category {c.id!r}")
            )
            for c in config.categories
        ]
        strategies = {}
        for ref, strategy in config.strategies.items():
            (name,) = await destination_names(state, ws, [ref], "strategies")
            strategies[name] = strategy
        return parse_or_400({"categories": [msgspec.to_builtins(c) for c in cats], "strategies": strategies})

    async def save(request: Request, ws: Workspace, config: consent.ConsentConfig, status: int = 200) -> Response:
        principal = principal_of(request)
        actor = principal.actor if principal is not None else ""
        doc = await state.put_document(ws.id, consent.DOC_KIND, consent.DOC_NAME, consent.to_body(config), actor=actor)
        return json_response({"data": view(ws, config, doc.version)}, status)

    async def categories(request: Request) -> Response:
        if request.method == "GET":
            ws = await workspace_of(request)
            config, version = await current(ws)
            return json_response({"data": view(ws, config, version)})
        body = await json_object(request)
        ws = await workspace_of(request, body)
        if request.method == "PUT":
            return await save(request, ws, await normalized(ws, parse_or_400(body)))
        config, _ = await current(ws)
        new = parse_or_400({"categories": [body]}).categories[0]
        if any(c.id == new.id for c in config.categories):
            raise ApiError(409, "conflict", f"category {new.id!r} exists; PUT /api/v1/consent/categories/{new.id}")
        merged = msgspec.structs.replace(config, categories=[*config.categories, new])
        return await save(request, ws, await normalized(ws, merged), 201)

    async def category(request: Request) -> Response:
        cid = request.path_params["category"]
        body = await json_object(request) if request.method == "PUT" else None
        ws = await workspace_of(request, body)
        config, _ = await current(ws)
        found = [c for c in config.categories if c.id == cid]
        if request.method == "GET":
            if not found:
                raise ApiError(404, "not_found", f"no consent category {cid!r}")
            return json_response({"data": consent.to_body(consent.ConsentConfig([found[0]]))["categories"][0]})
        if request.method == "DELETE":
            if not found:
                raise ApiError(404, "not_found", f"no consent category {cid!r}")
            rest = [c for c in config.categories if c.id != cid]
            await save(request, ws, msgspec.structs.replace(config, categories=rest))
            return json_response({"data": {"id": cid, "deleted": True}})
        assert body is not None
        if "id" in body and body["id"] != cid:
            raise ApiError(400, "invalid_body", f"the body's id {body['id']!r} differs from the path's {cid!r}")
        new = parse_or_400({"categories": [{**body, "id": cid}]}).categories[0]
        cats = [new if c.id == cid else c for c in config.categories] if found else [*config.categories, new]
        return await save(request, ws, await normalized(ws, msgspec.structs.replace(config, categories=cats)))

    return [
        Route("/api/v1/consent/categories", categories, methods=["GET", "PUT", "POST"]),
        Route("/api/v1/consent/categories/{category}", category, methods=["GET", "PUT", "DELETE"]),
    ]
