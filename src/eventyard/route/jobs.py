"""A delivery job: one event bound for one destination, as stored in its queue."""

from __future__ import annotations

from typing import Any

import msgspec


class Job(msgspec.Struct, frozen=True, omit_defaults=True):
    message_id: str
    source_id: str
    destination_id: str
    event: dict[str, Any]
    #: What to send (the mapped payload); absent means the event itself.
    payload: Any = None
    #: Unix time collect stored the event (latency is measured from here).
    received: float = 0.0
    #: Name of the mapping action that shaped the payload, if any.
    action: str | None = None
    #: Why the job exists when it is not the first pass: "replay" or "resend".
    origin: str | None = None

    def body(self) -> Any:
        return self.event if self.payload is None else self.payload


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Job)


def encode(job: Job) -> bytes:
    return _encoder.encode(job)


def decode(data: bytes) -> Job:
    return _decoder.decode(data)
