"""The EventLog contract: every backend must pass every test here."""

from __future__ import annotations

import asyncio

from eventyard.log.base import EventLog, TraceEntry, Transaction
from eventyard.testing.clock import FakeClock


async def test_append_returns_increasing_ids_and_read_returns_records_in_order(event_log: EventLog) -> None:
    ids = await event_log.append("t", [("k1", b"a"), ("k2", b"b")])
    more = await event_log.append("t", [("k1", b"c")])
    assert len(ids) == 2 and len(more) == 1
    assert ids[0] < ids[1] < more[0]
    records = await event_log.read("t")
    assert [(r.key, r.payload) for r in records] == [("k1", b"a"), ("k2", b"b"), ("k1", b"c")]
    assert [r.id for r in records] == [*ids, *more]


async def test_append_nothing_is_a_no_op(event_log: EventLog) -> None:
    assert await event_log.append("t", []) == []
    assert await event_log.read("t") == []


async def test_topics_are_separate(event_log: EventLog) -> None:
    await event_log.append("a", [("k", b"1")])
    await event_log.append("b", [("k", b"2")])
    assert [r.payload for r in await event_log.read("a")] == [b"1"]
    assert [r.payload for r in await event_log.lease("b", "c1", 10)] == [b"2"]
    assert await event_log.lease("a", "c1", 0) == []


async def test_read_after_and_by_key(event_log: EventLog) -> None:
    ids = await event_log.append("t", [("x", b"1"), ("y", b"2"), ("x", b"3")])
    assert [r.payload for r in await event_log.read("t", after=ids[0])] == [b"2", b"3"]
    assert [r.payload for r in await event_log.read("t", key="x")] == [b"1", b"3"]
    assert [r.payload for r in await event_log.read("t", limit=1)] == [b"1"]


async def test_latest_is_newest_first(event_log: EventLog) -> None:
    await event_log.append("t", [("x", b"1"), ("y", b"2"), ("x", b"3")])
    assert [r.payload for r in await event_log.latest("t", 2)] == [b"3", b"2"]
    assert [r.payload for r in await event_log.latest("t", 5, key="x")] == [b"3", b"1"]


async def test_lease_hands_out_each_record_once_until_the_lease_expires(event_log: EventLog) -> None:
    await event_log.append("t", [("k", b"1"), ("k", b"2"), ("k", b"3")])
    first = await event_log.lease("t", "c1", 2)
    second = await event_log.lease("t", "c2", 10)
    assert [r.payload for r in first] == [b"1", b"2"]
    assert [r.payload for r in second] == [b"3"]
    assert await event_log.lease("t", "c3", 10) == []
    assert all(r.attempts == 1 for r in first + second)


async def test_an_expired_lease_makes_the_record_due_again(event_log: EventLog) -> None:
    await event_log.append("t", [("k", b"1")])
    leased = await event_log.lease("t", "crashed-consumer", 10, lease_seconds=0)
    assert len(leased) == 1
    again = await event_log.lease("t", "c2", 10)
    assert [r.payload for r in again] == [b"1"]
    assert again[0].attempts == 2


async def test_ack_finishes_records(event_log: EventLog) -> None:
    await event_log.append("t", [("k", b"1"), ("k", b"2")])
    leased = await event_log.lease("t", "c", 10, lease_seconds=0)
    await event_log.ack([leased[0].id])
    again = await event_log.lease("t", "c", 10)
    assert [r.payload for r in again] == [b"2"]
    stats = await event_log.stats("t")
    assert stats.acked == 1
    # acked records stay readable
    assert [r.payload for r in await event_log.read("t")] == [b"1", b"2"]


async def test_retry_schedules_the_record_and_keeps_the_error(event_log: EventLog, log_clock: FakeClock) -> None:
    await event_log.append("t", [("k", b"1"), ("k", b"2")])
    a, b = await event_log.lease("t", "c", 10)
    await event_log.retry([a.id], log_clock() + 3600, "HTTP 503")
    await event_log.retry([b.id], log_clock() - 1, "timeout")
    due = await event_log.lease("t", "c", 10)
    assert [r.payload for r in due] == [b"2"]
    assert due[0].last_error == "timeout"
    assert due[0].attempts == 2
    stats = await event_log.stats("t")
    assert stats.scheduled == 1
    assert stats.leased == 1
    assert stats.backlog == 2


