"""Admin API of identity and profiles (admin token), used by ``eventyard profile ...``.

- ``GET  /api/v1/profiles/{ref}``: traits, identifiers, metadata, links, recent events;
- ``GET  /api/v1/profiles/{ref}/explain``: why the profile holds each identifier, its merges
  and the identifiers the rules refused;
- ``POST /api/v1/profiles/{ref}/remove-identifier`` ``{"identifier": "email:x", "block": false}``;
- ``POST /api/v1/profiles/{ref}/split`` ``{"merge": 12}``;
- ``GET|PUT /api/v1/identity/rules``: the workspace's identity resolution rules;
- ``GET  /api/v1/identity/status``: numbers of profiles, identifiers, merges, stored events;
- ``POST /api/v1/profile-tokens`` ``{"name": "..."}``: a new Profile API access token.

``ref`` is ``type:value`` (``email:ana@example.com``, ``group_id:acme``) or a profile id;
``?workspace=`` (id or name) is needed only when there are several workspaces.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventyard.control.auth import principal_of
from eventyard.control.http import ApiError, json_response, query_number
from eventyard.control.identity_apply import rules_of
from eventyard.control.profile_api import PROFILE_ROLE
from eventyard.errors import NotFound, Terminal
from eventyard.runtime.components import Components
from eventyard.state.base import Workspace
from eventyard.state.identity_base import GraphTx, ProfileRow
from eventyard.state.ids import hash_token, new_token
from eventyard.unify import profile_views as views
from eventyard.unify.identity_service import IdentityService
from eventyard.unify.recompute import RecomputeResult

Guard = Callable[[Request], Awaitable[None]]


def _recompute_view(result: RecomputeResult) -> dict[str, Any]:
    return {
        "profile_id": result.profile_id,
        "profiles": [
            {"profile_id": p.profile_id, "status": p.status, "identifiers": p.identifiers, "events": p.events}
            for p in result.parts
        ],
        "detached_events": result.detached_events,
        "blocked_values": result.rules.blocked_values if result.rules is not None else None,
    }


def identity_routes(components: Components, require_admin: Guard) -> list[Route]:
    def service() -> IdentityService:
        if components.identity is None:
            raise ApiError(503, "unavailable", "identity resolution is not configured in this process")
        return components.identity

    async def workspace(request: Request, body: dict[str, Any] | None = None) -> Workspace:
        """The workspace asked for (``workspace`` in the query or body), else the token's own,
        else the only one; workspaces the token cannot see answer 404 (``control.auth``)."""
        ref = request.query_params.get("workspace") or (body or {}).get("workspace")
        principal = principal_of(request)
        spaces = [w for w in await components.state.list_workspaces() if principal is None or principal.sees(w.id)]
        if ref:
            for ws in spaces:
                if ref in (ws.id, ws.name):
                    return ws
            raise ApiError(404, "not_found", f"no workspace with id or name {ref!r}")
        if len(spaces) == 1:
            return spaces[0]
        if not spaces:
            raise ApiError(404, "not_found", "there is no workspace yet")
        raise ApiError(
            400, "ambiguous", f"several workspaces exist; choose one with `workspace`: {[w.name for w in spaces]}"
        )

    async def body_of(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        try:
            body = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_body", "the body must be a JSON object")
        return body

    async def profile_row(ws: Workspace, ref: str) -> ProfileRow:
        try:
            views.parse_ref(ref)
        except ValueError as exc:
            raise ApiError(400, "invalid_reference", str(exc)) from None

        def q(tx: GraphTx) -> ProfileRow | None:
            return views.find(tx, ws.id, views.collection_of(ref), ref)

        row = await service().store.read(q)
        if row is None:
            raise ApiError(404, "not_found", f"no profile with {ref} in workspace {ws.name}")
        return row

    async def show(request: Request) -> Response:
        await require_admin(request)
        ws = await workspace(request)
        row = await profile_row(ws, request.path_params["ref"])
        events = int(query_number(request, "events", 20, 0, 1000))

        def q(tx: GraphTx) -> dict[str, Any]:
            return views.show(tx, row, events)

        return json_response({"workspace": ws.name, **(await service().store.read(q))})

    async def explain(request: Request) -> Response:
        await require_admin(request)
        ws = await workspace(request)
        row = await profile_row(ws, request.path_params["ref"])

        def q(tx: GraphTx) -> dict[str, Any]:
            return views.explain(tx, row)

        return json_response({"workspace": ws.name, **(await service().store.read(q))})

    async def operate(
        request: Request, action: Callable[[Workspace, str, dict[str, Any]], Awaitable[RecomputeResult]]
    ) -> Response:
        await require_admin(request)
        body = await body_of(request)
        ws = await workspace(request, body)
        row = await profile_row(ws, request.path_params["ref"])
        try:
            result = await action(ws, row.id, body)
        except NotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        except Terminal as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        return json_response(_recompute_view(result))

    async def remove_identifier(request: Request) -> Response:
        async def action(ws: Workspace, pid: str, body: dict[str, Any]) -> RecomputeResult:
            identifier = body.get("identifier")
            if not isinstance(identifier, str) or ":" not in identifier:
                raise ApiError(400, "invalid_body", 'send {"identifier": "type:value", "block": false}')
            type_, value = views.parse_ref(identifier)
            if type_ == "email":
                value = value.strip().lower()
            return await service().remove_identifier(ws.id, pid, f"{type_}:{value}", bool(body.get("block", False)))

        return await operate(request, action)

    async def split(request: Request) -> Response:
        async def action(ws: Workspace, pid: str, body: dict[str, Any]) -> RecomputeResult:
            merge = body.get("merge")
            if not isinstance(merge, int) or isinstance(merge, bool):
                raise ApiError(400, "invalid_body", 'send {"merge": <merge id from explain>}')
            return await service().split(ws.id, pid, merge)

        return await operate(request, action)

    async def rules(request: Request) -> Response:
        await require_admin(request)
        if request.method == "PUT":
            raw = await request.body()
            try:
                data = yaml.safe_load(raw) if raw.strip() else None
            except yaml.YAMLError as exc:
                raise ApiError(400, "invalid_body", f"the body is neither JSON nor YAML: {exc}") from None
            if data is not None and not isinstance(data, dict):
                raise ApiError(400, "invalid_body", "the rules must be an object")
            ws = await workspace(request, None)
            try:
                parsed = rules_of(data)  # the same check as workspace.yaml's identity_rules
            except ValueError as exc:
                raise ApiError(400, "invalid_rules", str(exc)) from None
            await service().set_rules(ws.id, parsed)
            return json_response({"workspace": ws.name, "rules": parsed.to_builtins()})
        ws = await workspace(request)
        current = await service().rules(ws.id)
        return json_response({"workspace": ws.name, "rules": current.to_builtins()})

    async def status(request: Request) -> Response:
        await require_admin(request)
        ws = await workspace(request)
        svc = service()

        def q(tx: GraphTx) -> dict[str, int]:
            return tx.counts(ws.id)

        counts = await svc.store.read(q)
        return json_response(
            {
                "workspace": ws.name,
                "store": svc.store.kind,
                "history_retention_days": svc.retention_seconds / 86400,
                **counts,
            }
        )

    async def create_token(request: Request) -> Response:
        await require_admin(request)
        body = await body_of(request)
        ws = await workspace(request, body)
        name = body.get("name") or "profile api"
        if not isinstance(name, str):
            raise ApiError(400, "invalid_body", "`name` must be a string")
        secret = new_token()
        token = await components.state.add_token(name, PROFILE_ROLE, hash_token(secret), ws.id)
        return json_response({"id": token.id, "name": name, "workspace": ws.name, "token": secret}, 201)

    return [
        Route("/api/v1/profiles/{ref:path}/explain", explain, methods=["GET"]),
        Route("/api/v1/profiles/{ref:path}/remove-identifier", remove_identifier, methods=["POST"]),
        Route("/api/v1/profiles/{ref:path}/split", split, methods=["POST"]),
        Route("/api/v1/profiles/{ref:path}", show, methods=["GET"]),
        Route("/api/v1/identity/rules", rules, methods=["GET", "PUT"]),
        Route("/api/v1/identity/status", status, methods=["GET"]),
        Route("/api/v1/profile-tokens", create_token, methods=["POST"]),
    ]
