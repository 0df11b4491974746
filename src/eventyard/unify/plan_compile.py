"""Tracking plans compiled for the pipeline: one fastjsonschema validator per rule version.

A rule's schema and the plan's ``COMMON`` schema are merged into one (``allOf``), so an event
costs one validator call. Only an event that fails is looked at again (``explain``) to list
every violation by field, with sub-validators compiled on first use.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import fastjsonschema
import msgspec

from eventyard.quality.plan_format import DRAFT_07, SECTION, Rule, TrackingPlan
from eventyard.unify.plan_fastpath import fast_check

Validator = Callable[[Any], Any]
_SECTIONS = ("properties", "traits", "context")
#: What ``CompiledRule.passes`` answers.
PASS, INVALID, UNPLANNED = 0, 1, 2


class Violation(msgspec.Struct, frozen=True):
    #: ``properties.total``, ``traits.email``, ``event`` ... (``""``: the event as a whole).
    field: str
    #: ``Required``, ``Type``, ``Value`` or ``Unplanned``.
    type: str
    description: str
    #: (section, top-level key) that ``omit`` removes; ``None`` when nothing can be removed.
    omit: tuple[str, str] | None = None


def _kind(rule: str) -> str:
    return {"required": "Required", "type": "Type"}.get(rule, "Value")


def _compile(schema: dict[str, Any]) -> Validator:
    compiled: Validator = fastjsonschema.compile({**schema, "$schema": DRAFT_07}, use_default=False)
    return compiled


#: Field validators by their schema's JSON, shared by every rule (plans repeat field schemas
#: such as ``{"type": "string"}`` a lot, and compiling is what costs: about a millisecond).
_SHARED: dict[str, Validator] = {}
_SHARED_MAX = 10_000


def _shared(schema: dict[str, Any]) -> Validator:
    key = json.dumps(schema, sort_keys=True)
    found = _SHARED.get(key)
    if found is None:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        found = _SHARED[key] = _compile(schema)
    return found


def _merged(schemas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """COMMON and a rule as one schema when they plan different parts of the event (one
    msgspec conversion instead of two); else both as they are."""
    if len(schemas) != 2:
        return schemas
    a, b = schemas
    plain = {"type", "properties", "required", "$schema", "description", "title"}
    if not all(s.get("type") == "object" and set(s) <= plain for s in schemas):
        return schemas
    pa, pb = a.get("properties") or {}, b.get("properties") or {}
    if set(pa) & set(pb):
        return schemas
    required = list(dict.fromkeys([*(a.get("required") or []), *(b.get("required") or [])]))
    return [{"type": "object", "properties": {**pa, **pb}, **({"required": required} if required else {})}]


def _uses_refs(schema: Any) -> bool:
    return '"$ref"' in json.dumps(schema)


class CompiledRule:
    """Everything the stage needs to check an event against one rule (and the COMMON rule)."""

    __slots__ = (
        "_checks",
        "_fast",
        "_required",
        "_schemas",
        "_sections",
        "_sub",
        "_unplanned",
        "planned",
        "rule",
        "section",
    )

    def __init__(self, rule: Rule | None, common: Rule | None) -> None:
        self.rule = rule
        self._schemas = [r.jsonSchema for r in (common, rule) if r is not None and r.jsonSchema]
        if len(self._schemas) == 2 and not _uses_refs(self._schemas):
            self._checks = [_compile({"allOf": self._schemas})]
        else:  # ``$ref``s resolve against their own schema's root: keep them apart
            self._checks = [_compile(s) for s in self._schemas]
        self.section = SECTION.get(rule.type, "") if rule is not None else ""
        #: Top-level keys of the section the rule (and COMMON) plan; ``None``: nothing is planned.
        self.planned: frozenset[str] | None = None
        if rule is not None and rule.type in ("TRACK", "IDENTIFY", "GROUP"):  # page/screen: never acted on
            keys: set[str] = set()
            for schema in self._schemas:
                sec = (schema.get("properties") or {}).get(self.section) or {}
                keys.update((sec.get("properties") or {}) if isinstance(sec, dict) else {})
            self.planned = frozenset(keys)
        #: Field validators for ``explain``, by (schema, section, field), compiled on first use.
        self._sub: dict[tuple[int, str, str], Validator] = {}
        self._unplanned: dict[str, Violation] = {}
        #: Root-level required fields, and per section its required and planned fields.
        self._required = [name for schema in self._schemas for name in schema.get("required") or []]
        self._sections = self._layout()
        #: msgspec checks of the same schemas, when every schema translates (``plan_fastpath``).
        fast = [fast_check(s) for s in _merged(self._schemas)]
        self._fast: list[Callable[[dict[str, Any]], bool]] | None = (
            [f for f in fast if f is not None] if all(f is not None for f in fast) else None
        )

    def check(self, event: dict[str, Any]) -> list[Violation]:
        """The event's violations of the rule (empty when it is valid).

        Fields are looked at one by one (cheap schemas, fast checks first); only when no field
        shows a problem does the whole schema run, for rules beyond fields (``if``, root
        keywords): fastjsonschema builds a large exception for every error it raises.
        """
        if self._fast is not None and all(ok(event) for ok in self._fast):
            return []
        found = self._fields(event)
        if found:
            return found
        for validate in self._checks:
            try:
                validate(event)
            except fastjsonschema.JsonSchemaValueException as exc:
                return [_whole(exc)]
        return []

    def passes(self, event: dict[str, Any]) -> int:
        """``PASS`` for a valid event with nothing unplanned (the common case, fast),
        ``INVALID``, or ``UNPLANNED`` for a valid event with unplanned fields."""
        if self._fast is not None:
            for ok in self._fast:
                if not ok(event):
                    return INVALID
        else:
            try:
                for validate in self._checks:
                    validate(event)
            except fastjsonschema.JsonSchemaValueException:
                return INVALID
        if self.planned is None:
            return PASS
        values = event.get(self.section)
        return PASS if not isinstance(values, dict) or values.keys() <= self.planned else UNPLANNED

    def unplanned_violation(self, key: str) -> Violation:
        """The (immutable, so shared) violation of an unplanned top-level field."""
        found = self._unplanned.get(key)
        if found is None:
            field = f"{self.section}.{key}"
            found = Violation(field, "Unplanned", f"{field} is not planned", (self.section, key))
            if len(self._unplanned) < 10_000:
                self._unplanned[key] = found
        return found

    def unplanned(self, event: dict[str, Any]) -> list[str]:
        if self.planned is None:
            return []
        values = event.get(self.section)
        if not isinstance(values, dict) or not values:
            return []
        return [k for k in values if k not in self.planned]

    # ------------------------------------------------------------ explaining a failure

    def _validator(self, where: tuple[int, str, str], schema: Any) -> Validator:
        found = self._sub.get(where)
        if found is None:
            found = self._sub[where] = _shared(schema if isinstance(schema, dict) else {})
        return found

    def _layout(self) -> list[tuple[int, str, list[str], list[tuple[str, Any, Callable[[Any], bool] | None]]]]:
        """Per schema and section: required fields, and each planned field with its fast check."""
        out = []
        for n, schema in enumerate(self._schemas):
            props = schema.get("properties") or {}
            for section in _SECTIONS:
                sec = props.get(section)
                if not isinstance(sec, dict):
                    continue
                fields = [
                    (name, sub, fast_check(sub) if isinstance(sub, dict) else None)
                    for name, sub in (sec.get("properties") or {}).items()
                ]
                out.append((n, section, list(sec.get("required") or []), fields))
        return out

    def _fields(self, event: dict[str, Any]) -> list[Violation]:
        found: dict[tuple[str, str], Violation] = {}

        def add(v: Violation) -> None:
            found.setdefault((v.field, v.type), v)

        for name in self._required:
            if name not in event:
                add(Violation(name, "Required", f"{name} is required"))
        for n, section, required, fields in self._sections:
            value = event.get(section)
            if value is None:
                continue
            if not isinstance(value, dict):
                add(Violation(section, "Type", f"{section} must be an object"))
                continue
            for name in required:
                if name not in value:
                    add(Violation(f"{section}.{name}", "Required", f"{section}.{name} is required"))
            for name, sub, fast in fields:
                if name not in value:
                    continue
                item = value[name]
                if fast is not None and fast(item):
                    continue
                try:
                    self._validator((n, section, name), sub)(item)
                except fastjsonschema.JsonSchemaValueException as exc:
                    field = f"{section}.{name}{(exc.name or 'data')[4:]}"
                    text = exc.message.replace(exc.name or "data", field, 1)
                    add(Violation(field, _kind(exc.rule or ""), text, (section, name)))
        return list(found.values())


def _whole(exc: fastjsonschema.JsonSchemaValueException) -> Violation:
    """A violation as the whole schema's validator reports it (a rule beyond single fields)."""
    field = (exc.name or "data")[5:]
    omit = None
    head, _, rest = field.partition(".")
    if head in ("properties", "traits") and rest:
        omit = (head, rest.split(".")[0].split("[")[0])
    return Violation(field, _kind(exc.rule or ""), exc.message.replace("data.", "", 1), omit)


