"""The tracking API as a plain ASGI callable (no router on the hot path).

Paths are looked up in one dict; anything that is not a tracking path goes to the
``fallback`` app (the control plane and UI). Every response to a browser (a
request with ``Origin``) carries CORS headers so browser SDKs can call any path; preflights
are answered here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

from eventyard.collect import browser
from eventyard.collect.auth import basic_user, query_params, write_key_from_query
from eventyard.collect.body import BodyError, decompress, read_body
from eventyard.collect.ingest import Ingestor, RequestRejected, decode_batch, decode_object
from eventyard.collect.reasons import REQUEST, status_of
from eventyard.collect.sources import SourceDirectory
from eventyard.errors import LogFull, Retryable
from eventyard.log.base import EventLog
from eventyard.quality.metrics import Metrics
from eventyard.spec import timestamps
from eventyard.spec.messages import EVENT_TYPES, MERGE, SHORT_TYPES, BatchBody
from eventyard.spec.normalize import Envelope
from eventyard.spec.stored import decode_head
from eventyard.state.base import Source

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)

_encode = msgspec.json.encode

# kind: "event" (single call, fixed type), "batch", "merge", "pixel" (GET, fixed type)
ROUTES: dict[str, tuple[str, str | None]] = {}
for _t in EVENT_TYPES:
    ROUTES[f"/v1/{_t}"] = ("event", _t)
for _letter, _t in SHORT_TYPES.items():
    ROUTES[f"/v1/{_letter}"] = ("event", _t)
for _p in ("/v1/batch", "/v1/import", "/v1/b", "/b", "/beacon/v1/batch"):
    ROUTES[_p] = ("batch", None)
ROUTES["/v1/merge"] = ("merge", MERGE)
ROUTES["/pixel/v1/track"] = ("pixel", "track")
ROUTES["/pixel/v1/page"] = ("pixel", "page")
# analytics.js posts its own usage metrics here; they are acknowledged and counted, not stored.
SDK_METRICS_PATHS = frozenset({"/v1/m", "/m"})

SUCCESS = b'{"success":true}'
#: Seconds a client is asked to wait when the ingest backlog is over its limit.
BACKLOG_RETRY_AFTER = 10.0
#: Refusals of a whole request from a known source that are kept in the ``rejected`` topic
#: (with an excerpt of the body) so the debugger shows them next to refused events.
RECORDED_REQUEST_REASONS = frozenset(
    {
        "invalid_json",
        "invalid_body",
        "invalid_encoding",
        "empty_batch",
        "too_many_events",
        "request_too_large",
    }
)
EXPOSE = b"Retry-After, X-RateLimit-Reset"
ALLOW_HEADERS = (
    b"Authorization, Content-Type, Content-Encoding, AnonymousId, SentAt, X-Retry-Count, "
    b"X-Requested-With, Rsa-Recovered, Rsa-Retry-Attempt, Rsa-Since-Last-Attempt, "
    b"Rsa-Since-First-Attempt, Rsa-Retry-Reason"
)


class RequestInfo:
    """The headers the tracking API reads, gathered in one pass."""

    __slots__ = (
        "authorization",
        "content_encoding",
        "content_length",
        "content_type",
        "forwarded_for",
        "origin",
        "request_headers",
    )

    def __init__(self, scope: Scope) -> None:
        self.authorization = ""
        self.content_encoding = ""
        self.content_length: int | None = None
        self.content_type = ""
        self.origin = b""
        self.forwarded_for = ""
        self.request_headers = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                self.authorization = value.decode("latin-1")
            elif name == b"content-length":
                try:
                    self.content_length = int(value)
                except ValueError:
                    self.content_length = None
            elif name == b"content-encoding":
                self.content_encoding = value.decode("latin-1")
            elif name == b"content-type":
                self.content_type = value.decode("latin-1").lower()
            elif name == b"origin":
                self.origin = value
            elif name == b"x-forwarded-for":
                self.forwarded_for = value.decode("latin-1")
            elif name == b"access-control-request-headers":
                self.request_headers = value


def cors_headers(info: RequestInfo) -> list[tuple[bytes, bytes]]:
    # Browsers send Origin with every cross-origin request; without it there is nobody to tell.
    if not info.origin:
        return []
    return [
        (b"access-control-allow-origin", info.origin),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-expose-headers", EXPOSE),
        (b"vary", b"Origin"),
    ]


async def respond(
    send: Send,
    status: int,
    body: bytes,
    info: RequestInfo,
    content_type: bytes = b"application/json",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *cors_headers(info),
    ]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def error_body(reason: str, message: str, rejected: list[dict[str, Any]] | None = None) -> bytes:
    # `code` and `message` sit at the top level: the Python SDKs read exactly these keys.
    payload: dict[str, Any] = {"success": False, "code": reason, "message": message}
    if rejected:
        payload["rejected"] = rejected
    return _encode(payload)


class CollectApp:
    """ASGI entry point: tracking paths here, everything else to ``fallback``."""

    def __init__(
        self,
        *,
        log: EventLog,
        sources: SourceDirectory,
        metrics: Metrics,
        fallback: ASGIApp,
        backlog_limit: int,
        trust_forwarded_for: bool = False,
        public_url: str | None = None,
    ) -> None:
        self.log = log
        self.sources = sources
        self.metrics = metrics
        self.fallback = fallback
        self.backlog_limit = backlog_limit
        self.trust_forwarded_for = trust_forwarded_for
        self.public_url = public_url
        self.ingestor = Ingestor(log, metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        route = ROUTES.get(path)
        if route is None:
            if path.startswith("/v1/projects/") and path.endswith("/settings"):
                await self._browser(scope, send, path, "segment")
            elif path == "/sourceConfig":
                await self._browser(scope, send, path, "rudderstack")
            elif path in SDK_METRICS_PATHS:
                await self._sdk_metrics(scope, receive, send)
            elif scope["method"] == "OPTIONS" and _is_tracking_path(path):
                await self._preflight(scope, send)
            else:
                await self.fallback(scope, receive, send)
            return
        info = RequestInfo(scope)
        method = scope["method"]
        if method == "OPTIONS":
            await self._preflight(scope, send, info)
            return
        kind, event_type = route
        expected = "GET" if kind == "pixel" else "POST"
        if method != expected and not (kind == "pixel" and method == "HEAD"):
            await self._refuse(send, info, "method_not_allowed", f"use {expected} on {path}")
            return
        try:
            await self._ingest(scope, receive, send, info, kind, event_type)
        except RequestRejected as exc:
            await self._refuse(send, info, exc.reason, exc.message, exc.rejected, exc.retry_after)
        except LogFull as exc:
            await self._refuse(send, info, "log_full", str(exc), retry_after=exc.retry_after)
        except Retryable as exc:
            log.warning("ingest unavailable: %s", exc)
            await self._refuse(send, info, "unavailable", str(exc), retry_after=exc.retry_after)

    async def _refuse(
        self,
        send: Send,
        info: RequestInfo,
        reason: str,
        message: str,
        rejected: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.metrics.requests_rejected.labels(reason).inc()
        extra = None
        if retry_after is not None:
            seconds = str(max(1, round(retry_after))).encode()
            extra = [(b"retry-after", seconds), (b"x-ratelimit-reset", seconds)]
        await respond(send, status_of(reason), error_body(reason, message, rejected), info, extra=extra)

    async def _preflight(self, scope: Scope, send: Send, info: RequestInfo | None = None) -> None:
        info = info or RequestInfo(scope)
        headers = [
            *cors_headers(info),
            (b"access-control-allow-methods", b"GET, POST, HEAD, OPTIONS"),
            (b"access-control-allow-headers", info.request_headers or ALLOW_HEADERS),
            (b"access-control-max-age", b"86400"),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    def _client_ip(self, scope: Scope, info: RequestInfo) -> str | None:
        if self.trust_forwarded_for and info.forwarded_for:
            return info.forwarded_for.split(",")[0].strip() or None
        client = scope.get("client")
        return client[0] if client else None

    async def _ingest(
        self, scope: Scope, receive: Receive, send: Send, info: RequestInfo, kind: str, event_type: str | None
    ) -> None:
        params = query_params(scope.get("query_string", b""))
        hinted_key = basic_user(info.authorization) if info.authorization else None
        hinted_key = hinted_key or write_key_from_query(params)
        source: Source | None = None
        if hinted_key:
            source = await self.sources.find(hinted_key)
            source = self._check_source(source, hinted_key)

        received, received_at = timestamps.now_stamped()
        env = Envelope(
            received=received,
            received_at=received_at,
            client_ip=self._client_ip(scope, info),
            browser=bool(info.origin) or info.content_type.startswith("text/plain"),
        )

        if kind == "pixel":
            if source is None:
                raise RequestRejected("missing_write_key", REQUEST["missing_write_key"].text)
            pixel = _encode(browser.pixel_event(params))
            built = self.ingestor.build_single(pixel, event_type, source, env)
            await self._finish_single(send, info, source, built, gif=True)
            return

        limit = source.limits.max_request_bytes if source else self.sources.max_request_bytes
        if kind != "batch" and source is not None:
            limit = source.limits.max_event_bytes
        body = b""
        try:
            try:
                body = await read_body(receive, limit, info.content_length)
                body = decompress(body, info.content_encoding, limit)
            except BodyError as exc:
                raise RequestRejected(exc.reason, exc.message) from None
            if kind == "batch":
                batch = decode_batch(body)
                if source is None:
                    key = batch.writeKey
                    source = self._check_source(await self.sources.find(key) if key else None, key)
                    self._check_size(body, source.limits.max_request_bytes)
                await self._admit()
                await self._ingest_batch(send, info, source, batch, env, body)
                return
            # The head (the checked fields only) is enough when the event is well formed.
            head = decode_head(body)
            if head is None:
                obj = decode_object(body)
                key = obj.get("writeKey") or obj.get("write_key")
            else:
                key = head.writeKey or head.write_key
            if source is None:
                key = key if isinstance(key, str) else None
                source = self._check_source(await self.sources.find(key) if key else None, key)
                self._check_size(body, source.limits.max_event_bytes)
            await self._admit()
        except RequestRejected as exc:
            if source is not None and exc.reason in RECORDED_REQUEST_REASONS:
                await self.ingestor.record_request_refusal(source, exc.reason, exc.message, body, env)
            raise
        built = self.ingestor.build_single(body, event_type, source, env, head)
        await self._finish_single(send, info, source, built, body_len=len(body))

    def _check_source(self, source: Source | None, key: str | None) -> Source:
        if source is None:
            if not key:
                raise RequestRejected("missing_write_key", REQUEST["missing_write_key"].text)
            raise RequestRejected("invalid_write_key", REQUEST["invalid_write_key"].text)
        if not source.enabled:
            raise RequestRejected("source_disabled", f"source {source.name!r} is disabled")
        return source

    @staticmethod
    def _check_size(body: bytes, limit: int) -> None:
        if len(body) > limit:
            raise RequestRejected("request_too_large", f"the body is {len(body)} bytes; this source allows {limit}")

    async def _admit(self) -> None:
        if self.log.backlog_estimate("ingest") >= self.backlog_limit:
            raise _Backlog()

    async def _ingest_batch(
        self, send: Send, info: RequestInfo, source: Source, batch: BatchBody, env: Envelope, body: bytes
    ) -> None:
        items = batch.batch or []
        if not items:
            raise RequestRejected("empty_batch", "the batch holds no events; send at least one")
        if len(items) > source.limits.max_batch_events:
            raise RequestRejected(
                "too_many_events",
                f"the batch holds {len(items)} events; this source allows "
                f"{source.limits.max_batch_events} per request, split it",
            )
        env.context = batch.context
        env.integrations = batch.integrations
        env.sent_at = batch.sentAt
        outcome = await self.ingestor.store(source, *self.ingestor.build_batch(batch, source, env))
        self.metrics.ingest.count(source.id, outcome.accepted, len(body))
        if not outcome.accepted and not outcome.suppressed:
            raise RequestRejected("no_valid_events", REQUEST["no_valid_events"].text, outcome.rejected)
        if outcome.rejected:
            payload = {"success": True, "accepted": outcome.accepted, "rejected": outcome.rejected}
            await respond(send, 200, _encode(payload), info)
        else:
            await respond(send, 200, b'{"success":true,"accepted":%d}' % outcome.accepted, info)

    async def _finish_single(
        self,
        send: Send,
        info: RequestInfo,
        source: Source,
        built: tuple[list[tuple[str, bytes]], list[dict[str, Any]], int],
        gif: bool = False,
        body_len: int = 0,
    ) -> None:
        outcome = await self.ingestor.store(source, *built)
        self.metrics.ingest.count(source.id, outcome.accepted, body_len)
        if outcome.rejected:
            first = outcome.rejected[0]
            raise RequestRejected(first["reason"], first["message"], outcome.rejected)
        if gif:
            await respond(send, 200, browser.PIXEL_GIF, info, content_type=b"image/gif")
        else:
            await respond(send, 200, SUCCESS, info)

    async def _sdk_metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        info = RequestInfo(scope)
        if scope["method"] == "OPTIONS":
            await self._preflight(scope, send, info)
            return
        try:
            await read_body(receive, 64 * 1024, info.content_length)
        except BodyError as exc:
            await self._refuse(send, info, exc.reason, exc.message)
            return
        self.metrics.sdk_metrics.inc()
        await respond(send, 200, SUCCESS, info)

    async def _browser(self, scope: Scope, send: Send, path: str, flavour: str) -> None:
        info = RequestInfo(scope)
        if scope["method"] == "OPTIONS":
            await self._preflight(scope, send, info)
            return
        params = query_params(scope.get("query_string", b""))
        if flavour == "segment":
            key = path[len("/v1/projects/") : -len("/settings")]
        else:
            key = write_key_from_query(params) or basic_user(info.authorization) or ""
        source = await self.sources.find(key) if key else None
        if source is None or not source.enabled:
            reason = "invalid_write_key" if source is None else "source_disabled"
            await self._refuse(send, info, reason, REQUEST[reason].text)
            return
        base = browser.public_base(scope, self.public_url)
        if flavour == "segment":
            body = browser.segment_settings(source, base, self.sources.consent_settings.get(source.id))
        else:
            body = browser.rudderstack_source_config(source)
        await respond(send, 200, body, info, extra=[(b"cache-control", b"no-store")])


class _Backlog(RequestRejected):
    def __init__(self) -> None:
        super().__init__("backlog_full", REQUEST["backlog_full"].text, retry_after=BACKLOG_RETRY_AFTER)


def _is_tracking_path(path: str) -> bool:
    return path.startswith(("/v1/", "/pixel/", "/beacon/", "/sourceConfig"))
