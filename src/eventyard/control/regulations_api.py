"""The regulations API in Segment's Public API shape (deletion and suppression).

Mounted at the control plane's root (``/regulations``, ``/suppressions``, as Segment's
``api.segmentapis.com`` has them) and again under ``/api/v1`` (``/api/v1/regulations``, ...);
the tracking API never uses these paths. ``Authorization: Bearer <token>`` with an owner or
editor token (viewers may read); a token bound to a workspace works in it, an unbound owner
token names the workspace with ``?workspace=<id or name>`` when there are several.

=======  ===================================  ==============================================
POST     /regulations                         ``{regulationType, subjectType, subjectIds}``
                                              -> ``{"data": {"regulateId": ...}}``
POST     /regulations/sources/{sourceId}      the same, for the events of one source
GET      /regulations                         ``?status=&regulationTypes=A,B&pagination.count=
                                              &pagination.cursor=`` -> ``{"data": {"regulations":
                                              [...], "pagination": {...}}}``
GET      /regulations/sources/{sourceId}      the same, of one source
GET      /regulations/{id}                    ``{"data": {"regulation": {...}}}`` with the
                                              deletion report (``stores``)
DELETE   /regulations/{id}                    only while ``INITIALIZED``
GET      /suppressions                        ``{"data": {"suppressed": [...], "pagination"}}``
=======  ===================================  ==============================================

Errors have Segment's shape ``{"errors": [{"type": ..., "message": ..., "field"?: ...}]}``:
401/403 (token), 404 (no such regulation or source), 400 (body is not JSON), 422 (the body is
JSON but not a valid regulation).
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventyard.control.auth import Authenticator, Principal, target_workspace
from eventyard.control.http import ApiError, json_response
from eventyard.errors import Terminal
from eventyard.privacy.regulations import (
    DESTINATION_PREFIX,
    REGULATION_TYPES,
    RegulationError,
    create_regulation,
)
from eventyard.privacy.suppression import SuppressionList
from eventyard.runtime.components import Components
from eventyard.spec.timestamps import format_utc
from eventyard.state.base import Regulation, StateStore, Suppression

STATUSES = ("INITIALIZED", "RUNNING", "FINISHED", "PARTIAL_SUCCESS", "FAILED", "NOT_SUPPORTED", "INVALID")
#: Regulations per page when ``pagination.count`` is not given, and at most.
DEFAULT_COUNT, MAX_COUNT = 10, 200


class SegmentError(Exception):
    def __init__(self, status: int, kind: str, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.field = status, kind, message, field


def error_response(status: int, kind: str, message: str, field: str = "") -> Response:
    error: dict[str, str] = {"type": kind, "message": message}
    if field:
        error["field"] = field
    return json_response({"errors": [error]}, status)


def iso(at: float | None) -> str | None:
    return None if at is None else format_utc(datetime.fromtimestamp(at, UTC))


def regulation_view(reg: Regulation, names: dict[str, str] | None = None) -> dict[str, Any]:
    """A regulation as Segment lists it, plus eventyard's per-store report (``stores``)."""
    names = names or {}
    destinations = []
    for store, st in reg.stores.items():
        if store.startswith(DESTINATION_PREFIX):
            dest_id = store[len(DESTINATION_PREFIX) :]
            destinations.append(
                {
                    "id": dest_id,
                    "name": names.get(dest_id, dest_id),
                    "status": st.status,
                    "errString": st.detail if st.status == "FAILED" else "",
                    "finishedAt": iso(st.updated_at) if st.status not in ("INITIALIZED", "RUNNING") else None,
                }
            )
    view: dict[str, Any] = {
        "id": reg.id,
        "workspaceId": reg.workspace_id,
        "overallStatus": reg.status,
        "regulationType": reg.regulation_type,
        "subjectType": reg.subject_type,
        "subjectIds": reg.subject_ids,
        "createdAt": iso(reg.created_at),
        "finishedAt": iso(reg.finished_at),
        "streamStatus": [{"id": reg.source_id or reg.workspace_id, "destinationStatus": destinations}],
        "stores": {
            store: {
                "status": st.status,
                "detail": st.detail,
                "removed": st.removed,
                "updatedAt": iso(st.updated_at) if st.updated_at else None,
            }
            for store, st in reg.stores.items()
        },
    }
    if reg.source_id:
        view["sourceId"] = reg.source_id
    return view


