"""Diff a parsed workspace file against the state store, and apply it (create and update only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
import yaml

from eventyard.control import identity_apply, plan_apply, privacy_apply
from eventyard.control.workspace_file import DestinationDecl, SourceDecl, WorkspaceFile
from eventyard.spec.limits import Limits
from eventyard.state.autoconnect import AUTO_CONNECT, connect_new_source, wants_every_source
from eventyard.state.base import DeliveryPolicy, DestinationConfig, Source, StateStore
from eventyard.unify.identity_service import IdentityService


@dataclass
class Change:
    action: str  # "create" | "update"
    kind: str  # "workspace" | "source" | "destination" | "connection"
    name: str
    details: list[str] = field(default_factory=list)

    def describe(self) -> str:
        sign = "+" if self.action == "create" else "~"
        text = f"{sign} {self.kind} {self.name}"
        if self.details:
            text += ": " + "; ".join(self.details)
        return text


def _field_diff(old: msgspec.Struct, new: msgspec.Struct) -> list[str]:
    return [
        f"{name} {getattr(old, name)} -> {getattr(new, name)}"
        for name in old.__struct_fields__
        if getattr(old, name) != getattr(new, name)
    ]


def _source_changes(src: SourceDecl, old: Source) -> list[str]:
    details = []
    if src.write_key is not None and src.write_key != old.write_key:
        details.append("write key changed")
    if src.enabled != old.enabled:
        details.append(f"enabled {str(old.enabled).lower()} -> {str(src.enabled).lower()}")
    return details + _field_diff(old.limits, src.limits)


def _destination_changes(dest: DestinationDecl, old: DestinationConfig) -> list[str]:
    details = []
    if dest.type != old.type:
        details.append(f"type {old.type} -> {dest.type} (not changed: create a new destination instead)")
    if dest.settings != old.settings:
        details.append("settings changed")
    if dest.enabled != old.enabled:
        details.append(f"enabled {str(old.enabled).lower()} -> {str(dest.enabled).lower()}")
    if dest.mappings != old.actions:
        details.append("mappings changed")
    return details + _field_diff(old.delivery, dest.delivery)


async def plan(state: StateStore, desired: WorkspaceFile, identity: IdentityService | None = None) -> list[Change]:
    changes: list[Change] = []
    connections = {(c.source_id, c.destination_id): c for c in await state.list_connections()}
    for ws in desired.workspaces:
        current = await state.workspace_by_name(ws.name)
        if current is None:
            changes.append(Change("create", "workspace", ws.name))
        sources = {s.name: s for s in await state.list_sources(current.id)} if current else {}
        dests = {d.name: d for d in await state.list_destinations(current.id)} if current else {}
        for src in ws.sources:
            old = sources.get(src.name)
            label = f"{ws.name}/{src.name}"
            if old is None:
                changes.append(Change("create", "source", label, [] if src.enabled else ["disabled"]))
            elif details := _source_changes(src, old):
                changes.append(Change("update", "source", label, details))
        for dest in ws.destinations:
            old_dest = dests.get(dest.name)
            label = f"{ws.name}/{dest.name}"
            if old_dest is None:
                changes.append(Change("create", "destination", label, [dest.type]))
            elif details := _destination_changes(dest, old_dest):
                changes.append(Change("update", "destination", label, details))
        declared = {(c.source, c.destination) for c in ws.connections}
        for src in ws.sources:
            if src.name in sources:
                continue
            for name in _auto_connected(ws, dests):
                if (src.name, name) not in declared:
                    label = f"{ws.name}/{src.name} -> {name}"
                    changes.append(
                        Change("create", "connection", label, ["automatic: the destination has auto_connect"])
                    )
        for conn in ws.connections:
            label = f"{ws.name}/{conn.source} -> {conn.destination}"
            s, d = sources.get(conn.source), dests.get(conn.destination)
            existing = connections.get((s.id, d.id)) if s and d else None
            if existing is None:
                changes.append(Change("create", "connection", label))
            elif existing.filters != conn.filters:
                changes.append(Change("update", "connection", label, ["filters changed"]))
        changes += [Change(*c) for c in await plan_apply.changes(state, current, ws)]
        changes += [Change(*c) for c in await privacy_apply.changes(state, current, ws)]
    changes += await identity_apply.plan(state, identity, desired)
    return changes


async def apply(state: StateStore, desired: WorkspaceFile, identity: IdentityService | None = None) -> list[Change]:
    """Bring the state in line with the file; returns what changed (empty when in sync)."""
    changes = await plan(state, desired, identity)
    connections = {(c.source_id, c.destination_id): c for c in await state.list_connections()}
    for ws in desired.workspaces:
        current = await state.workspace_by_name(ws.name) or await state.create_workspace(ws.name)
        sources = {s.name: s for s in await state.list_sources(current.id)}
        created: list[Source] = []
        for src in ws.sources:
            old = sources.get(src.name)
            if old is None:
                sources[src.name] = await state.create_source(
                    current.id, src.name, write_key=src.write_key, enabled=src.enabled, limits=src.limits
                )
                created.append(sources[src.name])
            elif _source_changes(src, old):
                sources[src.name] = await state.update_source(
                    old.id, write_key=src.write_key, enabled=src.enabled, limits=src.limits
                )
        dests = {d.name: d for d in await state.list_destinations(current.id)}
        for dest in ws.destinations:
            old_dest = dests.get(dest.name)
            if old_dest is None:
                dests[dest.name] = await state.create_destination(
                    current.id,
                    dest.name,
                    dest.type,
                    settings=dest.settings,
                    enabled=dest.enabled,
                    delivery=dest.delivery,
                    actions=dest.mappings,
                )
            elif _destination_changes(dest, old_dest):
                dests[dest.name] = await state.update_destination(
                    old_dest.id,
                    settings=dest.settings,
                    enabled=dest.enabled,
                    delivery=dest.delivery,
                    actions=dest.mappings,
                )
        for source in created:  # before the declared connections, whose filters then win
            await connect_new_source(state, source)
        connections = {(c.source_id, c.destination_id): c for c in await state.list_connections()}
        for conn in ws.connections:
            s, d = sources[conn.source], dests[conn.destination]
            existing = connections.get((s.id, d.id))
            if existing is None or existing.filters != conn.filters:
                await state.set_connection(s.id, d.id, conn.filters)
        await plan_apply.apply(state, current, ws, sources)
        await privacy_apply.apply(state, current, ws)
    await identity_apply.apply(state, identity, desired)
    return changes


def _auto_connected(ws: Any, current: dict[str, DestinationConfig]) -> list[str]:
    """Names of the workspace's destinations that new sources join (as the file leaves them)."""
    names = []
    declared = {d.name: d for d in ws.destinations}
    for name in dict.fromkeys([*current, *declared]):
        dest = declared.get(name)
        if dest is not None:
            wanted = dest.enabled and dest.settings.get(AUTO_CONNECT) is True
        else:
            wanted = wants_every_source(current[name])
        if wanted:
            names.append(name)
    return names


