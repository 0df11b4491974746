"""Control plane HTTP API (``/api/v1``), health, readiness and metrics.

Errors have one JSON shape everywhere: ``{"code": "...", "message": "..."}`` with the
matching HTTP status. Admin endpoints need ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from eventyard import __version__
from eventyard.collect.ingest import INGEST_TOPIC, REJECTED_TOPIC
from eventyard.control import openapi
from eventyard.control.audit_api import audit_routes
from eventyard.control.audit_middleware import audit_middleware
from eventyard.control.auth import Authenticator, principal_of, visible
from eventyard.control.catalog_api import catalog_routes
from eventyard.control.config_api import config_routes, source_view
from eventyard.control.consent_api import consent_routes
from eventyard.control.delivery_api import delivery_routes
from eventyard.control.http import ApiError, json_response, query_number
from eventyard.control.identity_api import identity_routes
from eventyard.control.pii_api import pii_routes
from eventyard.control.plan_api import tracking_plan_routes
from eventyard.control.profile_api import profile_api_routes
from eventyard.control.regulations_api import regulation_routes
from eventyard.control.rudder_regulations_api import rudder_regulation_routes
from eventyard.control.warehouse_api import warehouse_routes
from eventyard.quality import live
from eventyard.runtime import heap
from eventyard.runtime.components import Components
from eventyard.state.base import Source
from eventyard.ui.app import ui_routes


def create_control_app(components: Components) -> Starlette:
    auth = Authenticator(components.state, components.settings.admin_rate_limit_per_second)

    async def require_admin(request: Request) -> None:
        """Owner, editor or viewer token (viewers only read); see ``control.auth``."""
        await auth.authenticate(request)

    async def find_source(ref: str, request: Request) -> Source:
        for source in visible(principal_of(request), await components.state.list_sources()):
            if ref in (source.id, source.name):
                return source
        raise ApiError(404, "not_found", f"no source with id or name {ref!r}")

    async def health(request: Request) -> Response:
        return json_response({"status": "ok", "version": __version__})

    async def ready(request: Request) -> Response:
        problems: dict[str, str] = {}
        try:
            await components.state.config_version()
        except Exception as exc:
            problems["state"] = str(exc)
        try:
            await components.log.last_id()
        except Exception as exc:
            problems["log"] = str(exc)
        backlog = components.log.backlog_estimate(INGEST_TOPIC)
        if backlog >= components.settings.backlog_limit:
            problems["backlog"] = f"{backlog} unprocessed events, limit {components.settings.backlog_limit}"
        if problems:
            return json_response({"status": "unavailable", "problems": problems}, 503)
        return json_response({"status": "ready"})

    async def metrics(request: Request) -> Response:
        return Response(components.metrics.render(), media_type="text/plain; version=0.0.4")

    async def openapi_document(request: Request) -> Response:
        """The OpenAPI document of this API (every route the app serves)."""
        return json_response(openapi.build(request.app.routes))

    async def version(request: Request) -> Response:
        return json_response({"version": __version__})

    async def list_sources(request: Request) -> Response:
        await require_admin(request)
        sources = visible(principal_of(request), await components.state.list_sources())
        return json_response({"data": [source_view(s) for s in sources]})

    async def recent_events(request: Request) -> Response:
        await require_admin(request)
        source = await find_source(request.path_params["source"], request)
        limit = int(query_number(request, "limit", 50, 1, 1000))
        items = await live.recent(components.log, source.id, limit)
        return json_response({"data": items})

    async def log_stats(request: Request) -> Response:
        await require_admin(request)
        out = {}
        for topic in (INGEST_TOPIC, REJECTED_TOPIC):
            stats = await components.log.stats(topic)
            out[topic] = {**msgspec.to_builtins(stats), "backlog": stats.backlog}
        return json_response({"data": out})

    async def live_stream(request: Request) -> Response:
        await require_admin(request)
        source_ref = request.query_params.get("source")
        source = await find_source(source_ref, request) if source_ref else None
        principal = principal_of(request)
        scoped = principal is not None and principal.workspace_id is not None
        own_sources = visible(principal, await components.state.list_sources()) if scoped else None
        flt = live.LiveFilter(
            source_id=source.id if source else None,
            types=frozenset(request.query_params.getlist("type")),
            event_names=frozenset(request.query_params.getlist("event")),
            include_rejected=request.query_params.get("rejected", "1") not in ("0", "false"),
            source_ids=frozenset(s.id for s in own_sources) if own_sources is not None else None,
        )
        after_raw = request.query_params.get("after") or request.headers.get("last-event-id")
        after = int(after_raw) if after_raw and after_raw.isdigit() else None
        recent_n = int(query_number(request, "recent", 0, 0, 500))
        if after is None and recent_n:
            after = max(0, await components.log.last_id() - recent_n * 4)

        async def stream() -> AsyncIterator[bytes]:
            yield b": connected\n\n"
            items = live.follow(components.log, flt, after)
            pending: asyncio.Task[dict[str, Any]] | None = None
            try:
                while True:
                    if pending is None:
                        pending = asyncio.ensure_future(items.__anext__())
                    done, _ = await asyncio.wait({pending}, timeout=15.0)
                    if not done:
                        yield b": keepalive\n\n"
                        continue
                    item = pending.result()
                    pending = None
                    yield b"id: %d\nevent: %s\ndata: %s\n\n" % (
                        item["id"],
                        item["kind"].encode(),
                        msgspec.json.encode(item),
                    )
            finally:
                if pending is not None:
                    pending.cancel()
                    with contextlib.suppress(BaseException):
                        await pending
                await items.aclose()

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def on_not_found(request: Request, exc: Exception) -> Response:
        return json_response({"code": "not_found", "message": f"no endpoint at {request.url.path}"}, 404)

    async def on_method(request: Request, exc: Exception) -> Response:
        return json_response({"code": "method_not_allowed", "message": f"{request.method} is not allowed here"}, 405)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await components.start()
        heap.settle_after_start()
        try:
            yield
        finally:
            await components.close()

    routes = [
        Route("/health", health),
        Route("/ready", ready),
        Route("/metrics", metrics),
        Route("/version", version),
        Route("/api/v1/openapi.json", openapi_document),
        Route("/api/v1/sources", list_sources),
        Route("/api/v1/sources/{source}/events", recent_events),
        Route("/api/v1/log", log_stats),
        Route("/api/v1/live", live_stream),
        *config_routes(components, auth),
        *consent_routes(components, auth),
        *pii_routes(components, auth),
        *catalog_routes(components, auth),
        *delivery_routes(components, require_admin),
        *warehouse_routes(components, require_admin),
        *identity_routes(components, require_admin),
        *tracking_plan_routes(components, require_admin),
        *profile_api_routes(components),
        *regulation_routes(components, auth),
        *rudder_regulation_routes(components, auth),
        *audit_routes(components.state, require_admin),
        *ui_routes(),
    ]
    return Starlette(
        routes=routes,
        middleware=[audit_middleware(components.state, components.metrics, components.settings.trust_forwarded_for)],
        lifespan=lifespan,
        exception_handlers={ApiError: on_api_error, 404: on_not_found, 405: on_method},
    )
