"""Size and count limits of the tracking API, configurable per source."""

from __future__ import annotations

import msgspec

#: Defaults as Segment documents them: 32 KB per event, 500 KB per batch request,
#: 2,500 events per batch.
MAX_EVENT_BYTES = 32 * 1024
MAX_REQUEST_BYTES = 500 * 1024
MAX_BATCH_EVENTS = 2500
MAX_MESSAGE_ID_CHARS = 100


class Limits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Per-source limits; every field must be positive."""

    max_event_bytes: int = MAX_EVENT_BYTES
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_batch_events: int = MAX_BATCH_EVENTS

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value}")
        if self.max_event_bytes > self.max_request_bytes:
            raise ValueError("`max_event_bytes` cannot exceed `max_request_bytes`")
