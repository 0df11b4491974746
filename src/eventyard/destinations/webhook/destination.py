"""The webhook destination: every event (or a batch of events) as JSON to an HTTP endpoint.

One ``aiohttp.ClientSession`` per destination instance, created in ``start``, pools the
connections. The answer is classified by ``classify_status`` (2xx delivered; 408, 429, 5xx
retry with Retry-After; other 4xx and 3xx failed); a timeout or a connection error is a retry.
In batch mode one request carries a JSON array and its answer applies to every event in it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import aiohttp
import msgspec

from eventyard.destinations.base import (
    Capabilities,
    DeleteSubject,
    DeliveryEvent,
    Destination,
    DestinationContext,
    Outcome,
    Secret,
    classify_status,
    parse_retry_after,
)
from eventyard.errors import ConfigError, Unavailable
from eventyard.spec.timestamps import format_utc

SIGNATURE_HEADER = "X-Eventyard-Signature"
TIMESTAMP_HEADER = "X-Eventyard-Timestamp"
#: Headers eventyard sets itself; the settings cannot override them.
RESERVED_HEADERS = frozenset({SIGNATURE_HEADER.lower(), TIMESTAMP_HEADER.lower(), "content-length", "host"})
#: How much of an error answer's body goes into the outcome's error text.
BODY_EXCERPT_BYTES = 1024


class WebhookSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Settings of a webhook destination."""

    url: str
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    headers: dict[str, str] = {}
    #: When set, every request is signed: ``X-Eventyard-Signature: sha256=<hex HMAC of the body>``.
    secret: Secret | None = None
    #: Send a JSON array of up to ``max_batch_size`` payloads per request.
    batch: bool = False
    max_batch_size: int = 100
    max_batch_bytes: int = 1024 * 1024
    timeout_seconds: float = 10.0
    #: Requests in flight at once (also the connection pool's limit for the host).
    concurrency: int = 4
    #: An optional health URL that ``check`` fetches with GET; without it ``check`` sends nothing.
    check_url: str | None = None
    #: Send a ``{"type": "delete", "userId": ...}`` event for user deletions (regulations).
    delete_events: bool = False

    def __post_init__(self) -> None:
        _check_url(self.url, "url")
        if self.check_url is not None:
            _check_url(self.check_url, "check_url")
        for name, value in self.headers.items():
            if not name or any(c in name for c in ":\r\n \t") or any(c in value for c in "\r\n"):
                raise ValueError(f"invalid header {name!r}: names are tokens, values have no line breaks")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by eventyard and cannot be configured")
        if not 1 <= self.max_batch_size <= 10_000:
            raise ValueError("`max_batch_size` must be between 1 and 10000")
        if self.max_batch_bytes < 1024:
            raise ValueError("`max_batch_bytes` must be at least 1024")
        if not 0 < self.timeout_seconds <= 600:
            raise ValueError("`timeout_seconds` must be more than 0 and at most 600")
        if not 1 <= self.concurrency <= 256:
            raise ValueError("`concurrency` must be between 1 and 256")


def _check_url(url: str, field: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"`{field}` must be an http:// or https:// URL, got {url[:80]!r}")
    if not parts.hostname:
        raise ValueError(f"`{field}` has no host: {url[:80]!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"`{field}` has an invalid port: {url[:80]!r}") from None


def sign(secret: str, body: bytes, timestamp: str) -> str:
    """The ``X-Eventyard-Signature`` value: ``sha256=<hex HMAC-SHA256 of "<timestamp>." + body>``.

    The timestamp (the ``X-Eventyard-Timestamp`` header) is signed with the body, so a receiver
    can refuse old requests and a captured request cannot be replayed later.
    """
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str, body: bytes, signature: str, timestamp: str, max_age_seconds: float = 300.0, now: float | None = None
) -> bool:
    """For receivers: the signature matches and the timestamp is at most ``max_age_seconds`` old."""
    try:
        age = (time.time() if now is None else now) - float(timestamp)
    except ValueError:
        return False
    return abs(age) <= max_age_seconds and hmac.compare_digest(sign(secret, body, timestamp), signature)