def suppression_view(s: Suppression) -> dict[str, Any]:
    return {
        "subjectType": s.subject_type,
        "subjectId": s.subject_id,
        "regulationId": s.regulation_id,
        "createdAt": iso(s.created_at),
    }


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def page(request: Request, items: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """A page of ``items`` per ``pagination.count`` / ``pagination.cursor`` and its pagination."""
    raw_count = request.query_params.get("pagination.count") or request.query_params.get("pagination[count]")
    raw_cursor = request.query_params.get("pagination.cursor") or request.query_params.get("pagination[cursor]")
    try:
        count = int(raw_count) if raw_count else DEFAULT_COUNT
    except ValueError:
        raise SegmentError(400, "bad-request", "`pagination.count` must be a number", "pagination.count") from None
    if not 1 <= count <= MAX_COUNT:
        raise SegmentError(400, "bad-request", f"`pagination.count` must be 1..{MAX_COUNT}", "pagination.count")
    offset = 0
    if raw_cursor:
        try:
            offset = int(base64.urlsafe_b64decode(raw_cursor.encode()).decode())
        except (ValueError, UnicodeDecodeError):
            raise SegmentError(
                400, "bad-request", "`pagination.cursor` is not a cursor of this API", "pagination.cursor"
            ) from None
    chunk = items[offset : offset + count]
    pagination: dict[str, Any] = {"current": _cursor(offset), "totalEntries": len(items)}
    if offset + count < len(items):
        pagination["next"] = _cursor(offset + count)
    if offset > 0:
        pagination["previous"] = _cursor(max(0, offset - count))
    return chunk, pagination


async def read_json(request: Request) -> Any:
    try:
        return msgspec.json.decode(await request.body())
    except msgspec.DecodeError as exc:
        raise SegmentError(400, "bad-request", f"the body is not valid JSON: {exc}") from None


class RegulationsContext:
    """What the handlers of both API flavours share: the state, who calls, which workspace."""

    def __init__(self, state: StateStore, auth: Authenticator, suppressions: SuppressionList | None = None) -> None:
        self.state = state
        self.auth = auth
        self.suppressions = suppressions

    async def caller(self, request: Request) -> tuple[Principal, str]:
        """The principal and the workspace id the request works in (``SegmentError`` if none)."""
        principal = await self.principal(request)
        try:
            ws = await target_workspace(self.state, principal, request.query_params.get("workspace"))
        except ApiError as exc:
            raise _translated(exc) from None
        return principal, ws.id

    async def principal(self, request: Request) -> Principal:
        """Who calls (for requests about one regulation, which names its workspace itself)."""
        try:
            return await self.auth.authenticate(request)
        except ApiError as exc:
            raise _translated(exc) from None

    async def regulation(self, principal: Principal, regulation_id: str) -> Regulation:
        reg = await self.state.get_regulation(regulation_id)
        if reg is None or not principal.sees(reg.workspace_id):
            raise SegmentError(404, "not-found", f"no regulation {regulation_id!r}")
        return reg

    async def source(self, workspace_id: str, ref: str) -> str:
        for s in await self.state.list_sources(workspace_id):
            if ref in (s.id, s.name):
                return s.id
        raise SegmentError(404, "not-found", f"no source {ref!r} in this workspace")

    async def names(self, workspace_id: str) -> dict[str, str]:
        return {d.id: d.name for d in await self.state.list_destinations(workspace_id)}

    async def suppressions_changed(self) -> None:
        """Reload this process's suppression list now (other processes notice within seconds)."""
        if self.suppressions is not None:
            await self.suppressions.refresh()


Handler = Callable[[Request], Awaitable[Response]]


def _translated(exc: ApiError) -> SegmentError:
    kind = {401: "unauthorized", 403: "forbidden", 404: "not-found"}.get(exc.status, "bad-request")
    return SegmentError(exc.status, kind, exc.message)


def _segment(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except SegmentError as exc:
            return error_response(exc.status, exc.kind, exc.message, exc.field)

    return wrapped


def regulation_routes(components: Components, auth: Authenticator) -> list[Route]:
    ctx = RegulationsContext(components.state, auth, components.suppressions)
    state = components.state

    async def create(request: Request, source_ref: str = "") -> Response:
        _principal, ws = await ctx.caller(request)
        source_id = await ctx.source(ws, source_ref) if source_ref else ""
        body = await read_json(request)
        if not isinstance(body, dict):
            raise SegmentError(422, "validation", "the body must be a JSON object")
        unknown = sorted(set(body) - {"regulationType", "subjectType", "subjectIds"})
        if unknown:
            raise SegmentError(422, "validation", f"unknown field(s): {', '.join(unknown)}", unknown[0])
        try:
            reg = await create_regulation(
                state,
                ws,
                body.get("regulationType"),
                body.get("subjectType"),
                body.get("subjectIds"),
                source_id=source_id,
            )
        except RegulationError as exc:
            raise SegmentError(422, "validation", exc.message, exc.field) from None
        await ctx.suppressions_changed()
        return json_response({"data": {"regulateId": reg.id}})

    async def workspace_regulations(request: Request) -> Response:
        """Create a regulation of the workspace (POST) or list its regulations (GET), Segment's shape."""
        if request.method == "POST":
            return await create(request)
        _principal, ws = await ctx.caller(request)
        return await listing(request, ws, None)

    async def source_regulations(request: Request) -> Response:
        """Create (POST) or list (GET) the regulations of one source, Segment's shape."""
        if request.method == "POST":
            return await create(request, request.path_params["source"])
        _principal, ws = await ctx.caller(request)
        return await listing(request, ws, await ctx.source(ws, request.path_params["source"]))

    async def listing(request: Request, ws: str, source_id: str | None) -> Response:
        status = (request.query_params.get("status") or "").upper() or None
        if status is not None and status not in STATUSES:
            raise SegmentError(400, "bad-request", f"`status` must be one of {', '.join(STATUSES)}", "status")
        regs = await state.list_regulations(ws, status=status, source_id=source_id)
        types_raw = request.query_params.get("regulationTypes")
        if types_raw:
            types = {t.strip().upper() for t in types_raw.split(",") if t.strip()}
            bad = sorted(types - set(REGULATION_TYPES))
            if bad:
                message = f"unknown regulation type(s): {', '.join(bad)}"
                raise SegmentError(400, "bad-request", message, "regulationTypes")
            regs = [r for r in regs if r.regulation_type in types]
        chunk, pagination = page(request, regs)
        names = await ctx.names(ws)
        return json_response(
            {"data": {"regulations": [regulation_view(r, names) for r in chunk], "pagination": pagination}}
        )

    async def one(request: Request) -> Response:
        """A regulation with its deletion report (GET), or delete it while INITIALIZED (DELETE)."""
        principal = await ctx.principal(request)
        reg = await ctx.regulation(principal, request.path_params["id"])
        if request.method == "DELETE":
            try:
                await state.delete_regulation(reg.id)
            except Terminal as exc:
                raise SegmentError(422, "validation", str(exc)) from None
            return json_response({"data": {"status": "SUCCESS"}})
        return json_response({"data": {"regulation": regulation_view(reg, await ctx.names(reg.workspace_id))}})

    async def suppressions(request: Request) -> Response:
        """The workspace's suppressed users."""
        _principal, ws = await ctx.caller(request)
        chunk, pagination = page(request, await state.list_suppressions(ws))
        return json_response({"data": {"suppressed": [suppression_view(s) for s in chunk], "pagination": pagination}})

    routes: list[Route] = []
    for prefix in ("", "/api/v1"):
        routes += [
            Route(f"{prefix}/regulations", _segment(workspace_regulations), methods=["GET", "POST"]),
            Route(f"{prefix}/regulations/sources/{{source}}", _segment(source_regulations), methods=["GET", "POST"]),
            Route(f"{prefix}/regulations/{{id}}", _segment(one), methods=["GET", "DELETE"]),
            Route(f"{prefix}/suppressions", _segment(suppressions), methods=["GET"]),
        ]
    return routes