async def test_dead_letters_are_browsable_and_can_be_requeued(event_log: EventLog) -> None:
    await event_log.append("t", [("k", b"1"), ("k", b"2")])
    a, _ = await event_log.lease("t", "c", 10)
    await event_log.dead_letter([a.id], "HTTP 400: bad request")
    dead = await event_log.dead_letters("t")
    assert [(d.payload, d.reason) for d in dead] == [(b"1", "HTTP 400: bad request")]
    assert (await event_log.stats("t")).dead == 1
    assert await event_log.requeue([a.id]) == 1
    assert await event_log.dead_letters("t") == []
    again = await event_log.lease("t", "c", 10)
    assert b"1" in [r.payload for r in again]


async def test_ack_of_a_dead_record_does_not_revive_it(event_log: EventLog) -> None:
    await event_log.append("t", [("k", b"1")])
    (a,) = await event_log.lease("t", "c", 10)
    await event_log.dead_letter([a.id], "gone")
    await event_log.ack([a.id])
    stats = await event_log.stats("t")
    assert (stats.dead, stats.acked) == (1, 0)


async def test_archived_records_are_readable_but_never_leased(event_log: EventLog) -> None:
    await event_log.append("r", [("k", b"refused")], archive=True)
    assert await event_log.lease("r", "c", 10) == []
    assert [r.payload for r in await event_log.read("r")] == [b"refused"]
    assert event_log.backlog_estimate("r") == 0


async def test_backlog_estimate_follows_appends_and_acks(event_log: EventLog) -> None:
    await event_log.append("t", [("k", b"1"), ("k", b"2"), ("k", b"3")])
    assert event_log.backlog_estimate("t") == 3
    leased = await event_log.lease("t", "c", 2)
    await event_log.ack([r.id for r in leased])
    assert event_log.backlog_estimate("t") == 1


async def test_purge_removes_only_old_acked_records(event_log: EventLog, log_clock: FakeClock) -> None:
    await event_log.append("t", [("k", b"1"), ("k", b"2")])
    (a,) = await event_log.lease("t", "c", 1)
    await event_log.ack([a.id])
    assert await event_log.purge_acked(log_clock() + 10) == 1
    assert [r.payload for r in await event_log.read("t")] == [b"2"]


async def test_purge_keeps_records_appended_after_the_cutoff(event_log: EventLog, log_clock: FakeClock) -> None:
    (old,) = await event_log.append("t", [("k", b"old")])
    log_clock.advance(1)
    cutoff = log_clock()
    log_clock.advance(1)
    (new,) = await event_log.append("t", [("k", b"new")])
    await event_log.ack([old, new])
    assert await event_log.purge_acked(cutoff) == 1
    assert [r.payload for r in await event_log.read("t")] == [b"new"]


async def test_purge_removes_every_old_trace_entry_even_when_they_outnumber_records(
    event_log: EventLog, log_clock: FakeClock
) -> None:
    long_ago = log_clock() - 3600
    entries = [TraceEntry(f"m{i}", "s", "accepted", at=long_ago) for i in range(25_000)]
    await event_log.commit(Transaction(trace=entries))
    assert await event_log.purge_acked(log_clock() - 60) == 0
    assert await event_log.trace("m24999") == []
    assert await event_log.trace_counts(0) == []


async def test_last_id(event_log: EventLog) -> None:
    assert await event_log.last_id() == 0
    ids = await event_log.append("t", [("k", b"1"), ("k", b"2")])
    assert await event_log.last_id() == ids[-1]