async def export(
    state: StateStore,
    redact_settings: bool = True,
    only: set[str] | None = None,
    identity: IdentityService | None = None,
) -> str:
    """The whole configuration as a workspace file (secrets redacted unless asked not to);
    ``only``: just the workspaces with these ids."""
    from eventyard.destinations import registry
    from eventyard.destinations.base import redact

    workspaces: list[dict[str, Any]] = []
    connections = await state.list_connections()
    for ws in await state.list_workspaces():
        if only is not None and ws.id not in only:
            continue
        sources = await state.list_sources(ws.id)
        dests = await state.list_destinations(ws.id)
        src_names = {s.id: s.name for s in sources}
        dst_names = {d.id: d.name for d in dests}
        doc: dict[str, Any] = {"name": ws.name, "sources": []}
        for s in sources:
            entry: dict[str, Any] = {"name": s.name, "write_key": s.write_key}
            if not s.enabled:
                entry["enabled"] = False
            if s.limits != Limits():
                entry["limits"] = msgspec.to_builtins(s.limits)
            doc["sources"].append(entry)
        if dests:
            doc["destinations"] = []
        for d in dests:
            settings = d.settings
            if redact_settings:
                try:
                    cls = registry.load(d.type)
                    settings = redact(msgspec.convert(d.settings, cls.Settings))
                except Exception:
                    settings = {k: "…" for k in d.settings}
            entry = {"name": d.name, "type": d.type, "settings": settings}
            if not d.enabled:
                entry["enabled"] = False
            if d.delivery != DeliveryPolicy():
                entry["delivery"] = msgspec.to_builtins(d.delivery)
            if d.actions:
                entry["mappings"] = d.actions
            doc["destinations"].append(entry)
        conns = [c for c in connections if c.source_id in src_names and c.destination_id in dst_names]
        if conns:
            doc["connections"] = [
                {"source": src_names[c.source_id], "destination": dst_names[c.destination_id]}
                | ({"filters": c.filters} if c.filters else {})
                for c in conns
            ]
        await plan_apply.export(state, ws, doc, sources)
        await privacy_apply.export(state, ws, doc)
        doc |= await identity_apply.exported(identity, ws.id)
        workspaces.append(doc)
    return yaml.safe_dump({"workspaces": workspaces}, sort_keys=False, allow_unicode=True)
