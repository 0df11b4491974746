"""The NATS destination: each event's payload as JSON on a subject, core NATS or JetStream.

Core NATS has no acknowledgement: a batch counts as delivered once a flush round trip shows
the server has received it. With ``jetstream: true`` every message waits for the stream's
ack and carries ``Nats-Msg-Id: <messageId>``, so a retried event is stored once. Connection
failures and timeouts are retries; a subject no stream takes is a configuration error
(failed), unless the destination creates its stream itself (``create_stream``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from eventyard.destinations.base import Capabilities, DeliveryEvent, Destination, Outcome
from eventyard.destinations.nats.settings import NatsSettings
from eventyard.errors import ConfigError

if TYPE_CHECKING:
    from eventyard.destinations.nats.publisher import Publisher


class NatsDestination(Destination):
    """Publishes each event to a subject rendered from a template."""

    name: ClassVar[str] = "nats"
    Settings: ClassVar[type[msgspec.Struct]] = NatsSettings
    capabilities: ClassVar[Capabilities] = Capabilities(batch_size=100, concurrency=4)

    settings: NatsSettings
    _publisher: Publisher | None = None

    @classmethod
    def capabilities_for(cls, settings: Any) -> Capabilities:
        s: NatsSettings = settings
        return Capabilities(batch_size=s.max_batch_size, concurrency=4)

    async def start(self) -> None:
        if self._publisher is None:
            self._publisher = _new_publisher(self.settings, self.context.name)

    async def close(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await publisher.close()

    async def deliver(self, batch: Sequence[DeliveryEvent]) -> list[Outcome]:
        if not batch:
            return []
        if self._publisher is None:
            await self.start()
        assert self._publisher is not None
        return await self._publisher.publish(batch)

    async def check(self) -> None:
        """Connect with a connection of its own; with JetStream, look for the stream (nothing is created)."""
        publisher = _new_publisher(self.settings, f"{self.context.name}-check")
        try:
            await publisher.check()
        finally:
            await publisher.close()


def _new_publisher(settings: NatsSettings, name: str) -> Publisher:
    try:
        from eventyard.destinations.nats.publisher import Publisher
    except ImportError as exc:
        raise ConfigError(f"the nats destination needs the nats-py package (pip install nats-py): {exc}") from None
    return Publisher(settings, name)
