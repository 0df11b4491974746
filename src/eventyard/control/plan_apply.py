"""Tracking plans in ``workspace.yaml``: checking, diffing, applying and exporting them.

.. code-block:: yaml

    workspaces:
      - name: default
        tracking_plans:
          - name: shop
            description: what the web shop sends
            rules:
              - type: TRACK
                key: Order Completed
                version: 1
                jsonSchema: {type: object, properties: {properties: {type: object, required: [order_id]}}}
        sources:
          - name: web
            tracking_plan:
              plan: shop
              enforcement: {track_unplanned_events: block, track_violations: omit}

``workspace_file`` and ``workspace_apply`` call in here (one line each); like the rest of
``apply``, nothing is deleted: a plan or attachment the file no longer mentions stays.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from eventyard.errors import ConfigError
from eventyard.quality import plan_store
from eventyard.quality.plan_diff import diff_plans
from eventyard.quality.plan_format import PLAN_KIND, Attachment, Enforcement, TrackingPlan, check_plan, parse_plan
from eventyard.state.base import Source, StateStore, Workspace

#: (action, kind, name, details) as ``workspace_apply.Change`` takes them.
ChangeTuple = tuple[str, str, str, list[str]]


def check(ws: Any, w: int) -> tuple[str, str] | None:
    """The first problem of a workspace's plans and attachments: ``(path, message)``."""
    names: set[str] = set()
    for i, plan in enumerate(ws.tracking_plans):
        at = f"$.workspaces[{w}].tracking_plans[{i}]"
        if plan.name in names:
            return at, f"tracking plan {plan.name!r} is declared twice"
        names.add(plan.name)
        try:
            check_plan(plan)
        except ConfigError as exc:
            rule = re.match(r"(rules\[\d+\])(\.\w+)?", str(exc))
            return (f"{at}.{rule.group(0)}" if rule else at), f"tracking plan {plan.name!r}: {exc}"
    sources = {s.name for s in ws.sources}
    for i, src in enumerate(ws.sources):
        att: Attachment | None = src.tracking_plan
        if att is None:
            continue
        at = f"$.workspaces[{w}].sources[{i}].tracking_plan"
        for field in ("forward_blocked_to", "forward_violations_to"):
            ref = getattr(att.enforcement, field)
            if ref == src.name:
                return f"{at}.enforcement.{field}", f"`{field}` cannot be the source itself"
            if ref is not None and ref not in sources:
                return f"{at}.enforcement.{field}", f"no source {ref!r} is declared in workspace {ws.name!r}"
    return None


async def changes(state: StateStore, current: Workspace | None, ws: Any) -> list[ChangeTuple]:
    out: list[ChangeTuple] = []
    for plan in ws.tracking_plans:
        label = f"{ws.name}/{plan.name}"
        doc = await state.get_document(current.id, PLAN_KIND, plan.name) if current else None
        if doc is None:
            out.append(("create", "tracking plan", label, [f"{len(plan.rules)} rules"]))
            continue
        old = parse_plan(doc.body)
        if old.to_json() != plan.to_json():
            details = [c.describe() for c in diff_plans(old, plan)] or ["description changed"]
            out.append(("update", "tracking plan", label, [f"version {doc.version} -> {doc.version + 1}", *details]))
    sources = {s.name: s for s in await state.list_sources(current.id)} if current else {}
    for src in ws.sources:
        if src.tracking_plan is None:
            continue
        label = f"{ws.name}/{src.name}"
        old_src = sources.get(src.name)
        before = await plan_store.attachment_of(state, old_src) if old_src else None
        if before is None:
            out.append(("create", "tracking plan attachment", label, [src.tracking_plan.plan]))
        elif before != src.tracking_plan:
            out.append(("update", "tracking plan attachment", label, _attachment_diff(before, src.tracking_plan)))
    return out


def _attachment_diff(old: Attachment, new: Attachment) -> list[str]:
    details = [f"plan {old.plan} -> {new.plan}"] if old.plan != new.plan else []
    for name in Enforcement.__struct_fields__:
        a, b = getattr(old.enforcement, name), getattr(new.enforcement, name)
        if a != b:
            details.append(f"{name} {a} -> {b}")
    return details


async def apply(state: StateStore, current: Workspace, ws: Any, sources: dict[str, Source], actor: str = "cli") -> None:
    """Store changed plans (each change a new version), then the sources' attachments."""
    for plan in ws.tracking_plans:
        await plan_store.put_plan(state, current.id, plan, actor)
    for src in ws.sources:
        if src.tracking_plan is not None:
            await plan_store.attach(state, sources[src.name], src.tracking_plan, actor)


def _enforcement_entry(enforcement: Enforcement) -> dict[str, Any]:
    default = Enforcement()
    return {
        name: getattr(enforcement, name)
        for name in Enforcement.__struct_fields__
        if getattr(enforcement, name) != getattr(default, name)
    }


async def export(state: StateStore, ws: Workspace, doc: dict[str, Any], sources: list[Source]) -> None:
    """Add the workspace's plans and each source's attachment to an exported workspace entry."""
    plans = [parse_plan(d.body) for d in await plan_store.list_plans(state, ws.id)]
    attached = await plan_store.attachments(state, ws.id)
    names = {s.id: s.name for s in sources}
    for entry in doc.get("sources", []):
        source_id = next((sid for sid, name in names.items() if name == entry["name"]), None)
        att = attached.get(source_id or "")
        if att is not None:
            item: dict[str, Any] = {"plan": att.plan}
            if settings := _enforcement_entry(att.enforcement):
                item["enforcement"] = settings
            entry["tracking_plan"] = item
    if plans:
        doc["tracking_plans"] = [_plan_entry(p) for p in plans]


def _plan_entry(plan: TrackingPlan) -> dict[str, Any]:
    return msgspec.to_builtins(plan.to_json())  # type: ignore[no-any-return]
