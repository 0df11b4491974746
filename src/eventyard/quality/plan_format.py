"""Tracking plans: the rule format (Segment's Protocols rules), per-source enforcement settings,
and reading and writing plans as JSON or YAML.

A plan is a list of rules ``{type, key, version, jsonSchema}``. ``type`` is one of ``TRACK``,
``IDENTIFY``, ``GROUP``, ``PAGE``, ``SCREEN``, ``COMMON``; ``key`` names the track event (or
the page/screen name; empty for the whole type); ``jsonSchema`` is JSON Schema draft-07 over
the whole event (``properties.properties...``, ``properties.traits...``,
``properties.context...``). The ``COMMON`` rule applies to every event as well.

Plans are stored as versioned documents (kind ``tracking_plan``); which plan a source follows
and how strictly is a document per source (kind ``tracking_plan_source``, named by source id).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import fastjsonschema
import msgspec
import yaml

from eventyard.errors import ConfigError

PLAN_KIND = "tracking_plan"
ATTACHMENT_KIND = "tracking_plan_source"
#: Fields of an API answer that describe a stored version, not the plan (ignored on import).
_METADATA = frozenset({"id", "slug", "createdAt", "updatedAt", "version", "actor", "observedEvents"})
RULE_TYPES = ("TRACK", "IDENTIFY", "GROUP", "PAGE", "SCREEN", "COMMON")
DRAFT_07 = "http://json-schema.org/draft-07/schema#"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: The field of the event each rule type plans (what "unplanned" and "omit" act on).
SECTION = {"TRACK": "properties", "PAGE": "properties", "SCREEN": "properties", "IDENTIFY": "traits", "GROUP": "traits"}


class Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    type: str
    key: str = ""
    version: int = 1
    jsonSchema: dict[str, Any] = {}


class TrackingPlan(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    description: str = ""
    rules: list[Rule] = []

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["rules"] = [
            {"type": r.type, "key": r.key, "version": r.version, "jsonSchema": r.jsonSchema} for r in self.rules
        ]
        return out

    def rule(self, type_: str, key: str = "", version: int | None = None) -> Rule | None:
        found = [r for r in self.rules if r.type == type_ and r.key == key]
        if version is not None:
            found = [r for r in found if r.version == version]
        return min(found, key=lambda r: r.version) if found else None


Unplanned = Literal["allow", "omit"]
OnViolation = Literal["allow", "omit", "block"]


class Enforcement(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A source's "schema configuration": what happens to events the plan does not cover."""

    track_unplanned_events: Literal["allow", "block"] = "allow"
    track_unplanned_properties: Unplanned = "allow"
    track_violations: OnViolation = "allow"
    identify_unplanned_traits: Unplanned = "allow"
    identify_violations: OnViolation = "allow"
    group_unplanned_traits: Unplanned = "allow"
    group_violations: OnViolation = "allow"
    #: Source (name or id) that blocked events are appended to instead of being discarded.
    forward_blocked_to: str | None = None
    #: Source (name or id) that receives a ``Violation Generated`` track event per violation.
    forward_violations_to: str | None = None


class Attachment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A source follows ``plan`` (always its latest version) with these settings."""

    plan: str
    enforcement: Enforcement = Enforcement()


# ------------------------------------------------------------------ reading


def _problem(exc: msgspec.ValidationError, what: str) -> str:
    message, _, at = str(exc).rpartition(" - at `")
    return f"{what}: {message} (at {at.rstrip('`')})" if message else f"{what}: {exc}"


def from_segment_config_api(data: dict[str, Any]) -> dict[str, Any]:
    """Segment's older Config API export (``rules: {global, events, identify, group}``) as rules."""
    legacy = data["rules"]
    rules: list[dict[str, Any]] = []
    if isinstance(legacy.get("global"), dict) and legacy["global"]:
        rules.append({"type": "COMMON", "key": "", "version": 1, "jsonSchema": legacy["global"]})
    for event in legacy.get("events") or []:
        if not isinstance(event, dict) or "name" not in event:
            raise ConfigError("each of `rules.events` needs a `name`")
        schema = event.get("rules") or {}
        rules.append({"type": "TRACK", "key": event["name"], "version": event.get("version", 1), "jsonSchema": schema})
    for kind in ("identify", "group"):
        spec = legacy.get(kind)
        if isinstance(spec, dict) and spec:
            schema = spec.get("rules", spec) if "rules" in spec else spec
            rules.append({"type": kind.upper(), "key": "", "version": 1, "jsonSchema": schema})
    name = data.get("name") or data.get("display_name") or ""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name)).strip("-")[:64] or "plan"
    return {"name": slug, "description": data.get("description", ""), "rules": rules}


