"""Ingest: check a request's events, append them durably, report refusals.

The unit of work is one request from one source. Accepted events go to the ``ingest``
topic (key: source id) and refused ones to the ``rejected`` topic, in the same group
commit; the caller answers 200 only after both are durable. Accepted events are stored as
sent, with the request's envelope (``eventyard.spec.stored``); they are normalized when read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import msgspec

from eventyard.log import topics
from eventyard.log.base import EventLog
from eventyard.privacy.suppression import REASON as SUPPRESSED
from eventyard.privacy.suppression import Suppressed, SuppressionList
from eventyard.quality.metrics import Metrics
from eventyard.spec.messages import BatchBody
from eventyard.spec.normalize import Envelope, EventRejected
from eventyard.spec.stored import EventHead, Request, decode_head
from eventyard.state.base import Source

INGEST_TOPIC = topics.INGEST
REJECTED_TOPIC = topics.REJECTED

#: How much of a refused body is kept in its ``rejected`` record.
EXCERPT_BYTES = 4096

_encode = msgspec.json.encode
_decode = msgspec.json.decode


class RequestRejected(Exception):
    """The whole request is refused; ``reason`` is a code of ``collect.reasons.REQUEST``."""

    def __init__(
        self,
        reason: str,
        message: str,
        rejected: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.rejected = rejected or []
        self.retry_after = retry_after


@dataclass
class Outcome:
    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    #: Events of suppressed users: refused without telling the client (it got 200 for them).
    suppressed: int = 0


def decode_batch(body: bytes) -> BatchBody:
    try:
        return _decode(body, type=BatchBody)
    except msgspec.ValidationError as exc:
        raise RequestRejected("invalid_body", f"the batch body is malformed: {exc}") from None
    except msgspec.DecodeError as exc:
        raise RequestRejected("invalid_json", f"the body is not valid JSON: {exc}") from None


def decode_object(body: bytes) -> dict[str, Any]:
    try:
        obj = _decode(body)
    except msgspec.DecodeError as exc:
        raise RequestRejected("invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise RequestRejected("invalid_body", f"the body must be a JSON object, got {type(obj).__name__}")
    return obj


def _as_item(data: bytes) -> Any:
    """A refused event's JSON for its ``rejected`` record (``None`` when it does not parse)."""
    try:
        return _decode(data)
    except msgspec.DecodeError:
        return None


def _refusal(
    index: int, item: Any, reason: str, message: str, source: Source, env: Envelope, raw: bytes | None
) -> dict[str, Any]:
    message_id = item.get("messageId") if isinstance(item, dict) else None
    entry: dict[str, Any] = {"index": index, "reason": reason, "message": message}
    if isinstance(message_id, (str, int)) and not isinstance(message_id, bool):
        entry["messageId"] = str(message_id)[:200]
    record = {
        **entry,
        "sourceId": source.id,
        "workspaceId": source.workspace_id,
        "receivedAt": env.received_at,
    }
    if raw is not None and len(raw) > EXCERPT_BYTES:
        record["excerpt"] = raw[:EXCERPT_BYTES].decode("utf-8", "replace")
    elif isinstance(item, dict):
        record["event"] = item
    elif raw is not None:
        record["excerpt"] = raw.decode("utf-8", "replace")
    entry["_record"] = record
    return entry


def _suppression(raw: bytes | msgspec.Raw, head: EventHead | None, found: Suppressed) -> str | None:
    """Why an event of a workspace with suppressions is refused (``None``: it is not)."""
    if head is None:
        head = decode_head(raw)
    if head is not None:
        return found.match(head.userId, head.anonymousId)
    item = _as_item(bytes(raw))
    return found.event(item) if isinstance(item, dict) else None


def _silent_refusal(
    index: int, head: EventHead | None, raw: bytes | msgspec.Raw, source: Source, env: Envelope
) -> dict[str, Any]:
    """The refusal of a suppressed user's event: counted and shown in the live view with its
    messageId, but nothing of the event is kept and the client is not told (Segment's rule)."""
    head = head or decode_head(raw)
    message_id = head.messageId if head is not None else None
    entry: dict[str, Any] = {
        "index": index,
        "reason": SUPPRESSED,
        "message": "the user is suppressed by a regulation; the event was not stored",
    }
    if message_id is not None and message_id != "":
        entry["messageId"] = str(message_id)[:200]
    entry["_record"] = {
        **entry,
        "sourceId": source.id,
        "workspaceId": source.workspace_id,
        "receivedAt": env.received_at,
    }
    entry["_silent"] = True
    return entry


