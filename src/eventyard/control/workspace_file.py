"""Workspace configuration as code: parse ``workspace.yaml``, diff it against the state, apply.

Errors point at the file position of the offending key or value. ``apply`` creates and
updates; it never deletes what the file does not mention.

.. code-block:: yaml

    workspaces:
      - name: default
        sources:
          - name: web
            write_key: my-web-key      # optional: generated on creation when absent
            enabled: true
            limits: {max_event_bytes: 32768, max_request_bytes: 512000, max_batch_events: 2500}
        destinations:
          - name: hook
            type: webhook
            settings: {url: "https://example.com/events"}
            delivery: {max_attempts: 10, retry_window_hours: 4}
            mappings: []
        connections:
          - source: web
            destination: hook
            filters: []
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import yaml

from eventyard.control import identity_apply, plan_apply, privacy_apply
from eventyard.destinations import registry
from eventyard.errors import ConfigError, ConfigFileError
from eventyard.privacy.consent import ConsentConfig
from eventyard.privacy.pii_rules import PiiConfig
from eventyard.quality.plan_format import Attachment, TrackingPlan
from eventyard.route.routing import build_actions, build_filters
from eventyard.spec.limits import Limits
from eventyard.state.base import DeliveryPolicy

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class SourceDecl(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    write_key: str | None = None
    enabled: bool = True
    limits: Limits = Limits()
    #: The tracking plan the source follows and how strictly (docs/tracking-plans.md).
    tracking_plan: Attachment | None = None

    def __post_init__(self) -> None:
        if not re.match(_NAME, self.name):
            raise ValueError(f"source name {self.name!r} must be 1-64 letters, digits, '_', '.', '-'")
        if self.write_key is not None and len(self.write_key) < 8:
            raise ValueError("`write_key` must be at least 8 characters")


class DestinationDecl(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    #: Registered destination type: webhook, file, function, nats, ... (``eventyard destinations types``).
    type: str
    settings: dict[str, Any] = {}
    enabled: bool = True
    delivery: DeliveryPolicy = DeliveryPolicy()
    #: Actions-style mappings ``[{name, trigger, mapping, enabled}]``: the first whose FQL trigger
    #: matches shapes the payload; events matching none are filtered (``mapping_trigger``).
    mappings: list[dict[str, Any]] = []

    def __post_init__(self) -> None:
        if not re.match(_NAME, self.name):
            raise ValueError(f"destination name {self.name!r} must be 1-64 letters, digits, '_', '.', '-'")


class ConnectionDecl(msgspec.Struct, forbid_unknown_fields=True):
    source: str
    destination: str
    #: Destination filters ``[{title, if, actions: [...]}]`` (see docs/filters-and-fql.md).
    filters: list[dict[str, Any]] = []


class WorkspaceDecl(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    sources: list[SourceDecl] = []
    destinations: list[DestinationDecl] = []
    connections: list[ConnectionDecl] = []
    #: Tracking plans in their JSON form (``name``, ``description``, ``rules``).
    tracking_plans: list[TrackingPlan] = []
    #: Identity resolution rules, the document of ``eventyard profile rules`` (control/identity_apply.py).
    identity_rules: Any = None
    #: Consent categories mapped to destinations (docs/privacy.md; control/privacy_apply.py).
    consent: ConsentConfig | None = None
    #: PII rules (docs/privacy.md).
    pii: PiiConfig | None = None

    def __post_init__(self) -> None:
        if not re.match(_NAME, self.name):
            raise ValueError(f"workspace name {self.name!r} must be 1-64 letters, digits, '_', '.', '-'")
        for kind, names in (
            ("source", [s.name for s in self.sources]),
            ("destination", [d.name for d in self.destinations]),
        ):
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise ValueError(f"{kind} {name!r} is declared twice")
                seen.add(name)
        pairs = [(c.source, c.destination) for c in self.connections]
        if len(pairs) != len(set(pairs)):
            raise ValueError("a source-destination pair is connected twice; merge their filters")


class WorkspaceFile(msgspec.Struct, forbid_unknown_fields=True):
    workspaces: list[WorkspaceDecl] = []


# ------------------------------------------------------------------ parsing with positions

_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def _locate(root: yaml.Node | None, path: str, unknown_key: str | None) -> tuple[int, int] | None:
    """Line and column (1-based) of ``$.a[0].b`` in the YAML node tree."""
    node = root
    best: yaml.Node | None = root
    for m in _PATH_PART.finditer(path):
        key, index = m.group(1), m.group(2)
        nxt: yaml.Node | None = None
        if key is not None and isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == key:
                    nxt = v
                    break
        elif index is not None and isinstance(node, yaml.SequenceNode):
            i = int(index)
            if i < len(node.value):
                nxt = node.value[i]
        if nxt is None:
            break
        node = best = nxt
    if unknown_key and isinstance(node, yaml.MappingNode):
        for k, _ in node.value:
            if k.value == unknown_key:
                best = k
    if best is None:
        return None
    return best.start_mark.line + 1, best.start_mark.column + 1


def parse(text: str, filename: str = "<input>") -> WorkspaceFile:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        raise ConfigFileError(filename, line, col, f"not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigFileError(filename, None, None, f"not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigFileError(filename, 1, 1, "the file must hold a mapping with a `workspaces` list")
    try:
        parsed = msgspec.convert(data, WorkspaceFile)
    except msgspec.ValidationError as exc:
        message = str(exc)
        path = "$"
        if " - at `" in message:
            message, _, rest = message.rpartition(" - at `")
            path = rest.rstrip("`")
        raise _positioned(filename, root, path, message) from None
    problem = check(parsed)
    if problem is not None:
        raise _positioned(filename, root, problem[0], problem[1])
    return parsed


def _positioned(filename: str, root: yaml.Node | None, path: str, message: str) -> ConfigFileError:
    unknown = re.search(r"unknown field `([^`]+)`", message)
    pos = _locate(root, path, unknown.group(1) if unknown else None)
    where = f" (at {path})" if path != "$" else ""
    return ConfigFileError(filename, pos[0] if pos else None, pos[1] if pos else None, message + where)


def check(parsed: WorkspaceFile) -> tuple[str, str] | None:
    """Checks beyond the shape: destination types and settings, FQL, mappings, references.

    Returns ``(path, message)`` of the first problem, or ``None``.
    """
    for w, ws in enumerate(parsed.workspaces):
        for d, dest in enumerate(ws.destinations):
            at = f"$.workspaces[{w}].destinations[{d}]"
            try:
                cls = registry.load(dest.type)
            except ConfigError as exc:
                return f"{at}.type", str(exc)
            try:
                msgspec.convert(dest.settings, cls.Settings)
            except msgspec.ValidationError as exc:
                message, _, rest = str(exc).rpartition(" - at `")
                inner = rest.rstrip("`")[1:] if message else ""
                return f"{at}.settings{inner}", f"{dest.type} settings: {message or exc}"
            try:
                build_actions(dest.mappings)
            except ConfigError as exc:
                return f"{at}.mappings", str(exc)
        names = {s.name for s in ws.sources}
        dests = {d.name for d in ws.destinations}
        for c, conn in enumerate(ws.connections):
            at = f"$.workspaces[{w}].connections[{c}]"
            if conn.source not in names:
                return f"{at}.source", f"no source {conn.source!r} is declared in workspace {ws.name!r}"
            if conn.destination not in dests:
                return f"{at}.destination", f"no destination {conn.destination!r} is declared in workspace {ws.name!r}"
            try:
                build_filters(conn.filters)
            except ConfigError as exc:
                return f"{at}.filters", str(exc)
        if (problem := plan_apply.check(ws, w)) is not None:
            return problem
        if (problem := identity_apply.check(w, ws)) is not None:
            return problem
        if (problem := privacy_apply.check(w, ws)) is not None:
            return problem
    return None


def load(path: str | Path) -> WorkspaceFile:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigFileError(str(p), None, None, f"cannot read the file: {exc.strerror}") from None
    return parse(text, str(p))
