"""Recording the audit trail: an ASGI middleware around the control app.

For a request that matches :data:`eventyard.control.audit.RULES`, the middleware lets the
endpoint run, waits until the response status is known (and, for a change, until the small
JSON answer is complete, to take the new object's id from it), appends one entry to the state
store and only then passes the response on. So:

- a read of personal data whose entry cannot be written is answered ``503 audit_unavailable``
  and none of the data leaves the server (fail closed);
- a change is already committed when its status is known; if its entry cannot be written the
  entry goes to the server log at ERROR level (with everything it would have held), the
  metric ``eventyard_audit_write_failures_total`` counts it, and further changes are refused
  with ``503 audit_unavailable`` until an entry can be written again (the refusal itself is
  recorded, which is how the trail recovers).

Nothing here raises into the endpoint except a refused read; see docs/audit.md.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec
from starlette.datastructures import Headers, QueryParams
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventyard.control import audit
from eventyard.quality.metrics import Metrics
from eventyard.state.base import StateStore, Token, Workspace
from eventyard.state.ids import hash_token

log = logging.getLogger("eventyard.audit")

#: Largest request body parsed for the detail, and response body held for the object id.
_MAX_BODY = 4 * 1024 * 1024
_MAX_ANSWER = 64 * 1024
_CACHE_SECONDS = 5.0


class _Refused(Exception):
    """Raised from ``send`` so that a read whose entry failed stops before any data leaves."""


class AuditRecorder:
    """Appends entries; knows who a token is; remembers whether the last write failed."""

    def __init__(self, state: StateStore, metrics: Metrics, clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.metrics = metrics
        self.clock = clock
        #: True after a failed write, until one succeeds.
        self.failing = False
        self._tokens: dict[str, tuple[float, Token | None]] = {}
        self._spaces: tuple[float, list[Workspace]] = (0.0, [])

    async def token(self, secret: str) -> Token | None:
        digest = hash_token(secret)
        hit = self._tokens.get(digest)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        found = await self.state.token_by_hash(digest)
        if len(self._tokens) > 10_000:
            self._tokens.clear()
        self._tokens[digest] = (time.monotonic() + _CACHE_SECONDS, found)
        return found

    async def workspace_id(self, token: Token | None, ref: str) -> str | None:
        """The token's workspace, else the one named by ``ref`` (id or name), else the only one."""
        if token is not None and token.workspace_id is not None:
            return token.workspace_id
        expires, spaces = self._spaces
        if expires <= time.monotonic():
            spaces = await self.state.list_workspaces()
            self._spaces = (time.monotonic() + _CACHE_SECONDS, spaces)
        for ws in spaces:
            if ref and ref in (ws.id, ws.name):
                return ws.id
        return spaces[0].id if len(spaces) == 1 else None

    async def append(
        self,
        workspace_id: str | None,
        actor: str,
        action: str,
        target: str,
        origin: str,
        detail: dict[str, Any],
        kind: str,
    ) -> bool:
        try:
            await self.state.append_audit(workspace_id, actor, action, target, origin, detail, at=self.clock())
        except Exception as exc:
            self.failing = True
            self.metrics.audit_write_failures.labels(kind).inc()
            entry: dict[str, Any] = {"workspace_id": workspace_id, "actor": actor, "action": action}
            entry |= {"target": target, "origin": origin, "detail": detail}
            problem = f"{type(exc).__name__}: {exc}"
            log.error("audit: cannot write an entry (%s); the entry: %s", problem, json.dumps(entry))
            return False
        self.failing = False
        return True


