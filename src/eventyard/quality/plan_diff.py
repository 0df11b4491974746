"""What changed between two versions of a tracking plan: rules added, removed and changed, and
for changed rules which fields were added, removed, retyped or made (not) required."""

from __future__ import annotations

from typing import Any

import msgspec

from eventyard.quality.plan_format import SECTION, Rule, TrackingPlan


class RuleChange(msgspec.Struct, frozen=True):
    #: ``added``, ``removed`` or ``changed``.
    change: str
    type: str
    key: str
    version: int
    details: list[str] = []

    def describe(self) -> str:
        sign = {"added": "+", "removed": "-", "changed": "~"}[self.change]
        name = f"{self.type} {self.key!r} v{self.version}" if self.key else f"{self.type} v{self.version}"
        return f"{sign} {name}" + (": " + "; ".join(self.details) if self.details else "")


def _fields(schema: dict[str, Any], section: str) -> tuple[dict[str, Any], set[str]]:
    sec = (schema.get("properties") or {}).get(section) or {}
    if not isinstance(sec, dict):
        return {}, set()
    return dict(sec.get("properties") or {}), set(sec.get("required") or [])


def _type_of(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "any"
    kind = schema.get("type", "any")
    text = "|".join(kind) if isinstance(kind, list) else str(kind)
    if schema.get("format"):
        text += f" ({schema['format']})"
    return text


def rule_details(old: Rule, new: Rule) -> list[str]:
    """Field-level differences of one rule (the whole schema when nothing field-level shows)."""
    details: list[str] = []
    sections = [SECTION.get(new.type, "properties")]
    if new.type == "COMMON":
        sections = ["properties", "traits", "context"]
    for section in dict.fromkeys([*sections, "context"]):
        before, req_before = _fields(old.jsonSchema, section)
        after, req_after = _fields(new.jsonSchema, section)
        for name in after.keys() - before.keys():
            details.append(f"+ {section}.{name} ({_type_of(after[name])})")
        for name in before.keys() - after.keys():
            details.append(f"- {section}.{name}")
        for name in sorted(before.keys() & after.keys()):
            if _type_of(before[name]) != _type_of(after[name]):
                details.append(f"{section}.{name} type {_type_of(before[name])} -> {_type_of(after[name])}")
            elif before[name] != after[name]:
                details.append(f"{section}.{name} constraints changed")
        for name in sorted(req_after - req_before):
            details.append(f"{section}.{name} now required")
        for name in sorted(req_before - req_after):
            details.append(f"{section}.{name} no longer required")
    if not details and old.jsonSchema != new.jsonSchema:
        details.append("schema changed")
    return sorted(details, key=lambda d: (d[0] not in "+-", d))


def diff_plans(old: TrackingPlan | None, new: TrackingPlan) -> list[RuleChange]:
    before = {(r.type, r.key, r.version): r for r in (old.rules if old else [])}
    after = {(r.type, r.key, r.version): r for r in new.rules}
    changes: list[RuleChange] = []
    for ident in after.keys() - before.keys():
        changes.append(RuleChange("added", *ident))
    for ident in before.keys() - after.keys():
        changes.append(RuleChange("removed", *ident))
    for ident in before.keys() & after.keys():
        if before[ident] != after[ident]:
            changes.append(RuleChange("changed", *ident, details=rule_details(before[ident], after[ident])))
    order = {t: i for i, t in enumerate(("COMMON", "TRACK", "IDENTIFY", "GROUP", "PAGE", "SCREEN"))}
    return sorted(changes, key=lambda c: (order.get(c.type, 9), c.key, c.version, c.change))
