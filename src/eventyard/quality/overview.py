"""The delivery overview: per destination, what happened to events over recent time buckets.

Built from the trace entries kept with the log (so it covers every process) plus the live
queue counts: received, filtered (by reason), retrying, dead-lettered, delivered, delivery
latency percentiles, and the destination's health. Refusals at ingest are counted per
source from the ``rejected`` topic.

Values a warehouse kept in its discards table (trace step ``discarded``) are counted by reason
in ``totals.discarded`` and raise an alert (``alerts``: ``warehouse_discards``) that
``eventyard status`` prints.
"""

from __future__ import annotations

from typing import Any

from eventyard.log import topics
from eventyard.log.base import EventLog
from eventyard.state.base import StateStore

#: What the delivery overview calls some filter reasons, in Segment's words where it has them.
FILTER_LABELS = {
    "consent": "Filtered by end user consent",
    "pii_blocked": "Blocked by a PII rule",
    "integrations": "Filtered by the integrations object",
}


def percentile(values: list[tuple[float, int]], p: float) -> float | None:
    """The ``p``-th percentile of ``(value, count)`` pairs in ascending value."""
    total = sum(n for _, n in values)
    if not total:
        return None
    k = min(total - 1, max(0, round(p / 100 * (total - 1))))
    seen = 0
    for value, n in values:
        seen += n
        if seen > k:
            return value
    return values[-1][0]


async def destination_overview(
    log: EventLog, state: StateStore, since: float, bucket_seconds: int = 300
) -> list[dict[str, Any]]:
    counts = await log.trace_counts(since, bucket_seconds)
    health = {h.destination_id: h for h in await state.list_destination_health()}
    out = []
    for dest in await state.list_destinations():
        buckets: dict[float, dict[str, Any]] = {}
        totals: dict[str, Any] = {
            "queued": 0,
            "delivered": 0,
            "retrying": 0,
            "dead_lettered": 0,
            "filtered": {},
            "discarded": {},
        }
        for c in counts:
            if c.destination_id != dest.id:
                continue
            b = buckets.setdefault(
                c.bucket,
                {"start": c.bucket, "queued": 0, "delivered": 0, "retrying": 0, "dead_lettered": 0, "filtered": {}},
            )
            for target in (b, totals):
                if c.step == "filtered":
                    target["filtered"][c.reason] = target["filtered"].get(c.reason, 0) + c.count
                elif c.step in ("queued", "replayed", "resent"):
                    target["queued"] += c.count
                elif c.step in ("delivered", "retrying", "dead_lettered"):
                    target[c.step] += c.count
                elif c.step == "dropped_by_destination":
                    target["filtered"]["destination"] = target["filtered"].get("destination", 0) + c.count
                elif c.step == "discarded" and target is totals:
                    totals["discarded"][c.reason] = totals["discarded"].get(c.reason, 0) + c.count
        stats = await log.stats(topics.deliver(dest.id))
        latencies = await log.delivery_latencies(dest.id, since)
        h = health.get(dest.id)
        out.append(
            {
                "id": dest.id,
                "name": dest.name,
                "type": dest.type,
                "enabled": dest.enabled,
                "health": {"status": h.status, "reason": h.reason, "since": h.since} if h else {"status": "healthy"},
                "totals": {**totals, "received": totals["queued"] + sum(totals["filtered"].values())},
                "filtered_labels": {r: FILTER_LABELS[r] for r in totals["filtered"] if r in FILTER_LABELS},
                "queue": {
                    "ready": stats.ready,
                    "in_flight": stats.leased,
                    "waiting_retry": stats.scheduled,
                    "dead_letters": stats.dead,
                },
                "latency_ms": {f"p{p}": percentile(latencies, p) for p in (50, 95, 99)},
                "alerts": _alerts(totals),
                "buckets": [
                    {**b, "received": b["queued"] + sum(b["filtered"].values())} for _, b in sorted(buckets.items())
                ],
            }
        )
    return out


async def ingest_overview(log: EventLog, since: float) -> dict[str, Any]:
    """Accepted and dropped-in-pipeline counts, and refusals at ingest per source and reason."""
    counts = await log.trace_counts(since, 3600 * 24 * 365)
    accepted = sum(c.count for c in counts if c.step == "accepted")
    dropped: dict[str, int] = {}
    for c in counts:
        if c.step == "dropped":
            dropped[c.reason] = dropped.get(c.reason, 0) + c.count
    return {"accepted": accepted, "dropped": dropped}


def _alerts(totals: dict[str, Any]) -> list[dict[str, Any]]:
    """Things about a destination a person should look at (besides its health)."""
    alerts = []
    discarded: dict[str, int] = totals["discarded"]
    if discarded:
        n = sum(discarded.values())
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in sorted(discarded.items()))
        alerts.append(
            {
                "code": "warehouse_discards",
                "count": n,
                "message": f"{n:,} value(s) were not loaded and went to the discards table ({reasons}); "
                "query <schema>.discards, or `eventyard trace MESSAGE_ID` for one event",
            }
        )
    return alerts
