"""The pipeline runner and fan-out: dedupe, the integrations object, one job per destination, trace."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventyard.destinations.base import Capabilities
from eventyard.log import topics
from eventyard.log.base import Transaction
from eventyard.log.memory import MemoryEventLog
from eventyard.quality.metrics import Metrics
from eventyard.route import jobs
from eventyard.route.fanout import Fanout, integrations_allow
from eventyard.route.replay import replay
from eventyard.route.routing import Route, Routes, RoutingTable
from eventyard.spec.pipeline import PipelineEvent
from eventyard.state.base import DeliveryPolicy, DestinationConfig
from eventyard.state.sqlite import SQLiteStateStore
from eventyard.testing.wait import eventually_async
from eventyard.unify.context import StageContext
from eventyard.unify.runner import PipelineRunner


class FixedTable(RoutingTable):
    def __init__(self, routes: Routes) -> None:
        self.routes = routes

    async def current(self) -> Routes:
        return self.routes


class KeepUnless:
    """A filter chain stand-in: drops events whose event name is in ``names``."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def apply(self, event: dict[str, Any]) -> tuple[dict[str, Any] | None, str, str]:
        if event.get("event") in self.names:
            return None, "filter", "drop test events"
        return event, "", ""


class RenameTo:
    def select(self, event: dict[str, Any]) -> tuple[str, Any] | None:
        if event.get("type") != "track":
            return None
        return "rename", {"name": event["event"]}


def route(dest_id: str, name: str, **kw: Any) -> Route:
    delivery = DeliveryPolicy(ordering=kw.pop("ordering", False))
    config = DestinationConfig(dest_id, "ws", name, "webhook", enabled=kw.pop("enabled", True), delivery=delivery)
    caps = kw.pop("caps", Capabilities())
    return Route(config, caps, (name, "webhook"), **kw)


def test_integrations_object_as_segment_defines_it() -> None:
    names = ("Hook", "webhook")
    assert integrations_allow({}, names)
    assert integrations_allow({"integrations": {}}, names)
    assert not integrations_allow({"integrations": {"All": False}}, names)
    assert integrations_allow({"integrations": {"All": False, "Hook": True}}, names)
    assert integrations_allow({"integrations": {"All": False, "Hook": {"opt": 1}}}, names)
    assert not integrations_allow({"integrations": {"Hook": False}}, names)
    assert integrations_allow({"integrations": {"hook": False}}, names)  # case-sensitive
    assert not integrations_allow({"integrations": {"All": True, "webhook": False}}, names)


async def make(tmp_path: Path, routes: dict[str, list[Route]]) -> tuple[MemoryEventLog, PipelineRunner, Fanout]:
    log = MemoryEventLog()
    state = SQLiteStateStore(tmp_path / "state.sqlite3")
    await state.start()
    table = FixedTable(Routes(1, routes, {r.config.id: r.config for rs in routes.values() for r in rs}))
    fanout = Fanout(table, Metrics())
    runner = PipelineRunner(log, StageContext(state), fanout, Metrics(), "test")
    return log, runner, fanout


async def ingest(log: MemoryEventLog, source: str, *events: dict[str, Any]) -> None:
    await log.append(topics.INGEST, [(source, msgspec.json.encode(e)) for e in events])


