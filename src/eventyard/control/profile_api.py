"""The Segment-compatible Profile API.

``GET /v1/spaces/{space}/collections/{users|accounts}/profiles/{type}:{value}/{traits|events|
external_ids|metadata|links}``. ``{space}`` is a workspace id or name; ``{type}:{value}`` is
any identifier (``user_id:42``, ``email:ana@example.com``, ``group_id:acme``) or
``segment_id:<profile id>``. Authentication is HTTP Basic with an access token as the user
name (``-u TOKEN:``): a profile token of the workspace (``eventyard profile token``) or an
owner token. Errors have Segment's shape ``{"error": {"code": ..., "message": ...}}``.

Pagination: ``limit`` and ``next`` (the ``cursor.next`` of the previous answer); every list
answer carries ``cursor: {url, has_more, next}``.

Reads: every endpoint but ``events`` is a handful of index lookups and runs on the event loop
with ``IdentityStore.read_now`` (no hand-off to the worker threads the pipeline keeps busy, no
wait for any lock); ``events`` pages through the history and runs on a worker thread.

Each access token may send ``profile_api_rate_limit_per_second`` requests per second (bursts
of twice that; 0 turns the limit off); beyond it the answer is ``429 too_many_requests`` with
``Retry-After`` (seconds).
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventyard.control.auth import RateLimiter
from eventyard.control.http import json_response
from eventyard.errors import Unavailable
from eventyard.runtime.components import Components
from eventyard.spec import timestamps
from eventyard.state.base import Token, Workspace
from eventyard.state.identity_base import GraphTx, ProfileRow
from eventyard.state.ids import hash_token
from eventyard.unify import profile_views as views
from eventyard.unify.identity_rules import ACCOUNTS, COLLECTIONS

#: Role of tokens made for the Profile API (read-only, one workspace).
PROFILE_ROLE = "profiles"
PATH = "/v1/spaces/{space}/collections/{collection}/profiles/{ref:path}/{what}"
ENDPOINTS = ("traits", "events", "external_ids", "metadata", "links")


#: What the per-token rate limit measures time with (tests swap in a FakeClock).
CLOCK: Callable[[], float] = time.monotonic


class ProfileApiError(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after


def error_response(status: int, code: str, message: str, retry_after: float | None = None) -> Response:
    response = json_response({"error": {"code": code, "message": message}}, status)
    if retry_after is not None:
        seconds = str(max(1, math.ceil(retry_after)))
        response.headers["Retry-After"] = seconds
        response.headers["X-RateLimit-Reset"] = seconds
    return response


def _int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ProfileApiError(400, "bad_request", f"`{name}` must be an integer") from None
    if not lo <= value <= hi:
        raise ProfileApiError(400, "bad_request", f"`{name}` must be between {lo} and {hi}")
    return value


def _list(request: Request, name: str) -> list[str] | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]


def _time(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return timestamps.parse(raw, name).timestamp()
    except timestamps.InvalidTimestamp as exc:
        raise ProfileApiError(400, "bad_request", str(exc)) from None


def _cursor(request: Request, next_value: str | None) -> dict[str, Any]:
    params = {k: v for k, v in request.query_params.items() if k != "next"}
    url = request.url.path + ("?" + urlencode(params) if params else "")
    return {"url": url, "has_more": next_value is not None, "next": next_value or ""}


#: Most tokens (and space names) each lookup cache holds before it starts over.
_CACHE_ENTRIES = 10_000


class _Cache:
    """Token and workspace lookups for a few seconds, so a request costs one store read."""

    def __init__(self, components: Components) -> None:
        self.components = components
        self._tokens: dict[str, tuple[float, Token | None]] = {}
        self._spaces: dict[str, tuple[float, Workspace | None]] = {}

    async def token(self, secret: str) -> Token | None:
        digest = hash_token(secret)
        hit = self._tokens.get(digest)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        found = await self.components.state.token_by_hash(digest)
        if len(self._tokens) > _CACHE_ENTRIES:  # unknown tokens are remembered too: keep it bounded
            self._tokens.clear()
        self._tokens[digest] = (time.monotonic() + 5.0, found)
        return found

    async def space(self, ref: str) -> Workspace | None:
        hit = self._spaces.get(ref)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        found = None
        for ws in await self.components.state.list_workspaces():
            if ref in (ws.id, ws.name):
                found = ws
        if len(self._spaces) > _CACHE_ENTRIES:
            self._spaces.clear()
        self._spaces[ref] = (time.monotonic() + 5.0, found)
        return found


def profile_api_routes(components: Components) -> list[Route]:
    cache = _Cache(components)
    metrics = components.metrics
    rate = components.settings.profile_api_rate_limit_per_second
    limiter = RateLimiter(rate, clock=lambda: CLOCK())

    async def authorize(request: Request) -> Workspace:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            raise ProfileApiError(401, "unauthorized", "send the access token as the Basic auth user name (-u TOKEN:)")
        try:
            user = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            raise ProfileApiError(401, "unauthorized", "the Authorization header is not valid Basic auth") from None
        token = await cache.token(user) if user else None
        if token is None or token.role not in (PROFILE_ROLE, "owner"):
            raise ProfileApiError(401, "unauthorized", "the access token is not valid")
        wait = limiter.wait_seconds(token.token_hash)
        if wait > 0:
            raise ProfileApiError(
                429,
                "too_many_requests",
                f"this access token sent more than {rate:g} requests per second; retry after the Retry-After seconds",
                retry_after=wait,
            )
        space = await cache.space(request.path_params["space"])
        if space is None:
            raise ProfileApiError(404, "not_found", "Space was not found.")
        if token.workspace_id is not None and token.workspace_id != space.id:
            raise ProfileApiError(403, "forbidden", "the access token belongs to another space")
        return space

    def guarded(
        what: str, build: Callable[[Request, GraphTx, ProfileRow], dict[str, Any]]
    ) -> Callable[[Request], Awaitable[Response]]:
        short = what != "events"  # see the module docstring

        async def endpoint(request: Request) -> Response:
            try:
                space = await authorize(request)
                collection = request.path_params["collection"]
                if collection not in COLLECTIONS:
                    raise ProfileApiError(404, "not_found", f"Collection {collection!r} was not found.")
                ref = request.path_params["ref"]
                try:
                    views.parse_ref(ref)
                except ValueError as exc:
                    raise ProfileApiError(400, "bad_request", str(exc)) from None
                if components.identity is None:
                    raise ProfileApiError(503, "unavailable", "identity resolution is not configured here")

                def q(tx: GraphTx) -> dict[str, Any] | None:
                    row = views.find(tx, space.id, collection, ref)
                    return None if row is None else build(request, tx, row)

                store = components.identity.store
                body = await (store.read_now(q) if short else store.read(q))
                if body is None:
                    raise ProfileApiError(404, "not_found", "Profile was not found.")
                response = json_response(body)
            except ProfileApiError as exc:
                response = error_response(exc.status, exc.code, exc.message, exc.retry_after)
            except Unavailable as exc:
                response = error_response(503, "unavailable", str(exc))
            metrics.profile_api_requests.labels(what, str(response.status_code)).inc()
            return response

        return endpoint

    def traits(request: Request, tx: GraphTx, row: ProfileRow) -> dict[str, Any]:
        klass = request.query_params.get("class")
        limit = _int(request, "limit", 10, 1, 200)
        verbose = request.query_params.get("verbose", "false").lower() == "true"
        if klass in ("audience", "computed_trait", "sql_trait"):
            return {"traits": {}, "cursor": _cursor(request, None)}  # no computed traits (yet)
        page, nxt = views.trait_page(row, _list(request, "include"), request.query_params.get("next"), limit, verbose)
        return {"traits": page, "cursor": _cursor(request, nxt)}

    def external_ids(request: Request, tx: GraphTx, row: ProfileRow) -> dict[str, Any]:
        limit = _int(request, "limit", 25, 1, 100)
        rows = tx.identifier_page(row.id, request.query_params.get("next"), limit + 1, _list(request, "include"))
        more = len(rows) > limit
        rows = rows[:limit]
        data = [views.external_id_view(i) for i in rows]
        return {"data": data, "cursor": _cursor(request, rows[-1].key if more and rows else None)}

    def events(request: Request, tx: GraphTx, row: ProfileRow) -> dict[str, Any]:
        limit = _int(request, "limit", 10, 1, 100)
        sort = request.query_params.get("sort", "desc").lower()
        if sort not in ("asc", "desc"):
            raise ProfileApiError(400, "bad_request", "`sort` must be asc or desc")
        include, exclude = _list(request, "include"), _list(request, "exclude")
        cursor = request.query_params.get("next")
        position: tuple[float, str] | None = None
        if cursor:
            ts_text, _, message_id = cursor.partition("|")
            try:
                position = (float(ts_text), message_id)
            except ValueError:
                raise ProfileApiError(400, "bad_request", "`next` is not a cursor of this API") from None
        members = tx.members(row.id)
        found: list[tuple[tuple[float, str], dict[str, Any]]] = []
        start, end = _time(request, "start"), _time(request, "end")
        descending = sort == "desc"
        while len(found) <= limit:
            chunk = tx.events_of(
                members,
                start=start,
                end=end,
                limit=200,
                before=position if descending else None,
                after=None if descending else position,
                descending=descending,
                accounts=row.collection == ACCOUNTS,
            )
            for e in chunk:
                position = (e.ts, e.message_id)
                name = e.name or ""
                if (include and name not in include) or (exclude and name in exclude):
                    continue
                found.append((position, views.event_view(e, row.id, row.collection)))
                if len(found) > limit:
                    break
            if len(chunk) < 200:
                break
        nxt = None
        if len(found) > limit:
            last_ts, last_id = found[limit - 1][0]
            nxt = f"{last_ts!r}|{last_id}"
        return {"data": [view for _, view in found[:limit]], "cursor": _cursor(request, nxt)}

    def metadata(request: Request, tx: GraphTx, row: ProfileRow) -> dict[str, Any]:
        retention = components.identity.retention_seconds if components.identity else 0
        expires = (row.last_seen + retention) if row.last_seen is not None and retention else None
        members = tx.members(row.id)
        return {"metadata": views.metadata_view(row, members, views.source_ids(tx, members), expires)}

    def links(request: Request, tx: GraphTx, row: ProfileRow) -> dict[str, Any]:
        limit = _int(request, "limit", 20, 1, 100)
        return {"data": views.links_view(tx, row, limit), "cursor": _cursor(request, None)}

    builders = {
        "traits": traits,
        "events": events,
        "external_ids": external_ids,
        "metadata": metadata,
        "links": links,
    }
    return [
        Route(PATH.replace("{what}", what), guarded(what, build), methods=["GET"]) for what, build in builders.items()
    ]


__all__ = ["ENDPOINTS", "PROFILE_ROLE", "ProfileApiError", "profile_api_routes"]
