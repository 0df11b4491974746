"""PII rules (workspace configuration): which fields to allow, hash, mask, drop, or block on.

A workspace's rules are one document (kind ``pii_rules``, name ``rules``)::

    detect: true                 # classify every string value of properties, traits, context
    rules:
      - path: properties.email   # a path rule: this field, whatever it looks like
        kind: email              # optional: how to normalize before hashing (else detected)
        action: hash
        destinations: {warehouse: allow}   # per-destination overrides, by destination name
      - kind: card               # a kind rule: any detected card number anywhere
        action: block

Paths are dot-separated from a root: ``properties``, ``traits`` (an identify's traits and
``context.traits`` of any call), ``context`` or ``userId``; ``*`` matches one key or array
element, ``**`` any number of levels (``traits.**.phone``). Path rules win over kind rules,
and the first matching rule of each sort wins. ``block`` drops the whole event (reason
``pii_blocked``); a rule that blocks cannot have overrides (block per destination instead).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from eventyard.errors import ConfigError
from eventyard.privacy.pii_classify import KINDS

DOC_KIND = "pii_rules"
DOC_NAME = "rules"
ACTIONS = ("allow", "hash", "mask", "drop", "block")
ROOTS = ("properties", "traits", "context", "userId")
_SEGMENT = re.compile(r"\*\*?|\$|[^.*$\s][^.*\s]*")


def path_problem(path: str) -> str | None:
    segments = path.split(".")
    if segments[0] not in ROOTS:
        return f"path {path!r} must start with one of {', '.join(ROOTS)}"
    if segments[0] == "userId" and len(segments) > 1:
        return f"path {path!r}: userId has no fields"
    for seg in segments[1:]:
        if not seg or not _SEGMENT.fullmatch(seg):
            return f"path {path!r}: {seg!r} is not a key, '*', '**' or '$'"
    if segments[-1] == "**":
        return f"path {path!r} must not end with '**'; name the field after it"
    return None


class PiiRule(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    #: ``allow``, ``hash``, ``mask``, ``drop`` or ``block``.
    action: str
    #: Which field(s): ``properties.email``, ``traits.*.phone``, ``context.ip``.
    path: str | None = None
    #: Which kind of value: email, phone, card, national_id, ip (with a path: how to normalize).
    kind: str | None = None
    #: For people and the report.
    name: str = ""
    #: Destination name -> the action for that destination instead.
    destinations: dict[str, str] = {}

    def __post_init__(self) -> None:
        label = f"rule {self.name!r}" if self.name else "a rule"
        if self.action not in ACTIONS:
            raise ValueError(f"{label}: action must be one of {', '.join(ACTIONS)}, not {self.action!r}")
        if self.path is None and self.kind is None:
            raise ValueError(f"{label} needs a `path`, a `kind` or both")
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"{label}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.path is not None:
            problem = path_problem(self.path)
            if problem:
                raise ValueError(f"{label}: {problem}")
        if self.action == "block" and self.destinations:
            raise ValueError(
                f"{label} blocks the event for everyone, so it cannot have destination overrides; "
                "use another action and override it with `block` for the destinations that must not get it"
            )
        for dest, action in self.destinations.items():
            if action not in ACTIONS:
                raise ValueError(f"{label}: action for destination {dest!r} must be one of {', '.join(ACTIONS)}")

    @property
    def label(self) -> str:
        return self.name or self.path or f"kind {self.kind}"


class PiiConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    #: Classify string values of properties, traits and context (findings, kind rules).
    detect: bool = True
    rules: list[PiiRule] = []

    def __post_init__(self) -> None:
        names = [r.name for r in self.rules if r.name]
        if len(names) != len(set(names)):
            raise ValueError("two rules have the same name")

    def referenced_destinations(self) -> set[str]:
        return {d for r in self.rules for d in r.destinations}


def parse(body: Any) -> PiiConfig:
    try:
        return msgspec.convert(body, PiiConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"pii rules: {exc}") from None


def to_body(config: PiiConfig) -> dict[str, Any]:
    rules = []
    for r in config.rules:
        item: dict[str, Any] = {"action": r.action}
        for key in ("path", "kind", "name"):
            value = getattr(r, key)
            if value:
                item[key] = value
        if r.destinations:
            item["destinations"] = dict(r.destinations)
        rules.append(item)
    return {"detect": config.detect, "rules": rules}


def unknown_destinations(config: PiiConfig, known: set[str]) -> list[str]:
    return sorted(config.referenced_destinations() - known)


class CompiledRule(msgspec.Struct, frozen=True):
    name: str
    action: str
    kind: str | None
    #: Path segments below the root (``None`` for a kind rule).
    roots: tuple[str, ...] | None
    segments: tuple[str, ...]
    #: Destination id -> action, only where it differs from ``action`` (``None`` when empty).
    overrides: dict[str, str] | None
    #: When the path has no wildcard: per root, (keys to the parent, the field's key, all keys),
    #: looked up directly instead of walked.
    direct: tuple[tuple[tuple[str, ...], str, tuple[str, ...]], ...] | None = None


class CompiledPii(msgspec.Struct, frozen=True):
    detect: bool
    path_rules: tuple[CompiledRule, ...]
    #: kind -> the first kind-only rule of that kind.
    kind_rules: dict[str, CompiledRule]

    @property
    def active(self) -> bool:
        return self.detect or bool(self.path_rules) or bool(self.kind_rules)


_ROOT_PATHS: dict[str, tuple[str, ...]] = {
    "properties": ("properties",),
    "traits": ("traits", "context.traits"),
    "context": ("context",),
    "userId": ("userId",),
}


def _direct(segments: tuple[str, ...]) -> tuple[tuple[tuple[str, ...], str, tuple[str, ...]], ...] | None:
    if not segments or any(s in ("*", "**", "$") for s in segments):
        return None
    out = []
    for root in _ROOT_PATHS[segments[0]]:
        keys = (*root.split("."), *segments[1:])
        out.append((keys[:-1], keys[-1], keys))
    return tuple(out)


def compile_rules(config: PiiConfig, destination_ids: dict[str, str]) -> CompiledPii:
    """Rules ready for the stage; overrides keyed by destination id (``destination_ids``: name -> id)."""
    path_rules: list[CompiledRule] = []
    kind_rules: dict[str, CompiledRule] = {}
    for rule in config.rules:
        overrides = {
            destination_ids[name]: action
            for name, action in rule.destinations.items()
            if name in destination_ids and action != rule.action
        }
        segments = tuple(rule.path.split(".")) if rule.path else ()
        compiled = CompiledRule(
            rule.label,
            rule.action,
            rule.kind,
            _ROOT_PATHS[segments[0]] if segments else None,
            segments[1:],
            overrides or None,
            _direct(segments),
        )
        if rule.path is not None:
            path_rules.append(compiled)
        elif rule.kind is not None and rule.kind not in kind_rules:
            kind_rules[rule.kind] = compiled
    return CompiledPii(config.detect, tuple(path_rules), kind_rules)


def _segments_match(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    if not pattern:
        return not path
    head = pattern[0]
    if head == "**":
        return any(_segments_match(pattern[1:], path[i:]) for i in range(len(path) + 1))
    if not path:
        return False
    if head in ("*", "$") or head == path[0]:
        return _segments_match(pattern[1:], path[1:])
    return False


def rule_for(config: PiiConfig, path: str, kind: str) -> PiiRule | None:
    """The rule that governs a field found at ``path`` holding ``kind`` (for the report)."""
    parts = tuple(path.split("."))
    for rule in config.rules:
        if rule.path is None:
            continue
        segments = tuple(rule.path.split("."))
        for root in _ROOT_PATHS[segments[0]]:
            prefix = tuple(root.split("."))
            if parts[: len(prefix)] == prefix and _segments_match(segments[1:], parts[len(prefix) :]):
                return rule
    for rule in config.rules:
        if rule.path is None and rule.kind == kind:
            return rule
    return None