class CompiledPlan:
    """A plan version compiled: rules by type and key, each with every version."""

    def __init__(self, plan: TrackingPlan, version: int) -> None:
        self.plan = plan
        self.version = version
        common = next((r for r in plan.rules if r.type == "COMMON"), None)
        self.common = CompiledRule(None, common)
        #: (type, key) -> {version: rule}; types in lower case, as events carry them.
        self.rules: dict[tuple[str, str], dict[int, CompiledRule]] = {}
        for rule in plan.rules:
            if rule.type != "COMMON":
                self.rules.setdefault((rule.type.lower(), rule.key), {})[rule.version] = CompiledRule(rule, common)
        #: The version used when an event names none: the lowest (clients opt in to newer ones).
        self.default: dict[tuple[str, str], CompiledRule] = {k: v[min(v)] for k, v in self.rules.items()}

    def rule_for(self, event_type: str, key: str, wanted: Any = None) -> CompiledRule | None:
        """The rule of an event: ``(type, key)``, else ``(type, "")`` for non-track types."""
        found = self.default.get((event_type, key))
        if found is None and event_type != "track" and key:
            found = self.default.get((event_type, ""))
        if found is not None and isinstance(wanted, int) and found.rule is not None:
            versions = self.rules[(event_type, found.rule.key)]
            return versions.get(wanted, found)
        return found
