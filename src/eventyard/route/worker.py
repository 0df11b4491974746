"""The delivery loop of one destination: lease due jobs → batch → deliver → classify → commit.

Every outcome is written back in one log transaction with its trace entry: delivered and
dropped jobs are acked, retryable ones rescheduled (the due time is data, never a sleep),
terminal ones and exhausted ones dead-lettered with the last error. A crash before the
commit leaves the jobs leased; their leases expire and they are delivered again
(at-least-once; the destination sees the same messageId).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec

from eventyard.aio import pause
from eventyard.destinations.base import Capabilities, DeliveryEvent, Destination, Outcome
from eventyard.log import topics
from eventyard.log.base import EventLog, LeasedRecord, TraceEntry, Transaction
from eventyard.quality.metrics import Metrics
from eventyard.route import jobs
from eventyard.route.health import HealthTracker
from eventyard.route.ratelimit import RateLimiter
from eventyard.route.retry import next_attempt
from eventyard.state.base import DestinationConfig

log = logging.getLogger(__name__)

#: While a destination is degraded, one probe batch is sent this often.
PROBE_SECONDS = 5.0
#: A deliver() call that takes longer than this is abandoned and its events retried.
DELIVER_TIMEOUT_SECONDS = 120.0


@dataclass
class WorkerOptions:
    batch_size: int
    batch_bytes: int
    batch_age_seconds: float
    concurrency: int
    ordered: bool
    lease_seconds: float = DELIVER_TIMEOUT_SECONDS + 60.0

    @classmethod
    def of(cls, config: DestinationConfig, caps: Capabilities) -> WorkerOptions:
        policy = config.delivery
        size = min(policy.batch_size or caps.batch_size, caps.batch_size)
        age = caps.batch_age_seconds if policy.batch_age_seconds is None else policy.batch_age_seconds
        return cls(
            batch_size=max(1, size),
            batch_bytes=caps.batch_bytes,
            batch_age_seconds=age,
            concurrency=max(1, policy.concurrency or caps.concurrency),
            ordered=policy.ordering,
        )


@dataclass
class _Pending:
    record: LeasedRecord
    job: jobs.Job
    size: int


@dataclass
class DestinationWorker:
    config: DestinationConfig
    destination: Destination
    options: WorkerOptions
    log: EventLog
    metrics: Metrics
    health: HealthTracker
    consumer: str
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.topic = topics.deliver(self.config.id)
        self.limiter = RateLimiter(self.config.delivery.rate_limit_per_second)
        self._slots = asyncio.Semaphore(self.options.concurrency)
        self._inflight: set[asyncio.Task[None]] = set()
        self._recent: list[float] = []

    # ------------------------------------------------------------------ the loop

    async def run(self, stop: asyncio.Event) -> None:
        idle = 0.01
        while not stop.is_set():
            if self.health.status == "degraded":
                await self._probe(stop)
                continue
            await self._slots.acquire()
            try:
                batch = await self._collect(stop)
            except Exception:
                self._slots.release()
                log.exception("leasing jobs for %s failed; retrying shortly", self.config.name)
                await pause(stop, 1.0)
                continue
            if not batch:
                self._slots.release()
                await pause(stop, idle)
                idle = min(idle * 2, 0.1)
                continue
            idle = 0.01
            task = asyncio.create_task(self._deliver_and_release(batch))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _probe(self, stop: asyncio.Event) -> None:
        """While degraded, send one batch at a time, ``PROBE_SECONDS`` apart, instead of cycling
        the whole queue against a destination that is down (its jobs keep their due times)."""
        if self._inflight:
            await asyncio.wait(self._inflight)
        async with self._slots:
            batch = await self._lease(self.options.batch_size)
            if batch:
                for chunk in self._split_by_bytes(batch):
                    await self.deliver(chunk)
        if self.health.status == "degraded":
            await pause(stop, PROBE_SECONDS)

    async def _collect(self, stop: asyncio.Event) -> list[_Pending]:
        """Lease up to one batch; wait up to ``batch_age_seconds`` for a batch to fill."""
        opts = self.options
        pending = await self._lease(opts.batch_size)
        if not pending or opts.batch_age_seconds <= 0:
            return pending
        oldest = min(p.record.appended_at for p in pending)
        while len(pending) < opts.batch_size and not stop.is_set():
            left = oldest + opts.batch_age_seconds - self.clock()
            if left <= 0:
                break
            await pause(stop, min(left, 0.05))
            pending += await self._lease(opts.batch_size - len(pending))
        return pending

    async def _lease(self, limit: int) -> list[_Pending]:
        records = await self.log.lease(
            self.topic, self.consumer, limit, self.options.lease_seconds, ordered=self.options.ordered
        )
        out: list[_Pending] = []
        undecodable: list[tuple[int, str]] = []
        for r in records:
            try:
                out.append(_Pending(r, jobs.decode(r.payload), len(r.payload)))
            except msgspec.DecodeError as exc:
                undecodable.append((r.id, f"undecodable delivery job: {exc}"))
        if undecodable:
            await self.log.commit(Transaction(dead=undecodable))
        return out

    async def _deliver_and_release(self, batch: list[_Pending]) -> None:
        try:
            for chunk in self._split_by_bytes(batch):
                await self.limiter.acquire()
                await self.deliver(chunk)
        except Exception:
            log.exception("delivery bookkeeping for %s failed; the jobs' leases will expire", self.config.name)
        finally:
            self._slots.release()

    def _split_by_bytes(self, batch: list[_Pending]) -> list[list[_Pending]]:
        chunks: list[list[_Pending]] = [[]]
        size = 0
        for p in batch:
            if chunks[-1] and size + p.size > self.options.batch_bytes:
                chunks.append([])
                size = 0
            chunks[-1].append(p)
            size += p.size
        return chunks

    # ------------------------------------------------------------ one delivery

    async def deliver(self, batch: Sequence[_Pending]) -> None:
        events = [
            DeliveryEvent(
                event=p.job.event,
                payload=p.job.body(),
                message_id=p.job.message_id,
                attempt=p.record.attempts,
                source_id=p.job.source_id,
            )
            for p in batch
        ]
        started = self.clock()
        try:
            outcomes = await asyncio.wait_for(self.destination.deliver(events), DELIVER_TIMEOUT_SECONDS)
        except TimeoutError:
            outcomes = [Outcome.retry(f"deliver() took longer than {DELIVER_TIMEOUT_SECONDS:.0f}s")] * len(events)
        except Exception as exc:  # a destination bug must not lose events: retry them
            log.exception("destination %s raised from deliver()", self.config.name)
            outcomes = [Outcome.retry(f"{type(exc).__name__}: {exc}")] * len(events)
        if len(outcomes) != len(events):
            error = f"the destination returned {len(outcomes)} outcomes for {len(events)} events"
            outcomes = [Outcome.retry(error)] * len(events)
        await self._record(batch, outcomes, started)

    async def _record(self, batch: Sequence[_Pending], outcomes: Sequence[Outcome], started: float) -> None:
        now = self.clock()
        name = self.config.name
        tx = Transaction()
        delivered = failed = 0
        last_error = ""
        throttled: float | None = None
        was_throttled = False
        for p, outcome in zip(batch, outcomes, strict=True):
            job, record = p.job, p.record
            attempt = record.attempts
            if outcome.kind == "delivered":
                delivered += 1
                latency = max(0.0, now - job.received)
                tx.ack.append(record.id)
                tx.trace.append(_entry(job, "delivered", attempt=attempt, latency_ms=latency * 1000, at=now))
                self.metrics.delivery_latency.labels(name).observe(latency)
                self.metrics.deliveries.labels(name, "delivered").inc()
            elif outcome.kind == "dropped":
                tx.ack.append(record.id)
                tx.trace.append(_entry(job, "dropped_by_destination", reason=outcome.error, attempt=attempt, at=now))
                self.metrics.deliveries.labels(name, "dropped").inc()
            elif outcome.kind == "retry":
                failed += 1
                last_error = outcome.error
                if outcome.status == 429:
                    was_throttled = True
                    throttled = outcome.retry_after if throttled is None else throttled
                due = next_attempt(
                    self.config.delivery, attempt, record.appended_at, now, outcome.retry_after, self.rng
                )
                if due is None:
                    reason = f"gave up after {attempt} attempts: {outcome.error}"
                    tx.dead.append((record.id, reason))
                    tx.trace.append(_entry(job, "dead_lettered", detail=reason, attempt=attempt, at=now))
                    self.metrics.deliveries.labels(name, "dead_lettered").inc()
                else:
                    tx.retry.append((record.id, due, outcome.error))
                    detail = f"{outcome.error} (next attempt in {due - now:.1f}s)"
                    tx.trace.append(_entry(job, "retrying", detail=detail, attempt=attempt, at=now))
                    self.metrics.deliveries.labels(name, "retry").inc()
            else:  # failed: terminal
                failed += 1
                last_error = outcome.error
                tx.dead.append((record.id, outcome.error))
                tx.trace.append(_entry(job, "dead_lettered", detail=outcome.error, attempt=attempt, at=now))
                self.metrics.deliveries.labels(name, "failed").inc()
        await self.log.commit(tx)
        self._note_rate(now, len(batch))
        if was_throttled:
            self.limiter.throttled(throttled, self._observed_rate(now))
        elif delivered:
            self.limiter.succeeded()
        was_degraded = self.health.status == "degraded"
        await self.health.observe(delivered, failed, last_error)
        if was_degraded and self.health.status == "healthy":
            # Back in service: everything waiting for a retry becomes due now, so the backlog
            # drains oldest first instead of in the order of its scattered backoff times.
            await self.log.reschedule_waiting(self.topic, now)

    def _note_rate(self, now: float, n: int) -> None:
        self._recent.append(now)
        cutoff = now - 5.0
        while self._recent and self._recent[0] < cutoff:
            self._recent.pop(0)

    def _observed_rate(self, now: float) -> float:
        return len(self._recent) / 5.0


def _entry(job: jobs.Job, step: str, **kw: object) -> TraceEntry:
    return TraceEntry(job.message_id, job.source_id, step, job.destination_id, **kw)  # type: ignore[arg-type]