def parse_plan(data: Any, name: str | None = None) -> TrackingPlan:
    """A plan from its JSON form (also Segment's Config API export); raises ``ConfigError``."""
    if not isinstance(data, dict):
        raise ConfigError("a tracking plan must be an object with `name` and `rules`")
    if isinstance(data.get("rules"), dict):
        data = from_segment_config_api(data)
    data = {k: v for k, v in data.items() if k not in _METADATA}
    if name is not None:
        data["name"] = name
    try:
        plan = msgspec.convert(data, TrackingPlan)
    except msgspec.ValidationError as exc:
        raise ConfigError(_problem(exc, "tracking plan")) from None
    check_plan(plan)
    return plan


def check_plan(plan: TrackingPlan) -> None:
    if not _NAME.match(plan.name):
        raise ConfigError(f"plan name {plan.name!r} must be 1-64 letters, digits, '_', '.', '-'")
    seen: set[tuple[str, str, int]] = set()
    for i, rule in enumerate(plan.rules):
        at = f"rules[{i}]"
        if rule.type not in RULE_TYPES:
            raise ConfigError(f"{at}.type must be one of {', '.join(RULE_TYPES)}, not {rule.type!r}")
        if rule.type == "TRACK" and not rule.key.strip():
            raise ConfigError(f"{at}.key must name the track event")
        if rule.type == "COMMON" and rule.key:
            raise ConfigError(f"{at}: a COMMON rule has no key")
        if rule.version < 1:
            raise ConfigError(f"{at}.version must be 1 or more")
        ident = (rule.type, rule.key, rule.version)
        if ident in seen:
            raise ConfigError(f"{at}: {rule.type} {rule.key!r} version {rule.version} is defined twice")
        seen.add(ident)
        declared = rule.jsonSchema.get("$schema")
        if declared is not None and declared.rstrip("#") != DRAFT_07.rstrip("#"):
            raise ConfigError(f"{at}.jsonSchema must be JSON Schema draft-07, not {declared!r}")
        try:
            fastjsonschema.compile({**rule.jsonSchema, "$schema": DRAFT_07}, use_default=False)
        except (fastjsonschema.JsonSchemaDefinitionException, TypeError, ValueError) as exc:
            raise ConfigError(f"{at}.jsonSchema ({rule.type} {rule.key!r}) is not a valid schema: {exc}") from None
    if sum(r.type == "COMMON" for r in plan.rules) > 1:
        raise ConfigError("a plan has at most one COMMON rule")


def parse_attachment(data: Any) -> Attachment:
    try:
        return msgspec.convert(data, Attachment)
    except msgspec.ValidationError as exc:
        raise ConfigError(_problem(exc, "tracking plan settings")) from None


def loads(text: str, name: str | None = None, filename: str = "<input>") -> TrackingPlan:
    """A plan from JSON or YAML text (YAML is a superset of JSON)."""
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{filename}: neither JSON nor YAML: {exc}") from None
    return parse_plan(data, name)


def dumps(plan: TrackingPlan, fmt: str = "json") -> str:
    if fmt == "yaml":
        return yaml.safe_dump(plan.to_json(), sort_keys=False, allow_unicode=True)
    if fmt == "json":
        return json.dumps(plan.to_json(), indent=2, ensure_ascii=False) + "\n"
    raise ConfigError(f"format must be json or yaml, not {fmt!r}")
