"""Stage: bring each stamped event into its profile.

For every event the identity stage stamped, in one transaction per workspace and batch:

- metadata: first and last seen (event time) with their messageId and source, the sources;
- traits: ``context.traits`` of any call and an identify call's ``traits``, each trait kept
  only if the event is at least as new as the stored value (last write wins by event time,
  so late events never overwrite newer values); a group call's traits go to the account;
- links: a group call links the user's profile to the account's;
- history: the event itself, kept for the configured retention (``profile_events_retention_days``).

Calls with more traits than the rules' ``max_traits`` (300, as Segment) change no traits;
they are counted as refused with rule ``max_traits``. Events are never dropped here.
"""

from __future__ import annotations

from typing import Any

import msgspec

from eventyard.spec.pipeline import PipelineEvent, StageResult
from eventyard.state.identity_base import EventRow, GraphTx
from eventyard.unify import stamp
from eventyard.unify.context import StageContext
from eventyard.unify.identifiers import extract
from eventyard.unify.identity import event_time, history_ids
from eventyard.unify.identity_rules import IdentityRules
from eventyard.unify.profile_records import ProfileUpdate, RecordResult, event_traits, record

TOO_MANY_TRAITS = "max_traits"
#: Most (profile, source) pairs remembered as stored.
KNOWN_SOURCES = 200_000

_encode = msgspec.json.Encoder()


def _name(event: dict[str, Any]) -> str | None:
    value = event.get("event") if event.get("type") == "track" else event.get("name")
    return value if isinstance(value, str) else None


def history_row(workspace_id: str, item: PipelineEvent, profile_id: str, ts: float, ids: list[str]) -> EventRow:
    event = item.event
    return EventRow(
        workspace_id=workspace_id,
        source_id=item.source_id,
        message_id=item.message_id,
        profile_id=profile_id,
        ts=ts,
        received=item.received,
        type=str(event.get("type", "")),
        name=_name(event),
        ids=ids,
        body=_encode.encode(event),
    )


def updates_of(
    workspace: str,
    items: list[PipelineEvent],
    rules: IdentityRules,
    keep_history: bool,
    extracted: dict[int, list[str]],
) -> tuple[list[ProfileUpdate], int]:
    """What each stamped event contributes; and how many calls had too many traits."""
    updates: list[ProfileUpdate] = []
    refused = 0
    for item in items:
        profile_id, account_id = stamp.stamped(item.event)
        if profile_id is None:
            continue
        event = item.event
        ts = event_time(item)
        traits = event_traits(event)
        if traits is not None and len(traits) > rules.max_traits:
            traits = None
            refused += 1
        account_traits = event.get("traits") if event.get("type") == "group" and account_id else None
        if not isinstance(account_traits, dict):
            account_traits = None
        elif len(account_traits) > rules.max_traits:
            account_traits = None
            refused += 1
        history = None
        if keep_history:
            ids = extracted.get(id(item))
            if ids is None:
                ids = history_ids(extract(event, rules))
            history = history_row(workspace, item, profile_id, ts, ids)
        updates.append(
            ProfileUpdate(profile_id, ts, item.message_id, item.source_id, traits, history, account_id, account_traits)
        )
    return updates, refused


async def run(batch: list[PipelineEvent], ctx: StageContext) -> StageResult:
    service = ctx.identity
    if service is None:
        return StageResult(batch)
    keep_history = service.retention_seconds > 0
    by_workspace: dict[str, list[PipelineEvent]] = {}
    workspaces: dict[str, str | None] = {}
    for item in batch:
        source = item.source_id
        if source not in workspaces:
            workspaces[source] = await service.workspace_of(source)
        workspace = workspaces[source]
        if workspace is not None:
            by_workspace.setdefault(workspace, []).append(item)
    now = ctx.clock()
    refused = 0
    for workspace, items in by_workspace.items():
        rules = await service.rules(workspace)

        def apply(
            tx: GraphTx, workspace: str = workspace, items: list[PipelineEvent] = items, rules: IdentityRules = rules
        ) -> tuple[RecordResult, int]:
            # building the updates runs in the store's thread too, so the event loop stays free
            updates, too_many = updates_of(workspace, items, rules, keep_history, service.extracted)
            return record(tx, workspace, updates, now, service.known_sources), too_many

        # durable: it also flushes the identity stage's commit of this batch to disk
        result, too_many = await service.store.transact(apply)
        refused += too_many
        if len(service.known_sources) > KNOWN_SOURCES:
            service.known_sources.clear()
        service.known_sources.update(result.sources)
    if refused and service.metrics is not None:
        service.metrics.identity_refused.labels(TOO_MANY_TRAITS).inc(refused)
    return StageResult(batch)
