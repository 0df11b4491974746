"""Message shapes of the tracking API.

Events are kept as dicts end to end (unknown fields are the user's data and travel on). The
whole body is parsed by msgspec; the fields eventyard interprets are then type-checked by
``field_type_error`` with one table lookup each, which is about five times faster per event
than ``msgspec.convert`` into a Struct (measured: ~1.5 vs ~7.8 µs) and gives the same kind of
message: ``Expected `object`, got `str` - at `$.properties```.
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


_ID = (str, int, float)

#: The fields eventyard interprets: their allowed JSON types and how a message names them.
FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "type": ((str,), "str"),
    "userId": (_ID, "str | int | float"),
    "anonymousId": (_ID, "str | int | float"),
    "messageId": ((str, int), "str | int"),
    "name": ((str,), "str"),
    "properties": ((dict,), "object"),
    "traits": ((dict,), "object"),
    "context": ((dict,), "object"),
    "integrations": ((dict,), "object"),
    "groupId": (_ID, "str | int | float"),
    "previousId": (_ID, "str | int | float"),
    "timestamp": ((str,), "str"),
    "originalTimestamp": ((str,), "str"),
    "sentAt": ((str,), "str"),
}

_JSON_NAMES = {str: "str", int: "int", float: "float", bool: "bool", dict: "object", list: "array"}


def field_type_error(item: dict[str, Any]) -> str | None:
    """The first interpreted field with a wrong JSON type, as a message; ``None`` when all fit.

    ``null`` is allowed everywhere (it means absent); booleans are not numbers.
    """
    for field, (types, label) in FIELD_TYPES.items():
        value = item.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            got = _JSON_NAMES.get(type(value), type(value).__name__)
            return f"Expected `{label}`, got `{got}` - at `$.{field}`"
    return None


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
