"""The JetStream side of the log: one stream, its intake consumers, and reads by sequence.

nats-py's ``fetch`` waits for its timeout when a consumer has nothing (it sends ``expires``
with ``no_wait``, which the server then ignores), so pulls here are plain requests with
``no_wait``: the server sends what it has, then a ``404 No Messages`` status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import api
from nats.js.errors import APIError, NotFoundError

from eventyard.errors import LogFull, Unavailable
from eventyard.log.jetstream_names import Names

#: How long an intake delivery stays with one process before JetStream hands it to another.
INTAKE_ACK_WAIT = 30.0
#: Window in which JetStream drops a second publish with the same ``Nats-Msg-Id``.
DUPLICATE_WINDOW = 300.0
_REQUEST_TIMEOUT = 10.0
CONNECT_SECONDS = 20.0
log = logging.getLogger(__name__)


async def _log_error(exc: Exception) -> None:
    log.warning("NATS connection: %s", exc or type(exc).__name__)


async def _log_reconnect() -> None:
    log.info("NATS connection back")


_PAGE = 1000


class Delivered:
    """One message handed out by a pull: its sequence, body and where to ack it."""

    __slots__ = ("data", "reply", "seq")

    def __init__(self, seq: int, data: bytes, reply: str) -> None:
        self.seq = seq
        self.data = data
        self.reply = reply


def _seq_of(msg: Msg) -> int:
    return int(msg.metadata.sequence.stream)


def _status(msg: Msg) -> str | None:
    if msg.headers and not msg.data:
        return msg.headers.get("Status")
    return None


def translate(exc: BaseException, what: str) -> Exception:
    """A NATS error as eventyard's: a full stream is ``LogFull``, the rest ``Unavailable``."""
    if isinstance(exc, APIError) and exc.err_code in (10047, 10077, 10078):
        return LogFull(f"the NATS stream is full ({exc.description}); raise its limits or wait")
    return Unavailable(f"NATS JetStream failed to {what}: {str(exc) or type(exc).__name__}")


