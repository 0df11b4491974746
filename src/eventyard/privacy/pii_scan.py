"""Find PII in one event, apply the workspace-level actions in place, and keep what the
per-destination overrides need.

``process(event, rules)`` returns a :class:`Scan`:

- ``blocked``: why a ``block`` rule drops the event (then nothing else was changed);
- ``findings``: ``(path, kind)`` of every field that matched a rule or was detected (for the
  report; array elements are written ``$``: ``properties.items.$.email``);
- ``plan``: for each changed or allowed field some destination gets in another form, the
  value as received and the per-destination actions (``route.pii_transform`` applies them).

The event is changed in place by the workspace-level actions (``hash``, ``mask``, ``drop``),
so every later stage and every destination without an override sees only the governed form.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from eventyard.privacy.pii_classify import classify, hash_value, mask_value
from eventyard.privacy.pii_rules import CompiledPii, CompiledRule

#: Context keys that never hold a whole-value PII field of their own (SDK and page data).
SKIP_CONTEXT = frozenset(
    {
        "library",
        "page",
        "userAgent",
        "userAgentData",
        "locale",
        "timezone",
        "campaign",
        "app",
        "os",
        "screen",
        "network",
        "device",
        "protocols",
        "consent",
        "consentManagement",
        "eventyard",
        "traits",  # scanned as traits
    }
)

Keys = tuple[str | int, ...]
#: Values a rule acts on (booleans and nulls are never PII).
_SCALARS = frozenset({str, int, float})


class PlanEntry(msgspec.Struct, frozen=True):
    """A field some destination gets in another form than the workspace action left it."""

    keys: Keys
    path: str
    kind: str | None
    raw: Any
    action: str
    overrides: dict[str, str]
    rule: str


class Scan(msgspec.Struct):
    blocked: str | None = None
    findings: list[tuple[str, str]] = []
    plan: list[PlanEntry] | None = None


#: The answer for an event without PII (shared: callers never change a scan).
_NOTHING = Scan()

#: Values repeat (a user's address, email and phone are in all their events): classifications,
#: hashes, masks and path strings are remembered, up to this many each, then forgotten at once.
MEMO_MAX = 20_000
_UNSEEN: Any = object()
_KINDS: dict[str, str | None] = {}
_TRANSFORMED: dict[tuple[str, str | None, str], str] = {}
_PATHS: dict[Keys, str] = {}


def kind_of(value: str) -> str | None:
    """``classify(value)``, remembered."""
    kind = _KINDS.get(value, _UNSEEN)
    if kind is _UNSEEN:
        if len(_KINDS) >= MEMO_MAX:
            _KINDS.clear()
        kind = _KINDS[value] = classify(value)
    return kind  # type: ignore[no-any-return]


def path_of(keys: Keys) -> str:
    path = _PATHS.get(keys)
    if path is None:
        if len(_PATHS) >= MEMO_MAX:
            _PATHS.clear()
        path = _PATHS[keys] = ".".join("$" if isinstance(k, int) else k for k in keys)
    return path


def _children(node: Any) -> Iterator[tuple[str | int, Any]]:
    if isinstance(node, dict):
        yield from node.items()
    elif isinstance(node, list):
        yield from enumerate(node)


def _resolve(
    parent: Any, key: str | int, segs: tuple[str, ...], i: int, keys: Keys, out: list[tuple[Any, str | int, Keys]]
) -> None:
    """Every (parent, key, keys) that the path ``segs[i:]`` reaches below ``parent[key]``."""
    node = parent[key]
    if i == len(segs):
        out.append((parent, key, keys))
        return
    seg = segs[i]
    if seg == "**":
        _resolve(parent, key, segs, i + 1, keys, out)
        for k, _child in list(_children(node)):
            _resolve(node, k, segs, i, (*keys, k), out)
        return
    if isinstance(node, dict):
        if seg == "*":
            for k in list(node):
                _resolve(node, k, segs, i + 1, (*keys, k), out)
        elif seg in node:
            _resolve(node, seg, segs, i + 1, (*keys, seg), out)
    elif isinstance(node, list) and seg in ("*", "$"):
        for idx in range(len(node)):
            _resolve(node, idx, segs, i + 1, (*keys, idx), out)


def _roots(event: dict[str, Any], root: str) -> Iterator[tuple[Any, str, Keys]]:
    if root == "context.traits":
        context = event.get("context")
        if isinstance(context, dict) and "traits" in context:
            yield context, "traits", ("context", "traits")
    elif root in event:
        yield event, root, (root,)


def _leaves(parent: Any, key: str | int, keys: Keys) -> Iterator[tuple[Any, str | int, Keys]]:
    """Scalars at or below ``parent[key]`` (booleans and nulls are never PII)."""
    value = parent[key]
    if isinstance(value, (dict, list)):
        for k, _child in list(_children(value)):
            yield from _leaves(value, k, (*keys, k))
    elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
        yield parent, key, keys


def _detect(node: Any, keys: Keys, seen: set[Keys], out: list[tuple[Any, str | int, Keys, str]]) -> None:
    if isinstance(node, dict):
        items: Any = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return
    kinds = _KINDS
    for k, value in items:
        if isinstance(value, str):
            if len(value) < 6:
                continue
            kind = kinds.get(value, _UNSEEN)
            if kind is _UNSEEN:
                kind = kind_of(value)
            if kind is not None:
                here = (*keys, k)
                if here not in seen:
                    out.append((node, k, here, kind))
        elif isinstance(value, (dict, list)):
            _detect(value, (*keys, k), seen, out)


def transformed(action: str, kind: str | None, value: Any) -> Any:
    """``value`` after ``hash`` or ``mask`` (other actions leave it)."""
    if action not in ("hash", "mask"):
        return value
    text = value if isinstance(value, str) else str(value)
    key = (action, kind, text)
    out = _TRANSFORMED.get(key)
    if out is None:
        if len(_TRANSFORMED) >= MEMO_MAX:
            _TRANSFORMED.clear()
        out = _TRANSFORMED[key] = hash_value(kind, text) if action == "hash" else mask_value(kind, text)
    return out


Match = tuple[Any, str | int, Keys, str | None, CompiledRule | None]


def _path_matches(event: dict[str, Any], rules: CompiledPii, seen: set[Keys]) -> list[Match]:
    matched: list[Match] = []
    for rule in rules.path_rules:
        if rule.direct is not None:
            whole = rule.action in ("drop", "block")
            for head, last, full in rule.direct:
                node: Any = event
                for key in head:
                    node = node.get(key)
                    if node.__class__ is not dict:
                        break
                else:
                    if last not in node:
                        continue
                    value = node[last]
                    if whole or value.__class__ in _SCALARS:
                        if full not in seen:
                            seen.add(full)
                            kind = rule.kind or (kind_of(value) if value.__class__ is str else None)
                            matched.append((node, last, full, kind, rule))
                        continue
                    for lp, lk, lks in _leaves(node, last, full):
                        if lks not in seen:
                            seen.add(lks)
                            leaf = lp[lk]
                            kind = rule.kind or (kind_of(leaf) if isinstance(leaf, str) else None)
                            matched.append((lp, lk, lks, kind, rule))
            continue
        assert rule.roots is not None
        for root in rule.roots:
            for parent, key, keys in _roots(event, root):
                reached: list[tuple[Any, str | int, Keys]] = []
                _resolve(parent, key, rule.segments, 0, keys, reached)
                for p, k, ks in reached:
                    whole = rule.action in ("drop", "block")
                    for lp, lk, lks in [(p, k, ks)] if whole else _leaves(p, k, ks):
                        if lks in seen:
                            continue
                        seen.add(lks)
                        value = lp[lk]
                        kind = rule.kind or (kind_of(value) if isinstance(value, str) else None)
                        matched.append((lp, lk, lks, kind, rule))
    return matched


def _detected(event: dict[str, Any], rules: CompiledPii, seen: set[Keys]) -> list[Match]:
    found: list[tuple[Any, str | int, Keys, str]] = []
    for root in ("properties", "traits"):
        node = event.get(root)
        if isinstance(node, (dict, list)):
            _detect(node, (root,), seen, found)
    context = event.get("context")
    if isinstance(context, dict):
        for k, value in context.items():
            if k in SKIP_CONTEXT:
                continue
            if isinstance(value, str):
                kind = kind_of(value)
                if kind is not None and ("context", k) not in seen:
                    found.append((context, k, ("context", k), kind))
            elif isinstance(value, (dict, list)):
                _detect(value, ("context", k), seen, found)
        traits = context.get("traits")
        if isinstance(traits, (dict, list)):
            _detect(traits, ("context", "traits"), seen, found)
    return [(p, k, ks, kind, rules.kind_rules.get(kind)) for p, k, ks, kind in found]


def process(event: dict[str, Any], rules: CompiledPii) -> Scan:
    seen: set[Keys] = set()
    matched = _path_matches(event, rules, seen) if rules.path_rules else []
    if rules.detect or rules.kind_rules:
        matched += _detected(event, rules, seen)
    if not matched:
        return _NOTHING
    findings = [(path_of(m[2]), m[3] or "declared") for m in matched]
    for _p, _k, ks, kind, rule in matched:
        if rule is not None and rule.action == "block":
            what = "a value" if kind is None else kind
            return Scan(f"{path_of(ks)} holds {what} and rule {rule.name!r} blocks such events", findings)
    plan: list[PlanEntry] | None = None
    for parent, key, keys, kind, rule in matched:
        if rule is None:
            continue
        raw = parent[key]
        if rule.overrides:
            if plan is None:
                plan = []
            plan.append(PlanEntry(keys, path_of(keys), kind, raw, rule.action, rule.overrides, rule.name))
        if rule.action == "drop":
            if isinstance(parent, dict):
                del parent[key]
            else:
                parent[key] = None
        elif rule.action in ("hash", "mask"):
            parent[key] = transformed(rule.action, kind, raw)
    return Scan(None, findings, plan)
