"""The JetStream log as several processes see it: two log objects on one prefix share the work.

Each ``JetStreamEventLog`` here stands for one process (its own NATS and PostgreSQL
connections). The contract suite (tests/contract) covers one log; this covers what only
shows with several: leases handed out once across them, a dead holder's leases taken over,
per-key order across them, a pull lost by a dying process, and a batch committed twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from eventyard.log.base import Transaction
from eventyard.log.jetstream import JetStreamEventLog
from eventyard.testing.clock import FakeClock
from eventyard.testing.scaleout import (
    jetstream_log,
    nats_available,
    nats_url,
    postgres_available,
    postgres_database,
    unique_prefix,
)
from eventyard.testing.services import require_service
from eventyard.testing.wait import eventually_async


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    require_service(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    with postgres_database() as dsn:
        yield dsn


@pytest.fixture
def clock() -> FakeClock:
    import time

    return FakeClock(time.time())


@pytest.fixture
async def pair(pg: str, clock: FakeClock) -> AsyncIterator[tuple[JetStreamEventLog, JetStreamEventLog]]:
    require_service(nats_available(), "NATS JetStream at 127.0.0.1:4222")
    prefix = unique_prefix()
    url = f"{nats_url()}?max_lease=1"
    async with jetstream_log(pg, clock, url=url, prefix=prefix) as first:
        second = JetStreamEventLog(url, pg, prefix=prefix, clock=clock)
        await second.start()
        try:
            yield first, second
        finally:
            await second.close()


async def test_two_processes_never_lease_the_same_record(pair: tuple[JetStreamEventLog, JetStreamEventLog]) -> None:
    a, b = pair
    await a.append("t", [("", f"{i}".encode()) for i in range(100)])
    got_a = await a.lease("t", "a", 30)
    got_b = await b.lease("t", "b", 100)
    ids_a, ids_b = {r.id for r in got_a}, {r.id for r in got_b}
    assert len(ids_a) == 30 and len(ids_b) == 70 and not ids_a & ids_b
    assert await a.lease("t", "a", 100) == []


async def test_a_dead_process_leases_are_taken_over(
    pair: tuple[JetStreamEventLog, JetStreamEventLog], clock: FakeClock
) -> None:
    a, b = pair
    await a.append("t", [("k", b"1"), ("k", b"2")])
    leased = await a.lease("t", "a", 10, lease_seconds=60)  # capped at max_lease=1
    assert len(leased) == 2
    assert await b.lease("t", "b", 10) == []
    clock.advance(1.5)  # a never acks: it died
    again = await b.lease("t", "b", 10)
    assert [(r.payload, r.attempts) for r in again] == [(b"1", 2), (b"2", 2)]


async def test_per_key_order_holds_across_processes(pair: tuple[JetStreamEventLog, JetStreamEventLog]) -> None:
    a, b = pair
    await a.append("t", [("alice", b"a1"), ("alice", b"a2"), ("bob", b"b1")])
    first = await a.lease("t", "a", 1, ordered=True)
    assert [r.payload for r in first] == [b"a1"]
    assert [r.payload for r in await b.lease("t", "b", 10, ordered=True)] == [b"b1"]  # a2 waits for a1
    await a.ack([first[0].id])
    assert [r.payload for r in await b.lease("t", "b", 10, ordered=True)] == [b"a2"]


async def test_records_pulled_by_a_process_that_died_come_back(
    pair: tuple[JetStreamEventLog, JetStreamEventLog],
) -> None:
    a, b = pair
    await a.append("t", [("", b"lost-in-flight")])
    await a.stream.ensure_intake("t")
    pulled = await a.stream.pull(a.names.intake("t"), 10)  # then the process dies: no row, no ack
    assert len(pulled) == 1
    assert await b.lease("t", "b", 10) == []
    back = await eventually_async(lambda: b.lease("t", "b", 10), bool, within=15, every=0.2)
    assert [r.payload for r in back] == [b"lost-in-flight"]


async def test_a_batch_committed_again_after_a_crash_appends_once(
    pair: tuple[JetStreamEventLog, JetStreamEventLog],
) -> None:
    a, b = pair
    await a.append("in", [("", b"event")])
    (record,) = await a.lease("in", "a", 10)
    tx = Transaction(appends=[("out", "", b"job-1"), ("out", "", b"job-2")], ack=[record.id])
    first = await a.commit(tx)
    second = await b.commit(tx)  # the same batch, processed again elsewhere
    assert first == second
    assert [r.payload for r in await a.read("out")] == [b"job-1", b"job-2"]
    assert (await a.stats("out")).backlog == 2


async def test_purging_processed_records_keeps_records_in_flight_at_a_dead_process(
    pair: tuple[JetStreamEventLog, JetStreamEventLog], clock: FakeClock
) -> None:
    # nats-server before 2.9.15 forgets every outstanding delivery of a consumer when a purge
    # touches its subjects; the log must not purge while intake deliveries are in flight.
    a, b = pair
    await a.append("t", [("", b"done")])
    (done,) = await a.lease("t", "a", 10)
    await a.ack([done.id])
    await a.append("t", [("", f"in-flight-{i}".encode()) for i in range(5)])
    pulled = await a.stream.pull(a.names.intake("t"), 10)  # then the process dies: no row, no ack
    assert len(pulled) == 5
    await b.purge_acked(clock() + 3600)  # everything processed is past the retention
    got: list[bytes] = []

    async def lease_more() -> list[bytes]:
        got.extend(r.payload for r in await b.lease("t", "b", 10))
        return got

    back = await eventually_async(lease_more, lambda g: len(g) >= 5, within=15, every=0.2)
    assert sorted(back) == [f"in-flight-{i}".encode() for i in range(5)]


async def test_jobs_of_a_batch_leased_again_in_another_composition_are_appended_once(
    pair: tuple[JetStreamEventLog, JetStreamEventLog],
) -> None:
    a, b = pair
    await a.append("in", [("", b"e1"), ("", b"e2"), ("", b"e3")])
    r1, r2, r3 = await a.lease("in", "a", 10)
    # a processes e1 and e2, publishes their jobs, and dies before its acks are written
    await a.commit(
        Transaction(appends=[("out", "", b"job-1"), ("out", "", b"job-2")], idempotency=[f"{r1.id}:d", f"{r2.id}:d"])
    )
    # b leases e2 and e3 together later: e2's job has the same name and is not appended again
    again = Transaction(
        appends=[("out", "", b"job-2"), ("out", "", b"job-3")],
        idempotency=[f"{r2.id}:d", f"{r3.id}:d"],
        ack=[r2.id, r3.id],
    )
    await b.commit(again)
    payloads = [r.payload for r in await a.read("out")]
    assert payloads == [b"job-1", b"job-2", b"job-3"]
