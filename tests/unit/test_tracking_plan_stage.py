"""The tracking-plan stage over a real state store: reloads, counts, forwarding and its guards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from eventyard.quality import plan_store
from eventyard.quality.plan_format import parse_plan
from eventyard.spec.pipeline import PipelineEvent
from eventyard.state.base import Source, StateStore
from eventyard.state.sqlite import SQLiteStateStore
from eventyard.testing.clock import FakeClock
from eventyard.unify import tracking_plan
from eventyard.unify.context import StageContext

NOW = 1_800_000_000.0


def plan(required: list[str]) -> Any:
    schema = {
        "type": "object",
        "properties": {
            "properties": {"type": "object", "required": required, "properties": {"order_id": {"type": "string"}}}
        },
    }
    return parse_plan({"name": "shop", "rules": [{"type": "TRACK", "key": "Order Completed", "jsonSchema": schema}]})


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[StageContext, Source, Source, Source]]:
    state: StateStore = SQLiteStateStore(tmp_path / "state.sqlite3")
    await state.start()
    try:
        ws = await state.create_workspace("default")
        web = await state.create_source(ws.id, "web")
        quarantine = await state.create_source(ws.id, "quarantine")
        reports = await state.create_source(ws.id, "reports")
        await plan_store.put_plan(state, ws.id, plan(["order_id"]))
        yield StageContext(state, clock=FakeClock(NOW)), web, quarantine, reports
    finally:
        await state.close()


def event(
    source: Source, mid: str, props: dict[str, Any], name: str = "Order Completed", **extra: Any
) -> PipelineEvent:
    body = {"type": "track", "event": name, "userId": "u", "messageId": mid, "properties": props, "context": {}}
    return PipelineEvent(1, source.id, mid, {**body, **extra}, NOW)


async def test_without_a_plan_events_pass_untouched(setup: tuple[StageContext, Source, Source, Source]) -> None:
    ctx, web, _, _ = setup
    batch = [event(web, "m1", {"x": 1}, name="Anything")]
    result = await tracking_plan.run(batch, ctx)
    assert result.kept is batch and not result.dropped and not result.emitted
    assert await ctx.state.violation_summary(web.workspace_id, NOW) == []


async def test_new_plan_versions_apply_from_the_next_batch(setup: tuple[StageContext, Source, Source, Source]) -> None:
    ctx, web, _, _ = setup
    await plan_store.attach(ctx.state, web, {"plan": "shop", "enforcement": {"track_violations": "block"}})
    result = await tracking_plan.run([event(web, "m1", {"order_id": "o"})], ctx)
    assert len(result.kept) == 1
    await plan_store.put_plan(ctx.state, web.workspace_id, plan(["order_id", "total"]))
    result = await tracking_plan.run([event(web, "m2", {"order_id": "o"})], ctx)
    assert [d.reason for d in result.dropped] == ["tracking_plan_violation"]
    assert "(v2)" in result.dropped[0].detail
    (row,) = await ctx.state.violation_summary(web.workspace_id, NOW)
    assert (row.field, row.violation_type, row.count_1h) == ("properties.total", "Required", 1)
    await plan_store.detach(ctx.state, web)
    result = await tracking_plan.run([event(web, "m3", {})], ctx)
    assert len(result.kept) == 1, "detached: nothing enforced"


async def test_forwarding_and_its_guards(setup: tuple[StageContext, Source, Source, Source]) -> None:
    ctx, web, quarantine, reports = setup
    settings = {
        "plan": "shop",
        "enforcement": {
            "track_unplanned_events": "block",
            "forward_blocked_to": "quarantine",
            "forward_violations_to": "reports",
        },
    }
    await plan_store.attach(ctx.state, web, settings)
    blocked = event(web, "m1", {}, name="Mystery")
    again = event(web, "m2", {}, name="Mystery", context={"protocols": {"blocked": "tracking_plan_unplanned"}})
    report = event(web, "m3", {}, name="Violation Generated", userId="schema-violations")
    result = await tracking_plan.run([blocked, again, report], ctx)
    assert [d.event.message_id for d in result.dropped] == ["m1", "m2", "m3"]
    assert "forwarded" in result.dropped[0].detail and "forwarded" not in result.dropped[1].detail
    to_quarantine = [e for e in result.emitted if e.source_id == quarantine.id]
    assert [e.event["messageId"] for e in to_quarantine] == ["m1", "m3"], "an event is quarantined at most once"
    assert to_quarantine[0].event["context"]["protocols"]["blocked"] == "tracking_plan_unplanned"
    to_reports = [e for e in result.emitted if e.source_id == reports.id]
    assert [e.event["properties"]["eventMessageID"] for e in to_reports] == ["m1", "m2"], "reports are not reported"
    assert all(e.event["event"] == "Violation Generated" and e.record_id == 1 for e in to_reports)


def test_emitted_events_are_held_back_with_a_failed_record() -> None:
    from eventyard.spec.pipeline import Emitted, Failed, StageResult
    from eventyard.unify.runner import hold_failed_records

    ok = PipelineEvent(1, "s", "m1", {}, NOW)
    bad = PipelineEvent(2, "s", "m2", {}, NOW)
    emitted = [Emitted("q", {"messageId": "m1"}, 1), Emitted("q", {"messageId": "m2"}, 2)]
    held = hold_failed_records(StageResult([ok], [], [Failed(bad, "boom")], emitted))
    assert [e.record_id for e in held.emitted] == [1]
