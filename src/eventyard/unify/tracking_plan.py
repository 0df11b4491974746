"""Stage: enforce each source's tracking plan (Segment's Protocols).

With no plan attached to any source the stage costs one ``config_version`` read per batch.
With a plan, each event costs one compiled-validator call (``unify.plan_compile``) and the
decision of ``unify.plan_enforce``:

- blocked events are dropped with ``tracking_plan_unplanned`` or ``tracking_plan_violation``
  (metrics and the event trace show the reason); when the source forwards blocked events, the
  event is appended to the quarantine source in the same commit;
- omitted fields are listed in ``context.protocols`` (``omitted``, ``omitted_on_violation``);
- every violation is counted per (source, plan, event, field, type) in the state store, and
  optionally reported as a ``Violation Generated`` track event to a chosen source.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from eventyard import __version__
from eventyard.spec.normalize import Envelope, EventRejected, normalize
from eventyard.spec.pipeline import Dropped, Emitted, PipelineEvent, StageResult
from eventyard.state.base import VIOLATION_BUCKET_SECONDS, ViolationCount
from eventyard.unify.context import StageContext
from eventyard.unify.plan_compile import Violation
from eventyard.unify.plan_enforce import REASON_UNPLANNED, REASON_VIOLATION, SourcePlan, enforce, event_key

__all__ = ["REASON_UNPLANNED", "REASON_VIOLATION", "run"]

log = logging.getLogger(__name__)

#: Violation counts are kept this long (the longest window shown is 7 days).
KEEP_SECONDS = 7 * 86400.0 + VIOLATION_BUCKET_SECONDS
PURGE_EVERY = 3600.0

_Key = tuple[str, str, str, str, str, str, str]


async def run(batch: list[PipelineEvent], ctx: StageContext) -> StageResult:
    table = ctx.tracking_plans
    plans = await table.current(ctx.state)
    if not plans:
        return StageResult(batch)
    now = ctx.clock()
    kept: list[PipelineEvent] = []
    dropped: list[Dropped] = []
    emitted: list[Emitted] = []
    counts: dict[_Key, list[Any]] = {}
    for item in batch:
        sp = plans.get(item.source_id)
        if sp is None:
            kept.append(item)
            continue
        original = item.event if sp.quarantine or sp.violations_to else None
        if original is not None:
            original = {**original}
        decision = enforce(sp, item.event)
        if decision.violations:
            _count(counts, sp, item.event if original is None else original, decision.violations, now)
            if sp.violations_to and sp.violations_to != item.source_id and not _is_report(item.event):
                emitted += _reports(sp, item, original or item.event, decision.violations, now)
        if not decision.blocked:
            kept.append(item)
            continue
        detail = decision.detail
        if (
            sp.quarantine
            and sp.quarantine != item.source_id
            and original is not None
            and not _was_quarantined(original)
        ):
            emitted.append(Emitted(sp.quarantine, _quarantined(original, sp, decision.blocked), item.record_id))
            detail += "; forwarded to the quarantine source"
        dropped.append(Dropped(item, decision.blocked, detail))
    if counts:
        await _record(ctx, counts, now)
    return StageResult(kept, dropped, [], emitted)


def _count(
    counts: dict[_Key, list[Any]], sp: SourcePlan, event: dict[str, Any], found: list[Violation], now: float
) -> None:
    kind, name = str(event.get("type") or ""), event_key(event)
    for v in found:
        key = (sp.workspace_id, sp.source_id, sp.plan_name, kind, name, v.field, v.type)
        entry = counts.get(key)
        if entry is None:
            counts[key] = [1, v.description]
        else:
            entry[0] += 1
            entry[1] = v.description


async def _record(ctx: StageContext, counts: dict[_Key, list[Any]], now: float) -> None:
    rows = [ViolationCount(*key, count=n, at=now, description=text) for key, (n, text) in counts.items()]
    table = ctx.tracking_plans
    try:
        await ctx.state.record_violations(rows)
        if now - table.purged_at > PURGE_EVERY:
            table.purged_at = now
            await ctx.state.purge_violations(now - KEEP_SECONDS)
    except Exception:  # counts are statistics: never hold events back for them
        log.exception("recording %d tracking plan violation counts failed", len(rows))


def _is_report(event: dict[str, Any]) -> bool:
    """A ``Violation Generated`` event: its own violations are counted, never reported again."""
    return event.get("event") == "Violation Generated" and event.get("userId") == "schema-violations"


def _was_quarantined(event: dict[str, Any]) -> bool:
    """Blocked once already: an event is forwarded at most once, so two sources that forward
    to each other cannot pass it back and forth."""
    context = event.get("context")
    protocols = context.get("protocols") if isinstance(context, dict) else None
    return isinstance(protocols, dict) and bool(protocols.get("blocked"))


def _quarantined(event: dict[str, Any], sp: SourcePlan, reason: str) -> dict[str, Any]:
    context = dict(event.get("context") or {})
    protocols = dict(context.get("protocols") or {})
    protocols.update({"sourceId": sp.source_id, "blocked": reason, "trackingPlan": sp.plan_name})
    context["protocols"] = protocols
    return {**event, "context": context}


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reports(
    sp: SourcePlan, item: PipelineEvent, event: dict[str, Any], found: list[Violation], now: float
) -> list[Emitted]:
    """``Violation Generated`` track events (Segment's shape), one per violation; unplanned
    properties and traits are counted but not reported one by one."""
    out: list[Emitted] = []
    at = _iso(now)
    env = Envelope(received=datetime.fromtimestamp(now, UTC), received_at=at)
    context = event.get("context") if isinstance(event.get("context"), dict) else {}
    app = context.get("app") if isinstance(context, dict) else None
    for v in found:
        if v.type == "Unplanned" and v.field != "event":
            continue
        raw: dict[str, Any] = {
            "type": "track",
            "event": "Violation Generated",
            "userId": "schema-violations",
            "messageId": f"sch-{uuid.uuid4().hex}",
            "timestamp": at,
            "context": {"app": app, "library": {"name": "eventyard", "version": __version__}},
            "integrations": {},
            "properties": {
                "appVersion": str((app or {}).get("version", "")) if isinstance(app, dict) else "",
                "eventMessageID": item.message_id,
                "eventName": event_key(event),
                "eventSentAt": event.get("sentAt") or "",
                "eventTimestamp": event.get("timestamp") or "",
                "eventType": event.get("type") or "",
                "sourceID": sp.source_id,
                "sourceName": sp.source_name,
                "sourceSlug": sp.source_name,
                "trackingPlanID": f"{sp.plan_name}@{sp.compiled.version}",
                "trackingPlanName": sp.plan_name,
                "violationDescription": v.description,
                "violationField": v.field,
                "violationType": v.type,
            },
            "forwardedFromProject": sp.source_id,
        }
        try:
            out.append(Emitted(sp.violations_to or "", normalize(raw, None, env), item.record_id))
        except EventRejected as exc:  # pragma: no cover - the report is built valid
            log.error("could not build a Violation Generated event: %s", exc)
    return out
