"""The regulations API in RudderStack's shape: ``/v2/regulations`` (user suppression API).

========  ======================  ============================================================
POST      /v2/regulations         ``{regulationType: "suppress" | "suppress_with_delete",
                                  users: [{userId, ...}], sourceIds?, destinationIds?}``
GET       /v2/regulations         ``?start=&limit=`` -> ``{"data": [...], "paging": {total, next}}``
DELETE    /v2/regulations/{id}    cancel: lift the suppression (204)
========  ======================  ============================================================

One request becomes one eventyard regulation (``SUPPRESS_ONLY`` or ``SUPPRESS_WITH_DELETE``
by ``USER_ID``) whatever the number of users (at most 5,000): the answer, like RudderStack's,
lists one entry per user, and the entries of one request share the regulation's id, which
``GET /regulations/{id}`` and ``eventyard regulate status`` report on. Users are matched by
``userId``; other attributes (``phone``, ``email``) are echoed back but not stored: the
identity graph finds the user's other identifiers. ``destinationIds`` narrows which
destinations are asked to delete; ``sourceIds`` must name sources of the workspace (the
suppression itself holds for every source of it).

Cancelling removes the regulation's users from the suppression list (recorded as an
``UNSUPPRESS`` regulation); a deletion that already ran is not undone. Errors are
``{"error": "<what is wrong>"}`` with 400 (bad body), 401/403 (token) or 404.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventyard.control.auth import Authenticator
from eventyard.control.http import json_response
from eventyard.control.regulations_api import RegulationsContext, SegmentError, iso, read_json
from eventyard.privacy.regulations import (
    DESTINATION_PREFIX,
    MAX_SUBJECTS,
    SUPPRESS_ONLY,
    SUPPRESS_WITH_DELETE,
    SUPPRESSING,
    UNSUPPRESS,
    USER_ID,
    RegulationError,
    create_regulation,
)
from eventyard.runtime.components import Components
from eventyard.state.base import Regulation

TYPES = {"suppress": SUPPRESS_ONLY, "suppress_with_delete": SUPPRESS_WITH_DELETE}
NAMES = {v: k for k, v in TYPES.items()}
DEFAULT_LIMIT, MAX_LIMIT = 50, 1000


class _Bad(Exception):
    pass


def _ids(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _Bad(f"`{name}` must be a list of ids")
    return list(value)


def _users(body: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    users = body.get("users")
    if not isinstance(users, list) or not users:
        raise _Bad("`users` must be a non-empty list of objects with a `userId`")
    if len(users) > MAX_SUBJECTS:
        raise _Bad(f"`users` holds {len(users)} users; at most {MAX_SUBJECTS} per request, split it")
    ids: list[str] = []
    attributes: list[dict[str, Any]] = []
    for i, user in enumerate(users):
        user_id = user.get("userId") if isinstance(user, dict) else None
        if isinstance(user_id, int) and not isinstance(user_id, bool):
            user_id = str(user_id)
        if not isinstance(user_id, str) or not user_id.strip():
            raise _Bad(f"`users[{i}]` needs a `userId` (a non-empty string): eventyard regulates users by userId")
        ids.append(user_id)
        assert isinstance(user, dict)
        attributes.append({k: v for k, v in user.items() if isinstance(v, str | int | float)} | {"userId": user_id})
    return ids, attributes


def entries(reg: Regulation, canceled: bool, attributes: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One RudderStack entry per user of the regulation."""
    dest_ids = [s[len(DESTINATION_PREFIX) :] for s in reg.stores if s.startswith(DESTINATION_PREFIX)]
    updated = max([st.updated_at for st in reg.stores.values()] or [reg.created_at])
    base: dict[str, Any] = {
        "id": reg.id,
        "workspaceId": reg.workspace_id,
        "canceled": canceled,
        "regulationType": NAMES.get(reg.regulation_type, reg.regulation_type.lower()),
        "status": reg.status,
        "createdAt": iso(reg.created_at),
        "updatedAt": iso(updated),
    }
    if reg.source_id:
        base["sourceIds"] = [reg.source_id]
    if dest_ids:
        base["destinationIds"] = dest_ids
    attrs = attributes or [{"userId": u} for u in reg.subject_ids]
    return [{**base, "attributes": a} for a in attrs]


def rudder_regulation_routes(components: Components, auth: Authenticator) -> list[Route]:
    ctx = RegulationsContext(components.state, auth, components.suppressions)
    state = components.state

    async def suppressed_by(ws: str) -> set[str]:
        """Ids of regulations that still hold suppressions."""
        return {s.regulation_id for s in await state.list_suppressions(ws)}

    async def regulations(request: Request) -> Response:
        """Create (POST) or list (GET) regulations in RudderStack's /v2/regulations shape."""
        try:
            _principal, ws = await ctx.caller(request)
            if request.method == "POST":
                return await create(request, ws)
            return await listing(request, ws)
        except SegmentError as exc:
            return json_response({"error": exc.message}, 400 if exc.status == 422 else exc.status)
        except (_Bad, RegulationError) as exc:
            return json_response({"error": str(exc)}, 400)

    async def create(request: Request, ws: str) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise _Bad("the body must be a JSON object")
        kind = body.get("regulationType")
        if kind not in TYPES:
            raise _Bad(f"`regulationType` must be `suppress` or `suppress_with_delete` (got {kind!r})")
        ids, attributes = _users(body)
        for source_ref in _ids(body, "sourceIds") or []:
            await ctx.source(ws, source_ref)
        destination_ids = _ids(body, "destinationIds")
        reg = await create_regulation(state, ws, TYPES[kind], USER_ID, ids, destination_ids=destination_ids)
        await ctx.suppressions_changed()
        return json_response(entries(reg, False, attributes), 201)

    async def listing(request: Request, ws: str) -> Response:
        start, limit = _number(request, "start", 0, 10**9), _number(request, "limit", DEFAULT_LIMIT, MAX_LIMIT)
        live = await suppressed_by(ws)
        items: list[dict[str, Any]] = []
        for reg in await state.list_regulations(ws):
            canceled = reg.regulation_type in SUPPRESSING and reg.id not in live
            items += entries(reg, canceled)
        paging: dict[str, Any] = {"total": len(items)}
        if start + limit < len(items):
            paging["next"] = f"/v2/regulations?start={start + limit}&limit={limit}"
        return json_response({"data": items[start : start + limit], "paging": paging})

    async def cancel(request: Request) -> Response:
        """Cancel a RudderStack regulation: its users leave the suppression list."""
        try:
            principal = await ctx.principal(request)
            reg = await ctx.regulation(principal, request.path_params["id"])
        except SegmentError as exc:
            return json_response({"error": exc.message}, exc.status)
        if reg.regulation_type in SUPPRESSING and reg.id in await suppressed_by(reg.workspace_id):
            await create_regulation(state, reg.workspace_id, UNSUPPRESS, reg.subject_type, reg.subject_ids)
            await ctx.suppressions_changed()
        return Response(status_code=204)

    return [
        Route("/v2/regulations", regulations, methods=["GET", "POST"]),
        Route("/v2/regulations/{id}", cancel, methods=["DELETE"]),
    ]


def _number(request: Request, name: str, default: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _Bad(f"`{name}` must be a whole number") from None
    if not 0 <= value <= hi:
        raise _Bad(f"`{name}` must be between 0 and {hi}")
    return value