def _answer_id(body: bytes) -> str:
    """The id of an object a change created, from its JSON answer (never anything else)."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return ""
    if isinstance(data, list):  # RudderStack's regulations answer a list
        ids = [str(d["id"]) for d in data if isinstance(d, dict) and isinstance(d.get("id"), (str, int))]
        return ",".join(ids)[: audit.MAX_TEXT]
    for holder in (data, data.get("data") if isinstance(data, dict) else None):
        if isinstance(holder, dict):
            for key in ("id", "regulateId"):
                if isinstance(holder.get(key), (str, int)):
                    return str(holder[key])
    return ""


def _refusal(path: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    message = "the audit trail cannot be written right now, so this was refused; see the server log"
    error = {"code": "audit_unavailable", "message": message}
    body = msgspec.json.encode({"error": error} if path.startswith("/v1/spaces/") else error)
    headers = [(b"content-type", b"application/json"), (b"retry-after", b"5")]
    return 503, [*headers, (b"content-length", str(len(body)).encode())], body


class AuditMiddleware:
    def __init__(self, app: ASGIApp, recorder: AuditRecorder, trust_forwarded_for: bool = False) -> None:
        self.app = app
        self.recorder = recorder
        self.trust_forwarded_for = trust_forwarded_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = audit.match(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        body: dict[str, Any] = {}
        if found.rule.body or scope["method"] in audit.WRITE_METHODS:
            receive, body = await _buffered(receive)
        if found.rule.kind == audit.CHANGE and self.recorder.failing:
            # Refused, and the refusal recorded: once that works the trail is back.
            await self._record(scope, found, body, 503, "", {"refused": "audit_unavailable"})
            await _send_refusal(scope["path"], send)
            return
        exchange = _Exchange(self, scope, found, body, send)
        try:
            await self.app(scope, receive, exchange.send)
        except Exception:
            if exchange.refused:
                await _send_refusal(scope["path"], send)
                return
            if not exchange.recorded:
                await self._record(scope, found, body, 500, "", {})
            raise
        if exchange.refused:
            await _send_refusal(scope["path"], send)
        elif not exchange.recorded:  # the endpoint answered nothing at all
            await exchange.finish()

    async def _record(
        self, scope: Scope, found: audit.Match, body: dict[str, Any], status: int, answer_id: str, extra: dict[str, Any]
    ) -> bool:
        if found.derived and (status == 405 or (status == 404 and "endpoint" not in scope)):
            return True  # no endpoint there (for this method): nothing was changed, nothing to record
        headers = Headers(scope=scope)
        query = QueryParams(scope.get("query_string", b""))
        flat_query = {k: ",".join(query.getlist(k)) for k in query}
        secret = audit.credentials(headers.get("authorization", ""))
        try:
            token = await self.recorder.token(secret) if secret else None
            named = body.get("workspace")
            workspace_ref = found.params.get("space") or flat_query.get("workspace") or ""
            workspace_ref = workspace_ref or (named if isinstance(named, str) else "")
            workspace_id = await self.recorder.workspace_id(token, workspace_ref)
        except Exception as exc:  # the store is down: the entry below fails and says so
            log.warning("audit: cannot look up the caller (%s)", exc)
            token, workspace_id = None, None
        actor = f"{token.id}:{token.name}" if token else ("invalid-token" if secret else "anonymous")
        client = scope.get("client")
        origin, proxy = audit.client_origin(
            client[0] if client else None, headers.get("x-forwarded-for", ""), self.trust_forwarded_for
        )
        target = audit.target_of(found, flat_query, body)
        detail: dict[str, Any] = {"status": status, "method": scope["method"], "path": scope["path"]}
        detail |= audit.detail_of(found, flat_query, body)
        if answer_id and (not target or found.rule.action.endswith(".create")):
            if target:
                detail["within"] = target  # e.g. the source a regulation was made for
            target = answer_id
        if proxy:
            detail["proxy"] = proxy
        if agent := headers.get("user-agent"):
            detail["agent"] = agent[:200]
        detail |= extra
        return await self.recorder.append(
            workspace_id, actor, found.rule.action, target or "*", origin, detail, found.rule.kind
        )


class _Exchange:
    """One recorded request: holds the response start (and a change's answer) until the
    entry is written."""

    def __init__(self, mw: AuditMiddleware, scope: Scope, found: audit.Match, body: dict[str, Any], send: Send):
        self.mw, self.scope, self.found, self.body, self._send = mw, scope, found, body, send
        self.status = 500
        self.held: list[Message] = []
        self.answer = b""
        self.recorded = False
        self.refused = False
        self.capture = found.rule.kind == audit.CHANGE

    async def send(self, message: Message) -> None:
        if self.recorded:
            await self._send(message)
            return
        self.held.append(message)
        if message["type"] == "http.response.start":
            self.status = message["status"]
            if not self.capture:
                await self.finish()
        elif message["type"] == "http.response.body":
            self.answer += message.get("body", b"")
            if not message.get("more_body", False) or len(self.answer) > _MAX_ANSWER:
                await self.finish()

    async def finish(self) -> None:
        answer_id = _answer_id(self.answer) if self.capture and 200 <= self.status < 300 else ""
        ok = await self.mw._record(self.scope, self.found, self.body, self.status, answer_id, {})
        self.recorded = True
        if not ok and self.found.rule.kind == audit.READ:
            self.refused = True
            raise _Refused(self.found.rule.action)
        held, self.held = self.held, []
        for message in held:
            await self._send(message)


async def _buffered(receive: Receive) -> tuple[Receive, dict[str, Any]]:
    """Read the whole request body; return a ``receive`` that replays it, and the body as a
    JSON object (``{}`` when it is not one)."""
    chunks: list[bytes] = []
    first: Message | None = None
    while True:
        message = await receive()
        if message["type"] != "http.request":
            first = message
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    raw = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            if first is not None and not chunks:
                return first
            return {"type": "http.request", "body": raw, "more_body": False}
        return first if first is not None else await receive()

    parsed: Any = None
    if raw and len(raw) <= _MAX_BODY:
        try:
            parsed = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            parsed = None
    return replay, parsed if isinstance(parsed, dict) else {}


async def _send_refusal(path: str, send: Send) -> None:
    status, headers, body = _refusal(path)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def audit_middleware(state: StateStore, metrics: Metrics, trust_forwarded_for: bool) -> Middleware:
    """The middleware for ``Starlette(middleware=[...])`` of the control app."""
    return Middleware(AuditMiddleware, recorder=AuditRecorder(state, metrics), trust_forwarded_for=trust_forwarded_for)