async def test_concurrent_appends_all_land_with_distinct_ids(event_log: EventLog) -> None:
    async def writer(n: int) -> list[int]:
        out: list[int] = []
        for i in range(20):
            out += await event_log.append("t", [(f"w{n}", f"{n}-{i}".encode())])
        return out

    results = await asyncio.gather(*(writer(n) for n in range(10)))
    ids = [i for chunk in results for i in chunk]
    assert len(set(ids)) == 200
    records = await event_log.read("t", limit=1000)
    assert len(records) == 200
    for n in range(10):
        mine = [r.payload for r in records if r.key == f"w{n}"]
        assert mine == [f"{n}-{i}".encode() for i in range(20)]  # per-writer order kept


async def test_commit_applies_appends_acks_retries_dead_letters_and_trace_together(
    event_log: EventLog, log_clock: FakeClock
) -> None:
    from eventyard.log.base import TraceEntry, Transaction

    await event_log.append("in", [("s", b"1"), ("s", b"2"), ("s", b"3")])
    a, b, c = await event_log.lease("in", "c", 10)
    ids = await event_log.commit(
        Transaction(
            appends=[("out", "u1", b"job-1"), ("out", "u2", b"job-2")],
            ack=[a.id],
            retry=[(b.id, log_clock() + 3600, "later")],
            dead=[(c.id, "broken")],
            trace=[TraceEntry("m1", "s", "queued", destination_id="d1"), TraceEntry("m1", "s", "accepted")],
        )
    )
    assert len(ids) == 2
    assert [r.payload for r in await event_log.read("out")] == [b"job-1", b"job-2"]
    stats = await event_log.stats("in")
    assert (stats.acked, stats.scheduled, stats.dead) == (1, 1, 1)
    assert event_log.backlog_estimate("out") == 2
    assert event_log.backlog_estimate("in") == 1
    steps = [(e.step, e.destination_id) for e in await event_log.trace("m1")]
    assert sorted(steps) == [("accepted", ""), ("queued", "d1")]
    assert all(e.at > 0 for e in await event_log.trace("m1"))


async def test_trace_counts_and_latencies(event_log: EventLog, log_clock: FakeClock) -> None:
    from eventyard.log.base import TraceEntry, Transaction

    now = log_clock()
    await event_log.commit(
        Transaction(
            trace=[
                TraceEntry("m1", "s", "delivered", destination_id="d", latency_ms=12.0, at=now),
                TraceEntry("m2", "s", "delivered", destination_id="d", latency_ms=30.0, at=now),
                TraceEntry("m3", "s", "filtered", destination_id="d", reason="filter", at=now),
                TraceEntry("m4", "s", "delivered", destination_id="d", latency_ms=1.0, at=now - 7200),
            ]
        )
    )
    counts = {(c.step, c.reason): c.count for c in await event_log.trace_counts(now - 60, 300)}
    assert counts == {("delivered", ""): 2, ("filtered", "filter"): 1}
    latencies = await event_log.delivery_latencies("d", now - 60)
    assert [n for _, n in latencies] == [1, 1]
    assert abs(latencies[0][0] - 12.0) <= 0.03 * 12.0 and abs(latencies[1][0] - 30.0) <= 0.03 * 30.0


async def test_ordered_lease_keeps_each_key_in_order(event_log: EventLog, log_clock: FakeClock) -> None:
    await event_log.append("t", [("alice", b"a1"), ("bob", b"b1"), ("alice", b"a2"), ("bob", b"b2")])
    first = await event_log.lease("t", "c", 10, ordered=True)
    assert [r.payload for r in first] == [b"a1", b"b1"]  # one per key at a time
    a1, b1 = first
    await event_log.retry([a1.id], log_clock() + 3600, "down")  # alice's first event fails
    await event_log.ack([b1.id])
    second = await event_log.lease("t", "c", 10, ordered=True)
    assert [r.payload for r in second] == [b"b2"]  # alice waits behind her failing event; bob flows


async def test_ordered_lease_does_not_hold_back_records_without_a_key(event_log: EventLog) -> None:
    await event_log.append("t", [("", b"1"), ("", b"2"), ("alice", b"a1"), ("alice", b"a2")])
    first = await event_log.lease("t", "c", 10, ordered=True)
    assert [r.payload for r in first] == [b"1", b"2", b"a1"]


