"""Tracking plans and their source attachments in the state store (versioned documents).

Shared by the control API and ``eventyard apply``: the same checks, the same refusals.
"""

from __future__ import annotations

import msgspec

from eventyard.errors import ConfigError, NotFound, Terminal
from eventyard.quality.plan_format import (
    ATTACHMENT_KIND,
    PLAN_KIND,
    Attachment,
    TrackingPlan,
    parse_attachment,
    parse_plan,
)
from eventyard.state.base import Document, Source, StateStore


async def get_plan(
    state: StateStore, workspace_id: str, name: str, version: int | None = None
) -> tuple[TrackingPlan, Document]:
    doc = await state.get_document(workspace_id, PLAN_KIND, name, version)
    if doc is None:
        what = f"version {version} of tracking plan {name!r}" if version else f"tracking plan {name!r}"
        raise NotFound(f"there is no {what}")
    return parse_plan(doc.body), doc


async def put_plan(state: StateStore, workspace_id: str, plan: TrackingPlan, actor: str = "") -> Document:
    """Store ``plan`` as its next version (no new version when nothing changed)."""
    return await state.put_document(workspace_id, PLAN_KIND, plan.name, plan.to_json(), actor=actor)


async def list_plans(state: StateStore, workspace_id: str) -> list[Document]:
    return await state.list_documents(workspace_id, PLAN_KIND)


async def attachments(state: StateStore, workspace_id: str) -> dict[str, Attachment]:
    """Source id -> attachment, for the workspace's sources with a plan."""
    docs = await state.list_documents(workspace_id, ATTACHMENT_KIND)
    return {d.name: parse_attachment(d.body) for d in docs}


async def sources_of(state: StateStore, workspace_id: str, plan: str) -> list[str]:
    return [sid for sid, a in (await attachments(state, workspace_id)).items() if a.plan == plan]


async def delete_plan(state: StateStore, workspace_id: str, name: str, actor: str = "") -> None:
    if await state.get_document(workspace_id, PLAN_KIND, name) is None:
        raise NotFound(f"there is no tracking plan {name!r}")
    attached = await sources_of(state, workspace_id, name)
    if attached:
        names = {s.id: s.name for s in await state.list_sources(workspace_id)}
        raise Terminal(
            f"tracking plan {name!r} is attached to source(s) {', '.join(names.get(s, s) for s in attached)}; "
            "detach it first"
        )
    await state.delete_document(workspace_id, PLAN_KIND, name, actor=actor)


def _forward_target(ref: str | None, what: str, source: Source, sources: list[Source]) -> None:
    if ref is None:
        return
    for other in sources:
        if ref in (other.id, other.name):
            if other.id == source.id:
                raise ConfigError(f"`{what}` cannot be the source itself ({source.name!r})")
            return
    raise ConfigError(f"`{what}`: no source {ref!r} in this workspace")


async def attach(
    state: StateStore, source: Source, attachment: Attachment | dict[str, object], actor: str = ""
) -> Attachment:
    """Attach a plan (with its settings) to a source; the plan and forwarding sources must exist."""
    found = attachment if isinstance(attachment, Attachment) else parse_attachment(attachment)
    if await state.get_document(source.workspace_id, PLAN_KIND, found.plan) is None:
        raise ConfigError(f"there is no tracking plan {found.plan!r} in the source's workspace")
    sources = await state.list_sources(source.workspace_id)
    _forward_target(found.enforcement.forward_blocked_to, "forward_blocked_to", source, sources)
    _forward_target(found.enforcement.forward_violations_to, "forward_violations_to", source, sources)
    await state.put_document(source.workspace_id, ATTACHMENT_KIND, source.id, msgspec.to_builtins(found), actor=actor)
    return found


async def attachment_of(state: StateStore, source: Source) -> Attachment | None:
    doc = await state.get_document(source.workspace_id, ATTACHMENT_KIND, source.id)
    return parse_attachment(doc.body) if doc else None


async def detach(state: StateStore, source: Source, actor: str = "") -> bool:
    return await state.delete_document(source.workspace_id, ATTACHMENT_KIND, source.id, actor=actor)
