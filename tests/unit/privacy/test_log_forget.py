"""What a deletion does to each kind of log record (``privacy.log_forget`` over ``EventLog.forget``)."""

from __future__ import annotations

from typing import Any

import msgspec

from eventyard.log import topics
from eventyard.log.memory import MemoryEventLog
from eventyard.privacy.log_forget import Subject, rewrite_for, summarize
from eventyard.route import jobs
from eventyard.spec import stored
from eventyard.spec.normalize import Envelope
from eventyard.spec.stored import Request
from eventyard.spec.timestamps import now_stamped

_encode = msgspec.json.encode


def request_record(*events: dict[str, Any]) -> bytes:
    received, received_at = now_stamped()
    request = Request(Envelope(received=received, received_at=received_at))
    made_up = {i: f"made-up-{i}" for i, e in enumerate(events) if "messageId" not in e}
    return request.value([_encode(e) for e in events], made_up)


def track(user: str | None = None, anonymous: str | None = None, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "track", "event": "Viewed", **extra}
    if user is not None:
        event["userId"] = user
    if anonymous is not None:
        event["anonymousId"] = anonymous
    return event


async def test_requests_lose_the_users_events_and_keep_the_others_in_order() -> None:
    log = MemoryEventLog()
    mixed = request_record(track("ana", messageId="a1"), track(anonymous="bob-device"), track(anonymous="ana-device"))
    only_ana = request_record(track("ana", messageId="a2"))
    old_format = _encode({**track("ana"), "messageId": "legacy"})
    alias = request_record({"type": "alias", "userId": "ana-2", "previousId": "ana", "messageId": "al"})
    others = request_record(track("bob", messageId="b1"))
    await log.append(topics.INGEST, [("src", p) for p in (mixed, only_ana, old_format, alias, others)])
    subject = Subject(["ana"], ["ana-device"])

    counts = await log.forget(subject.needles(), rewrite_for(subject))

    records = await log.read(topics.INGEST)
    assert len(records) == 2
    kept = stored.load(records[0].payload)
    assert [(e.get("userId"), e.get("anonymousId"), e["messageId"]) for e in kept] == [
        (None, "bob-device", "made-up-1")  # its made-up messageId moved with it
    ]
    assert records[1].payload == others
    assert summarize(counts) == {
        "ingest_records_deleted": 3,
        "ingest_records_rewritten": 1,
        "delivery_jobs_deleted": 0,
    }


async def test_delivery_jobs_refusals_and_other_topics_of_the_user_are_deleted() -> None:
    log = MemoryEventLog()

    def job(user: str) -> bytes:
        return jobs.encode(jobs.Job(f"m-{user}", "src", "dst", track(user)))

    await log.append(topics.deliver("dst"), [("", job("ana")), ("", job("bob")), ("", job("anabel"))])
    refusals = [
        {"reason": "missing_event", "event": {"type": "track", "userId": "ana"}},
        {"reason": "invalid_json", "excerpt": '{"userId": "ana", oops'},
        {"reason": "suppressed", "messageId": "m-9"},
        {"reason": "missing_event", "event": {"type": "track", "userId": "bob"}},
    ]
    await log.append(topics.REJECTED, [("src", _encode(r)) for r in refusals], archive=True)
    await log.append("custom", [("", _encode(track("ana"))), ("", b"not json, mentions ana")])
    subject = Subject(["ana"])

    counts = await log.forget(subject.needles(), rewrite_for(subject))

    left = [jobs.decode(r.payload).event["userId"] for r in await log.read(topics.deliver("dst"))]
    assert left == ["bob", "anabel"]  # a needle is only a prefilter: anabel is not ana
    left_refusals = [msgspec.json.decode(r.payload) for r in await log.read(topics.REJECTED)]
    assert [r["reason"] for r in left_refusals] == ["suppressed", "missing_event"]
    assert [r.payload for r in await log.read("custom")] == [b"not json, mentions ana"]
    assert summarize(counts) == {
        "ingest_records_deleted": 0,
        "ingest_records_rewritten": 0,
        "delivery_jobs_deleted": 1,
        "refusals_deleted": 2,
        "other_records_deleted": 1,
    }


def test_needles_cover_the_escaped_form_of_non_ascii_ids() -> None:
    subject = Subject(["zoë"], ['a"b'])
    assert subject.needles() == [b'a"b', b'a\\"b', "zoë".encode(), b"zo\\u00eb"]
    assert subject.owns({"userId": "zoë"}) and subject.owns({"anonymousId": 'a"b'})
    assert not subject.owns({"userId": 'a"b'})  # an anonymous id is not a user id
    assert not subject.owns(["zoë"])


async def test_a_source_scoped_deletion_leaves_other_sources_records() -> None:
    log = MemoryEventLog()
    await log.append(topics.INGEST, [("web", request_record(track("ana"))), ("ios", request_record(track("ana")))])

    def job(source: str) -> bytes:
        return jobs.encode(jobs.Job(f"m-{source}", source, "dst", track("ana")))

    await log.append(topics.deliver("dst"), [("", job("web")), ("", job("ios"))])
    subject = Subject(["ana"])
    counts = await log.forget(subject.needles(), rewrite_for(subject, "web"))
    assert [r.key for r in await log.read(topics.INGEST)] == ["ios"]
    assert [jobs.decode(r.payload).source_id for r in await log.read(topics.deliver("dst"))] == ["ios"]
    assert summarize(counts)["delivery_jobs_deleted"] == 1
