"""The NATS side of the destination: one connection, core and JetStream publishing.

This is the only module that imports ``nats`` (nats-py); the destination imports it in
``start``. The client never reconnects by itself (``allow_reconnect=False``): a broken
connection fails the deliveries in flight as retries and the next delivery connects again,
so nothing is buffered out of sight while the server is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Sequence

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.client import JetStreamContext

from eventyard.destinations.base import DeliveryEvent, Outcome, classify_status
from eventyard.destinations.nats.settings import NatsSettings, pattern, render
from eventyard.errors import ConfigError, Unavailable

log = logging.getLogger(__name__)

#: JetStream drops a message whose id it has seen within the stream's duplicate window.
MSG_ID_HEADER = "Nats-Msg-Id"
#: Errors that mean the connection or the server is not there right now.
TRANSIENT = (nats.errors.Error, OSError, TimeoutError)


class _Message(msgspec.Struct, frozen=True):
    index: int
    subject: str
    body: bytes
    headers: dict[str, str]


class Publisher:
    """Publishes batches on one lazily opened connection."""

    def __init__(self, settings: NatsSettings, name: str) -> None:
        self.settings = settings
        self.name = name
        self._nc: Client | None = None
        self._stream_ready = False
        self._connecting = asyncio.Lock()

    async def publish(self, batch: Sequence[DeliveryEvent]) -> list[Outcome]:
        s = self.settings
        try:
            nc = await self._connection()
            if s.jetstream:
                await self._ensure_stream(nc)
        except ConfigError as exc:
            return [Outcome.failed(str(exc))] * len(batch)
        except Unavailable as exc:
            return [Outcome.retry(str(exc))] * len(batch)
        except TRANSIENT as exc:
            return [Outcome.retry(f"NATS at {self._where()}: {_describe(exc)}")] * len(batch)
        outcomes: list[Outcome] = [Outcome.delivered()] * len(batch)
        messages: list[_Message] = []
        for i, item in enumerate(batch):
            try:
                body = msgspec.json.encode(item.payload)
            except (TypeError, ValueError, OverflowError) as exc:
                outcomes[i] = Outcome.failed(f"the payload cannot be encoded as JSON: {exc}")
                continue
            if len(body) > nc.max_payload:
                limit = nc.max_payload
                outcomes[i] = Outcome.failed(f"payload of {len(body)} bytes is over the server's limit of {limit}")
                continue
            subject = render(s.subject, item.event, item.source_id)
            messages.append(_Message(i, subject, body, {MSG_ID_HEADER: item.message_id}))
        results = await (self._publish_acked(nc, messages) if s.jetstream else self._publish_core(nc, messages))
        for message, outcome in zip(messages, results, strict=True):
            outcomes[message.index] = outcome
        return outcomes

    async def check(self) -> None:
        """Connect; with JetStream, require a stream for the subject (or one that will be created)."""
        s = self.settings
        nc = await self._connection()
        if not s.jetstream:
            return
        js = nc.jetstream(timeout=s.timeout_seconds)
        try:
            if s.stream is not None:
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await js.stream_info(s.stream)
                    return
                if not s.create_stream:
                    raise ConfigError(f"JetStream stream {s.stream!r} does not exist: create it or set `create_stream`")
                return
            subject = render(s.subject, {"type": "track", "event": "check"}, "check")
            try:
                await js.find_stream_name_by_subject(subject)
            except nats.js.errors.NotFoundError:
                raise ConfigError(f"no JetStream stream takes subject {subject!r}: {_STREAM_HINT}") from None
        except nats.errors.NoRespondersError:
            raise ConfigError(f"JetStream is not enabled on the NATS server at {self._where()}") from None
        except TRANSIENT as exc:
            raise Unavailable(f"NATS at {self._where()}: {_describe(exc)}") from None

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None:
            await _close_quietly(nc, self.settings.timeout_seconds)

    async def _publish_core(self, nc: Client, messages: Sequence[_Message]) -> list[Outcome]:
        """Publish all, then one flush round trip: the server has them all (core NATS has no ack)."""
        s = self.settings
        try:
            for m in messages:
                await nc.publish(m.subject, m.body, headers=m.headers)
            await asyncio.wait_for(nc.flush(timeout=math.ceil(s.timeout_seconds)), s.timeout_seconds)
        except TRANSIENT as exc:
            await self.close()  # a flush that timed out leaves a doubtful connection: start afresh
            return [Outcome.retry(f"NATS at {self._where()}: {_describe(exc)}")] * len(messages)
        return [Outcome.delivered()] * len(messages)

    async def _publish_acked(self, nc: Client, messages: Sequence[_Message]) -> list[Outcome]:
        js = nc.jetstream(timeout=self.settings.timeout_seconds)
        return list(await asyncio.gather(*(self._publish_one(js, m) for m in messages)))

    async def _publish_one(self, js: JetStreamContext, m: _Message) -> Outcome:
        s = self.settings
        try:
            await js.publish(m.subject, m.body, timeout=s.timeout_seconds, stream=s.stream, headers=dict(m.headers))
        except nats.js.errors.NoStreamResponseError:
            if s.create_stream:
                self._stream_ready = False
                return Outcome.retry(f"JetStream stream {s.stream!r} is gone; it is created again on the next try")
            return Outcome.failed(f"no JetStream stream takes subject {m.subject!r}: {_STREAM_HINT}")
        except nats.js.errors.APIError as exc:
            # JetStream's codes follow HTTP's: 400/404 will fail again, 503 (a full stream, no leader) may not.
            code = exc.code or 500
            outcome = classify_status(code)
            return msgspec.structs.replace(outcome, error=f"JetStream error {code}: {exc.description or exc}")
        except TRANSIENT as exc:
            return Outcome.retry(f"NATS at {self._where()}: {_describe(exc)}")
        return Outcome.delivered()

    async def _connection(self) -> Client:
        async with self._connecting:
            if self._nc is not None and self._nc.is_connected:
                return self._nc
            await self.close()
            s = self.settings
            nc = Client()
            try:
                await asyncio.wait_for(
                    nc.connect(
                        servers=list(s.servers),
                        name=f"eventyard-{self.name}",
                        user=s.user,
                        password=s.password,
                        token=s.token,
                        connect_timeout=math.ceil(s.timeout_seconds),
                        allow_reconnect=False,
                        max_reconnect_attempts=1,
                        reconnect_time_wait=0,
                        error_cb=self._on_error,
                    ),
                    s.timeout_seconds,
                )
            except TRANSIENT as exc:
                await _close_quietly(nc, s.timeout_seconds)
                raise Unavailable(f"cannot connect to NATS at {self._where()}: {_describe(exc)}") from None
            self._nc = nc
            self._stream_ready = False
            return nc

    async def _ensure_stream(self, nc: Client) -> None:
        s = self.settings
        if self._stream_ready or not s.create_stream or s.stream is None:
            return
        js = nc.jetstream(timeout=s.timeout_seconds)
        try:
            await js.stream_info(s.stream)
        except nats.js.errors.NotFoundError:
            subjects = [pattern(s.subject)]
            try:
                await js.add_stream(name=s.stream, subjects=subjects)
            except nats.js.errors.APIError as exc:
                if exc.code is not None and 400 <= exc.code < 500:
                    raise ConfigError(
                        f"cannot create JetStream stream {s.stream!r} for {subjects[0]}: {exc.description}"
                    ) from None
                raise
            log.info("created JetStream stream %s for %s", s.stream, subjects[0])
        self._stream_ready = True

    async def _on_error(self, exc: Exception) -> None:
        log.debug("NATS connection of %s: %s", self.name, _describe(exc))

    def _where(self) -> str:
        return ", ".join(self.settings.servers)


_STREAM_HINT = "create a stream covering it, or set `stream` and `create_stream: true`"


async def _close_quietly(nc: Client, limit_seconds: float) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.close(), limit_seconds)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within the timeout ({type(exc).__name__})"
    text = str(exc) or type(exc).__name__
    return text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"
