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
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import yaml

from eventyard.errors import ConfigFileError
from eventyard.spec.limits import Limits
from eventyard.state.base import StateStore

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class SourceDecl(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    write_key: str | None = None
    enabled: bool = True
    limits: Limits = Limits()

    def __post_init__(self) -> None:
        if not re.match(_NAME, self.name):
            raise ValueError(f"source name {self.name!r} must be 1-64 letters, digits, '_', '.', '-'")
        if self.write_key is not None and len(self.write_key) < 8:
            raise ValueError("`write_key` must be at least 8 characters")


class WorkspaceDecl(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    sources: list[SourceDecl] = []

    def __post_init__(self) -> None:
        if not re.match(_NAME, self.name):
            raise ValueError(f"workspace name {self.name!r} must be 1-64 letters, digits, '_', '.', '-'")
        seen: set[str] = set()
        for s in self.sources:
            if s.name in seen:
                raise ValueError(f"source {s.name!r} is declared twice")
            seen.add(s.name)


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
        return msgspec.convert(data, WorkspaceFile)
    except msgspec.ValidationError as exc:
        message = str(exc)
        path = "$"
        if " - at `" in message:
            message, _, rest = message.rpartition(" - at `")
            path = rest.rstrip("`")
        unknown = re.search(r"unknown field `([^`]+)`", message)
        pos = _locate(root, path, unknown.group(1) if unknown else None)
        where = f" (at {path})" if path != "$" else ""
        raise ConfigFileError(filename, pos[0] if pos else None, pos[1] if pos else None, message + where) from None


def load(path: str | Path) -> WorkspaceFile:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigFileError(str(p), None, None, f"cannot read the file: {exc.strerror}") from None
    return parse(text, str(p))


# -------------------------------------------------------------------------- diff and apply


@dataclass
class Change:
    action: str  # "create" | "update"
    kind: str  # "workspace" | "source"
    name: str
    details: list[str] = field(default_factory=list)

    def describe(self) -> str:
        sign = "+" if self.action == "create" else "~"
        text = f"{sign} {self.kind} {self.name}"
        if self.details:
            text += ": " + "; ".join(self.details)
        return text


def _limits_diff(old: Limits, new: Limits) -> list[str]:
    return [
        f"{name} {getattr(old, name)} -> {getattr(new, name)}"
        for name in Limits.__struct_fields__
        if getattr(old, name) != getattr(new, name)
    ]


async def plan(state: StateStore, desired: WorkspaceFile) -> list[Change]:
    changes: list[Change] = []
    for ws in desired.workspaces:
        current = await state.workspace_by_name(ws.name)
        existing = {s.name: s for s in await state.list_sources(current.id)} if current else {}
        if current is None:
            changes.append(Change("create", "workspace", ws.name))
        for src in ws.sources:
            label = f"{ws.name}/{src.name}"
            old = existing.get(src.name)
            if old is None:
                details = [] if src.enabled else ["disabled"]
                changes.append(Change("create", "source", label, details))
                continue
            details = []
            if src.write_key is not None and src.write_key != old.write_key:
                details.append("write key changed")
            if src.enabled != old.enabled:
                details.append(f"enabled {str(old.enabled).lower()} -> {str(src.enabled).lower()}")
            details += _limits_diff(old.limits, src.limits)
            if details:
                changes.append(Change("update", "source", label, details))
    return changes


async def apply(state: StateStore, desired: WorkspaceFile) -> list[Change]:
    """Bring the state in line with the file; returns what changed (empty when in sync)."""
    changes = await plan(state, desired)
    for ws in desired.workspaces:
        current = await state.workspace_by_name(ws.name)
        if current is None:
            current = await state.create_workspace(ws.name)
        existing = {s.name: s for s in await state.list_sources(current.id)}
        for src in ws.sources:
            old = existing.get(src.name)
            if old is None:
                await state.create_source(
                    current.id, src.name, write_key=src.write_key, enabled=src.enabled, limits=src.limits
                )
            elif (
                (src.write_key is not None and src.write_key != old.write_key)
                or src.enabled != old.enabled
                or src.limits != old.limits
            ):
                await state.update_source(old.id, write_key=src.write_key, enabled=src.enabled, limits=src.limits)
    return changes


def dump(workspaces: list[tuple[str, list[dict[str, Any]]]]) -> str:
    """YAML for the given workspaces and their sources (used by export)."""
    doc = {"workspaces": [{"name": name, "sources": sources} for name, sources in workspaces]}
    return yaml.safe_dump(doc, sort_keys=False)
