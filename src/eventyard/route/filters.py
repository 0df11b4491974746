"""Destination filters, as Segment defines them: an FQL condition and what to do with matching events.

A filter is ``{"if": "<FQL>" | "all", "actions": [...], "enabled": true, "title": ..., "id": ...}``
with actions

- ``{"type": "sample", "percent": 0-100, "path": "userId"}``: keep that share of matching events;
- ``{"type": "drop"}``: drop matching events ("only send X" is a drop with ``if: "!(X)"``);
- ``{"type": "drop_properties", "fields": {"properties": ["email"], "context": ["ip"], "": ["userId"]}}``;
- ``{"type": "allow_properties", "fields": {...}}``: under each listed object keep only the listed fields.

Segment's Public API spelling (``DROP``, ``SAMPLE`` with ``percent`` a fraction 0-1, ...) is
accepted as well. ``apply_filters`` runs the actions in Segment's order: every sample, then every
drop, then every drop_properties, then every allow_properties; each filter's condition is
evaluated once, on the event as it arrived. See docs/filters-and-fql.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from eventyard.errors import ConfigError
from eventyard.route import fql
from eventyard.route.fql.values import to_string

FILTER_DROP = "filter_drop"
FILTER_SAMPLE = "filter_sample"
#: A filter failed while evaluating an event: the event is dropped, never sent half-filtered.
FILTER_ERROR = "filter_error"

ACTION_TYPES = ("sample", "drop", "drop_properties", "allow_properties")
#: Segment's Public API names; its SAMPLE ``percent`` is a fraction from 0 to 1.
SEGMENT_ACTION_TYPES = {
    "SAMPLE": "sample",
    "DROP": "drop",
    "DROP_PROPERTIES": "drop_properties",
    "ALLOW_PROPERTIES": "allow_properties",
}
_ACTION_KEYS = {
    "sample": {"percent", "path"},
    "drop": set(),
    "drop_properties": {"fields"},
    "allow_properties": {"fields"},
}
_BUCKETS = 2**64


class FilterAction(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """One action of a filter; which keys it takes depends on ``type``."""

    type: str
    percent: float | None = None
    path: str | None = None
    fields: dict[str, list[str]] | None = None

    @property
    def kind(self) -> str:
        """``sample``, ``drop``, ``drop_properties`` or ``allow_properties`` (either spelling)."""
        return SEGMENT_ACTION_TYPES.get(self.type, self.type)

    @property
    def share(self) -> float:
        """The share of matching events a sample keeps, from 0.0 to 1.0."""
        if self.percent is None:
            return 1.0
        return self.percent if self.type == "SAMPLE" else self.percent / 100

    def __post_init__(self) -> None:
        kind = self.kind
        if kind not in ACTION_TYPES:
            raise ValueError(f"unknown action type {self.type!r}; expected one of {', '.join(ACTION_TYPES)}")
        for key in ("percent", "path", "fields"):
            if getattr(self, key) is not None and key not in _ACTION_KEYS[kind]:
                raise ValueError(f"a {self.type} action takes no `{key}`")
        if kind == "sample":
            self._check_sample()
        elif kind != "drop":
            self._check_fields()

    def _check_sample(self) -> None:
        top = 1 if self.type == "SAMPLE" else 100
        if self.percent is None or not 0 <= self.percent <= top:
            unit = "a fraction from 0 to 1 (0.1 keeps 10%)" if top == 1 else "from 0 to 100"
            raise ValueError(f"a {self.type} action needs `percent` {unit}, got {self.percent!r}")
        if self.path is not None:
            try:
                fql.parse_path(self.path)
            except fql.FqlError as exc:
                raise ValueError(f"`path` {self.path!r} is not a field path: {exc.message}") from None

    def _check_fields(self) -> None:
        if not self.fields:
            raise ValueError(f'a {self.type} action needs `fields`, e.g. {{"properties": ["email"]}}')
        for key, names in self.fields.items():
            try:
                fql.parse_path(key)
            except fql.FqlError as exc:
                raise ValueError(f"`fields` key {key!r} is not a field path: {exc.message}") from None
            if not names or any(not name for name in names):
                raise ValueError(f"`fields` {key!r} needs a list of field names")


class FilterSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True, rename={"if_": "if"}):
    """A destination filter as configured (the workspace file, the control API)."""

    if_: str
    actions: list[FilterAction]
    enabled: bool = True
    title: str = ""
    id: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not self.actions:
            raise ValueError("a filter needs at least one action")
        if self.if_.strip() != "all":
            error = fql.validate(self.if_)
            if error is not None:
                raise ValueError(f"`if` is not valid FQL: {error}")


@dataclass(frozen=True, slots=True)
class Sample:
    """Keeps an event when the hash of its key falls below the threshold: the same key, the same fate."""

    threshold: int
    key: fql.Fn

    def keeps(self, event: Mapping[str, Any]) -> bool:
        if self.threshold >= _BUCKETS:
            return True
        if self.threshold <= 0:
            return False
        value = self.key(event)
        if value is None:
            value = event.get("messageId")
        return bucket(value) < self.threshold


def bucket(value: Any) -> int:
    """The sampling bucket of a key, in 0 .. 2**64-1: the first 8 bytes of SHA-1 of its text."""
    text = "" if value is None else to_string(value)
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass"), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(frozen=True, slots=True)
class FieldRule:
    """Field names under the object at ``path`` (``()`` is the event itself). When that object is a
    list, the rule applies to every object in it (Segment: "properties.products" + "price")."""

    path: tuple[str, ...]
    names: frozenset[str]

    @classmethod
    def for_drop(cls, key: str, names: list[str]) -> list[FieldRule]:
        """A dotted name may mean a key with a dot or a nested field: dropping removes both."""
        base = fql.parse_path(key)
        rules = [cls(base, frozenset(names))]
        for name in names:
            if "." in name:
                try:
                    nested = fql.parse_path(name)
                except fql.FqlError:
                    continue
                rules.append(cls(base + nested[:-1], frozenset(nested[-1:])))
        return rules


class Edits:
    """Copy-on-write changes to one event: the objects on the way to a change are copied once,
    everything else is shared with the input, which is never modified."""

    def __init__(self, event: dict[str, Any]) -> None:
        self.event = event
        self.root = event
        self._copies: dict[int, Any] = {}

    @property
    def changed(self) -> bool:
        return self.root is not self.event

    def drop(self, rule: FieldRule) -> None:
        names = rule.names

        def drop_names(obj: dict[str, Any]) -> None:
            for name in names:
                obj.pop(name, None)

        self.root = self._edit(self.root, rule.path, lambda obj: not names.isdisjoint(obj), drop_names)

    def allow(self, rule: FieldRule) -> None:
        names = rule.names

        def keep_names(obj: dict[str, Any]) -> None:
            for key in [key for key in obj if key not in names]:
                del obj[key]

        self.root = self._edit(self.root, rule.path, lambda obj: any(k not in names for k in obj), keep_names)

    def _edit(self, node: Any, path: tuple[str, ...], needed: Any, change: Any) -> Any:
        """``node`` itself when nothing under it changes, else a changed copy."""
        if isinstance(node, list):
            items: list[Any] | None = None
            for index, item in enumerate(node):
                new = self._edit(item, path, needed, change)
                if new is not item:
                    items = items if items is not None else self._own(node)
                    items[index] = new
            return node if items is None else items
        if not isinstance(node, dict):
            return node
        if not path:
            if not needed(node):
                return node
            node = self._own(node)
            change(node)
            return node
        key = path[0]
        if key not in node:
            return node
        child = node[key]
        new_child = self._edit(child, path[1:], needed, change)
        if new_child is child:
            return node
        node = self._own(node)
        node[key] = new_child
        return node

    def _own(self, obj: Any) -> Any:
        if id(obj) in self._copies:
            return obj
        copy = dict(obj) if isinstance(obj, dict) else list(obj)
        self._copies[id(copy)] = copy
        return copy


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """A filter ready to run: its condition compiled, its actions sorted by kind."""

    spec: FilterSpec
    #: None for ``if: "all"``.
    condition: fql.Expression | None
    samples: tuple[Sample, ...]
    drop: bool
    drop_rules: tuple[FieldRule, ...]
    allow_rules: tuple[FieldRule, ...]

    @classmethod
    def from_spec(cls, spec: FilterSpec) -> CompiledFilter:
        condition = None if spec.if_.strip() == "all" else fql.compile(spec.if_)
        samples: list[Sample] = []
        drop_rules: list[FieldRule] = []
        allow_rules: list[FieldRule] = []
        drop = False
        for action in spec.actions:
            kind = action.kind
            if kind == "sample":
                getter = fql.field_getter(fql.parse_path(action.path or "messageId"))
                samples.append(Sample(round(action.share * _BUCKETS), getter))
            elif kind == "drop":
                drop = True
            elif action.fields:
                for where, names in action.fields.items():
                    if kind == "drop_properties":
                        drop_rules.extend(FieldRule.for_drop(where, names))
                    else:
                        allow_rules.append(FieldRule(fql.parse_path(where), frozenset(names)))
        return cls(spec, condition, tuple(samples), drop, tuple(drop_rules), tuple(allow_rules))

    @property
    def enabled(self) -> bool:
        return self.spec.enabled

    @property
    def label(self) -> str:
        """How the trace names the filter: its title, else its id, else its condition."""
        return self.spec.title or self.spec.id or self.spec.if_

    def matches(self, event: Mapping[str, Any]) -> bool:
        return self.condition is None or self.condition.matches(event)


@dataclass(frozen=True, slots=True)
class FilterResult:
    """What the filters did to one event: ``event`` is None when it was dropped."""

    event: dict[str, Any] | None
    #: ``filter_drop``, ``filter_sample`` or ``filter_error`` when dropped; "" when kept.
    reason: str = ""
    filter_id: str = ""
    title: str = ""
    #: True when ``event`` is a changed copy (properties removed).
    changed: bool = False

    @property
    def kept(self) -> bool:
        return self.event is not None

    @property
    def detail(self) -> str:
        """One line for the event trace."""
        name = repr(self.title or self.filter_id)
        if self.reason == FILTER_SAMPLE:
            return f"sampled out by filter {name}"
        if self.reason == FILTER_DROP:
            return f"dropped by filter {name}"
        if self.reason == FILTER_ERROR:
            return f"filter {name} failed on this event; dropped rather than sent unfiltered"
        return "changed by filters" if self.changed else ""


def _dropped(reason: str, flt: CompiledFilter) -> FilterResult:
    return FilterResult(None, reason, flt.spec.id, flt.label)


def apply_filters(filters: Sequence[CompiledFilter], event: dict[str, Any]) -> FilterResult:
    """Run ``filters`` on ``event`` in Segment's order; the input is never changed.

    A kept event that lost properties is a copy that shares its untouched parts with the
    input: treat both as read-only.
    """
    current: CompiledFilter | None = None
    try:
        matched = []
        for current in filters:
            if current.enabled and current.matches(event):
                matched.append(current)
        if not matched:
            return FilterResult(event)
        for current in matched:
            if not all(sample.keeps(event) for sample in current.samples):
                return _dropped(FILTER_SAMPLE, current)
        for current in matched:
            if current.drop:
                return _dropped(FILTER_DROP, current)
        edits = Edits(event)
        for current in matched:
            for rule in current.drop_rules:
                edits.drop(rule)
        for current in matched:
            for rule in current.allow_rules:
                edits.allow(rule)
    except Exception:
        if current is None:
            raise
        return _dropped(FILTER_ERROR, current)
    return FilterResult(edits.root, changed=True) if edits.changed else FilterResult(event)


def compile_filters(specs: Sequence[Mapping[str, Any] | FilterSpec]) -> list[CompiledFilter]:
    """Validate and compile configured filters; raises ``ConfigError`` naming the filter and the key."""
    compiled = []
    for number, spec in enumerate(specs, start=1):
        try:
            parsed = spec if isinstance(spec, FilterSpec) else msgspec.convert(spec, FilterSpec)
        except msgspec.ValidationError as exc:
            title = spec.get("title") if isinstance(spec, Mapping) else None
            named = f" ({title!r})" if isinstance(title, str) and title else ""
            raise ConfigError(f"filter {number}{named}: {exc}") from None
        compiled.append(CompiledFilter.from_spec(parsed))
    return compiled
