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


class StoredJob(msgspec.Struct, frozen=True):
    """A job as the worker reads it: the event and the payload stay encoded until needed.

    Finding where the event's JSON ends is several times cheaper than building it as dicts,
    and a destination that only sends JSON (``Capabilities.encoded_payloads``) never needs
    the dicts: the stored bytes go out as they are.
    """

    message_id: str
    source_id: str
    destination_id: str
    event: msgspec.Raw
    #: Empty when the job has no mapped payload (the event itself is sent).
    payload: msgspec.Raw = msgspec.Raw(b"")
    received: float = 0.0
    action: str | None = None
    origin: str | None = None

    def body_json(self) -> msgspec.Raw:
        """What to send, as the stored JSON."""
        return self.event if _absent(self.payload) else self.payload

    def decoded(self) -> tuple[dict[str, Any], Any]:
        """The event and what to send, as Python objects (the same object when they are one)."""
        event: dict[str, Any] = _decode_event(self.event)
        return event, event if _absent(self.payload) else _decode_any(self.payload)


def _absent(raw: msgspec.Raw) -> bool:
    return len(raw) == 0 or (len(raw) == 4 and bytes(raw) == b"null")


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Job)
_stored_decoder = msgspec.json.Decoder(StoredJob)
_decode_event = msgspec.json.Decoder(dict[str, Any]).decode
_decode_any = msgspec.json.Decoder().decode


def encode(job: Job) -> bytes:
    return _encoder.encode(job)


def decode(data: bytes) -> Job:
    return _decoder.decode(data)


def decode_stored(data: bytes) -> StoredJob:
    """The job with its event and payload left encoded (raises ``msgspec.DecodeError`` like ``decode``)."""
    return _stored_decoder.decode(data)