class Stream:
    """A connection to NATS and the log's stream."""

    def __init__(self, servers: Sequence[str], names: Names, replicas: int = 1, max_lease: float | None = None) -> None:
        self.servers = list(servers)
        self.ack_wait = min(INTAKE_ACK_WAIT, max_lease or INTAKE_ACK_WAIT)
        self.names = names
        self.replicas = replicas
        self.nc: Client | None = None
        self._intake_ready: set[str] = set()
        self._closing = False
        self._js: Any = None
        self._pull_locks: dict[str, asyncio.Lock] = {}

    @property
    def js(self) -> Any:
        if self.nc is None:
            raise Unavailable("the NATS log is not started")
        if self._js is None:
            self._js = self.nc.jetstream(timeout=_REQUEST_TIMEOUT)
        return self._js

    async def start(self) -> None:
        try:
            # Reconnects go on forever once connected (a cluster node restarting is routine);
            # the first connection gets CONNECT_SECONDS, then start fails with a clear error.
            self.nc = await asyncio.wait_for(
                nats.connect(
                    servers=self.servers,
                    name="eventyard",
                    connect_timeout=5,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    allow_reconnect=True,
                    error_cb=_log_error,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=_log_reconnect,
                ),
                CONNECT_SECONDS,
            )
        except (TimeoutError, NatsError, OSError) as exc:
            raise Unavailable(
                f"cannot connect to NATS at {', '.join(self.servers)} within {CONNECT_SECONDS:.0f} s "
                f"({str(exc) or type(exc).__name__}); is nats-server running with JetStream (-js)?"
            ) from exc
        config = api.StreamConfig(
            name=self.names.stream,
            subjects=self.names.subjects(),
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            num_replicas=self.replicas,
            duplicate_window=DUPLICATE_WINDOW,
            discard=api.DiscardPolicy.NEW,
            allow_direct=False,
        )
        try:
            try:
                await self.js.stream_info(self.names.stream)
            except NotFoundError:
                await self.js.add_stream(config)
        except (TimeoutError, NatsError, OSError) as exc:
            raise translate(exc, f"create the stream {self.names.stream}") from exc

    async def _disconnected(self) -> None:
        if not self._closing:
            log.warning("NATS connection lost; reconnecting")

    async def close(self) -> None:
        self._closing = True
        if self.nc is not None:
            nc, self.nc, self._js = self.nc, None, None
            with contextlib.suppress(NatsError, OSError, asyncio.TimeoutError):
                await nc.drain()

    async def publish(self, subject: str, data: bytes, msg_id: str | None = None) -> int:
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        try:
            # The subjects belong to this stream only (``<prefix>.>``), so no expected-stream header.
            ack = await self.js.publish(subject, data, headers=headers)
        except (TimeoutError, NatsError, OSError) as exc:
            raise translate(exc, "append") from exc
        return int(ack.seq)

    async def ensure_intake(self, topic: str) -> str:
        name = self.names.intake(topic)
        if name in self._intake_ready:
            return name
        config = api.ConsumerConfig(
            durable_name=name,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=-1,
            max_ack_pending=50_000,
            filter_subject=self.names.live_filter(topic),
        )
        try:
            try:
                await self.js.consumer_info(self.names.stream, name)
            except NotFoundError:
                await self.js.add_consumer(self.names.stream, config)
        except (TimeoutError, NatsError, OSError) as exc:
            raise translate(exc, f"create the intake consumer of {topic!r}") from exc
        self._intake_ready.add(name)
        return name

    async def intake_info(self, topic: str) -> api.ConsumerInfo:
        name = await self.ensure_intake(topic)
        try:
            info: api.ConsumerInfo = await self.js.consumer_info(self.names.stream, name)
            return info
        except (TimeoutError, NatsError, OSError) as exc:
            raise translate(exc, "read the intake consumer") from exc

    async def pull(self, consumer: str, batch: int) -> list[Delivered]:
        """Up to ``batch`` messages the consumer has now (never waits for new ones)."""
        if batch <= 0:
            return []
        if self.nc is None:
            raise Unavailable("the NATS log is not started")
        lock = self._pull_locks.setdefault(consumer, asyncio.Lock())
        async with lock:
            inbox = self.nc.new_inbox()
            sub = await self.nc.subscribe(inbox)
            out: list[Delivered] = []
            try:
                await self.nc.publish(
                    f"$JS.API.CONSUMER.MSG.NEXT.{self.names.stream}.{consumer}",
                    json.dumps({"batch": batch, "no_wait": True}).encode(),
                    reply=inbox,
                )
                while len(out) < batch:
                    msg = await sub.next_msg(timeout=_REQUEST_TIMEOUT)
                    status = _status(msg)
                    if status is not None:
                        if status in ("404", "408", "409"):
                            break
                        raise Unavailable(f"NATS pull from {consumer} answered status {status}")
                    out.append(Delivered(_seq_of(msg), msg.data, msg.reply))
            except (TimeoutError, NatsError, OSError) as exc:
                raise translate(exc, "pull records") from exc
            finally:
                with contextlib.suppress(NatsError):
                    await sub.unsubscribe()
            return out

    async def ack(self, delivered: Sequence[Delivered]) -> None:
        if self.nc is None:
            return
        with contextlib.suppress(NatsError, OSError):
            for d in delivered:
                await self.nc.publish(d.reply, b"+ACK")
            await self.nc.flush(timeout=int(_REQUEST_TIMEOUT))

    async def read(self, subject_filter: str, after: int, limit: int) -> list[Delivered]:
        """Messages matching ``subject_filter`` with sequence above ``after``, in order."""
        if limit <= 0:
            return []
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(1, after + 1),
            ack_policy=api.AckPolicy.NONE,
            filter_subject=subject_filter,
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
        )
        try:
            info = await self.js.add_consumer(self.names.stream, config)
        except (TimeoutError, NatsError, OSError) as exc:
            raise translate(exc, "read records") from exc
        out: list[Delivered] = []
        try:
            want = min(limit, int(info.num_pending or 0))
            while len(out) < want:
                got = await self.pull(info.name, min(_PAGE, want - len(out)))
                if not got:
                    break
                out += got
        finally:
            with contextlib.suppress(NatsError, OSError, asyncio.TimeoutError):
                await self.js.delete_consumer(self.names.stream, info.name)
        return out

    async def get(self, seq: int) -> tuple[str, bytes] | None:
        """The subject and body of message ``seq`` (``None`` once purged)."""
        try:
            msg = await self.js.get_msg(self.names.stream, seq=seq)
        except NotFoundError:
            return None
        except (TimeoutError, NatsError, OSError) as exc:
            raise translate(exc, "read a record") from exc
        return str(msg.subject), bytes(msg.data or b"")

    async def delete_msg(self, seq: int) -> None:
        """Erase message ``seq`` (its bytes are overwritten on disk); gone already is fine."""
        if self.nc is None:
            raise Unavailable("the NATS log is not started")
        body = json.dumps({"seq": seq}).encode()
        try:
            msg = await self.nc.request(
                f"$JS.API.STREAM.MSG.DELETE.{self.names.stream}", body, timeout=_REQUEST_TIMEOUT
            )
        except (TimeoutError, NatsError, OSError) as exc:
            raise translate(exc, "erase a record") from exc
        answer = json.loads(msg.data)
        error = answer.get("error")
        if error and error.get("err_code") != 10037:  # 10037: no message found
            raise Unavailable(f"NATS refused to erase record {seq}: {error.get('description')}")

    async def next_of(self, subject_filter: str, seq: int) -> tuple[int, bytes] | None:
        """The first message matching ``subject_filter`` at or after ``seq``."""
        try:
            msg = await self.js.get_msg(self.names.stream, seq=max(1, seq), subject=subject_filter, next=True)
        except NotFoundError:
            return None
        except (TimeoutError, NatsError, OSError) as exc:
            raise translate(exc, "read a record") from exc
        return int(msg.seq or 0), bytes(msg.data or b"")

    async def info(self, subjects_filter: str | None = None) -> api.StreamInfo:
        try:
            info: api.StreamInfo = await self.js.stream_info(self.names.stream, subjects_filter=subjects_filter)
            return info
        except (TimeoutError, NatsError, OSError) as exc:
            raise translate(exc, "read the stream") from exc

    async def count(self, subject_filter: str) -> int:
        info = await self.info(subject_filter)
        return sum((info.state.subjects or {}).values())

    async def purge_below(self, subject_filter: str, seq: int) -> int:
        """Remove messages matching the filter with a sequence below ``seq``; returns how many."""
        if self.nc is None:
            raise Unavailable("the NATS log is not started")
        body = json.dumps({"filter": subject_filter, "seq": seq}).encode()
        try:
            msg = await self.nc.request(f"$JS.API.STREAM.PURGE.{self.names.stream}", body, timeout=_REQUEST_TIMEOUT)
        except (TimeoutError, NatsError, OSError) as exc:
            raise translate(exc, "purge records") from exc
        answer = json.loads(msg.data)
        if "error" in answer:
            raise Unavailable(f"NATS refused to purge: {answer['error'].get('description')}")
        return int(answer.get("purged", 0))

    async def delete(self) -> None:
        """Drop the stream and its consumers (tests and `eventyard` tooling only)."""
        with contextlib.suppress(NotFoundError):
            await self.js.delete_stream(self.names.stream)
