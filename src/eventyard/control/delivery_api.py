"""Control API of delivery: destinations, connections, overview, trace, dead letters, replay."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventyard.control.auth import principal_of, visible
from eventyard.control.http import ApiError, json_object, json_response, query_number
from eventyard.destinations import registry
from eventyard.destinations.base import redact
from eventyard.errors import ConfigError
from eventyard.log import topics
from eventyard.log.base import TraceEntry, Transaction
from eventyard.quality.overview import destination_overview, ingest_overview
from eventyard.route import jobs
from eventyard.route.replay import replay
from eventyard.route.routing import build_filters
from eventyard.runtime.components import Components
from eventyard.spec import timestamps
from eventyard.state.base import DestinationConfig, Source
from eventyard.unify.restamp import for_replay

Guard = Callable[[Request], Awaitable[None]]


def destination_view(dest: DestinationConfig) -> dict[str, Any]:
    try:
        settings = redact(msgspec.convert(dest.settings, registry.load(dest.type).Settings))
    except Exception:
        settings = {k: "…" for k in dest.settings}
    return {
        "id": dest.id,
        "workspaceId": dest.workspace_id,
        "name": dest.name,
        "type": dest.type,
        "enabled": dest.enabled,
        "settings": settings,
        "delivery": msgspec.to_builtins(dest.delivery),
        "mappings": dest.actions,
    }


def _time(value: Any, name: str) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return timestamps.parse(value, name).timestamp()
    except timestamps.InvalidTimestamp as exc:
        raise ApiError(400, "invalid_parameter", str(exc)) from None


def delivery_routes(components: Components, require_admin: Guard) -> list[Route]:
    state, log = components.state, components.log

    async def find_destination(ref: str, request: Request) -> DestinationConfig:
        for dest in visible(principal_of(request), await state.list_destinations()):
            if ref in (dest.id, dest.name):
                return dest
        raise ApiError(404, "not_found", f"no destination with id or name {ref!r}")

    async def find_source(ref: str, request: Request) -> Source:
        for source in visible(principal_of(request), await state.list_sources()):
            if ref in (source.id, source.name):
                return source
        raise ApiError(404, "not_found", f"no source with id or name {ref!r}")

    async def list_destinations(request: Request) -> Response:
        await require_admin(request)
        dests = visible(principal_of(request), await state.list_destinations())
        return json_response({"data": [destination_view(d) for d in dests]})

    async def overview(request: Request) -> Response:
        await require_admin(request)
        window = query_number(request, "window", 3600, 60, 7 * 86400)
        principal = principal_of(request)
        scope = None
        if principal is not None and principal.workspace_id is not None:
            scope = {d.id for d in visible(principal, await state.list_destinations())}
        bucket = int(query_number(request, "bucket", 300, 60, 86400))
        since = time.time() - window
        return json_response(
            {
                "window_seconds": window,
                "bucket_seconds": bucket,
                # Pipeline counts are not kept per workspace: only unbound tokens see them.
                "pipeline": await ingest_overview(log, since) if scope is None else None,
                "destinations": [
                    d
                    for d in await destination_overview(log, state, since, bucket)
                    if scope is None or d["id"] in scope
                ],
            }
        )

    async def trace(request: Request) -> Response:
        await require_admin(request)
        message_id = request.path_params["message_id"]
        entries = await log.trace(message_id)
        if not entries:
            raise ApiError(404, "not_found", f"no trace of messageId {message_id!r} (unknown, or older than retention)")
        own = {s.id for s in visible(principal_of(request), await state.list_sources())}
        if not any(e.source_id in own for e in entries):
            raise ApiError(404, "not_found", f"no trace of messageId {message_id!r} (unknown, or older than retention)")
        names = {d.id: d.name for d in await state.list_destinations()}
        return json_response({"messageId": message_id, "steps": [_step(e, names) for e in entries]})

    async def dead_letters(request: Request) -> Response:
        await require_admin(request)
        dest = await find_destination(request.path_params["destination"], request)
        limit = int(query_number(request, "limit", 100, 1, 1000))
        after = int(query_number(request, "after", 0, 0, 2**62))
        items = []
        for d in await log.dead_letters(topics.deliver(dest.id), limit, after):
            job = jobs.decode(d.payload)
            items.append(
                {
                    "id": d.id,
                    "messageId": job.message_id,
                    "sourceId": job.source_id,
                    "attempts": d.attempts,
                    "error": d.reason,
                    "queuedAt": d.appended_at,
                    "payload": job.body(),
                }
            )
        return json_response({"data": items, "next": items[-1]["id"] if len(items) == limit else None})

    async def resend(request: Request) -> Response:
        await require_admin(request)
        dest = await find_destination(request.path_params["destination"], request)
        body = await json_object(request)
        topic = topics.deliver(dest.id)
        wanted = body.get("ids")
        if body.get("all") is True:
            dead = []
            after = 0
            while page := await log.dead_letters(topic, 1000, after):
                dead += page
                after = page[-1].id
        elif isinstance(wanted, list) and all(isinstance(i, int) for i in wanted):
            dead = [d for d in await _dead_by_ids(topic, wanted) if d.id in set(wanted)]
        else:
            raise ApiError(400, "invalid_body", 'send {"ids": [dead letter ids]} or {"all": true}')
        count = await log.requeue([d.id for d in dead])
        trace_entries = []
        for d in dead:
            job = jobs.decode(d.payload)
            trace_entries.append(TraceEntry(job.message_id, job.source_id, "resent", dest.id, detail=d.reason))
        await log.commit(Transaction(trace=trace_entries))
        return json_response({"resent": count})

    async def _dead_by_ids(topic: str, ids: list[int]) -> list[Any]:
        found = []
        for rid in sorted(set(ids)):
            found += [d for d in await log.dead_letters(topic, 1, rid - 1) if d.id == rid]
        return found

    async def start_replay(request: Request) -> Response:
        await require_admin(request)
        dest = await find_destination(request.path_params["destination"], request)
        body = await json_object(request)
        if "from" not in body:
            raise ApiError(400, "invalid_body", "`from` (ISO-8601 or unix seconds) is required")
        start = _time(body["from"], "from")
        end = _time(body.get("to", time.time() + 1), "to")
        if end <= start:
            raise ApiError(400, "invalid_body", "`to` must be after `from`")
        sources = None
        if body.get("sources"):
            sources = {(await find_source(str(s), request)).id for s in body["sources"]}
        restamp = for_replay(components.identity)  # the profile each event belongs to now
        result = await replay(log, components.fanout, dest.id, start, end, sources, restamp=restamp)
        return json_response(
            {
                "destination": dest.name,
                "from": datetime.fromtimestamp(start).astimezone().isoformat(),
                "to": datetime.fromtimestamp(end).astimezone().isoformat(),
                "read": result.read,
                "queued": result.queued,
                "filtered": result.filtered,
            }
        )

    async def connections(request: Request) -> Response:
        await require_admin(request)
        if request.method == "GET":
            sources = await state.list_sources()
            data = [
                {"sourceId": c.source_id, "destinationId": c.destination_id, "filters": c.filters}
                for c in await state.list_connections()
                if c.source_id in {s.id for s in visible(principal_of(request), sources)}
            ]
            return json_response({"data": data})
        if request.method == "DELETE":
            source = await find_source(request.query_params.get("source", ""), request)
            dest = await find_destination(request.query_params.get("destination", ""), request)
            removed = await state.delete_connection(source.id, dest.id)
            if not removed:
                raise ApiError(404, "not_found", f"{source.name} is not connected to {dest.name}")
            return json_response({"deleted": True})
        body = await json_object(request)
        source = await find_source(str(body.get("source", "")), request)
        dest = await find_destination(str(body.get("destination", "")), request)
        filters = body.get("filters", [])
        if not isinstance(filters, list):
            raise ApiError(400, "invalid_body", "`filters` must be a list")
        try:
            build_filters(filters)
        except ConfigError as exc:
            raise ApiError(400, "invalid_filter", str(exc)) from None
        conn = await state.set_connection(source.id, dest.id, filters)
        return json_response({"sourceId": conn.source_id, "destinationId": conn.destination_id, "filters": filters})

    return [
        Route("/api/v1/destinations", list_destinations),
        Route("/api/v1/overview", overview),
        Route("/api/v1/trace/{message_id:path}", trace),
        Route("/api/v1/destinations/{destination}/dead-letters", dead_letters),
        Route("/api/v1/destinations/{destination}/dead-letters/resend", resend, methods=["POST"]),
        Route("/api/v1/destinations/{destination}/replay", start_replay, methods=["POST"]),
        Route("/api/v1/connections", connections, methods=["GET", "PUT", "DELETE"]),
    ]


def _step(entry: TraceEntry, names: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "at": timestamps.format_utc(datetime.fromtimestamp(entry.at).astimezone()),
        "step": entry.step,
    }
    if entry.destination_id:
        out["destination"] = names.get(entry.destination_id, entry.destination_id)
    for key in ("reason", "detail"):
        if getattr(entry, key):
            out[key] = getattr(entry, key)
    if entry.attempt:
        out["attempt"] = entry.attempt
    if entry.latency_ms is not None:
        out["latencyMs"] = round(entry.latency_ms, 1)
    out["sourceId"] = entry.source_id
    return out
