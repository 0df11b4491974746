"""An event on its way through the pipeline: the stored event plus where it came from."""

from __future__ import annotations

from typing import Any

import msgspec


class PipelineEvent(msgspec.Struct):
    #: Id of the ingest log record the event was read from.
    record_id: int
    source_id: str
    message_id: str
    #: The normalized event (see ``spec.normalize``); stages may change it.
    event: dict[str, Any]
    #: Unix time the event was stored by collect.
    received: float
    #: Position of the event in its record (a record holds the accepted events of one request).
    index: int = 0
    #: Fields some destinations get in another form (set by the PII stage, ``unify.pii``;
    #: applied per destination by ``route.pii_transform``); ``None`` for most events.
    pii: Any = None

    @property
    def position(self) -> int:
        """A number unique to this event in the log: the record id, or a negative number
        encoding (record id, index) for the second and later events of a record."""
        return self.record_id if self.index == 0 else -((self.record_id << 20) | self.index)

    @property
    def user_key(self) -> str:
        """The key that keeps one user's events in order: userId, else anonymousId."""
        return str(self.event.get("userId") or self.event.get("anonymousId") or self.message_id)


class Dropped(msgspec.Struct, frozen=True):
    event: PipelineEvent
    reason: str
    detail: str = ""


class Failed(msgspec.Struct, frozen=True):
    event: PipelineEvent
    error: str


class Emitted(msgspec.Struct, frozen=True):
    """A new event a stage makes (a blocked event forwarded to a quarantine source, a
    ``Violation Generated`` report): appended to the ingest log under ``source_id`` in the
    same commit as the batch's outcome, so it goes through the pipeline as that source's."""

    source_id: str
    #: A normalized event (with ``messageId``, ``receivedAt``, ...).
    event: dict[str, Any]
    #: The ingest record of the event that caused it: held back with it when that fails.
    record_id: int


class StageResult(msgspec.Struct):
    kept: list[PipelineEvent]
    dropped: list[Dropped] = []
    failed: list[Failed] = []
    emitted: list[Emitted] = []
