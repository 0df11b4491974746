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


class StageResult(msgspec.Struct):
    kept: list[PipelineEvent]
    dropped: list[Dropped] = []
    failed: list[Failed] = []