class Ingestor:
    """Turns decoded requests into durable log records."""

    def __init__(self, log: EventLog, metrics: Metrics, suppressions: SuppressionList | None = None) -> None:
        self.log = log
        self.metrics = metrics
        #: Suppressed users, whose events are refused silently (``privacy.suppression``).
        self.suppressions = suppressions

    def build_batch(
        self, batch: BatchBody, source: Source, env: Envelope
    ) -> tuple[list[tuple[str, bytes]], list[dict[str, Any]], int]:
        """The record of the batch's accepted events, the refusals, and how many were accepted."""
        items = batch.batch or []
        limit = source.limits.max_event_bytes
        request = Request(env)
        good: list[msgspec.Raw] = []
        made_up: dict[int, str] = {}
        refused: list[dict[str, Any]] = []
        found = self.suppressions.of(source.workspace_id) if self.suppressions is not None else None
        for index, raw in enumerate(items):
            # With suppressions the head is decoded here, once, for the check and the look-up.
            head = decode_head(raw) if found is not None else None
            try:
                if len(raw) > limit:
                    raise EventRejected("event_too_large", f"the event is {len(raw)} bytes; this source allows {limit}")
                message_id = request.check(raw, head)
            except EventRejected as exc:
                data = bytes(raw)
                refused.append(_refusal(index, _as_item(data), exc.reason, exc.message, source, env, data))
                continue
            if found is not None and _suppression(raw, head, found) is not None:
                refused.append(_silent_refusal(index, head, raw, source, env))
                continue
            if message_id is not None:
                made_up[len(good)] = message_id
            good.append(raw)
        if not good:
            return [], refused, 0
        return [(source.id, request.value(good, made_up))], refused, len(good)

    def build_single(
        self, body: bytes, event_type: str | None, source: Source, env: Envelope, head: EventHead | None = None
    ) -> tuple[list[tuple[str, bytes]], list[dict[str, Any]], int]:
        """One event whose JSON is ``body`` (already known to be an object)."""
        request = Request(env, event_type)
        try:
            message_id = request.check(body, head)
        except EventRejected as exc:
            return [], [_refusal(0, _as_item(body), exc.reason, exc.message, source, env, None)], 0
        found = self.suppressions.of(source.workspace_id) if self.suppressions is not None else None
        if found is not None and _suppression(body, head, found) is not None:
            return [], [_silent_refusal(0, head, body, source, env)], 0
        return [(source.id, request.value([body], None if message_id is None else {0: message_id}))], [], 1

    async def store(
        self, source: Source, accepted: list[tuple[str, bytes]], refused: list[dict[str, Any]], events: int
    ) -> Outcome:
        """Append accepted (``events`` in the ``accepted`` records) and refused events durably.

        Both go in one group commit when both exist.
        """
        records = [(source.id, _encode(r.pop("_record"))) for r in refused]
        if accepted and records:
            await asyncio.gather(
                self.log.append(INGEST_TOPIC, accepted),
                self.log.append(REJECTED_TOPIC, records, archive=True),
            )
        elif accepted:
            await self.log.append(INGEST_TOPIC, accepted)
        elif records:
            await self.log.append(REJECTED_TOPIC, records, archive=True)
        for r in refused:
            self.metrics.events_rejected.labels(r["reason"]).inc()
        silent = [r for r in refused if r.pop("_silent", False)]
        if silent:
            refused = [r for r in refused if r["reason"] != SUPPRESSED]
        return Outcome(events, refused, len(silent))

    async def record_request_refusal(
        self, source: Source, reason: str, message: str, body: bytes, env: Envelope
    ) -> None:
        """Keep a refused request of a known source visible in the live view."""
        record = {
            "index": None,
            "reason": reason,
            "message": message,
            "sourceId": source.id,
            "workspaceId": source.workspace_id,
            "receivedAt": env.received_at,
            "excerpt": body[:EXCERPT_BYTES].decode("utf-8", "replace"),
        }
        await self.log.append(REJECTED_TOPIC, [(source.id, _encode(record))], archive=True)
