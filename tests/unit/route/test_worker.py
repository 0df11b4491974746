"""The delivery worker on a fake clock: outcomes become acks, retries, dead letters and trace entries."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import msgspec
import pytest

from eventyard.destinations.base import Capabilities, DeliveryEvent, Destination, DestinationContext, Outcome
from eventyard.log import topics
from eventyard.log.memory import MemoryEventLog
from eventyard.quality.metrics import Metrics
from eventyard.route import jobs
from eventyard.route.health import HealthTracker
from eventyard.route.worker import DestinationWorker, WorkerOptions
from eventyard.state.base import DeliveryPolicy, DestinationConfig
from eventyard.testing.clock import FakeClock


class Scripted(Destination):
    """Answers with the next scripted outcome for every event (default: delivered)."""

    name = "scripted"

    class Settings(msgspec.Struct):
        pass

    capabilities: ClassVar[Capabilities] = Capabilities(batch_size=10)

    def __init__(self) -> None:
        super().__init__(self.Settings(), DestinationContext("d1", "hook", data_dir=Path(".")))
        self.script: list[Outcome | Exception] = []
        self.seen: list[list[DeliveryEvent]] = []

    async def deliver(self, batch: Sequence[DeliveryEvent]) -> list[Outcome]:
        self.seen.append(list(batch))
        out: list[Outcome] = []
        for _ in batch:
            step = self.script.pop(0) if self.script else Outcome.delivered(200)
            if isinstance(step, Exception):
                raise step
            out.append(step)
        return out


class Harness:
    def __init__(self, policy: DeliveryPolicy | None = None, threshold: int = 20) -> None:
        self.clock = FakeClock()
        self.log = MemoryEventLog(self.clock)
        self.dest = Scripted()
        self.config = DestinationConfig("d1", "ws", "hook", "scripted", delivery=policy or DeliveryPolicy())
        self.reports: list[tuple[str, str]] = []

        async def report(status: str, reason: str) -> None:
            self.reports.append((status, reason))

        self.worker = DestinationWorker(
            config=self.config,
            destination=self.dest,
            options=WorkerOptions.of(self.config, Scripted.capabilities),
            log=self.log,
            metrics=Metrics(),
            health=HealthTracker("d1", "hook", report, threshold=threshold),
            consumer="test",
            clock=self.clock,
        )

    async def enqueue(self, *message_ids: str, user: str = "u1") -> None:
        for m in message_ids:
            job = jobs.Job(m, "src", "d1", {"type": "track", "event": "E", "messageId": m}, received=self.clock.now)
            await self.log.append(topics.deliver("d1"), [(user, jobs.encode(job))])

    async def round(self, limit: int = 10) -> int:
        batch = await self.worker._lease(limit)
        if batch:
            await self.worker.deliver(batch)
        return len(batch)

    async def steps(self, message_id: str) -> list[str]:
        return [e.step for e in await self.log.trace(message_id)]


async def test_delivered_jobs_are_acked_with_latency() -> None:
    h = Harness()
    await h.enqueue("m1", "m2")
    h.clock.now += 0.25
    assert await h.round() == 2
    assert (await h.log.stats(topics.deliver("d1"))).acked == 2
    (entry,) = await h.log.trace("m1")
    assert entry.step == "delivered" and entry.latency_ms == pytest.approx(250.0)
    assert [e.message_id for e in h.dest.seen[0]] == ["m1", "m2"]


async def test_retryable_failures_are_scheduled_not_slept() -> None:
    h = Harness()
    await h.enqueue("m1")
    h.dest.script = [Outcome.retry("HTTP 503", status=503)]
    await h.round()
    assert await h.round() == 0  # not due yet
    stats = await h.log.stats(topics.deliver("d1"))
    assert stats.scheduled == 1
    h.clock.now += 2.0  # past the first backoff (at most 1 s)
    assert await h.round() == 1
    assert await h.steps("m1") == ["retrying", "delivered"]
    assert h.dest.seen[1][0].attempt == 2


async def test_retry_after_is_respected() -> None:
    h = Harness()
    await h.enqueue("m1")
    h.dest.script = [Outcome.retry("HTTP 429", retry_after=60, status=429)]
    await h.round()
    h.clock.now += 59
    assert await h.round() == 0
    h.clock.now += 2
    assert await h.round() == 1


async def test_terminal_failures_are_dead_lettered_at_once_with_the_error() -> None:
    h = Harness()
    await h.enqueue("m1")
    h.dest.script = [Outcome.failed("HTTP 400: bad payload", status=400)]
    await h.round()
    (dead,) = await h.log.dead_letters(topics.deliver("d1"))
    assert dead.reason == "HTTP 400: bad payload"
    assert await h.steps("m1") == ["dead_lettered"]


async def test_dead_letter_after_attempts_and_window() -> None:
    h = Harness(DeliveryPolicy(max_attempts=3, retry_window_hours=1))
    await h.enqueue("m1")
    h.dest.script = [Outcome.retry("HTTP 500", status=500)] * 10
    for _ in range(3):
        await h.round()
        h.clock.now += 10
    # three attempts used, but the hour has not passed: still scheduled
    assert (await h.log.stats(topics.deliver("d1"))).dead == 0
    h.clock.now += 3600
    while await h.round():
        h.clock.now += 400
    (dead,) = await h.log.dead_letters(topics.deliver("d1"))
    assert "gave up after" in dead.reason and "HTTP 500" in dead.reason
    assert (await h.steps("m1"))[-1] == "dead_lettered"


async def test_a_crashing_destination_means_retry_not_loss() -> None:
    h = Harness()
    await h.enqueue("m1")
    h.dest.script = [RuntimeError("boom")]
    await h.round()
    trace = await h.log.trace("m1")
    assert trace[0].step == "retrying" and "RuntimeError: boom" in trace[0].detail


async def test_dropped_by_destination_is_acked_with_its_reason() -> None:
    h = Harness()
    await h.enqueue("m1")
    h.dest.script = [Outcome.dropped("event_not_supported")]
    await h.round()
    (entry,) = await h.log.trace("m1")
    assert (entry.step, entry.reason) == ("dropped_by_destination", "event_not_supported")
    assert (await h.log.stats(topics.deliver("d1"))).acked == 1


async def test_a_destination_that_keeps_failing_is_degraded_never_disabled() -> None:
    h = Harness(threshold=3)
    await h.enqueue("m1", "m2", "m3", "m4")
    h.dest.script = [Outcome.retry("HTTP 502", status=502)] * 4
    await h.round()
    assert h.reports and h.reports[0][0] == "degraded"
    h.clock.now += 5
    await h.round()  # still delivering after degraded
    assert h.reports[-1] == ("healthy", "")
    assert (await h.log.stats(topics.deliver("d1"))).acked == 4


async def test_ordering_holds_a_users_later_events_behind_a_failing_one() -> None:
    h = Harness(DeliveryPolicy(ordering=True))
    h.worker.options.ordered = True
    await h.enqueue("a1", "a2", user="alice")
    await h.enqueue("b1", "b2", user="bob")
    h.dest.script = [Outcome.retry("HTTP 500", status=500), Outcome.delivered()]  # a1 fails, b1 ok
    await h.round()
    await h.round()  # due now: b2 only (a2 waits behind a1)
    delivered = [e.message_id for batch in h.dest.seen for e in batch]
    assert delivered == ["a1", "b1", "b2"]
    h.clock.now += 5
    await h.round()
    await h.round()
    delivered = [e.message_id for batch in h.dest.seen for e in batch]
    assert delivered[3:] == ["a1", "a2"]


async def test_run_loop_delivers_in_batches_and_stops() -> None:
    h = Harness()
    await h.enqueue(*[f"m{i}" for i in range(25)])
    stop = asyncio.Event()
    task = asyncio.create_task(h.worker.run(stop))
    for _ in range(200):
        if (await h.log.stats(topics.deliver("d1"))).acked == 25:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert (await h.log.stats(topics.deliver("d1"))).acked == 25
    assert max(len(b) for b in h.dest.seen) <= 10


async def test_a_recovered_destination_drains_its_backlog_oldest_first() -> None:
    h = Harness(threshold=2)
    await h.enqueue(*[f"m{i}" for i in range(8)])
    h.dest.script = [Outcome.retry("HTTP 503", status=503)] * 8
    await h.round()
    assert h.worker.health.status == "degraded"
    h.clock.now += 10_000  # every retry is due, at scattered times
    await h.round(limit=1)  # a probe (whichever retry is due first) succeeds: healthy again
    assert h.worker.health.status == "healthy"
    assert h.worker._rescheduling is not None
    await h.worker._rescheduling  # the waiting jobs are made due together, in the background
    probed = h.dest.seen[-1][0].message_id
    await h.round(limit=3)
    oldest = [m for m in (f"m{i}" for i in range(8)) if m != probed][:3]
    assert [e.message_id for e in h.dest.seen[-1]] == oldest


async def test_a_degraded_destination_is_probed_not_hammered(monkeypatch: pytest.MonkeyPatch) -> None:
    from eventyard.route import worker as worker_module

    h = Harness(threshold=1)
    await h.enqueue(*[f"m{i}" for i in range(30)])
    h.dest.script = [Outcome.retry("HTTP 503", status=503)] * 100
    await h.round(limit=1)
    assert h.worker.health.status == "degraded"
    h.clock.now += 10_000
    monkeypatch.setattr(worker_module, "PROBE_SECONDS", 3600.0)
    stop = asyncio.Event()
    task = asyncio.create_task(h.worker.run(stop))
    for _ in range(50):
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    # one probe batch (up to the batch size of 10), then waiting: not the whole queue
    assert len(h.dest.seen) == 2 and len(h.dest.seen[1]) <= 10


async def test_a_destination_that_takes_encoded_payloads_gets_the_stored_json() -> None:
    h = Harness()
    h.worker.options.encoded = True
    await h.enqueue("m1")
    mapped = jobs.Job("m2", "src", "d1", {"type": "track", "messageId": "m2"}, payload={"name": "x"})
    await h.log.append(topics.deliver("d1"), [("", jobs.encode(mapped))])
    await h.round()
    first, second = h.dest.seen[0]
    assert isinstance(first.payload, msgspec.Raw) and first.event == {}
    assert msgspec.json.decode(msgspec.json.encode(first.payload)) == {"type": "track", "event": "E", "messageId": "m1"}
    assert msgspec.json.encode(second.payload) == b'{"name":"x"}'
    assert (first.message_id, first.source_id, second.message_id) == ("m1", "src", "m2")
    assert await h.steps("m1") == ["delivered"]


async def test_a_destination_that_reads_events_gets_them_decoded() -> None:
    h = Harness()
    mapped = jobs.Job("m1", "src", "d1", {"type": "track", "messageId": "m1"}, payload={"name": "x"})
    await h.log.append(topics.deliver("d1"), [("", jobs.encode(mapped))])
    await h.round()
    (item,) = h.dest.seen[0]
    assert (item.event, item.payload) == ({"type": "track", "messageId": "m1"}, {"name": "x"})
