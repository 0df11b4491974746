"""The StateStore contract for PII findings (the PII report): every backend must pass it."""

from __future__ import annotations

from eventyard.state.base import PiiFinding, StateStore


def finding(path: str, kind: str, n: int, at: float, source: str = "src_web", ws: str = "ws_1") -> PiiFinding:
    return PiiFinding(ws, source, path, kind, n, at, at)


async def test_counts_add_up_and_seen_times_widen(state_store: StateStore) -> None:
    v0 = await state_store.config_version()
    await state_store.record_pii_findings(
        [finding("properties.email", "email", 3, 100.0), finding("context.ip", "ip", 1, 100.0)]
    )
    await state_store.record_pii_findings([finding("properties.email", "email", 2, 50.0)])
    await state_store.record_pii_findings([finding("properties.email", "email", 1, 200.0)])
    await state_store.record_pii_findings([])
    assert await state_store.config_version() == v0, "findings are not configuration"
    rows = await state_store.list_pii_findings("ws_1")
    assert [(r.path, r.kind, r.count, r.first_seen, r.last_seen) for r in rows] == [
        ("context.ip", "ip", 1, 100.0, 100.0),
        ("properties.email", "email", 6, 50.0, 200.0),
    ]


async def test_rows_are_kept_per_source_kind_and_workspace(state_store: StateStore) -> None:
    await state_store.record_pii_findings(
        [
            finding("properties.contact", "email", 1, 10.0),
            finding("properties.contact", "phone", 2, 10.0),
            finding("properties.contact", "email", 4, 10.0, source="src_ios"),
            finding("properties.contact", "email", 8, 10.0, ws="ws_2", source="src_other"),
        ]
    )
    rows = await state_store.list_pii_findings("ws_1")
    assert [(r.source_id, r.kind, r.count) for r in rows] == [
        ("src_ios", "email", 4),
        ("src_web", "email", 1),
        ("src_web", "phone", 2),
    ]
    assert [r.count for r in await state_store.list_pii_findings("ws_1", source_id="src_ios")] == [4]
    assert len(await state_store.list_pii_findings(None)) == 4


async def test_clear_forgets_a_source_or_a_workspace(state_store: StateStore) -> None:
    await state_store.record_pii_findings(
        [
            finding("properties.email", "email", 1, 1.0),
            finding("properties.email", "email", 1, 1.0, source="src_ios"),
            finding("properties.email", "email", 1, 1.0, ws="ws_2"),
        ]
    )
    assert await state_store.clear_pii_findings("ws_1", source_id="src_ios") == 1
    assert [r.source_id for r in await state_store.list_pii_findings("ws_1")] == ["src_web"]
    assert await state_store.clear_pii_findings("ws_1") == 1
    assert await state_store.list_pii_findings("ws_1") == []
    assert len(await state_store.list_pii_findings("ws_2")) == 1
