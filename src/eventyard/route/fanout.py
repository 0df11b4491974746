"""Fan-out: which destinations get an event, in what shape, and why the others do not.

For each event and each destination connected to its source, in this order:

1. the destination is enabled (else ``destination_disabled``);
2. the destination takes the event type (else ``unsupported_type``);
3. the end user consented to the destination's consent categories (else ``consent``; see
   ``privacy.consent``);
4. the ``integrations`` object allows it (else ``integrations``);
5. the PII rules' per-destination overrides are applied (``route.pii_transform``; a ``block``
   override holds the event back with ``pii_blocked``);
6. the connection's filters keep it (else ``filter`` or ``sample``; they may also remove
   properties);
7. with mappings configured, one action's trigger matches (else ``mapping_trigger``) and its
   mapping shapes the payload.

A kept event becomes one delivery job in the destination's queue; every decision becomes a
trace entry (``queued`` or ``filtered`` with its reason) and a metric.
"""

from __future__ import annotations

from typing import Any

from eventyard.log.base import TraceEntry, Transaction
from eventyard.privacy.consent import blocked_by
from eventyard.quality.metrics import Metrics
from eventyard.route import jobs, pii_transform
from eventyard.route.routing import Route, RoutingTable
from eventyard.spec.pipeline import PipelineEvent


def integrations_allow(event: dict[str, Any], names: tuple[str, ...]) -> bool:
    """Segment's ``integrations`` object: a destination's own key wins, else ``All`` (default true).

    Keys are case-sensitive. A value of ``false`` blocks; ``true`` or an options object allows.
    """
    integrations = event.get("integrations")
    if not isinstance(integrations, dict) or not integrations:
        return True
    for name in names:
        if name in integrations:
            return integrations[name] is not False
    return integrations.get("All", True) is not False


def decide(route: Route, item: PipelineEvent) -> tuple[jobs.Job | None, str, str]:
    """The job for ``item`` at ``route``, or ``None`` with a reason code and detail."""
    config = route.config
    event = item.event
    if not config.enabled:
        return None, "destination_disabled", f"destination {config.name!r} is disabled"
    if route.broken is not None:
        return None, "config_error", route.broken
    kind = event.get("type")
    if kind not in route.capabilities.event_types:
        return None, "unsupported_type", f"{config.type} does not take {kind} events"
    if route.consent is not None:
        denied = blocked_by(event, route.consent)
        if denied is not None:
            return None, "consent", denied
    if not integrations_allow(event, route.integration_names):
        return None, "integrations", "blocked by the event's integrations object"
    if item.pii is not None:
        governed, why = pii_transform.for_destination(event, item.pii, config.id)
        if governed is None:
            return None, pii_transform.REASON, why
        event = governed
    if route.filters is not None:
        kept, reason, detail = route.filters.apply(event)
        if kept is None:
            return None, reason, detail
        event = kept
    payload: Any = None
    action: str | None = None
    if route.actions is not None:
        chosen = route.actions.select(event)
        if chosen is None:
            return None, "mapping_trigger", "no mapping trigger matched the event"
        action, payload = chosen
    job = jobs.Job(
        message_id=item.message_id,
        source_id=item.source_id,
        destination_id=config.id,
        event=event,
        payload=payload,
        received=item.received,
        action=action,
    )
    return job, "", ""


class Fanout:
    """Callable handed to the pipeline runner: events in, jobs and trace entries out."""

    def __init__(self, table: RoutingTable, metrics: Metrics) -> None:
        self.table = table
        self.metrics = metrics

    async def __call__(self, events: list[PipelineEvent]) -> Transaction:
        routes = await self.table.current()
        return self.plan(events, routes.by_source, origin=None)

    def plan(self, events: list[PipelineEvent], by_source: dict[str, list[Route]], origin: str | None) -> Transaction:
        tx = Transaction()
        appends, trace = tx.appends, tx.trace
        # A replay (``origin``) re-delivers on purpose: its jobs are not repeats of earlier ones.
        names: list[str] | None = None if origin is not None else tx.idempotency
        step = origin or "queued"
        encode = jobs.encode
        for item in events:
            routes = by_source.get(item.source_id)
            if not routes:
                continue
            for route in routes:
                job, reason, detail = decide(route, item)
                config = route.config
                if job is None:
                    trace.append(TraceEntry(item.message_id, item.source_id, "filtered", config.id, reason, detail))
                    self.metrics.filtered.labels(config.name, reason).inc()
                    continue
                if origin is not None:
                    job = jobs.Job(**{**_fields(job), "origin": origin})
                # The key orders a user's jobs; without ordering it is left empty (see EventLog.lease).
                key = item.user_key if config.delivery.ordering else ""
                appends.append((route.topic, key, encode(job)))
                if names is not None:
                    names.append(f"{item.position}:{config.id}")
                trace.append(TraceEntry(item.message_id, item.source_id, step, config.id, job.action or ""))
        return tx


def _fields(job: jobs.Job) -> dict[str, Any]:
    return {f: getattr(job, f) for f in job.__struct_fields__}
