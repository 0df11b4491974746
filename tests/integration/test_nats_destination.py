"""The NATS destination against the real NATS server (JetStream enabled) on 127.0.0.1:4222."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import nats
import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.aio.subscription import Subscription

from eventyard.destinations.base import DestinationContext, Outcome
from eventyard.destinations.nats import NatsDestination, NatsSettings
from eventyard.errors import ConfigError, Unavailable
from eventyard.testing import events
from eventyard.testing.server import free_port
from eventyard.testing.services import port_open, require_service

NATS_URL = "nats://127.0.0.1:4222"
TESTS_DIR = Path(__file__).resolve().parents[1]


def nats_is_up() -> bool:
    return port_open("127.0.0.1", 4222)


@pytest.fixture(scope="module")
def require() -> Callable[[bool, str], None]:
    return require_service


@pytest.fixture
async def nc(require: Callable[[bool, str], None]) -> AsyncIterator[Client]:
    require(nats_is_up(), "NATS on 127.0.0.1:4222")
    client = await nats.connect(NATS_URL)
    yield client
    await client.close()


@pytest.fixture
def prefix() -> str:
    """A subject prefix of this test's own."""
    return f"eytest.{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def streams(nc: Client) -> AsyncIterator[list[str]]:
    """Names of streams the test creates; deleted afterwards."""
    names: list[str] = []
    yield names
    js = nc.jetstream()
    for name in names:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(name)


@pytest.fixture
async def destinations(tmp_path: Path) -> AsyncIterator[Callable[..., NatsDestination]]:
    made: list[NatsDestination] = []

    def make(**options: Any) -> NatsDestination:
        destination = NatsDestination(NatsSettings(**options), DestinationContext("dst-nats", "nats-test", tmp_path))
        made.append(destination)
        return destination

    yield make
    for destination in made:
        await destination.close()


async def received(nc: Client, sub: Subscription) -> list[Any]:
    """Everything the subscription has got so far: a flush round trip orders it after earlier publishes."""
    await nc.flush()
    out = []
    while sub.pending_msgs:
        out.append(await sub.next_msg())
    return out


def unique_stream() -> str:
    return f"EYTEST_{uuid.uuid4().hex[:12]}"


async def test_core_publish_reaches_subscribers_on_templated_subjects(
    nc: Client, prefix: str, destinations: Callable[..., NatsDestination]
) -> None:
    sub = await nc.subscribe(f"{prefix}.>")
    destination = destinations(subject=prefix + ".{type}.{event}.{source_id}")
    await destination.start()
    batch = [
        events.delivery(events.track("Order Completed", message_id="m-1")),
        events.delivery(events.identify(message_id="m-2")),
        msgspec.structs.replace(events.delivery(events.page(message_id="m-3")), source_id="src_Web 1"),
    ]

    outcomes = await destination.deliver(batch)

    assert outcomes == [Outcome.delivered()] * 3
    messages = await received(nc, sub)
    assert [m.subject for m in messages] == [
        f"{prefix}.track.order_completed.unknown",
        f"{prefix}.identify.identify.unknown",
        f"{prefix}.page.page.src_web_1",
    ]
    assert [json.loads(m.data) for m in messages] == [e.payload for e in batch]
    assert [m.headers["Nats-Msg-Id"] for m in messages if m.headers] == ["m-1", "m-2", "m-3"]


async def test_the_mapped_payload_is_what_is_published(
    nc: Client, prefix: str, destinations: Callable[..., NatsDestination]
) -> None:
    sub = await nc.subscribe(f"{prefix}.>")
    destination = destinations(subject=prefix + ".{type}")
    mapped = {"name": "signup", "user": "u-1"}

    outcomes = await destination.deliver([events.delivery(events.track("Signed Up"), payload=mapped)])

    assert outcomes == [Outcome.delivered()]
    [message] = await received(nc, sub)
    assert (message.subject, json.loads(message.data)) == (f"{prefix}.track", mapped)


async def test_jetstream_acks_and_dedupes_by_message_id(
    nc: Client, prefix: str, streams: list[str], destinations: Callable[..., NatsDestination]
) -> None:
    stream = unique_stream()
    streams.append(stream)
    await nc.jetstream().add_stream(name=stream, subjects=[f"{prefix}.>"])
    destination = destinations(subject=prefix + ".{type}", jetstream=True, stream=stream)
    batch = events.deliveries(events.sample(6, prefix="js"))

    first = await destination.deliver(batch)
    again = await destination.deliver([msgspec.structs.replace(e, attempt=2) for e in batch])

    assert first == again == [Outcome.delivered()] * 6
    info = await nc.jetstream().stream_info(stream)
    assert info.state.messages == 6
    stored = [await nc.jetstream().get_msg(stream, seq) for seq in range(1, 7)]
    assert [json.loads(m.data or b"")["messageId"] for m in stored] == [e.message_id for e in batch]
    assert [(m.headers or {}).get("Nats-Msg-Id") for m in stored] == [e.message_id for e in batch]


