"""Deterministic builders of normalized events, as they leave ``spec.normalize``.

Every builder returns a fresh dict shaped like a stored event (``messageId``, ``context``,
the four timestamps, ...). The same arguments always give the same event, so tests can
compare exact payloads. ``sample`` cycles through all six types.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from eventyard.destinations.base import DeliveryEvent
from eventyard.spec.timestamps import format_utc

#: The time of the first sample event; event ``i`` of ``sample`` is ``i`` seconds later.
BASE_TIME = datetime(2026, 11, 29, 2, 30, 3, 123000, tzinfo=UTC)

#: Event types in the order ``sample`` cycles through them.
TYPES = ("track", "identify", "page", "screen", "group", "alias")


def _event(
    kind: str,
    message_id: str,
    at: datetime | None,
    user_id: str | None,
    anonymous_id: str | None,
    context: dict[str, Any] | None,
) -> dict[str, Any]:
    stamp = format_utc(at or BASE_TIME)
    event: dict[str, Any] = {"type": kind, "messageId": message_id}
    if user_id is not None:
        event["userId"] = user_id
    if anonymous_id is not None:
        event["anonymousId"] = anonymous_id
    event["context"] = context if context is not None else default_context()
    event["integrations"] = {}
    event["originalTimestamp"] = stamp
    event["sentAt"] = stamp
    event["receivedAt"] = stamp
    event["timestamp"] = stamp
    return event


def default_context() -> dict[str, Any]:
    return {
        "library": {"name": "analytics-python", "version": "2.3.3"},
        "ip": "203.0.113.7",
        "locale": "en-US",
        "timezone": "Europe/Berlin",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0",
    }


def track(
    event: str = "Order Completed",
    properties: dict[str, Any] | None = None,
    *,
    message_id: str = "track-000001",
    at: datetime | None = None,
    user_id: str | None = "user-0001",
    anonymous_id: str | None = "anon-0001",
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out = _event("track", message_id, at, user_id, anonymous_id, context)
    out["event"] = event
    out["properties"] = (
        properties
        if properties is not None
        else {"order_id": "ord-1001", "revenue": 42.5, "currency": "EUR", "products": [{"sku": "SKU-7", "quantity": 2}]}
    )
    return out


def identify(
    traits: dict[str, Any] | None = None,
    *,
    message_id: str = "identify-000001",
    at: datetime | None = None,
    user_id: str | None = "user-0001",
    anonymous_id: str | None = "anon-0001",
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out = _event("identify", message_id, at, user_id, anonymous_id, context)
    out["traits"] = (
        traits if traits is not None else {"email": "ada@example.com", "name": "Ada Lovelace", "plan": "pro", "age": 36}
    )
    return out


def page(
    name: str = "Pricing",
    properties: dict[str, Any] | None = None,
    *,
    message_id: str = "page-000001",
    at: datetime | None = None,
    user_id: str | None = "user-0001",
    anonymous_id: str | None = "anon-0001",
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out = _event("page", message_id, at, user_id, anonymous_id, context)
    out["name"] = name
    out["properties"] = (
        properties
        if properties is not None
        else {
            "title": f"{name} - Example",
            "url": "https://www.example.com/pricing?plan=pro",
            "path": "/pricing",
            "referrer": "https://www.example.com/",
        }
    )
    return out


def screen(
    name: str = "Checkout",
    properties: dict[str, Any] | None = None,
    *,
    message_id: str = "screen-000001",
    at: datetime | None = None,
    user_id: str | None = "user-0001",
    anonymous_id: str | None = "anon-0001",
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out = _event("screen", message_id, at, user_id, anonymous_id, context)
    out["name"] = name
    out["properties"] = properties if properties is not None else {"step": 2, "cart_items": 3}
    return out


def group(
    group_id: str = "org-0001",
    traits: dict[str, Any] | None = None,
    *,
    message_id: str = "group-000001",
    at: datetime | None = None,
    user_id: str | None = "user-0001",
    anonymous_id: str | None = "anon-0001",
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out = _event("group", message_id, at, user_id, anonymous_id, context)
    out["groupId"] = group_id
    out["traits"] = traits if traits is not None else {"name": "Example Ltd", "industry": "Retail", "employees": 120}
    return out


def alias(
    previous_id: str = "anon-0001",
    *,
    message_id: str = "alias-000001",
    at: datetime | None = None,
    user_id: str = "user-0001",
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out = _event("alias", message_id, at, user_id, None, context)
    out["previousId"] = previous_id
    return out


def of_type(kind: str, index: int = 0, prefix: str = "evt") -> dict[str, Any]:
    """A realistic event of ``kind``: message id ``{prefix}-{index:06d}``, ``index`` seconds after ``BASE_TIME``."""
    message_id = f"{prefix}-{index:06d}"
    at = BASE_TIME + timedelta(seconds=index)
    user = f"user-{index % 97:04d}"
    anon = f"anon-{index % 89:04d}"
    if kind == "track":
        return track(message_id=message_id, at=at, user_id=user, anonymous_id=anon)
    if kind == "identify":
        return identify(message_id=message_id, at=at, user_id=user, anonymous_id=anon)
    if kind == "page":
        return page(message_id=message_id, at=at, user_id=user, anonymous_id=anon)
    if kind == "screen":
        return screen(message_id=message_id, at=at, user_id=user, anonymous_id=anon)
    if kind == "group":
        return group(message_id=message_id, at=at, user_id=user, anonymous_id=anon)
    if kind == "alias":
        return alias(previous_id=anon, message_id=message_id, at=at, user_id=user)
    raise ValueError(f"unknown event type {kind!r}; one of {', '.join(TYPES)}")


def sample(count: int, types: Iterable[str] = TYPES, prefix: str = "evt", start: int = 0) -> list[dict[str, Any]]:
    """``count`` events cycling through ``types`` (in ``TYPES`` order), ids ``{prefix}-000000`` on."""
    kinds = [t for t in TYPES if t in set(types)]
    if not kinds:
        raise ValueError("sample needs at least one event type")
    return [of_type(kinds[i % len(kinds)], start + i, prefix) for i in range(count)]


def delivery(event: dict[str, Any], payload: Any = None, attempt: int = 1, source_id: str = "") -> DeliveryEvent:
    """A ``DeliveryEvent`` for ``event``; the payload is the event itself unless given."""
    return DeliveryEvent(
        event=event,
        payload=event if payload is None else payload,
        message_id=str(event["messageId"]),
        attempt=attempt,
        source_id=source_id,
    )


def deliveries(events: Sequence[dict[str, Any]], attempt: int = 1) -> list[DeliveryEvent]:
    return [delivery(e, attempt=attempt) for e in events]
