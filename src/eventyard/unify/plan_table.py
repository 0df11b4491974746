"""Which sources follow which tracking plan, compiled; rebuilt when the configuration changes.

The stage asks for the table once per batch; the table compares the state store's
``config_version`` (like ``route.routing.RoutingTable``) and rebuilds only when it moved.
Compiled plans are kept by (workspace, plan, version), so a change elsewhere in the
configuration does not compile any plan again.
"""

from __future__ import annotations

import asyncio
import logging

from eventyard.errors import ConfigError
from eventyard.quality.plan_format import ATTACHMENT_KIND, PLAN_KIND, parse_attachment, parse_plan
from eventyard.state.base import Source, StateStore
from eventyard.unify.plan_compile import CompiledPlan
from eventyard.unify.plan_enforce import SourcePlan

log = logging.getLogger(__name__)


def _resolve(ref: str | None, workspace_id: str, sources: list[Source]) -> str | None:
    if not ref:
        return None
    for source in sources:
        if source.workspace_id == workspace_id and ref in (source.id, source.name):
            return source.id
    log.error("tracking plan forwarding: no source %r in workspace %s; nothing is forwarded there", ref, workspace_id)
    return None


class PlanTable:
    """Source id -> ``SourcePlan`` (only sources with a plan attached)."""

    def __init__(self) -> None:
        self.version = -1
        self.by_source: dict[str, SourcePlan] = {}
        self._compiled: dict[tuple[str, str, int], CompiledPlan] = {}
        self._lock = asyncio.Lock()
        #: When violation counts were last purged (the stage does it about hourly).
        self.purged_at = 0.0

    async def current(self, state: StateStore) -> dict[str, SourcePlan]:
        version = await state.config_version()
        if version == self.version:
            return self.by_source
        async with self._lock:
            if version != self.version:
                self.by_source = await self._build(state)
                self.version = version
        return self.by_source

    async def _build(self, state: StateStore) -> dict[str, SourcePlan]:
        attachments = await state.list_documents(None, ATTACHMENT_KIND)
        if not attachments:
            self._compiled.clear()
            return {}
        sources = await state.list_sources()
        by_id = {s.id: s for s in sources}
        table: dict[str, SourcePlan] = {}
        used: dict[tuple[str, str, int], CompiledPlan] = {}
        for doc in attachments:
            source = by_id.get(doc.name)
            if source is None:
                continue
            try:
                attachment = parse_attachment(doc.body)
                plan_doc = await state.get_document(doc.workspace_id, PLAN_KIND, attachment.plan)
                if plan_doc is None:
                    raise ConfigError(f"tracking plan {attachment.plan!r} does not exist")
                key = (doc.workspace_id, plan_doc.name, plan_doc.version)
                compiled = used.get(key) or self._compiled.get(key)
                if compiled is None:  # compiling takes a while: not on the event loop
                    compiled = await asyncio.to_thread(CompiledPlan, parse_plan(plan_doc.body), plan_doc.version)
                used[key] = compiled
            except ConfigError as exc:
                log.error("source %s: its tracking plan is not enforced: %s", source.name, exc)
                continue
            enforcement = attachment.enforcement
            table[source.id] = SourcePlan(
                source.id,
                source.name,
                source.workspace_id,
                compiled,
                enforcement,
                quarantine=_resolve(enforcement.forward_blocked_to, source.workspace_id, sources),
                violations_to=_resolve(enforcement.forward_violations_to, source.workspace_id, sources),
            )
        self._compiled = used
        return table
