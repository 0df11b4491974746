"""Suppressed users at ingest (the SDK gets 200, nothing is stored, the refusal is counted and
shown without the event) and in the unify stage (events stored before the suppression)."""

from __future__ import annotations

from typing import Any

import msgspec

from eventyard.log import topics
from eventyard.privacy.regulations import create_regulation
from eventyard.privacy.suppression import SuppressionList
from eventyard.spec.pipeline import PipelineEvent
from eventyard.testing.asgi import basic, call
from eventyard.testing.harness import AppHarness
from eventyard.unify import suppression as stage
from eventyard.unify.context import StageContext


def track(n: int, user: str | None = None, anonymous: str | None = None, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "track", "event": "Viewed", "messageId": f"m-{n}", **extra}
    if user is not None:
        event["userId"] = user
    if anonymous is not None:
        event["anonymousId"] = anonymous
    return event


async def suppress(h: AppHarness, *ids: str, subject: str = "USER_ID", kind: str = "SUPPRESS_ONLY") -> None:
    await create_regulation(h.components.state, h.source.workspace_id, kind, subject, list(ids))
    suppressions = h.components.suppressions
    assert suppressions is not None
    assert await suppressions.refresh()


async def post(h: AppHarness, path: str, body: Any) -> tuple[int, Any]:
    resp = await call(h.app, "POST", path, body, {"Authorization": basic(h.write_key)})
    return resp.status, resp.json()


def rejected_count(h: AppHarness, reason: str) -> float:
    value: float = h.components.metrics.events_rejected.labels(reason)._value.get()
    return value


async def stored(h: AppHarness, topic: str) -> list[Any]:
    return [msgspec.json.decode(r.payload) for r in await h.components.log.read(topic, limit=1000)]


async def test_a_suppressed_users_events_get_200_and_are_not_stored(harness: AppHarness) -> None:
    await suppress(harness, "ana")
    status, body = await post(harness, "/v1/batch", {"batch": [track(1, "ana"), track(2, "bob"), track(3, "ana")]})
    assert (status, body) == (200, {"success": True, "accepted": 1})
    status, body = await post(harness, "/v1/track", track(4, "ana"))
    assert (status, body) == (200, {"success": True})
    status, body = await post(harness, "/v1/batch", {"batch": [track(5, "ana")]})  # nothing left: still 200
    assert (status, body) == (200, {"success": True, "accepted": 0})

    ingest = await stored(harness, topics.INGEST)
    assert [e["userId"] for record in ingest for e in record[2]] == ["bob"]
    refusals = await stored(harness, topics.REJECTED)
    assert [(r["reason"], r["messageId"]) for r in refusals] == [
        ("suppressed", "m-1"),
        ("suppressed", "m-3"),
        ("suppressed", "m-4"),
        ("suppressed", "m-5"),
    ]
    assert all("event" not in r and "excerpt" not in r for r in refusals)  # nothing of the event is kept
    assert rejected_count(harness, "suppressed") == 4


async def test_other_refusals_are_still_reported_next_to_suppressed_events(harness: AppHarness) -> None:
    await suppress(harness, "ana")
    batch = {"batch": [track(1, "ana"), {"type": "track", "userId": "bob"}]}  # bob's has no event name
    status, body = await post(harness, "/v1/batch", batch)
    assert status == 200 and body["accepted"] == 0
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [(1, "missing_event")]


async def test_anonymous_ids_can_be_suppressed(harness: AppHarness) -> None:
    await suppress(harness, "device-9", subject="ANONYMOUS_ID")
    batch = {"batch": [track(1, anonymous="device-9"), track(2, "zoe", "device-9"), track(3, anonymous="device-1")]}
    status, body = await post(harness, "/v1/batch", batch)
    assert (status, body) == (200, {"success": True, "accepted": 1})
    ingest = await stored(harness, topics.INGEST)
    assert [e["anonymousId"] for record in ingest for e in record[2]] == ["device-1"]


async def test_unsuppress_lets_events_in_again(harness: AppHarness) -> None:
    await suppress(harness, "ana", "42")
    assert (await post(harness, "/v1/track", {**track(1), "userId": 42}))[0] == 200  # numeric ids compare as text
    await suppress(harness, "ana", "42", kind="UNSUPPRESS")
    assert (await post(harness, "/v1/batch", {"batch": [track(2, "ana"), {**track(3), "userId": 42}]}))[1][
        "accepted"
    ] == 2
    assert rejected_count(harness, "suppressed") == 1


async def test_the_unify_stage_drops_stored_events_of_users_suppressed_later(harness: AppHarness) -> None:
    state = harness.components.state
    suppressions = SuppressionList(state)
    await suppressions.reload()
    ctx = StageContext(state)
    ctx.suppressions = suppressions

    def event(n: int, user: str) -> PipelineEvent:
        return PipelineEvent(n, harness.source.id, f"m-{n}", {"type": "track", "userId": user}, 0.0)

    batch = [event(1, "ana"), event(2, "bob")]
    assert (await stage.run(batch, ctx)).kept == batch  # nobody suppressed yet
    await create_regulation(state, harness.source.workspace_id, "SUPPRESS_ONLY", "USER_ID", ["ana"])
    assert await suppressions.refresh()
    result = await stage.run(batch, ctx)
    assert [e.message_id for e in result.kept] == ["m-2"]
    assert [(d.event.message_id, d.reason, d.detail) for d in result.dropped] == [
        ("m-1", "suppressed", "userId is suppressed by a regulation")
    ]
    other = PipelineEvent(3, "src_of_another_workspace", "m-3", {"type": "track", "userId": "ana"}, 0.0)
    assert (await stage.run([other], ctx)).kept == [other]
    assert (await stage.run(batch, StageContext(state))).kept == batch  # no list: everything passes
