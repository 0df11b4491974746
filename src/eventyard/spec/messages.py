"""Message shapes of the tracking API, as msgspec Structs used to validate field types.

Events are kept as dicts end to end (unknown fields are the user's data and travel on);
these Structs only check that the fields eventyard reads have the right JSON types, and
give precise messages such as ``Expected `object`, got `str` - at `$.properties```.
"""

from __future__ import annotations

from typing import Any

import msgspec

#: Call types of the Segment spec plus RudderStack's ``merge``.
EVENT_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
MERGE = "merge"

#: Browser SDK short paths (``/v1/t`` ...) by first letter.
SHORT_TYPES = {t[0]: t for t in EVENT_TYPES}

Id = str | int | float | None


class WireEvent(msgspec.Struct):
    """Fields of one event that eventyard interprets, with their allowed JSON types."""

    type: str | None = None
    userId: Id = None
    anonymousId: Id = None
    messageId: str | int | None = None
    event: Any = None
    name: str | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    groupId: Id = None
    previousId: Id = None
    timestamp: str | None = None
    originalTimestamp: str | None = None
    sentAt: str | None = None


class MergeProperty(msgspec.Struct):
    type: str
    value: str | int | float


class MergeEvent(msgspec.Struct):
    """RudderStack's ``/v1/merge`` body: two identifiers that belong to one user."""

    mergeProperties: list[MergeProperty]


class BatchBody(msgspec.Struct):
    """A batch request: items stay raw so each is sized and validated on its own."""

    batch: list[msgspec.Raw] | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    writeKey: str | None = None
    sentAt: str | None = None