async def test_jetstream_creates_its_stream_when_asked(
    nc: Client, prefix: str, streams: list[str], destinations: Callable[..., NatsDestination]
) -> None:
    stream = unique_stream()
    streams.append(stream)
    destination = destinations(subject=prefix + ".{type}", jetstream=True, stream=stream, create_stream=True)

    await destination.check()  # a missing stream that will be created is fine, and check creates nothing
    with pytest.raises(nats.js.errors.NotFoundError):
        await nc.jetstream().stream_info(stream)
    outcomes = await destination.deliver(events.deliveries(events.sample(2, prefix="create")))

    assert outcomes == [Outcome.delivered()] * 2
    info = await nc.jetstream().stream_info(stream)
    assert (info.config.subjects, info.state.messages) == ([f"{prefix}.*"], 2)


async def test_jetstream_without_a_stream_fails_with_a_clear_error(
    nc: Client, prefix: str, destinations: Callable[..., NatsDestination]
) -> None:
    destination = destinations(subject=prefix + ".{type}", jetstream=True)

    [outcome] = await destination.deliver([events.delivery(events.track())])

    assert outcome.kind == "failed"
    assert outcome.error.startswith(f"no JetStream stream takes subject '{prefix}.track'")
    with pytest.raises(ConfigError, match="no JetStream stream takes subject"):
        await destination.check()


async def test_jetstream_with_the_wrong_stream_fails(
    nc: Client, prefix: str, streams: list[str], destinations: Callable[..., NatsDestination]
) -> None:
    actual, expected = unique_stream(), unique_stream()
    streams.append(actual)
    await nc.jetstream().add_stream(name=actual, subjects=[f"{prefix}.>"])
    destination = destinations(subject=prefix + ".{type}", jetstream=True, stream=expected)

    [outcome] = await destination.deliver([events.delivery(events.track())])

    assert (outcome.kind, outcome.status) == ("failed", 400)
    assert "expected stream does not match" in outcome.error
    with pytest.raises(ConfigError, match=f"stream '{expected}' does not exist"):
        await destination.check()


async def test_an_unreachable_server_is_a_retry(tmp_path: Path) -> None:
    settings = NatsSettings(subject="events.{type}", servers=[f"nats://127.0.0.1:{free_port()}"], timeout_seconds=2)
    destination = NatsDestination(settings, DestinationContext("dst-nats", "nats-down", tmp_path))
    try:
        outcomes = await destination.deliver(events.deliveries(events.sample(3)))
        with pytest.raises(Unavailable, match="cannot connect to NATS"):
            await destination.check()
    finally:
        await destination.close()

    assert [o.kind for o in outcomes] == ["retry"] * 3
    assert outcomes[0].error.startswith(f"cannot connect to NATS at {settings.servers[0]}")


async def test_a_closed_connection_reconnects_on_the_next_delivery(
    nc: Client, prefix: str, destinations: Callable[..., NatsDestination]
) -> None:
    sub = await nc.subscribe(f"{prefix}.>")
    destination = destinations(subject=prefix + ".{type}")
    assert await destination.deliver([events.delivery(events.track(message_id="before"))]) == [Outcome.delivered()]
    publisher = destination._publisher
    assert publisher is not None and publisher._nc is not None
    await publisher._nc.close()  # as if the server had gone away

    outcomes = await destination.deliver([events.delivery(events.track(message_id="after"))])

    assert outcomes == [Outcome.delivered()]
    assert [json.loads(m.data)["messageId"] for m in await received(nc, sub)] == ["before", "after"]


async def test_an_oversized_payload_fails_alone(
    nc: Client, prefix: str, destinations: Callable[..., NatsDestination]
) -> None:
    sub = await nc.subscribe(f"{prefix}.>")
    destination = destinations(subject=prefix + ".{type}")
    huge = events.track(properties={"blob": "x" * (nc.max_payload + 1)}, message_id="huge")

    outcomes = await destination.deliver([events.delivery(huge), events.delivery(events.track(message_id="small"))])

    assert outcomes[0].kind == "failed" and "over the server's limit" in outcomes[0].error
    assert outcomes[1] == Outcome.delivered()
    assert [json.loads(m.data)["messageId"] for m in await received(nc, sub)] == ["small"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"subject": "events.{nope}"}, "unknown placeholder {nope}"),
        ({"subject": "events.{type!r}"}, "write the placeholder as plain {type}"),
        ({"subject": "events..{type}"}, "not a valid NATS subject"),
        ({"subject": "events.>"}, "not a valid NATS subject"),
        ({"subject": "events.{type", "servers": []}, "subject 'events.{type'"),
        ({"subject": "e", "servers": []}, "at least one URL"),
        ({"subject": "e", "servers": ["http://x"]}, "must start with one of"),
        ({"subject": "e", "stream": "S"}, "need `jetstream: true`"),
        ({"subject": "e", "jetstream": True, "create_stream": True}, "needs the stream's name"),
        ({"subject": "e", "jetstream": True, "stream": "a.b"}, "invalid stream name"),
        ({"subject": "e", "user": "u"}, "go together"),
        ({"subject": "e", "token": "t", "user": "u", "password": "p"}, "either `token`"),
    ],
)
def test_settings_are_validated(options: dict[str, Any], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message.replace("{", r"\{").replace("}", r"\}")):
        msgspec.convert(options, NatsSettings)
