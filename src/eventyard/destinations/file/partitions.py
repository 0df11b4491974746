"""Hive-style partition directories of an event: ``date=2026-11-29/event=order_completed``."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from eventyard.spec import timestamps

#: Longest slug of a partition value; longer names are cut.
MAX_SLUG_CHARS = 64
UNKNOWN = "unknown"

_NOT_WORD = re.compile(r"[\W_]+")


def slug(value: str) -> str:
    """Lower case, runs of anything but letters and digits become ``_``: ``Order Completed`` → ``order_completed``.

    Letters of any script are kept; ``/``, ``.``, ``=`` and spaces never reach a path.
    """
    out = _NOT_WORD.sub("_", value.lower()).strip("_")[:MAX_SLUG_CHARS].rstrip("_")
    return out or UNKNOWN


def event_date(event: dict[str, Any], clock: Callable[[], float]) -> str:
    """UTC day the event was received (``receivedAt``; else ``timestamp``; else now)."""
    for field in ("receivedAt", "timestamp"):
        value = event.get(field)
        if isinstance(value, str):
            try:
                return timestamps.parse(value, field).date().isoformat()
            except timestamps.InvalidTimestamp:
                continue
    return datetime.fromtimestamp(clock(), UTC).date().isoformat()


def value_of(key: str, event: dict[str, Any], clock: Callable[[], float], source_id: str = "") -> str:
    if key == "date":
        return event_date(event, clock)
    kind = event.get("type")
    kind = kind if isinstance(kind, str) else UNKNOWN
    if key == "type":
        return slug(kind)
    if key == "event":
        name = event.get("event")
        return slug(name) if kind == "track" and isinstance(name, str) else slug(kind)
    if key == "source":
        return slug(source_id) if source_id else UNKNOWN
    raise ValueError(f"unknown partition key {key!r}")


def partition_of(
    keys: Sequence[str], event: dict[str, Any], clock: Callable[[], float], source_id: str = ""
) -> tuple[str, ...]:
    """The partition's directory names, e.g. ``("date=2026-11-29", "event=order_completed")``."""
    return tuple(f"{key}={value_of(key, event, clock, source_id)}" for key in keys)
