"""The ``nats`` destination: events as JSON on NATS subjects, optionally acknowledged by JetStream."""

from eventyard.destinations.nats.destination import NatsDestination
from eventyard.destinations.nats.settings import NatsSettings

__all__ = ["NatsDestination", "NatsSettings"]
