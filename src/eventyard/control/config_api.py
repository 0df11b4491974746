"""Control API of configuration: who am I, workspaces, sources, destinations, tokens.

Every object endpoint is scoped by the caller's token (``control.auth``): a token bound to a
workspace lists only that workspace's objects and gets 404 for the others'. Input is validated
with the same declarations ``eventyard apply`` uses (``control.workspace_file``), so a name or
a setting refused in a file is refused here with the same message.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventyard.control import workspace_apply
from eventyard.control.auth import (
    TOKEN_ROLES,
    Authenticator,
    Principal,
    require_global_owner,
    target_workspace,
    visible,
)
from eventyard.control.delivery_api import destination_view
from eventyard.control.http import ApiError, json_object, json_response
from eventyard.control.workspace_file import DestinationDecl, SourceDecl
from eventyard.destinations import registry
from eventyard.destinations.base import secret_fields
from eventyard.errors import ConfigError, Terminal
from eventyard.route.routing import build_actions
from eventyard.runtime.components import Components
from eventyard.spec.limits import Limits
from eventyard.state.base import DestinationConfig, Source, Token, Workspace
from eventyard.state.ids import hash_token, new_token


def source_view(source: Source) -> dict[str, Any]:
    return {
        "id": source.id,
        "workspaceId": source.workspace_id,
        "name": source.name,
        "writeKey": source.write_key,
        "enabled": source.enabled,
        "limits": msgspec.to_builtins(source.limits),
    }


def workspace_view(ws: Workspace) -> dict[str, Any]:
    return {"id": ws.id, "name": ws.name, "createdAt": ws.created_at}


def token_view(token: Token) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "role": token.role,
        "workspaceId": token.workspace_id,
        "createdAt": token.created_at,
    }


def destination_type_view(name: str) -> dict[str, Any]:
    """A destination type with its settings as JSON Schema (secret fields ``writeOnly``)."""
    cls = registry.load(name)
    schema: dict[str, Any] = msgspec.json.schema(cls.Settings)
    defs: dict[str, Any] = schema.pop("$defs", {})
    ref = str(schema.pop("$ref", ""))
    if ref:  # the settings object itself at the top; nested types stay in $defs
        schema = {**defs.pop(ref.rsplit("/", 1)[-1]), **schema}
    if defs:
        schema["$defs"] = defs
    for field in secret_fields(cls.Settings):
        prop = schema.get("properties", {}).get(field)
        if isinstance(prop, dict):
            prop["writeOnly"] = True
    return {
        "type": name,
        "description": (cls.__doc__ or "").strip().split("\n\n", 1)[0],
        "settingsSchema": schema,
        "capabilities": msgspec.to_builtins(cls.capabilities),
    }


def _convert(data: Any, type_: type[Any], what: str) -> Any:
    try:
        return msgspec.convert(data, type_)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_body", f"{what}: {exc}") from None


def _keep_secrets(cls_settings: type[msgspec.Struct], stored: dict[str, Any], sent: dict[str, Any]) -> dict[str, Any]:
    """A secret sent back in its redacted form (``…abcd``) keeps the stored value."""
    out = dict(sent)
    for name in secret_fields(cls_settings):
        value = out.get(name)
        if isinstance(value, str) and value.startswith("…") and name in stored:
            out[name] = stored[name]
    return out


def config_routes(components: Components, auth: Authenticator) -> list[Route]:
    state = components.state

    async def find_source(principal: Principal, ref: str) -> Source:
        for source in visible(principal, await state.list_sources()):
            if ref in (source.id, source.name):
                return source
        raise ApiError(404, "not_found", f"no source with id or name {ref!r}")

    async def find_destination(principal: Principal, ref: str) -> DestinationConfig:
        for dest in visible(principal, await state.list_destinations()):
            if ref in (dest.id, dest.name):
                return dest
        raise ApiError(404, "not_found", f"no destination with id or name {ref!r}")

    async def me(request: Request) -> Response:
        p = await auth.authenticate(request)
        return json_response(
            {"data": {"tokenId": p.token_id, "name": p.name, "role": p.role, "workspaceId": p.workspace_id}}
        )

    async def workspaces(request: Request) -> Response:
        p = await auth.authenticate(request)
        if request.method == "GET":
            items = [w for w in await state.list_workspaces() if p.sees(w.id)]
            return json_response({"data": [workspace_view(w) for w in items]})
        require_global_owner(p)
        body = await json_object(request)
        name = body.get("name")
        if not isinstance(name, str):
            raise ApiError(400, "invalid_body", "`name` (a string) is required")
        _convert({"name": name}, SourceDecl, "workspace")  # the same name rule as sources
        if await state.workspace_by_name(name) is not None:
            raise ApiError(409, "conflict", f"a workspace named {name!r} exists")
        return json_response({"data": workspace_view(await state.create_workspace(name))}, 201)

    async def create_source(request: Request) -> Response:
        p = await auth.authenticate(request)
        body = await json_object(request)
        ws = await target_workspace(state, p, body.pop("workspace", None))
        decl: SourceDecl = _convert(
            {k: body[k] for k in ("name", "write_key", "enabled", "limits") if k in body}
            | ({"write_key": body["writeKey"]} if "writeKey" in body else {}),
            SourceDecl,
            "source",
        )
        try:
            src = await state.create_source(
                ws.id, decl.name, write_key=decl.write_key, enabled=decl.enabled, limits=decl.limits
            )
        except Terminal as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        return json_response({"data": source_view(src)}, 201)

    async def source(request: Request) -> Response:
        p = await auth.authenticate(request)
        src = await find_source(p, request.path_params["source"])
        if request.method == "GET":
            return json_response({"data": source_view(src)})
        body = await json_object(request)
        unknown = set(body) - {"enabled", "limits", "writeKey"}
        if unknown:
            raise ApiError(400, "invalid_body", f"cannot change {sorted(unknown)}; send enabled, limits or writeKey")
        enabled = body.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise ApiError(400, "invalid_body", "`enabled` must be true or false")
        limits = _convert(body["limits"], Limits, "limits") if "limits" in body else None
        write_key = body.get("writeKey")
        if write_key is not None and (not isinstance(write_key, str) or len(write_key) < 8):
            raise ApiError(400, "invalid_body", "`writeKey` must be a string of at least 8 characters")
        try:
            updated = await state.update_source(src.id, write_key=write_key, enabled=enabled, limits=limits)
        except Terminal as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        return json_response({"data": source_view(updated)})

    async def destination_types(request: Request) -> Response:
        await auth.authenticate(request)
        out = []
        for name in sorted(registry.available()):
            try:
                out.append(destination_type_view(name))
            except ConfigError as exc:  # a broken plugin is listed with its problem
                out.append({"type": name, "error": str(exc)})
        return json_response({"data": out})

    def check_destination(decl: DestinationDecl) -> None:
        try:
            cls = registry.load(decl.type)
        except ConfigError as exc:
            raise ApiError(400, "unknown_type", str(exc)) from None
        _convert(decl.settings, cls.Settings, f"{decl.type} settings")
        try:
            build_actions(decl.mappings)
        except ConfigError as exc:
            raise ApiError(400, "invalid_mapping", str(exc)) from None

    async def create_destination(request: Request) -> Response:
        p = await auth.authenticate(request)
        body = await json_object(request)
        ws = await target_workspace(state, p, body.pop("workspace", None))
        decl: DestinationDecl = _convert(body, DestinationDecl, "destination")
        check_destination(decl)
        try:
            dest = await state.create_destination(
                ws.id,
                decl.name,
                decl.type,
                settings=decl.settings,
                enabled=decl.enabled,
                delivery=decl.delivery,
                actions=decl.mappings,
            )
        except Terminal as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        return json_response({"data": destination_view(dest)}, 201)

    async def destination(request: Request) -> Response:
        p = await auth.authenticate(request)
        dest = await find_destination(p, request.path_params["destination"])
        if request.method == "GET":
            return json_response({"data": destination_view(dest)})
        body = await json_object(request)
        unknown = set(body) - {"settings", "enabled", "delivery", "mappings"}
        if unknown:
            raise ApiError(
                400, "invalid_body", f"cannot change {sorted(unknown)}; send settings, enabled, delivery or mappings"
            )
        settings = body.get("settings")
        if settings is not None:
            if not isinstance(settings, dict):
                raise ApiError(400, "invalid_body", "`settings` must be an object")
            settings = _keep_secrets(registry.load(dest.type).Settings, dest.settings, settings)
        decl: DestinationDecl = _convert(
            {
                "name": dest.name,
                "type": dest.type,
                "settings": settings if settings is not None else dest.settings,
                "enabled": body.get("enabled", dest.enabled),
                "delivery": body.get("delivery", msgspec.to_builtins(dest.delivery)),
                "mappings": body.get("mappings", dest.actions),
            },
            DestinationDecl,
            "destination",
        )
        check_destination(decl)
        updated = await state.update_destination(
            dest.id,
            settings=decl.settings if settings is not None else None,
            enabled=decl.enabled if "enabled" in body else None,
            delivery=decl.delivery if "delivery" in body else None,
            actions=decl.mappings if "mappings" in body else None,
        )
        return json_response({"data": destination_view(updated)})

    async def tokens(request: Request) -> Response:
        p = await auth.authenticate(request)
        if request.method == "GET":
            return json_response({"data": [token_view(t) for t in visible_tokens(p, await state.list_tokens())]})
        if p.role != "owner":
            raise ApiError(403, "forbidden", "only owners create tokens")
        body = await json_object(request)
        name, role = body.get("name"), body.get("role")
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, "invalid_body", "`name` (a string) is required")
        if role not in TOKEN_ROLES:
            raise ApiError(400, "invalid_body", f"`role` must be one of {', '.join(TOKEN_ROLES)}")
        ws_ref = body.get("workspace")
        if ws_ref is None and p.is_global_owner and role == "owner":
            workspace_id = None  # another global owner
        else:
            workspace_id = (await target_workspace(state, p, ws_ref)).id
        secret = new_token()
        token = await state.add_token(name.strip(), role, hash_token(secret), workspace_id)
        return json_response({"data": {**token_view(token), "token": secret}}, 201)

    async def token(request: Request) -> Response:
        p = await auth.authenticate(request)
        if p.role != "owner":
            raise ApiError(403, "forbidden", "only owners revoke tokens")
        token_id = request.path_params["token"]
        found = [t for t in visible_tokens(p, await state.list_tokens()) if t.id == token_id]
        if not found:
            raise ApiError(404, "not_found", f"no token with id {token_id!r}")
        if token_id == p.token_id:
            raise ApiError(409, "conflict", "a token cannot revoke itself; use another owner token")
        await state.delete_token(token_id)
        auth.forget()
        return json_response({"data": {"id": token_id, "revoked": True}})

    async def export(request: Request) -> Response:
        """The configuration as a workspace file (YAML, secrets redacted), as ``eventyard export``."""
        p = await auth.authenticate(request)
        only = None if p.workspace_id is None else {p.workspace_id}
        text = await workspace_apply.export(state, redact_settings=True, only=only)
        return Response(text, media_type="application/yaml")

    return [
        Route("/api/v1/me", me, methods=["GET"]),
        Route("/api/v1/export", export, methods=["GET"]),
        Route("/api/v1/workspaces", workspaces, methods=["GET", "POST"]),
        Route("/api/v1/sources", create_source, methods=["POST"]),
        Route("/api/v1/sources/{source}", source, methods=["GET", "PATCH"]),
        Route("/api/v1/destination-types", destination_types, methods=["GET"]),
        Route("/api/v1/destinations", create_destination, methods=["POST"]),
        Route("/api/v1/destinations/{destination}", destination, methods=["GET", "PATCH"]),
        Route("/api/v1/tokens", tokens, methods=["GET", "POST"]),
        Route("/api/v1/tokens/{token}", token, methods=["DELETE"]),
    ]


def visible_tokens(principal: Principal, items: list[Token]) -> list[Token]:
    if principal.workspace_id is None:
        return items
    return [t for t in items if t.workspace_id == principal.workspace_id]