def ev(mid: str, **kw: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Clicked", "userId": "u1", "messageId": mid, **kw}


async def test_one_job_per_connected_destination_and_a_reason_for_every_other(tmp_path: Path) -> None:
    routes = {
        "web": [
            route("d1", "Hook", ordering=True),
            route("d2", "Off", enabled=False),
            route("d3", "Filtered", filters=KeepUnless("Test")),
            route("d4", "Mapped", actions=RenameTo()),
            route("d5", "IdentifyOnly", caps=Capabilities(event_types=frozenset({"identify"}))),
        ]
    }
    log, runner, _ = await make(tmp_path, routes)
    await ingest(
        log,
        "web",
        ev("m1"),
        ev("m2", event="Test"),
        ev("m3", integrations={"All": False, "Mapped": True}),
        {"type": "page", "userId": "u1", "messageId": "m4"},
    )
    assert await runner.step() == 4
    assert (await log.stats(topics.INGEST)).acked == 4

    def queued(dest: str) -> list[str]:
        return [jobs.decode(r.payload).message_id for r in records[dest]]

    records = {d: await log.read(topics.deliver(d)) for d in ("d1", "d2", "d3", "d4", "d5")}
    assert queued("d1") == ["m1", "m2", "m4"]
    assert queued("d2") == []
    assert queued("d3") == ["m1", "m4"]
    assert queued("d4") == ["m1", "m2", "m3"]
    assert queued("d5") == []
    mapped = jobs.decode(records["d4"][0].payload)
    assert (mapped.action, mapped.payload, mapped.body()) == ("rename", {"name": "Clicked"}, {"name": "Clicked"})
    assert records["d1"][0].key == "u1"  # keyed by user for ordering
    assert records["d3"][0].key == ""  # no ordering: no key to hold jobs back (or to index)

    reasons = {(e.destination_id, e.reason) for e in await log.trace("m2") if e.step == "filtered"}
    assert reasons == {("d2", "destination_disabled"), ("d3", "filter"), ("d5", "unsupported_type")}
    m3 = {(e.destination_id, e.reason) for e in await log.trace("m3") if e.step == "filtered"}
    assert ("d1", "integrations") in m3
    m4 = {(e.destination_id, e.reason) for e in await log.trace("m4") if e.step == "filtered"}
    assert ("d4", "mapping_trigger") in m4
    assert (await log.trace("m1"))[0].step == "accepted"


async def test_duplicates_are_dropped_with_a_reason_and_survive_a_retried_batch(tmp_path: Path) -> None:
    log, runner, _ = await make(tmp_path, {"web": [route("d1", "Hook")]})
    await ingest(log, "web", ev("m1"), ev("m1"), ev("m2"))
    await runner.step()
    await ingest(log, "web", ev("m2"), ev("m3"))
    await runner.step()
    queued = [jobs.decode(r.payload).message_id for r in await log.read(topics.deliver("d1"))]
    assert queued == ["m1", "m2", "m3"]
    dropped = [e for e in await log.trace("m1") if e.step == "dropped"]
    assert [d.reason for d in dropped] == ["duplicate_message_id"]
    # another source may reuse a messageId
    await ingest(log, "ios", ev("m1"))
    await runner.step()
    assert not [e for e in await log.trace("m1") if e.step == "dropped" and e.source_id == "ios"]


async def test_a_crash_before_commit_neither_loses_nor_doubles(tmp_path: Path) -> None:
    log, runner, _ = await make(tmp_path, {"web": [route("d1", "Hook")]})
    await ingest(log, "web", ev("m1"), ev("m2"))

    class Crash(Exception):
        pass

    original = log.commit

    async def crashing_commit(tx: Any) -> list[int]:
        raise Crash()

    log.commit = crashing_commit  # type: ignore[method-assign]
    runner.lease_seconds = 0  # the crashed batch's leases expire at once
    with pytest.raises(Crash):
        await runner.step()
    log.commit = original  # type: ignore[method-assign]
    # the dedupe marks were written, the log commit was not: the batch comes back and its own
    # records are not taken for duplicates
    await runner.step()
    queued = [jobs.decode(r.payload).message_id for r in await log.read(topics.deliver("d1"))]
    assert queued == ["m1", "m2"]


async def test_replay_requeues_a_time_range_for_one_destination(tmp_path: Path) -> None:
    routes = {"web": [route("d1", "Hook"), route("d2", "New", filters=KeepUnless("Skip"))]}
    log, runner, fanout = await make(tmp_path, routes)
    await ingest(log, "web", ev("m1"), ev("m2", event="Skip"), ev("m3"))
    await runner.step()
    before = len(await log.read(topics.deliver("d2")))
    result = await replay(log, fanout, "d2", 0, 2**40)
    assert (result.read, result.queued, result.filtered) == (3, 2, 1)
    replayed = [jobs.decode(r.payload) for r in (await log.read(topics.deliver("d2")))[before:]]
    assert [(j.message_id, j.origin) for j in replayed] == [("m1", "replayed"), ("m3", "replayed")]
    assert len(await log.read(topics.deliver("d1"))) == 3 - 0  # other destinations untouched


async def test_batches_worked_on_together_commit_in_the_order_they_were_leased(tmp_path: Path) -> None:
    log, runner, fanout = await make(tmp_path, {"web": [route("d1", "Hook", ordering=True)]})
    runner.batch_size = 1  # one stored record per batch
    await ingest(log, "web", ev("m1"))
    await ingest(log, "web", ev("m2"))
    second_planned = asyncio.Event()
    planned: list[list[str]] = []

    async def first_batch_is_slow(events: list[PipelineEvent]) -> Transaction:
        planned.append([e.message_id for e in events])
        if len(planned) == 1:
            await second_planned.wait()  # the second batch is processed meanwhile
        else:
            second_planned.set()
        return await fanout(events)

    runner.fanout = first_batch_is_slow
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop, lanes=2))
    queued = await eventually_async(lambda: log.read(topics.deliver("d1")), lambda rs: len(rs) == 2)
    stop.set()
    await task
    assert planned == [["m1"], ["m2"]]
    # the second batch was ready first but committed after the first: jobs keep the store order
    assert [jobs.decode(r.payload).message_id for r in queued] == ["m1", "m2"]


def test_pipeline_jobs_are_named_by_event_and_destination_and_replays_are_not() -> None:
    fanout = Fanout(FixedTable(Routes(1, {}, {})), Metrics())
    events = [
        PipelineEvent(7, "src", f"m{i}", {"type": "track", "event": "E", "messageId": f"m{i}"}, 1.0, index=i)
        for i in range(2)
    ]
    routes = {"src": [route("d1", "One"), route("d2", "Two")]}
    tx = fanout.plan(events, routes, origin=None)
    assert tx.idempotency == [
        f"{events[0].position}:d1",
        f"{events[0].position}:d2",
        f"{events[1].position}:d1",
        f"{events[1].position}:d2",
    ]
    assert len(set(tx.idempotency)) == len(tx.appends) == 4
    assert fanout.plan(events, routes, origin="replay").idempotency == []