class WebhookDestination(Destination):
    """Delivers each event's payload as JSON, one request per event or one per batch."""

    name: ClassVar[str] = "webhook"
    Settings: ClassVar[type[msgspec.Struct]] = WebhookSettings
    capabilities: ClassVar[Capabilities] = Capabilities(batch_size=1, concurrency=4, encoded_payloads=True)

    settings: WebhookSettings

    def __init__(self, settings: Any, context: DestinationContext) -> None:
        super().__init__(settings, context)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def capabilities_for(cls, settings: Any) -> Capabilities:
        s: WebhookSettings = settings
        if not s.batch:
            return Capabilities(batch_size=1, concurrency=s.concurrency, deletes=s.delete_events, encoded_payloads=True)
        return Capabilities(
            batch_size=s.max_batch_size,
            batch_bytes=s.max_batch_bytes,
            batch_age_seconds=1.0,
            concurrency=s.concurrency,
            deletes=s.delete_events,
            encoded_payloads=True,
        )

    async def start(self) -> None:
        if self._session is None or self._session.closed:
            limit = self.settings.concurrency
            connector = aiohttp.TCPConnector(limit=limit * 2, limit_per_host=limit)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
                headers={"User-Agent": "eventyard-webhook"},
            )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def deliver(self, batch: Sequence[DeliveryEvent]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(batch)
        bodies: list[tuple[int, bytes]] = []
        for i, item in enumerate(batch):
            try:
                bodies.append((i, msgspec.json.encode(item.payload)))
            except (TypeError, ValueError, OverflowError) as exc:
                outcomes[i] = Outcome.failed(f"the payload cannot be encoded as JSON: {exc}")
        if self.settings.batch:
            size = self.settings.max_batch_size
            chunks = [bodies[start : start + size] for start in range(0, len(bodies), size)]
            results = await asyncio.gather(*(self._send(b"[" + b",".join(b for _, b in c) + b"]") for c in chunks))
            for chunk, outcome in zip(chunks, results, strict=True):
                for i, _ in chunk:
                    outcomes[i] = outcome
        else:
            results = await asyncio.gather(*(self._send(body) for _, body in bodies))
            for (i, _), outcome in zip(bodies, results, strict=True):
                outcomes[i] = outcome
        return [o if o is not None else Outcome.failed("internal error: no outcome") for o in outcomes]

    async def delete_user(self, subject: DeleteSubject) -> Outcome:
        if not self.settings.delete_events:
            return Outcome.failed("deletion is off for this webhook; set `delete_events: true` to send delete events")
        payload: dict[str, Any] = {
            "type": "delete",
            "userId": subject.user_id,
            "messageId": f"delete-{uuid.uuid4()}",
            "timestamp": format_utc(datetime.fromtimestamp(self.context.clock(), UTC)),
        }
        if subject.identifiers:
            payload["identifiers"] = dict(subject.identifiers)
        body = msgspec.json.encode([payload] if self.settings.batch else payload)
        return await self._send(body)

    async def check(self) -> None:
        """Validate the URLs; fetch ``check_url`` when one is set (the webhook itself is never called)."""
        try:
            _check_url(self.settings.url, "url")
            if self.settings.check_url is not None:
                _check_url(self.settings.check_url, "check_url")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.settings.check_url is None:
            return
        temporary = self._session is None or self._session.closed
        if temporary:
            await self.start()
        try:
            status, text = await self._fetch_check_url(self.settings.check_url)
        finally:
            if temporary:
                await self.close()
        outcome = classify_status(status, text)
        if outcome.kind == "retry":
            raise Unavailable(f"the health check {self.settings.check_url} answered {outcome.error}")
        if outcome.kind == "failed":
            raise ConfigError(f"the health check {self.settings.check_url} answered {outcome.error}; check the URL")

    async def _fetch_check_url(self, url: str) -> tuple[int, str]:
        try:
            async with self._client().get(url, allow_redirects=False) as resp:
                return resp.status, (await resp.content.read(BODY_EXCERPT_BYTES)).decode("utf-8", "replace")
        except TimeoutError:
            raise Unavailable(f"{url} did not answer within {self.settings.timeout_seconds:g}s") from None
        except aiohttp.ClientError as exc:
            raise Unavailable(f"cannot reach {url}: {_describe(exc)}") from None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            raise RuntimeError("WebhookDestination.start() was not called")
        return self._session

    def _headers(self, body: bytes) -> dict[str, str]:
        # aiohttp merges these case-insensitively: a configured content-type replaces the default.
        headers = {"Content-Type": "application/json", **self.settings.headers}
        if self.settings.secret:
            stamp = str(int(self.context.clock()))
            headers[TIMESTAMP_HEADER] = stamp
            headers[SIGNATURE_HEADER] = sign(self.settings.secret, body, stamp)
        return headers

    async def _send(self, body: bytes) -> Outcome:
        url = self.settings.url
        try:
            if self._session is None or self._session.closed:
                await self.start()
            async with self._client().request(
                self.settings.method, url, data=body, headers=self._headers(body), allow_redirects=False
            ) as resp:
                text = (await resp.content.read(BODY_EXCERPT_BYTES)).decode("utf-8", "replace")
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                return classify_status(resp.status, text, retry_after)
        except TimeoutError:
            return Outcome.retry(f"timed out: no answer from {_host(url)} within {self.settings.timeout_seconds:g}s")
        except aiohttp.ClientConnectionError as exc:
            return Outcome.retry(f"connection error talking to {_host(url)}: {_describe(exc)}")
        except aiohttp.ClientError as exc:
            return Outcome.retry(f"HTTP client error talking to {_host(url)}: {_describe(exc)}")


def _host(url: str) -> str:
    return urlsplit(url).netloc


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
