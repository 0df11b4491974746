"""Control API of tracking plans (``/api/v1/tracking-plans``) and of sources' plan settings.

- ``GET /api/v1/tracking-plans``: the plans, with their latest version and attached sources
- ``PUT /api/v1/tracking-plans/{plan}``: create or update (a new version); JSON or YAML body
- ``GET /api/v1/tracking-plans/{plan}`` (``?version=N``, ``?format=yaml``), ``DELETE`` (only
  when no source uses it)
- ``GET .../{plan}/history``, ``GET .../{plan}/diff?from=N&to=M``
- ``GET .../{plan}/violations`` (``?source=``): counts over 1 h, 24 h and 7 d
- ``POST .../{plan}/validate``: what the plan would do to the events in the body (nothing is stored)
- ``GET|PUT|DELETE /api/v1/sources/{source}/tracking-plan``: attach, change settings, detach
- ``GET /api/v1/sources/{source}/violations``
- ``GET /api/v1/sources/{source}/tracking-plan/draft?name=&limit=``: a plan inferred from the
  source's retained events

``?workspace=`` (id or name) is needed only when the caller sees several workspaces.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventyard.control.auth import principal_of, target_workspace, visible
from eventyard.control.http import ApiError, json_response, query_number
from eventyard.errors import ConfigError, NotFound, Terminal
from eventyard.quality import live, plan_store
from eventyard.quality.plan_diff import diff_plans
from eventyard.quality.plan_format import Enforcement, dumps, parse_plan
from eventyard.quality.plan_infer import infer_plan
from eventyard.runtime.components import Components
from eventyard.state.base import Source, ViolationSummary, Workspace
from eventyard.unify.plan_compile import CompiledPlan
from eventyard.unify.plan_enforce import SourcePlan, enforce

Guard = Callable[[Request], Awaitable[None]]


def violation_view(v: ViolationSummary, names: dict[str, str]) -> dict[str, Any]:
    return {
        "source": names.get(v.source_id, v.source_id),
        "sourceId": v.source_id,
        "plan": v.plan,
        "eventType": v.event_type,
        "eventName": v.event_name,
        "field": v.field,
        "violationType": v.violation_type,
        "description": v.description,
        "lastSeen": v.last_seen,
        "counts": {"1h": v.count_1h, "24h": v.count_24h, "7d": v.count_7d},
    }


def _translate(exc: Exception) -> ApiError:
    if isinstance(exc, NotFound):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, ConfigError):
        return ApiError(400, "invalid_tracking_plan", str(exc))
    if isinstance(exc, Terminal):
        return ApiError(409, "conflict", str(exc))
    raise exc


def tracking_plan_routes(components: Components, require_admin: Guard) -> list[Route]:
    state = components.state

    async def caller(request: Request) -> tuple[Workspace, str]:
        await require_admin(request)
        principal = principal_of(request)
        if principal is None:  # pragma: no cover - require_admin always sets it
            raise ApiError(401, "missing_token", "send `Authorization: Bearer <admin token>`")
        ws = await target_workspace(state, principal, request.query_params.get("workspace"))
        return ws, principal.actor

    async def source_of(request: Request) -> tuple[Source, str]:
        await require_admin(request)
        principal = principal_of(request)
        ref = request.path_params["source"]
        for source in visible(principal, await state.list_sources()):
            if ref in (source.id, source.name):
                return source, principal.actor if principal else ""
        raise ApiError(404, "not_found", f"no source with id or name {ref!r}")

    async def body_of(request: Request) -> Any:
        raw = await request.body()
        if not raw:
            raise ApiError(400, "invalid_body", "send the tracking plan as JSON (or YAML) in the body")
        if "yaml" in request.headers.get("content-type", ""):
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise ApiError(400, "invalid_yaml", f"the body is not valid YAML: {exc}") from None
        try:
            return msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None

    async def source_names(ws: Workspace) -> dict[str, str]:
        return {s.id: s.name for s in await state.list_sources(ws.id)}

    def version_param(request: Request, name: str) -> int | None:
        raw = request.query_params.get(name)
        if raw is None:
            return None
        if not raw.isdigit() or int(raw) < 1:
            raise ApiError(400, "invalid_parameter", f"`{name}` must be a version number (1, 2, ...)")
        return int(raw)

    async def list_plans(request: Request) -> Response:
        ws, _ = await caller(request)
        names = await source_names(ws)
        attached = await plan_store.attachments(state, ws.id)
        data = [
            {
                "name": d.name,
                "version": d.version,
                "description": d.body.get("description", ""),
                "rules": len(d.body.get("rules", [])),
                "updatedAt": d.created_at,
                "sources": sorted(names.get(s, s) for s, a in attached.items() if a.plan == d.name),
            }
            for d in await plan_store.list_plans(state, ws.id)
        ]
        return json_response({"data": data})

    async def get_plan(request: Request) -> Response:
        ws, _ = await caller(request)
        try:
            plan, doc = await plan_store.get_plan(
                state, ws.id, request.path_params["plan"], version_param(request, "version")
            )
        except (NotFound, ConfigError) as exc:
            raise _translate(exc) from None
        fmt = request.query_params.get("format", "json")
        if fmt == "yaml":
            return Response(dumps(plan, "yaml"), media_type="application/yaml")
        if fmt != "json":
            raise ApiError(400, "invalid_parameter", "`format` must be json or yaml")
        return json_response(
            {**plan.to_json(), "version": doc.version, "updatedAt": doc.created_at, "actor": doc.actor}
        )

    async def put_plan(request: Request) -> Response:
        ws, actor = await caller(request)
        name = request.path_params["plan"]
        try:
            plan = parse_plan(await body_of(request), name)
            before = await state.get_document(ws.id, "tracking_plan", name)
            doc = await plan_store.put_plan(state, ws.id, plan, actor)
        except ConfigError as exc:
            raise _translate(exc) from None
        old = parse_plan(before.body) if before is not None else None
        changes = [c.describe() for c in diff_plans(old, plan)]
        status = 201 if before is None else 200
        return json_response(
            {"name": name, "version": doc.version, "changed": bool(changes) or before is None, "changes": changes},
            status,
        )

    async def delete_plan(request: Request) -> Response:
        ws, actor = await caller(request)
        try:
            await plan_store.delete_plan(state, ws.id, request.path_params["plan"], actor)
        except (NotFound, Terminal) as exc:
            raise _translate(exc) from None
        return json_response({"deleted": True})

    async def history(request: Request) -> Response:
        ws, _ = await caller(request)
        docs = await state.document_history(ws.id, "tracking_plan", request.path_params["plan"])
        if not docs:
            raise ApiError(404, "not_found", f"there is no tracking plan {request.path_params['plan']!r}")
        data = [
            {
                "version": d.version,
                "createdAt": d.created_at,
                "actor": d.actor,
                "deleted": d.deleted,
                "rules": len(d.body.get("rules", [])),
            }
            for d in docs
        ]
        return json_response({"data": data})

    async def diff(request: Request) -> Response:
        ws, _ = await caller(request)
        name = request.path_params["plan"]
        try:
            _, latest = await plan_store.get_plan(state, ws.id, name)
            to = version_param(request, "to") or latest.version
            start = version_param(request, "from") or to - 1
            new, _ = await plan_store.get_plan(state, ws.id, name, to)
            old = (await plan_store.get_plan(state, ws.id, name, start))[0] if start >= 1 else None
        except (NotFound, ConfigError) as exc:
            raise _translate(exc) from None
        changes = diff_plans(old, new)
        return json_response(
            {
                "from": start if old else None,
                "to": to,
                "changes": [{**msgspec.to_builtins(c), "text": c.describe()} for c in changes],
            }
        )

    async def violations(request: Request, ws: Workspace, plan: str | None, source_id: str | None) -> Response:
        rows = await state.violation_summary(ws.id, time.time(), plan=plan, source_id=source_id)
        names = await source_names(ws)
        return json_response({"data": [violation_view(v, names) for v in rows]})

    async def plan_violations(request: Request) -> Response:
        ws, _ = await caller(request)
        ref = request.query_params.get("source")
        source_id = None
        if ref:
            found = [s.id for s in await state.list_sources(ws.id) if ref in (s.id, s.name)]
            if not found:
                raise ApiError(404, "not_found", f"no source with id or name {ref!r}")
            source_id = found[0]
        return await violations(request, ws, request.path_params["plan"], source_id)

    async def validate(request: Request) -> Response:
        ws, _ = await caller(request)
        body = await body_of(request)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_body", 'send {"events": [...], "enforcement": {...}} or one event')
        events = body.get("events", [body] if "type" in body else None)
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise ApiError(400, "invalid_body", "`events` must be a list of event objects")
        try:
            plan, doc = await plan_store.get_plan(state, ws.id, request.path_params["plan"])
            settings = msgspec.convert(body.get("enforcement") or {}, Enforcement)
        except (NotFound, ConfigError) as exc:
            raise _translate(exc) from None
        except msgspec.ValidationError as exc:
            raise ApiError(400, "invalid_enforcement", f"enforcement: {exc}") from None
        sp = SourcePlan("", "", ws.id, CompiledPlan(plan, doc.version), settings)
        results = []
        for event in events:
            after = copy.deepcopy(event)
            decision = enforce(sp, after)
            results.append(
                {
                    "outcome": "blocked" if decision.blocked else "kept",
                    "reason": decision.blocked,
                    "detail": decision.detail,
                    "violations": [msgspec.to_builtins(v) for v in decision.violations],
                    "event": None if decision.blocked else after,
                }
            )
        return json_response({"plan": plan.name, "version": doc.version, "results": results})

    async def source_plan(request: Request) -> Response:
        source, actor = await source_of(request)
        try:
            if request.method == "PUT":
                body = await body_of(request)
                found = await plan_store.attach(state, source, body, actor)
            elif request.method == "DELETE":
                if not await plan_store.detach(state, source, actor):
                    raise ApiError(404, "not_found", f"source {source.name!r} has no tracking plan")
                return json_response({"detached": True})
            else:
                attached = await plan_store.attachment_of(state, source)
                if attached is None:
                    raise ApiError(404, "not_found", f"source {source.name!r} has no tracking plan")
                found = attached
        except (ConfigError, NotFound) as exc:
            raise _translate(exc) from None
        return json_response({"source": source.name, "sourceId": source.id, **msgspec.to_builtins(found)})

    async def source_violations(request: Request) -> Response:
        source, _ = await source_of(request)
        ws = Workspace(source.workspace_id, "", 0.0)
        return await violations(request, ws, None, source.id)

    async def draft(request: Request) -> Response:
        source, _ = await source_of(request)
        limit = int(query_number(request, "limit", 1000, 1, 20000))
        name = request.query_params.get("name") or f"{source.name}-draft"
        items = await live.recent(components.log, source.id, limit)
        events = [i["event"] for i in items if i.get("kind") == "event"]
        try:
            plan = infer_plan(name, events)
        except ConfigError as exc:
            raise _translate(exc) from None
        return json_response({**plan.to_json(), "observedEvents": len(events)})

    return [
        Route("/api/v1/tracking-plans", list_plans),
        Route("/api/v1/tracking-plans/{plan}", get_plan, methods=["GET"]),
        Route("/api/v1/tracking-plans/{plan}", put_plan, methods=["PUT"]),
        Route("/api/v1/tracking-plans/{plan}", delete_plan, methods=["DELETE"]),
        Route("/api/v1/tracking-plans/{plan}/history", history),
        Route("/api/v1/tracking-plans/{plan}/diff", diff),
        Route("/api/v1/tracking-plans/{plan}/violations", plan_violations),
        Route("/api/v1/tracking-plans/{plan}/validate", validate, methods=["POST"]),
        Route("/api/v1/sources/{source}/tracking-plan", source_plan, methods=["GET", "PUT", "DELETE"]),
        Route("/api/v1/sources/{source}/tracking-plan/draft", draft),
        Route("/api/v1/sources/{source}/violations", source_violations),
    ]
