"""Accepted events as the ingest log holds them, and how they turn into normalized events.

The request path does not normalize. It checks that each event *would* normalize
(``Request.check``), then stores the accepted events of one request as one record: the
bytes the client sent for each, together with what the request contributed, the envelope
(the server's receive time, the batch's ``sentAt``, ``context`` and ``integrations``, the
client's address, the path's event type) and the ``messageId``s made up for events that came
without one. ``load`` runs ``normalize`` on each event when the record is read (by the
pipeline, the live view, replay), so normalization is a pure function of what was stored and
a record always reads back as the same events.

A stored value is the JSON array ``[1, envelope, [event, ...]]``, or ``[1, envelope,
[event, ...], {"<index>": "<made-up messageId>", ...}]``. Records written before this format
hold one normalized event object; ``load`` returns it unchanged.

Why: decoding each event into Python objects, normalizing and encoding it again cost about
10 µs per event on the request path, more than the HTTP, the JSON scan and the durable append
together; and SQLite writes one large row far faster than a hundred small ones (about 240
against 100 MB/s here), each of which also updates the log's indexes. ``check`` decodes only
the fields normalization looks at into a ``msgspec.Struct`` (nested objects are checked to
be objects and skipped, not built) and answers "certainly valid" or "not sure"; "not sure"
takes the full ``normalize`` path, which also produces the exact refusal message, so both
paths accept and refuse exactly the same events.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from eventyard.spec import timestamps
from eventyard.spec.limits import MAX_MESSAGE_ID_CHARS
from eventyard.spec.messages import EVENT_TYPES
from eventyard.spec.normalize import Envelope, EventRejected, normalize
from eventyard.spec.pipeline import PipelineEvent

FORMAT = 1
_decode = msgspec.json.decode
_encode = msgspec.json.encode

Id = str | int | float | None


class _Object(msgspec.Struct):
    """Any JSON object: decoding checks the type and skips the members without building them."""


class EventHead(msgspec.Struct):
    """The fields of an event that decide whether it normalizes; nested objects stay unparsed."""

    type: str | None = None
    userId: Id = None
    anonymousId: Id = None
    messageId: str | int | None = None
    event: Any = None
    groupId: Id = None
    previousId: Id = None
    name: str | None = None
    timestamp: str | None = None
    originalTimestamp: str | None = None
    sentAt: str | None = None
    properties: _Object | None = None
    traits: _Object | None = None
    context: _Object | None = None
    integrations: _Object | None = None
    writeKey: Any = None
    write_key: Any = None


_head_decoder = msgspec.json.Decoder(EventHead)


def decode_head(raw: bytes | msgspec.Raw) -> EventHead | None:
    """The event's head, or ``None`` when its JSON or a checked field's type is off."""
    try:
        return _head_decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def _present(value: Id) -> bool:
    return value is not None and value != ""


def _parses(value: str) -> bool:
    try:
        timestamps.parse(value, "timestamp")
    except timestamps.InvalidTimestamp:
        return False
    return True


class Request:
    """What one request contributes to each of its events, encoded once per request."""

    __slots__ = ("batch_sent_at_ok", "env", "event_type", "prefix")

    def __init__(self, env: Envelope, event_type: str | None = None) -> None:
        self.env = env
        self.event_type = event_type
        self.batch_sent_at_ok = env.sent_at is None or (isinstance(env.sent_at, str) and _parses(env.sent_at))
        fields: dict[str, Any] = {"r": env.received_at}
        if env.sent_at is not None:
            fields["s"] = env.sent_at
        if env.context is not None:
            fields["c"] = env.context
        if env.integrations is not None:
            fields["i"] = env.integrations
        if env.client_ip:
            fields["ip"] = env.client_ip
        if env.browser:
            fields["b"] = True
        if event_type is not None:
            fields["t"] = event_type
        self.prefix = b"[1," + _encode(fields) + b","

    def check(self, raw: bytes | msgspec.Raw, head: EventHead | None = None) -> str | None:
        """Accept one event: the ``messageId`` made up for it (``None`` when it has its own).

        Raises ``EventRejected`` saying why the event cannot be accepted.
        """
        if head is None:
            head = decode_head(raw)
        if head is not None:
            checked = self._check(head)
            if checked is not None:
                return checked or None
        return self._check_slowly(raw)

    def value(self, raws: Sequence[bytes | msgspec.Raw], made_up: dict[int, str] | None = None) -> bytes:
        """The stored record of accepted events (``made_up``: messageIds by index)."""
        parts = [self.prefix, b"[", b",".join(raws), b"]"]
        if made_up:
            parts += [b",", _encode({str(i): mid for i, mid in made_up.items()})]
        parts.append(b"]")
        return b"".join(parts)

    def _check(self, head: EventHead) -> str | None:
        """``""`` (valid, has a messageId), a new messageId (valid, had none) or ``None`` (not sure)."""
        kind = self.event_type or head.type
        if kind not in EVENT_TYPES:
            return None
        if not (_present(head.userId) or _present(head.anonymousId)):
            return None
        if kind == "track":
            if not isinstance(head.event, str) or not head.event.strip():
                return None
        elif kind == "group":
            if not _present(head.groupId):
                return None
        elif kind == "alias" and not (_present(head.previousId) and _present(head.userId)):
            return None
        original = head.originalTimestamp or head.timestamp
        if original and not _parses(original):
            return None
        if head.sentAt:
            if not _parses(head.sentAt):
                return None
        elif not self.batch_sent_at_ok:
            return None
        message_id = head.messageId
        if message_id is None or message_id == "":
            return str(uuid.uuid4())
        if len(str(message_id)) > MAX_MESSAGE_ID_CHARS:
            return None
        return ""

    def _check_slowly(self, raw: bytes | msgspec.Raw) -> str | None:
        """Run the full normalization to decide; it raises ``EventRejected`` with the exact reason."""
        try:
            item = _decode(raw)
        except msgspec.DecodeError as exc:
            raise EventRejected("invalid_json", f"the event is not valid JSON: {exc}") from None
        if not isinstance(item, dict):
            raise EventRejected("not_an_object", "a batch item must be a JSON object")
        given = item.get("messageId")
        normalized = normalize(item, self.event_type, self.env)
        return str(normalized["messageId"]) if given is None or given == "" else None


def load(value: bytes) -> list[dict[str, Any]]:
    """The normalized events of a stored ingest record, in the order they were sent."""
    stored = _decode(value)
    if isinstance(stored, dict):
        return [stored]
    env_fields: dict[str, Any] = stored[1]
    items: list[dict[str, Any]] = stored[2]
    made_up: dict[str, str] = stored[3] if len(stored) > 3 else {}
    received_at: str = env_fields["r"]
    env = Envelope(
        received=datetime.fromisoformat(received_at),
        received_at=received_at,
        context=env_fields.get("c"),
        integrations=env_fields.get("i"),
        sent_at=env_fields.get("s"),
        client_ip=env_fields.get("ip"),
        browser=env_fields.get("b", False),
    )
    event_type: str | None = env_fields.get("t")
    events = []
    for index, item in enumerate(items):
        message_id = made_up.get(str(index))
        if message_id is not None:
            item["messageId"] = message_id
        try:
            events.append(normalize(item, event_type, env))
        except EventRejected as exc:  # pragma: no cover - check() refuses what normalize refuses
            item.setdefault("receivedAt", received_at)
            item.setdefault("messageId", "")
            context = item.get("context")
            item["context"] = {**(context if isinstance(context, dict) else {}), "eventyard": {"error": exc.reason}}
            events.append(item)
    return events


def pipeline_events(record_id: int, source_id: str, value: bytes, received: float) -> list[PipelineEvent]:
    """The events of one ingest record as they enter the pipeline."""
    return [
        PipelineEvent(record_id, source_id, str(event.get("messageId", "")), event, received, index)
        for index, event in enumerate(load(value))
    ]


def raw_events(value: bytes) -> list[Any]:
    """The events as the client sent them (one normalized event for records of the old format)."""
    stored = _decode(value)
    return [stored] if isinstance(stored, dict) else list(stored[2])


__all__ = ["EventHead", "Request", "decode_head", "load", "pipeline_events", "raw_events"]
