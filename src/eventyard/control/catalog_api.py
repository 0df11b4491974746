"""Control API of the schema catalog and event volume per source (``quality.catalog``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventyard.control.auth import Authenticator, Principal, visible
from eventyard.control.http import ApiError, json_response, query_number
from eventyard.quality import catalog
from eventyard.runtime.components import Components
from eventyard.state.base import Source


def catalog_routes(components: Components, auth: Authenticator) -> list[Route]:
    state, log = components.state, components.log
    retention = components.settings.log_retention_hours

    async def sources_of(principal: Principal, ref: str | None) -> list[Source]:
        own = visible(principal, await state.list_sources())
        if not ref:
            return own
        found = [s for s in own if ref in (s.id, s.name)]
        if not found:
            raise ApiError(404, "not_found", f"no source with id or name {ref!r}")
        return found

    async def schema_catalog(request: Request) -> Response:
        principal = await auth.authenticate(request)
        hours = query_number(request, "hours", min(24.0, retention), 0.01, max(retention, 0.01))
        data, complete = [], True
        for source in await sources_of(principal, request.query_params.get("source")):
            found = await catalog.catalog(log, source.id, hours)
            data += found["events"]
            complete = complete and found["complete"]
        return json_response({"data": data, "hours": hours, "complete": complete})

    async def volume(request: Request) -> Response:
        principal = await auth.authenticate(request)
        (source,) = await sources_of(principal, request.path_params["source"])
        hours = query_number(request, "hours", min(24.0, retention), 0.01, max(retention, 0.01))
        default_bucket = 3600 if hours > 6 else 300
        bucket = int(query_number(request, "bucket", default_bucket, 60, 86400))
        if hours * 3600 / bucket > 2000:
            raise ApiError(400, "invalid_parameter", "too many buckets: use a larger `bucket` or fewer `hours`")
        return json_response({"data": await catalog.volume(log, source.id, hours, bucket)})

    return [
        Route("/api/v1/catalog", schema_catalog, methods=["GET"]),
        Route("/api/v1/sources/{source}/volume", volume, methods=["GET"]),
    ]
