"""Control API of the embedded warehouse: read-only SQL and the list of tables and columns.

The server process holds the DuckDB file open for writing, so queries go through the running
warehouse destination (any destination implementing ``eventyard.warehouse.WarehouseReader``),
found among this process's delivery workers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventyard.control.auth import principal_of
from eventyard.control.http import ApiError, json_response
from eventyard.errors import Unavailable
from eventyard.runtime.components import Components
from eventyard.warehouse import ReadOnlyViolation, WarehouseReader

Guard = Callable[[Request], Awaitable[None]]

#: Most rows one query returns; the answer says ``truncated`` when there were more.
MAX_ROWS = 10_000


def readers(components: Components) -> dict[str, tuple[str, WarehouseReader]]:
    """Running warehouse destinations of this process: name -> (id, reader)."""
    found: dict[str, tuple[str, WarehouseReader]] = {}
    if components.delivery is not None:
        for dest_id, running in components.delivery.running.items():
            if isinstance(running.destination, WarehouseReader):
                found[running.config.name] = (dest_id, running.destination)
    return found


def pick(components: Components, ref: str | None) -> WarehouseReader:
    found = readers(components)
    if ref:
        for name, (dest_id, reader) in found.items():
            if ref in (name, dest_id):
                return reader
        raise ApiError(404, "not_found", f"no running warehouse destination named {ref!r} (running: {sorted(found)})")
    if not found:
        raise ApiError(
            404,
            "no_warehouse",
            "no warehouse destination is running in this process: configure a `duckdb` destination"
            " (and run the route role here)",
        )
    if len(found) > 1:
        raise ApiError(400, "ambiguous", f"several warehouses run here; choose one with `destination`: {sorted(found)}")
    return next(iter(found.values()))[1]


def unbound_only(request: Request) -> None:
    """The embedded warehouse holds every workspace's schemas: SQL on it is for tokens that
    are not bound to one workspace."""
    principal = principal_of(request)
    if principal is not None and principal.workspace_id is not None:
        raise ApiError(403, "forbidden", "SQL on the embedded warehouse needs a token that is not bound to a workspace")


def warehouse_routes(components: Components, require_admin: Guard) -> list[Route]:
    async def run_sql(request: Request) -> Response:
        await require_admin(request)
        unbound_only(request)
        try:
            body = msgspec.json.decode(await request.body())
        except msgspec.DecodeError as exc:
            raise ApiError(400, "invalid_json", f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict) or not isinstance(body.get("sql"), str) or not body["sql"].strip():
            raise ApiError(400, "invalid_body", 'send {"sql": "SELECT ...", "destination": optional name}')
        max_rows = body.get("maxRows", MAX_ROWS)
        if not isinstance(max_rows, int) or not 1 <= max_rows <= MAX_ROWS:
            raise ApiError(400, "invalid_body", f"`maxRows` must be an integer between 1 and {MAX_ROWS}")
        destination = body.get("destination")
        reader = pick(components, destination if isinstance(destination, str) else None)
        try:
            result = await reader.query(body["sql"], max_rows)
        except ReadOnlyViolation as exc:
            raise ApiError(400, "not_read_only", str(exc)) from None
        except Unavailable as exc:
            raise ApiError(503, "unavailable", str(exc)) from None
        except Exception as exc:  # the database's own message says what is wrong with the query
            raise ApiError(400, "query_failed", f"{type(exc).__name__}: {exc}") from None
        out: dict[str, Any] = {"columns": result.columns, "rows": result.rows, "truncated": result.truncated}
        return json_response(out)

    async def describe(request: Request) -> Response:
        await require_admin(request)
        unbound_only(request)
        reader = pick(components, request.query_params.get("destination"))
        try:
            tables = await reader.describe()
        except Unavailable as exc:
            raise ApiError(503, "unavailable", str(exc)) from None
        data = [{"schema": t.schema, "table": t.table, "rows": t.rows, "columns": t.columns} for t in tables]
        return json_response({"data": data})

    return [
        Route("/api/v1/sql", run_sql, methods=["POST"]),
        Route("/api/v1/warehouse/describe", describe),
    ]
