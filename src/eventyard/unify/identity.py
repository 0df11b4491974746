"""Stage: resolve every event to a profile and stamp it with the profile's id.

Per workspace, the batch's events are resolved in one identity-store transaction
(``identity_write.resolve_batch``), in log order. Each event gets
``context.eventyard.profileId`` (and ``accountId`` for a group call); see ``unify.stamp``.

Nothing is dropped here: an event without a usable identifier (all blocked, say) travels on
unstamped and is counted as ``eventyard_identity_events_total{outcome="no_identifier"}``;
identifiers the rules refuse are counted by rule and kept for ``eventyard profile explain``.
A store failure fails the batch, which the runner retries as a whole (resolution is
idempotent: a retried batch finds its identifiers in place).
"""

from __future__ import annotations

from datetime import UTC, datetime

from eventyard.spec.pipeline import PipelineEvent, StageResult
from eventyard.state.identity_base import GraphTx
from eventyard.unify import stamp
from eventyard.unify.context import StageContext
from eventyard.unify.identifiers import Extracted, extract, key
from eventyard.unify.identity_graph import ALIAS, MERGE, SHARED_IDENTIFIER
from eventyard.unify.identity_rules import ACCOUNTS, USERS, IdentityRules
from eventyard.unify.identity_write import BatchResult, Request, resolve_batch

RESOLVED = "resolved"
NO_IDENTIFIER = "no_identifier"
UNKNOWN_SOURCE = "unknown_source"


def history_ids(found: Extracted) -> list[str]:
    """The user identifiers an event carries (before the merge rules), for its history row.

    An alias call's previousId is listed under both types it may have. A recomputation
    replays only those the profile still holds, so identifiers the rules refused (and that
    belong to another profile) link nothing.
    """
    if found.previous_id is None:
        return found.users
    return [*found.users, key("user_id", found.previous_id), key("anonymous_id", found.previous_id)]


def event_time(item: PipelineEvent) -> float:
    """The event's ``timestamp`` (skew-corrected at ingest) as Unix seconds."""
    raw = item.event.get("timestamp")
    if isinstance(raw, str):
        # ``timestamps.parse`` without its conversion to UTC: an aware time's Unix seconds do
        # not depend on its zone, and this runs once per event
        try:
            dt = datetime.fromisoformat(raw)
        except ValueError:
            return item.received
        return (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).timestamp()
    return item.received


def prepare(
    items: list[PipelineEvent], rules: IdentityRules, extracted: dict[int, list[str]]
) -> tuple[list[Request], list[tuple[int, bool]]]:
    """Resolution requests of the events, and per request (event position, is the account).
    Notes each event's identifiers in ``extracted`` for the profiles stage."""
    requests: list[Request] = []
    owners: list[tuple[int, bool]] = []
    for position, item in enumerate(items):
        event = item.event
        found = extract(event, rules)
        extracted[id(item)] = history_ids(found)
        kind = event.get("type")
        rule = ALIAS if kind == "alias" else MERGE if kind == "merge" else SHARED_IDENTIFIER
        ts = event_time(item)
        requests.append(
            Request(
                USERS,
                found.users,
                item.message_id,
                item.source_id,
                ts,
                rule,
                found.previous_id,
                found.blocked,
                item.position,
            )
        )
        owners.append((position, False))
        if found.accounts:
            requests.append(
                Request(ACCOUNTS, found.accounts, item.message_id, item.source_id, ts, rule, position=item.position)
            )
            owners.append((position, True))
    return requests, owners


async def run(batch: list[PipelineEvent], ctx: StageContext) -> StageResult:
    service = ctx.identity
    if service is None:
        return StageResult(batch)
    metrics = service.metrics
    service.extracted.clear()
    by_workspace: dict[str, list[PipelineEvent]] = {}
    workspaces: dict[str, str | None] = {}
    for item in batch:
        source = item.source_id
        if source not in workspaces:
            workspaces[source] = await service.workspace_of(source)
        workspace = workspaces[source]
        if workspace is None:
            if metrics is not None:
                metrics.identity_events.labels(UNKNOWN_SOURCE).inc()
            continue
        by_workspace.setdefault(workspace, []).append(item)
    now = ctx.clock()
    for workspace, items in by_workspace.items():
        rules = await service.rules(workspace)

        def work(
            tx: GraphTx, items: list[PipelineEvent] = items, workspace: str = workspace, rules: IdentityRules = rules
        ) -> tuple[list[tuple[int, bool]], BatchResult]:
            # extraction runs in the store's thread too, so the event loop keeps serving requests
            requests, owners = prepare(items, rules, service.extracted)
            return owners, resolve_batch(tx, workspace, rules, requests, now)

        # not flushed here: the profiles stage's commit, which follows before the batch is
        # acknowledged, flushes this one too (one fsync a batch; see docs/identity.md)
        owners, result = await service.store.transact(work, durable=False)
        users: list[str | None] = [None] * len(items)
        accounts: list[str | None] = [None] * len(items)
        for (position, is_account), profile in zip(owners, result.profiles, strict=True):
            (accounts if is_account else users)[position] = profile
        for item, user, account in zip(items, users, accounts, strict=True):
            if user is not None or account is not None:
                stamp.stamp(item.event, user, account)
        if metrics is not None:
            resolved = len(items) - users.count(None)
            metrics.identity_events.labels(RESOLVED).inc(resolved)
            if len(items) > resolved:
                metrics.identity_events.labels(NO_IDENTIFIER).inc(len(items) - resolved)
            for collection, n in result.created.items():
                metrics.identity_profiles_created.labels(collection).inc(n)
            for collection, rule in result.merges:
                metrics.identity_merges.labels(collection, rule).inc()
            for rule in result.refused:
                metrics.identity_refused.labels(rule).inc()
    return StageResult(batch)
