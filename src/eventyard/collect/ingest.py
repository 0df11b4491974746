"""Ingest: parse a request's events, normalize them, append them durably, report refusals.

The unit of work is one request from one source. Accepted events go to the ``ingest``
topic (key: source id) and refused ones to the ``rejected`` topic, in the same group
commit; the caller answers 200 only after both are durable.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import msgspec

from eventyard.log import topics
from eventyard.log.base import EventLog
from eventyard.quality.metrics import Metrics
from eventyard.spec.messages import BatchBody
from eventyard.spec.normalize import Envelope, EventRejected, normalize
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


class Ingestor:
    """Turns decoded requests into durable log records."""

    def __init__(self, log: EventLog, metrics: Metrics) -> None:
        self.log = log
        self.metrics = metrics

    def build_batch(
        self, batch: BatchBody, source: Source, env: Envelope
    ) -> tuple[list[tuple[str, bytes]], list[dict[str, Any]]]:
        items = batch.batch or []
        limit = source.limits.max_event_bytes
        accepted: list[tuple[str, bytes]] = []
        refused: list[dict[str, Any]] = []
        for index, raw in enumerate(items):
            data = bytes(raw)
            item: Any = None
            try:
                if len(data) > limit:
                    raise EventRejected(
                        "event_too_large", f"the event is {len(data)} bytes; this source allows {limit}"
                    )
                item = _decode(data)
                if not isinstance(item, dict):
                    raise EventRejected("not_an_object", "a batch item must be a JSON object")
                accepted.append((source.id, _encode(normalize(item, None, env))))
            except EventRejected as exc:
                refused.append(_refusal(index, item, exc.reason, exc.message, source, env, data))
        return accepted, refused

    def build_single(
        self, obj: dict[str, Any], event_type: str | None, source: Source, env: Envelope
    ) -> tuple[list[tuple[str, bytes]], list[dict[str, Any]]]:
        try:
            return [(source.id, _encode(normalize(obj, event_type, env)))], []
        except EventRejected as exc:
            return [], [_refusal(0, obj, exc.reason, exc.message, source, env, None)]

    async def store(self, source: Source, accepted: list[tuple[str, bytes]], refused: list[dict[str, Any]]) -> Outcome:
        """Append accepted and refused events durably, in one group commit when both exist."""
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
        if accepted:
            self.metrics.events_received.labels(source.id).inc(len(accepted))
        for r in refused:
            self.metrics.events_rejected.labels(r["reason"]).inc()
        return Outcome(len(accepted), refused)

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
