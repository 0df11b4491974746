"""The pipeline runner: lease stored events, run the unify stages, hand survivors to fan-out.

One durable step per batch: the ingest records are acked in the same log transaction that
appends their delivery jobs and trace entries, so a crash anywhere before the commit leaves
the batch to be leased again (dedupe recognises its own records), and a crash after it
leaves nothing to redo. Fan-out is injected by the runtime (unify does not import route).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import msgspec

from eventyard.aio import pause
from eventyard.log import topics
from eventyard.log.base import EventLog, LeasedRecord, TraceEntry, Transaction
from eventyard.quality.metrics import Metrics
from eventyard.spec.pipeline import PipelineEvent
from eventyard.unify.context import StageContext
from eventyard.unify.pipeline import run_pipeline

log = logging.getLogger(__name__)

#: Given the events that survived unify, the delivery jobs and trace entries to write.
Fanout = Callable[[list[PipelineEvent]], Awaitable[Transaction]]

#: Seconds before a batch whose stage or fan-out raised is tried again.
FAILED_BATCH_DELAY = 5.0


def to_pipeline_event(record: LeasedRecord) -> PipelineEvent:
    event = msgspec.json.decode(record.payload)
    return PipelineEvent(
        record_id=record.id,
        source_id=record.key,
        message_id=str(event.get("messageId", "")),
        event=event,
        received=record.appended_at,
    )


class PipelineRunner:
    def __init__(
        self,
        log: EventLog,
        ctx: StageContext,
        fanout: Fanout,
        metrics: Metrics,
        consumer: str,
        batch_size: int = 500,
        lease_seconds: float = 60.0,
    ) -> None:
        self.log = log
        self.ctx = ctx
        self.fanout = fanout
        self.metrics = metrics
        self.consumer = consumer
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds

    async def step(self) -> int:
        """Process one batch; returns how many records were leased (0 when idle)."""
        leased = await self.log.lease(topics.INGEST, self.consumer, self.batch_size, self.lease_seconds)
        if not leased:
            return 0
        events: list[PipelineEvent] = []
        tx = Transaction()
        for record in leased:
            try:
                events.append(to_pipeline_event(record))
            except (msgspec.DecodeError, AttributeError) as exc:
                tx.dead.append((record.id, f"undecodable ingest record: {exc}"))
        try:
            result = await run_pipeline(events, self.ctx)
            plan = await self.fanout(result.kept)
        except Exception as exc:
            log.exception("the pipeline failed on a batch of %d events; retrying it", len(events))
            error = f"{type(exc).__name__}: {exc}"
            await self.log.retry([e.record_id for e in events], self.ctx.clock() + FAILED_BATCH_DELAY, error)
            self.metrics.pipeline_events.labels("failed").inc(len(events))
            return len(leased)
        now = self.ctx.clock()
        tx.appends = plan.appends
        tx.ack = [e.record_id for e in result.kept] + [d.event.record_id for d in result.dropped]
        tx.retry = [(f.event.record_id, now + FAILED_BATCH_DELAY, f.error) for f in result.failed]
        tx.trace = [TraceEntry(e.message_id, e.source_id, "accepted", at=e.received) for e in events]
        tx.trace += [
            TraceEntry(d.event.message_id, d.event.source_id, "dropped", reason=d.reason, detail=d.detail, at=now)
            for d in result.dropped
        ]
        tx.trace += plan.trace
        await self.log.commit(tx)
        self.metrics.pipeline_events.labels("kept").inc(len(result.kept))
        for d in result.dropped:
            self.metrics.pipeline_dropped.labels(d.reason).inc()
        if result.failed:
            self.metrics.pipeline_events.labels("failed").inc(len(result.failed))
        return len(leased)

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until ``stop`` is set; polls gently when there is nothing to do."""
        idle = 0.01
        while not stop.is_set():
            try:
                n = await self.step()
            except Exception:
                log.exception("pipeline step failed; retrying shortly")
                n = 0
                idle = 1.0
            if n:
                idle = 0.01
                continue
            await pause(stop, idle)
            idle = min(idle * 2, 0.1)
