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
from eventyard.spec import stored
from eventyard.spec.pipeline import PipelineEvent, StageResult
from eventyard.unify.context import StageContext
from eventyard.unify.pipeline import run_pipeline

log = logging.getLogger(__name__)

#: Given the events that survived unify, the delivery jobs and trace entries to write.
Fanout = Callable[[list[PipelineEvent]], Awaitable[Transaction]]

#: Seconds before a batch whose stage or fan-out raised is tried again.
FAILED_BATCH_DELAY = 5.0


def to_pipeline_events(record: LeasedRecord) -> list[PipelineEvent]:
    return stored.pipeline_events(record.id, record.key, record.payload, record.appended_at)


def hold_failed_records(result: StageResult) -> StageResult:
    """Keep back every event of a record in which a stage failed an event.

    A record holds the events of one request and is acked or retried as a whole: when one of
    its events fails, its other events are neither fanned out nor acked now but go through
    the pipeline again with the retried record (dedupe knows them as the same events).
    """
    if not result.failed:
        return result
    held = {f.event.record_id for f in result.failed}
    return StageResult(
        [e for e in result.kept if e.record_id not in held],
        [d for d in result.dropped if d.event.record_id not in held],
        result.failed,
        [e for e in result.emitted if e.record_id not in held],
    )


class _Batch(msgspec.Struct):
    """A processed batch, ready to commit."""

    leased: int
    tx: Transaction
    result: StageResult


class PipelineRunner:
    """Leases ingest records, runs the stages and fan-out, commits; see the module docstring.

    ``run`` works on two batches at once (see there); ``step`` does one batch, start to end.
    """

    def __init__(
        self,
        log: EventLog,
        ctx: StageContext,
        fanout: Fanout,
        metrics: Metrics,
        consumer: str,
        batch_size: int = 500,
        lease_seconds: float = 60.0,
        batch_events: int = 1000,
    ) -> None:
        self.log = log
        self.ctx = ctx
        self.fanout = fanout
        self.metrics = metrics
        self.consumer = consumer
        #: Most ingest records per batch.
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        #: Events per batch to aim for (a record holds the events of one request).
        self.batch_events = batch_events
        self._per_record = 100.0

    async def step(self) -> int:
        """Process one batch; returns how many records were leased (0 when idle)."""
        leased = await self._lease()
        if not leased:
            return 0
        await self._commit(await self._process(leased))
        return len(leased)

    async def _lease(self) -> list[LeasedRecord]:
        limit = max(1, min(self.batch_size, round(self.batch_events / self._per_record)))
        return await self.log.lease(topics.INGEST, self.consumer, limit, self.lease_seconds)

    async def _process(self, leased: list[LeasedRecord]) -> _Batch:
        """Run leased records through the stages and fan-out."""
        events: list[PipelineEvent] = []
        tx = Transaction()
        for record in leased:
            try:
                events.extend(to_pipeline_events(record))
            except (msgspec.DecodeError, AttributeError, LookupError, TypeError, ValueError) as exc:
                tx.dead.append((record.id, f"undecodable ingest record: {exc}"))
        self._per_record = max(1.0, (self._per_record + len(events) / len(leased)) / 2)
        try:
            result = hold_failed_records(await run_pipeline(events, self.ctx))
            plan = await self.fanout(result.kept)
        except Exception as exc:
            log.exception("the pipeline failed on a batch of %d events; retrying it", len(events))
            error = f"{type(exc).__name__}: {exc}"
            due = self.ctx.clock() + FAILED_BATCH_DELAY
            tx.retry = [(rid, due, error) for rid in sorted({e.record_id for e in events})]
            self.metrics.pipeline_events.labels("failed").inc(len(events))
            return _Batch(len(leased), tx, StageResult([]))
        now = self.ctx.clock()
        tx.appends = plan.appends
        # Events stages made (quarantine, violation reports) enter the log with this commit.
        tx.appends += [(topics.INGEST, e.source_id, msgspec.json.encode(e.event)) for e in result.emitted]
        if len(plan.idempotency) == len(plan.appends):
            tx.idempotency = plan.idempotency + [
                f"{e.record_id}:{e.source_id}:{e.event.get('messageId')}" for e in result.emitted
            ]
        tx.ack = sorted({e.record_id for e in result.kept} | {d.event.record_id for d in result.dropped})
        retry = {f.event.record_id: f.error for f in result.failed}
        tx.retry = [(record_id, now + FAILED_BATCH_DELAY, error) for record_id, error in retry.items()]
        tx.trace = [TraceEntry(e.message_id, e.source_id, "accepted", "", "", "", 0, None, e.received) for e in events]
        tx.trace += [
            TraceEntry(d.event.message_id, d.event.source_id, "dropped", reason=d.reason, detail=d.detail, at=now)
            for d in result.dropped
        ]
        tx.trace += plan.trace
        return _Batch(len(leased), tx, result)

    async def _commit(self, batch: _Batch) -> None:
        await self.log.commit(batch.tx)
        result = batch.result
        if result.kept:
            self.metrics.pipeline_events.labels("kept").inc(len(result.kept))
        for d in result.dropped:
            self.metrics.pipeline_dropped.labels(d.reason).inc()
        if result.failed:
            self.metrics.pipeline_events.labels("failed").inc(len(result.failed))

    async def run(self, stop: asyncio.Event, lanes: int = 2) -> None:
        """Process batches until ``stop`` is set; polls gently when there is nothing to do.

        ``lanes`` batches are worked on at once, so one batch's waits (its lease, the state
        store, its commit's fsync) overlap with the next one's work. Leases are taken one at a
        time and commits happen in lease order: delivery jobs are appended in the order their
        events were stored, which per-user ordering relies on.
        """
        leasing = asyncio.Lock()
        previous: list[asyncio.Future[None]] = []

        async def lane() -> None:
            loop = asyncio.get_running_loop()
            idle = 0.01
            while not stop.is_set():
                async with leasing:
                    try:
                        leased = await self._lease()
                    except Exception:
                        log.exception("leasing stored events failed; retrying shortly")
                        leased = []
                        idle = 1.0
                    turn = previous[0] if previous else None
                    if leased:
                        done: asyncio.Future[None] = loop.create_future()
                        previous[:] = [done]
                if not leased:
                    await pause(stop, idle)
                    idle = min(idle * 2, 0.1)
                    continue
                idle = 0.01
                try:
                    batch = await self._process(leased)
                    if turn is not None:
                        await asyncio.shield(turn)
                    await self._commit(batch)
                except Exception:
                    log.exception("a pipeline batch failed; its records come back when their lease expires")
                    await pause(stop, 1.0)
                finally:
                    done.set_result(None)

        await asyncio.gather(*(lane() for _ in range(max(1, lanes))))
