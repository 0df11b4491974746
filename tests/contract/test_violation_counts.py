"""The StateStore contract for tracking-plan violation counts: every backend must pass it."""

from __future__ import annotations

from eventyard.state.base import VIOLATION_BUCKET_SECONDS, StateStore, ViolationCount

NOW = 1_800_000_000.0
HOUR = 3600.0


def count(at: float, n: int = 1, field: str = "properties.total", kind: str = "Type", **kw: str) -> ViolationCount:
    base = {
        "workspace_id": "ws_1",
        "source_id": "src_web",
        "plan": "shop",
        "event_type": "track",
        "event_name": "Order Completed",
    }
    base.update(kw)
    return ViolationCount(field=field, violation_type=kind, count=n, at=at, description=f"seen at {at:.0f}", **base)


async def test_counts_add_up_per_window(state_store: StateStore) -> None:
    v0 = await state_store.config_version()
    await state_store.record_violations(
        [
            count(NOW - 60, 2),  # last hour
            count(NOW - 30, 1),  # last hour, same bucket or the next: adds up
            count(NOW - 5 * HOUR, 4),  # last day
            count(NOW - 3 * 24 * HOUR, 8),  # last week
            count(NOW - 9 * 24 * HOUR, 100),  # older than a week: not counted
        ]
    )
    assert await state_store.config_version() == v0, "violation counts are not configuration"
    (row,) = await state_store.violation_summary("ws_1", NOW)
    assert (row.count_1h, row.count_24h, row.count_7d) == (3, 7, 15)
    assert (row.plan, row.event_name, row.field, row.violation_type) == (
        "shop",
        "Order Completed",
        "properties.total",
        "Type",
    )
    assert row.last_seen == NOW - 30
    assert row.description == f"seen at {NOW - 30:.0f}"


async def test_summary_by_plan_source_and_kind(state_store: StateStore) -> None:
    await state_store.record_violations(
        [
            count(NOW - 10, 1),
            count(NOW - 20, 1, field="properties.sku", kind="Required"),
            count(NOW - 30, 5, source_id="src_app"),
            count(NOW - 40, 7, plan="other"),
            count(NOW - 50, 9, workspace_id="ws_2"),
        ]
    )
    rows = await state_store.violation_summary("ws_1", NOW)
    assert [(r.source_id, r.plan, r.field, r.count_1h) for r in rows] == [
        ("src_web", "shop", "properties.total", 1),
        ("src_web", "shop", "properties.sku", 1),
        ("src_app", "shop", "properties.total", 5),
        ("src_web", "other", "properties.total", 7),
    ], "most recently seen first"
    assert {r.source_id for r in await state_store.violation_summary("ws_1", NOW, source_id="src_app")} == {"src_app"}
    assert {r.plan for r in await state_store.violation_summary("ws_1", NOW, plan="other")} == {"other"}
    assert [r.count_7d for r in await state_store.violation_summary("ws_2", NOW)] == [9]
    assert await state_store.violation_summary("ws_3", NOW) == []


async def test_purge_drops_old_buckets(state_store: StateStore) -> None:
    await state_store.record_violations([count(NOW - 8 * 24 * HOUR, 3), count(NOW - 60, 1)])
    assert await state_store.purge_violations(NOW - 7 * 24 * HOUR - VIOLATION_BUCKET_SECONDS) == 1
    (row,) = await state_store.violation_summary("ws_1", NOW)
    assert row.count_7d == 1
    await state_store.record_violations([])  # nothing to record is fine
