"""Draft a tracking plan from observed events (``eventyard plan infer``).

For each (type, event name) seen: the JSON types of each top-level property (track, page,
screen) or trait (identify, group), nested objects and array items one level down; a field is
required when every observed event of that kind carried it; strings in ISO-8601 form get
``format: date-time``; a string field with few distinct values over enough events becomes an
``enum``. The draft is a starting point to review, not a verdict.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from eventyard.quality.catalog import json_type
from eventyard.quality.plan_format import DRAFT_07, Rule, TrackingPlan, check_plan

#: A string field becomes an enum when it has 2 to this many distinct values ...
ENUM_MAX_VALUES = 5
#: ... and was seen at least this many times (and at least 3 times per value).
ENUM_MIN_EVENTS = 20
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$")


class _Field:
    """What was seen of one field across events."""

    def __init__(self) -> None:
        self.types: set[str] = set()
        self.seen = 0
        self.strings: dict[str, int] = {}
        self.all_dates = True
        self.children: dict[str, _Field] = {}
        self.child_events = 0
        self.items: _Field | None = None

    def add(self, value: Any, depth: int) -> None:
        self.seen += 1
        kind = json_type(value)
        self.types.add(kind)
        if kind == "string":
            if len(self.strings) <= ENUM_MAX_VALUES:
                self.strings[value] = self.strings.get(value, 0) + 1
            self.all_dates = self.all_dates and bool(_DATE_TIME.match(value))
        elif kind == "object" and depth < 3:
            self.child_events += 1
            for key, sub in value.items():
                self.children.setdefault(key, _Field()).add(sub, depth + 1)
        elif kind == "array" and depth < 3:
            for item in value:
                if self.items is None:
                    self.items = _Field()
                self.items.add(item, depth + 1)

    def schema(self) -> dict[str, Any]:
        types = set(self.types)
        if {"integer", "number"} <= types:
            types.discard("integer")
        out: dict[str, Any] = {}
        if types:
            ordered = sorted(types)
            out["type"] = ordered[0] if len(ordered) == 1 else ordered
        if types == {"string"}:
            if self.all_dates:
                out["format"] = "date-time"
            elif (
                2 <= len(self.strings) <= ENUM_MAX_VALUES
                and self.seen >= max(ENUM_MIN_EVENTS, 3 * len(self.strings))
                and sum(self.strings.values()) == self.seen
            ):
                out["enum"] = sorted(self.strings)
        if self.children:
            out["properties"] = {k: f.schema() for k, f in sorted(self.children.items())}
            required = sorted(k for k, f in self.children.items() if f.seen == self.child_events)
            if required:
                out["required"] = required
        if self.items is not None:
            out["items"] = self.items.schema()
        return out


class _Kind:
    def __init__(self) -> None:
        self.events = 0
        self.fields: dict[str, _Field] = {}


def _section(event_type: str) -> str:
    return "traits" if event_type in ("identify", "group") else "properties"


def infer_plan(name: str, events: Iterable[dict[str, Any]], description: str = "") -> TrackingPlan:
    """A draft plan covering every (type, event name) in ``events``."""
    kinds: dict[tuple[str, str], _Kind] = {}
    for event in events:
        kind = event.get("type")
        if kind not in ("track", "identify", "group", "page", "screen"):
            continue
        key = str(event.get("event") or "") if kind == "track" else ""
        if kind == "track" and not key:
            continue
        if key == "Violation Generated":
            continue
        entry = kinds.setdefault((kind, key), _Kind())
        entry.events += 1
        values = event.get(_section(kind))
        if isinstance(values, dict):
            for field, value in values.items():
                entry.fields.setdefault(field, _Field()).add(value, 1)
    rules: list[Rule] = []
    for (kind, key), entry in sorted(kinds.items()):
        section: dict[str, Any] = {"type": "object", "properties": {}}
        for field, seen in sorted(entry.fields.items()):
            section["properties"][field] = seen.schema()
        required = sorted(f for f, seen in entry.fields.items() if seen.seen == entry.events)
        if required:
            section["required"] = required
        schema = {"$schema": DRAFT_07, "type": "object", "properties": {_section(kind): section}}
        rules.append(Rule(kind.upper(), key, 1, schema))
    plan = TrackingPlan(name, description or f"drafted from {sum(k.events for k in kinds.values())} events", rules)
    check_plan(plan)
    return plan