async def test_first_id_at_finds_the_start_of_a_time_range(event_log: EventLog, log_clock: FakeClock) -> None:
    assert await event_log.first_id_at("t", 0) == 0
    ids = await event_log.append("t", [("k", b"1"), ("k", b"2")])
    assert await event_log.first_id_at("t", 0) == ids[0] - 1
    later = await event_log.first_id_at("t", log_clock() + 60)
    assert [r.payload for r in await event_log.read("t", after=later)] == []


async def test_reschedule_waiting_makes_retries_due_together_so_the_oldest_go_first(
    event_log: EventLog, log_clock: FakeClock
) -> None:
    await event_log.append("t", [("k", b"1"), ("k", b"2"), ("k", b"3"), ("k", b"4")])
    a, b, c, _leased = await event_log.lease("t", "c", 10)
    now = log_clock()
    await event_log.retry([a.id], now + 900, "down")
    await event_log.retry([b.id], now + 300, "down")
    await event_log.retry([c.id], now + 600, "down")
    assert await event_log.reschedule_waiting("t", now) == 3  # d is still leased: untouched
    first = await event_log.lease("t", "c", 2)
    assert [r.payload for r in first] == [b"1", b"2"]


async def test_forget_deletes_or_rewrites_matching_records_in_every_state(event_log: EventLog) -> None:
    from eventyard.log.base import ForgetCount, LogRecord

    await event_log.append("jobs", [("", b"ana-1"), ("", b"bob-1"), ("", b"ana-2"), ("", b"ana-3")])
    archived = await event_log.append("rejected", [("s", b"ana-refused"), ("s", b"bob-refused")], archive=True)
    await event_log.append("ingest", [("s", b"[ana-4,bob-2]")])
    acked, dead, _leased_a, _leased_b = await event_log.lease("jobs", "c", 10)
    await event_log.ack([acked.id])
    await event_log.dead_letter([dead.id], "gone")  # bob-1 stays: it holds no needle
    seen: list[bytes] = []

    def rewrite(record: LogRecord) -> bytes | None:
        seen.append(record.payload)
        if record.topic == "ingest":
            return b"[bob-2]"
        return None

    counts = await event_log.forget([b"ana"], rewrite)

    assert counts == {
        "jobs": ForgetCount(deleted=3),
        "rejected": ForgetCount(deleted=1),
        "ingest": ForgetCount(rewritten=1),
    }
    assert all(b"ana" in p for p in seen)  # records without a needle are not looked at
    assert [r.payload for r in await event_log.read("jobs")] == [b"bob-1"]
    assert [r.payload for r in await event_log.read("rejected")] == [b"bob-refused"]
    assert [r.id for r in await event_log.read("rejected")] == [archived[1]]
    assert [r.payload for r in await event_log.read("ingest")] == [b"[bob-2]"]
    assert await event_log.lease("jobs", "c", 10, lease_seconds=0) == []  # the leased ana jobs are gone too
    assert [r.payload for r in await event_log.dead_letters("jobs")] == [b"bob-1"]
    assert (await event_log.stats("jobs")).backlog == 0


async def test_forget_keeps_the_state_of_a_rewritten_live_record_and_is_idempotent(event_log: EventLog) -> None:
    await event_log.append("t", [("k", b"ana+bob"), ("k", b"carl")])

    def drop_ana(record: object) -> bytes:
        from eventyard.log.base import LogRecord

        assert isinstance(record, LogRecord)
        return record.payload.replace(b"ana+", b"")

    first = await event_log.forget([b"ana"], drop_ana)
    again = await event_log.forget([b"ana"], drop_ana)
    assert first["t"].rewritten == 1 and again == {}
    leased = await event_log.lease("t", "c", 10)
    assert [r.payload for r in leased] == [b"bob", b"carl"]
    assert await event_log.forget([], drop_ana) == {}
