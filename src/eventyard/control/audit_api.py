"""Reading the audit trail: ``GET /api/v1/audit`` (pages) and ``GET /api/v1/audit/export``.

Both need an owner token; a token bound to a workspace sees that workspace's entries only.
Filters: ``since`` and ``until`` (ISO-8601, unix seconds, or an age such as ``30m``, ``24h``,
``7d``), ``actor`` (exact), ``action`` (a prefix: ``profile.`` or ``profile.read``),
``workspace`` (id or name); pages: ``after`` (the ``next`` of the previous page) and
``limit`` (1-1000). The export streams every matching entry as JSON lines or CSV.

There is no endpoint that changes or deletes an entry; reading is itself recorded
(``audit.read``, ``audit.export``) by the audit middleware.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from eventyard.control.audit import credentials
from eventyard.control.http import ApiError, json_response, query_number
from eventyard.spec import timestamps
from eventyard.state.base import AuditEntry, StateStore
from eventyard.state.ids import hash_token

Guard = Callable[[Request], Awaitable[None]]

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: Entries read from the store per query while exporting.
EXPORT_PAGE = 1000
CSV_COLUMNS = ("id", "at", "workspace_id", "actor", "action", "target", "origin", "status", "detail")


def parse_time(value: str, name: str, now: float) -> float:
    """``since``/``until``: an age (``24h``: that long before ``now``), unix seconds or ISO-8601."""
    text = value.strip()
    age = _AGE.match(text)
    if age:
        return now - float(age.group(1)) * _UNIT[age.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return timestamps.parse(text, name).timestamp()
    except timestamps.InvalidTimestamp:
        raise ApiError(
            400,
            "invalid_parameter",
            f"`{name}` must be an age (30m, 24h, 7d), unix seconds or an ISO-8601 time, got {value!r}",
        ) from None


def entry_view(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": timestamps.format_utc(datetime.fromtimestamp(entry.at, UTC)),
        "workspaceId": entry.workspace_id,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "origin": entry.origin,
        "detail": entry.detail,
    }


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run as a formula (targets come from requests)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_row(entry: AuditEntry) -> str:
    out = io.StringIO()
    view = entry_view(entry)
    status = entry.detail.get("status", "")
    row = [view["id"], view["at"], entry.workspace_id or "", entry.actor, entry.action, entry.target]
    row += [entry.origin, status, msgspec.json.encode(entry.detail).decode()]
    csv.writer(out, lineterminator="\n").writerow([row[0], *(_cell(v) for v in row[1:])])
    return out.getvalue()


class AuditQuery(msgspec.Struct, frozen=True):
    workspace_id: str | None
    since: float | None
    until: float | None
    actor: str | None
    action: str | None


def audit_routes(state: StateStore, require_admin: Guard, clock: Callable[[], float] = time.time) -> list[Route]:
    async def query_of(request: Request) -> AuditQuery:
        await require_admin(request)
        secret = credentials(request.headers.get("authorization", "")) or ""
        token = await state.token_by_hash(hash_token(secret))
        if token is None or token.role != "owner":
            raise ApiError(403, "forbidden", "reading the audit trail needs an owner token")
        params = request.query_params
        known = {"since", "until", "actor", "action", "workspace", "after", "limit", "format"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ApiError(400, "invalid_parameter", f"unknown parameter(s) {unknown}; use {sorted(known)}")
        now = clock()
        since = parse_time(params["since"], "since", now) if params.get("since") else None
        until = parse_time(params["until"], "until", now) if params.get("until") else None
        if since is not None and until is not None and until <= since:
            raise ApiError(400, "invalid_parameter", "`until` must be later than `since`")
        workspace_id = token.workspace_id
        ref = params.get("workspace")
        if ref:
            found = [w.id for w in await state.list_workspaces() if ref in (w.id, w.name)]
            if not found or (workspace_id is not None and found[0] != workspace_id):
                raise ApiError(404, "not_found", f"no workspace with id or name {ref!r}")
            workspace_id = found[0]
        return AuditQuery(workspace_id, since, until, params.get("actor") or None, params.get("action") or None)

    async def list_entries(request: Request) -> Response:
        """Audit entries, oldest first, filtered, one page at a time (owner token)."""
        q = await query_of(request)
        if "format" in request.query_params:
            raise ApiError(400, "invalid_parameter", "`format` belongs to /api/v1/audit/export")
        after = int(query_number(request, "after", 0, 0, 2**62))
        limit = int(query_number(request, "limit", 100, 1, 1000))
        entries = await state.list_audit(
            q.workspace_id, since=q.since, until=q.until, actor=q.actor, action=q.action, after_id=after, limit=limit
        )
        nxt = entries[-1].id if len(entries) == limit else None
        return json_response({"data": [entry_view(e) for e in entries], "next": nxt})

    async def export(request: Request) -> Response:
        """Every matching audit entry, streamed as JSON lines or CSV (owner token)."""
        q = await query_of(request)
        fmt = request.query_params.get("format", "jsonl")
        if fmt not in ("jsonl", "csv"):
            raise ApiError(400, "invalid_parameter", f"`format` must be jsonl or csv, got {fmt!r}")
        if "after" in request.query_params or "limit" in request.query_params:
            raise ApiError(400, "invalid_parameter", "the export has every matching entry: no `after` or `limit`")

        async def lines() -> AsyncIterator[bytes]:
            if fmt == "csv":
                yield (",".join(CSV_COLUMNS) + "\n").encode()
            after = 0
            while True:
                page = await state.list_audit(
                    q.workspace_id,
                    since=q.since,
                    until=q.until,
                    actor=q.actor,
                    action=q.action,
                    after_id=after,
                    limit=EXPORT_PAGE,
                )
                for entry in page:
                    if fmt == "csv":
                        yield csv_row(entry).encode()
                    else:
                        yield msgspec.json.encode(entry_view(entry)) + b"\n"
                if len(page) < EXPORT_PAGE:
                    return
                after = page[-1].id

        media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
        disposition = f'attachment; filename="eventyard-audit.{fmt}"'
        return StreamingResponse(lines(), media_type=media, headers={"content-disposition": disposition})

    return [
        Route("/api/v1/audit", list_entries, methods=["GET"]),
        Route("/api/v1/audit/export", export, methods=["GET"]),
    ]
