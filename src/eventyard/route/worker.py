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
from typing import Any

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
    #: The destination takes payloads as stored JSON (``Capabilities.encoded_payloads``).
    encoded: bool = False

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
            encoded=caps.encoded_payloads,
        )


_NO_EVENT: dict[str, Any] = {}


class _Pending:
    """A leased job: the record, the job, and what the destination gets."""

    __slots__ = ("event", "job", "record", "size")

    def __init__(self, record: LeasedRecord, job: jobs.StoredJob, event: DeliveryEvent) -> None:
        self.record = record
        self.job = job
        self.event = event
        self.size = len(record.payload)


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
        self._recording = asyncio.Semaphore(2 * self.options.concurrency)
        self._inflight: set[asyncio.Task[None]] = set()
        self._rescheduling: asyncio.Task[None] | None = None
        self._recent: list[float] = []

    # ------------------------------------------------------------------ the loop

    async def run(self, stop: asyncio.Event) -> None:
        """Lease up to ``concurrency`` batches at a time and deliver them, ``concurrency`` in flight.

        A delivery gives back its slot as soon as the destination answered: writing the outcome
        down (one log commit) overlaps with the next delivery. At most ``2 × concurrency``
        batches are between lease and commit.
        """
        idle = 0.01
        size = self.options.batch_size
        while not stop.is_set():
            if self.health.status == "degraded":
                await self._probe(stop)
                continue
            await self._slots.acquire()
            try:
                pending = await self._collect(stop)
            except Exception:
                self._slots.release()
                log.exception("leasing jobs for %s failed; retrying shortly", self.config.name)
                await pause(stop, 1.0)
                continue
            if not pending:
                self._slots.release()
                await pause(stop, idle)
                idle = min(idle * 2, 0.1)
                continue
            idle = 0.01
            for start in range(0, len(pending), size):
                if start:
                    await self._slots.acquire()
                task = asyncio.create_task(self._deliver_and_release(pending[start : start + size]))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._rescheduling is not None:
            await asyncio.gather(self._rescheduling, return_exceptions=True)

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
        """Lease up to ``concurrency`` batches at once; wait up to ``batch_age_seconds`` for the
        first batch to fill."""
        opts = self.options
        pending = await self._lease(opts.batch_size * opts.concurrency)
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
        encoded = self.options.encoded
        for r in records:
            try:
                job = jobs.decode_stored(r.payload)
                if encoded:
                    event, payload = _NO_EVENT, job.body_json()
                else:
                    event, payload = job.decoded()
            except msgspec.DecodeError as exc:
                undecodable.append((r.id, f"undecodable delivery job: {exc}"))
                continue
            out.append(_Pending(r, job, DeliveryEvent(event, payload, job.message_id, r.attempts, job.source_id)))
        if undecodable:
            await self.log.commit(Transaction(dead=undecodable))
        return out

    async def _deliver_and_release(self, batch: list[_Pending]) -> None:
        """Deliver a batch holding a slot (taken by ``run``), give the slot back, then record."""
        slot = True
        try:
            async with self._recording:
                sent: list[_Pending] = []
                outcomes: list[Outcome] = []
                started = self.clock()
                for chunk in self._split_by_bytes(batch):
                    await self.limiter.acquire()
                    outcomes += await self._send(chunk)
                    sent += chunk
                self._slots.release()
                slot = False
                await self._record(sent, outcomes, started)
        except Exception:
            log.exception("delivery bookkeeping for %s failed; the jobs' leases will expire", self.config.name)
        finally:
            if slot:
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
        """Deliver one batch and record its outcomes."""
        started = self.clock()
        await self._record(batch, await self._send(batch), started)

    async def _send(self, batch: Sequence[_Pending]) -> list[Outcome]:
        """The destination's outcome for each event; a failure to answer is a retry for all."""
        events = [p.event for p in batch]
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
        return list(outcomes)

    async def _record(self, batch: Sequence[_Pending], outcomes: Sequence[Outcome], started: float) -> None:
        now = self.clock()
        dest_id = self.config.id
        tx = Transaction()
        delivered: list[_Pending] = []
        failed = 0
        last_error = ""
        throttled: float | None = None
        was_throttled = False
        counts: dict[str, int] = {}
        for p, outcome in zip(batch, outcomes, strict=True):
            kind = outcome.kind
            if kind == "delivered":
                delivered.append(p)
                continue
            job, record = p.job, p.record
            attempt = record.attempts
            if kind == "dropped":
                tx.ack.append(record.id)
                tx.trace.append(
                    TraceEntry(
                        job.message_id,
                        job.source_id,
                        "dropped_by_destination",
                        dest_id,
                        outcome.error,
                        "",
                        attempt,
                        None,
                        now,
                    )
                )
                counts["dropped"] = counts.get("dropped", 0) + 1
                continue
            failed += 1
            last_error = outcome.error
            if kind == "retry":
                if outcome.status == 429:
                    was_throttled = True
                    throttled = outcome.retry_after if throttled is None else throttled
                due = next_attempt(
                    self.config.delivery, attempt, record.appended_at, now, outcome.retry_after, self.rng
                )
                if due is None:
                    reason = f"gave up after {attempt} attempts: {outcome.error}"
                    tx.dead.append((record.id, reason))
                    tx.trace.append(
                        TraceEntry(
                            job.message_id, job.source_id, "dead_lettered", dest_id, "", reason, attempt, None, now
                        )
                    )
                    counts["dead_lettered"] = counts.get("dead_lettered", 0) + 1
                else:
                    tx.retry.append((record.id, due, outcome.error))
                    detail = f"{outcome.error} (next attempt in {due - now:.1f}s)"
                    tx.trace.append(
                        TraceEntry(job.message_id, job.source_id, "retrying", dest_id, "", detail, attempt, None, now)
                    )
                    counts["retry"] = counts.get("retry", 0) + 1
            else:  # failed: terminal
                tx.dead.append((record.id, outcome.error))
                tx.trace.append(
                    TraceEntry(
                        job.message_id, job.source_id, "dead_lettered", dest_id, "", outcome.error, attempt, None, now
                    )
                )
                counts["failed"] = counts.get("failed", 0) + 1
        if delivered:
            tx.ack += [p.record.id for p in delivered]
            latencies = [max(0.0, now - p.job.received) for p in delivered]
            tx.trace += [
                TraceEntry(
                    p.job.message_id, p.job.source_id, "delivered", dest_id, "", "", p.record.attempts, 1000 * lat, now
                )
                for p, lat in zip(delivered, latencies, strict=True)
            ]
            observe = self.metrics.delivery_latency.labels(self.config.name).observe
            for lat in latencies:
                observe(lat)
            counts["delivered"] = len(delivered)
        await self.log.commit(tx)
        for outcome_name, n in counts.items():
            self.metrics.deliveries.labels(self.config.name, outcome_name).inc(n)
        self._note_rate(now, len(batch))
        if was_throttled:
            self.limiter.throttled(throttled, self._observed_rate(now))
        elif delivered:
            self.limiter.succeeded()
        was_degraded = self.health.status == "degraded"
        await self.health.observe(len(delivered), failed, last_error)
        recovered = was_degraded and self.health.status == "healthy"
        if recovered and (self._rescheduling is None or self._rescheduling.done()):
            # Back in service: everything waiting for a retry becomes due together, so the
            # backlog drains oldest first instead of in the order of its scattered backoff
            # times. Due at the epoch, before every other job, so deliveries can go on while a
            # large queue is still being rescheduled in steps (oldest first, far faster than
            # it drains).
            self._rescheduling = asyncio.create_task(self._reschedule())

    async def _reschedule(self) -> None:
        try:
            await self.log.reschedule_waiting(self.topic, 0.0)
        except Exception:
            log.exception("rescheduling the waiting jobs of %s failed; they keep their retry times", self.config.name)

    def _note_rate(self, now: float, n: int) -> None:
        self._recent.append(now)
        cutoff = now - 5.0
        while self._recent and self._recent[0] < cutoff:
            self._recent.pop(0)

    def _observed_rate(self, now: float) -> float:
        return len(self._recent) / 5.0
