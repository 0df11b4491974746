"""The NATS destination passes the destination conformance suite, core NATS and JetStream."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import nats
import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.aio.subscription import Subscription

from eventyard.destinations.nats import NatsDestination, NatsSettings
from eventyard.testing.conformance import DestinationConformance
from eventyard.testing.services import port_open, require_service

NATS_URL = "nats://127.0.0.1:4222"
TESTS_DIR = Path(__file__).resolve().parents[1]


def nats_is_up() -> bool:
    return port_open("127.0.0.1", 4222)


@pytest.fixture(scope="module")
def require() -> Callable[[bool, str], None]:
    return require_service


class NatsTarget(DestinationConformance):
    nc: Client
    prefix: str

    @pytest.fixture(autouse=True)
    async def server(self, require: Callable[[bool, str], None]) -> AsyncIterator[None]:
        require(nats_is_up(), "NATS on 127.0.0.1:4222")
        self.prefix = f"eyconf.{uuid.uuid4().hex[:12]}"
        self.nc = await nats.connect(NATS_URL)
        try:
            yield
        finally:
            await self.nc.close()


class TestNatsCoreConformance(NatsTarget):
    sub: Subscription
    seen: set[str]

    @pytest.fixture(autouse=True)
    async def subscribed(self, server: None) -> None:
        self.sub = await self.nc.subscribe(f"{self.prefix}.>")
        self.seen = set()

    def make_destination(self, tmp_path: Path) -> NatsDestination:
        settings = NatsSettings(subject=self.prefix + ".{source_id}.{type}", token="nats-token-conformance-0123")
        return NatsDestination(settings, self.context(tmp_path))

    async def delivered_ids(self) -> set[str]:
        await self.nc.flush()  # orders this after every publish the destination flushed
        while self.sub.pending_msgs:
            self.seen.add(json.loads((await self.sub.next_msg()).data)["messageId"])
        return set(self.seen)


class TestNatsJetStreamConformance(NatsTarget):
    stream: str

    @pytest.fixture(autouse=True)
    async def stream_removed(self, server: None) -> AsyncIterator[None]:
        self.stream = f"EYCONF_{uuid.uuid4().hex[:12]}"
        yield
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self.nc.jetstream().delete_stream(self.stream)

    def make_destination(self, tmp_path: Path) -> NatsDestination:
        subject = self.prefix + ".{type}.{event}"
        token = "nats-token-conformance-4567"
        settings = NatsSettings(subject=subject, jetstream=True, stream=self.stream, create_stream=True, token=token)
        return NatsDestination(settings, self.context(tmp_path))

    async def delivered_ids(self) -> set[str]:
        js = self.nc.jetstream()
        try:
            state = (await js.stream_info(self.stream)).state
        except nats.js.errors.NotFoundError:
            return set()
        if not state.messages:
            return set()
        messages = [await js.get_msg(self.stream, seq) for seq in range(state.first_seq, state.last_seq + 1)]
        return {json.loads(m.data or b"{}")["messageId"] for m in messages if m.data}
