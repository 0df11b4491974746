"""Turn one incoming event into the normalized form stored in the log.

What happens to every event, in this order:

1. field types are checked (``field_type_error``); a wrong type rejects the event, naming the field;
2. ``userId``/``anonymousId`` of ``""`` or ``null`` count as absent, numbers become strings;
   an event needs at least one of them (a merge needs its two identifiers instead);
3. per type: track needs ``event``; group needs ``groupId``; alias needs ``previousId`` and
   ``userId``; identify takes its traits from ``context.traits`` when ``traits`` is missing;
4. ``messageId`` is kept (made a string) or generated, and must be at most 100 characters;
5. the batch's ``context`` and ``integrations`` are merged under the event's own keys;
6. ``context.ip`` is filled with the client's address for browser traffic (or when the
   caller sets ``context.direct``), unless the event already carries one;
7. timestamps: ``receivedAt`` is the server's clock; ``originalTimestamp`` is the device
   time of the call (the event's ``originalTimestamp``, else its ``timestamp``, else the
   server's time: a ``timestamp`` passed by the caller is relabelled, as Segment does); ``sentAt``
   comes from the event or the batch; ``timestamp`` is ``receivedAt - (sentAt -
   originalTimestamp)``, which removes the device's clock skew;
8. a ``writeKey`` inside the event is removed so secrets do not travel downstream.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from eventyard.spec import timestamps
from eventyard.spec.limits import MAX_MESSAGE_ID_CHARS
from eventyard.spec.messages import EVENT_TYPES, MERGE, MergeEvent, field_type_error

#: Libraries that run on a user's device; their events get ``context.ip`` from the request.
CLIENT_LIBRARIES = frozenset(
    {
        "analytics.js",
        "analytics-next",
        "@segment/analytics-next",
        "RudderLabs JavaScript SDK",
        "analytics-ios",
        "analytics-android",
        "analytics-react-native",
        "analytics-kotlin",
        "analytics-swift",
        "com.rudderstack.android.sdk.core",
        "rudder-ios-library",
        "@rudderstack/rudder-sdk-react-native",
    }
)


class EventRejected(Exception):
    """One event cannot be accepted; ``reason`` is a stable code, ``message`` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Envelope(msgspec.Struct):
    """What a request contributes to each of its events."""

    received: datetime
    received_at: str
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    sent_at: Any = None
    client_ip: str | None = None
    browser: bool = False


def _ident(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def normalize(item: dict[str, Any], event_type: str | None, env: Envelope) -> dict[str, Any]:
    """Return the normalized event, or raise ``EventRejected``."""
    if event_type is not None:
        item["type"] = event_type
    problem = field_type_error(item)
    if problem is not None:
        raise EventRejected("invalid_field", problem)
    kind = item.get("type")
    if kind is None or kind == "":
        raise EventRejected("missing_type", "the event has no `type`")
    if kind not in EVENT_TYPES and kind != MERGE:
        raise EventRejected(
            "invalid_type",
            f"`type` must be one of track, identify, page, screen, group, alias; got {kind[:40]!r}",
        )

    for field in ("userId", "anonymousId", "groupId", "previousId"):
        if field in item:
            value = _ident(item[field])
            if value is None:
                del item[field]
            else:
                item[field] = value
    has_id = "userId" in item or "anonymousId" in item

    if kind == MERGE:
        _check_merge(item)
    elif not has_id:
        raise EventRejected("missing_user_id", "the event has neither `userId` nor `anonymousId`; send one")
    if kind == "track":
        name = item.get("event")
        if not isinstance(name, str) or not name.strip():
            raise EventRejected("missing_event", "a track call needs a non-empty `event` name")
    elif kind == "group" and "groupId" not in item:
        raise EventRejected("missing_group_id", "a group call needs a `groupId`")
    elif kind == "alias":
        if "previousId" not in item:
            raise EventRejected("missing_previous_id", "an alias call needs a `previousId`")
        if "userId" not in item:
            raise EventRejected("missing_user_id", "an alias call needs a `userId`")

    message_id = item.get("messageId")
    if message_id is None or message_id == "":
        item["messageId"] = str(uuid.uuid4())
    else:
        message_id = str(message_id)
        if len(message_id) > MAX_MESSAGE_ID_CHARS:
            raise EventRejected(
                "message_id_too_long",
                f"`messageId` has {len(message_id)} characters; at most {MAX_MESSAGE_ID_CHARS}",
            )
        item["messageId"] = message_id

    context = item.get("context")
    if env.context:
        context = {**env.context, **context} if context else dict(env.context)
    if context is None:
        context = {}
    item["context"] = context
    if env.integrations:
        own = item.get("integrations")
        item["integrations"] = {**env.integrations, **own} if own else dict(env.integrations)

    if kind == "identify" and item.get("traits") is None:
        ctx_traits = context.get("traits")
        if isinstance(ctx_traits, dict):
            item["traits"] = dict(ctx_traits)

    if env.client_ip and "ip" not in context:
        library = context.get("library")
        lib_name = library.get("name") if isinstance(library, dict) else None
        if env.browser or context.get("direct") is True or lib_name in CLIENT_LIBRARIES:
            context["ip"] = env.client_ip

    _stamp_times(item, env)
    item.pop("writeKey", None)
    item.pop("write_key", None)
    return item


def _stamp_times(item: dict[str, Any], env: Envelope) -> None:
    try:
        original_raw = item.get("originalTimestamp") or item.get("timestamp")
        original = timestamps.parse(original_raw, "timestamp") if original_raw else None
        sent_raw = item.get("sentAt") or env.sent_at
        sent = timestamps.parse(sent_raw, "sentAt") if sent_raw else None
    except timestamps.InvalidTimestamp as exc:
        raise EventRejected("invalid_timestamp", str(exc)) from None
    item["receivedAt"] = env.received_at
    item["originalTimestamp"] = original_raw or env.received_at
    if sent is not None:
        item["sentAt"] = timestamps.format_utc(sent)
    if original is None:
        item["timestamp"] = env.received_at
    else:
        item["timestamp"] = timestamps.format_utc(timestamps.corrected(env.received, sent, original))


def _check_merge(item: dict[str, Any]) -> None:
    try:
        merge = msgspec.convert(item, MergeEvent)
    except msgspec.ValidationError as exc:
        raise EventRejected("invalid_merge", f"a merge call needs `mergeProperties`: {exc}") from None
    props = merge.mergeProperties
    if len(props) != 2:
        raise EventRejected("invalid_merge", f"`mergeProperties` must hold exactly 2 identifiers, got {len(props)}")
    for i, prop in enumerate(props):
        if not prop.type or _ident(prop.value) is None:
            raise EventRejected("invalid_merge", f"`mergeProperties[{i}]` needs a non-empty `type` and `value`")
