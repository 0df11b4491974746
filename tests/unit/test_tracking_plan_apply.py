"""Tracking plans in workspace.yaml: apply, diff, export round trip, and positioned errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventyard.control import workspace_apply, workspace_file
from eventyard.errors import ConfigFileError
from eventyard.quality import plan_format, plan_store
from eventyard.state.base import StateStore
from eventyard.state.sqlite import SQLiteStateStore

FILE = """
workspaces:
  - name: default
    tracking_plans:
      - name: shop
        description: the shop
        rules:
          - type: TRACK
            key: Order Completed
            version: 1
            jsonSchema:
              type: object
              properties:
                properties:
                  type: object
                  required: [order_id]
                  properties:
                    order_id: {type: string}
    sources:
      - name: web
        write_key: web-key-0001
        tracking_plan:
          plan: shop
          enforcement: {track_unplanned_events: block, forward_blocked_to: quarantine}
      - name: quarantine
"""


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[StateStore]:
    store = SQLiteStateStore(tmp_path / "state.sqlite3")
    await store.start()
    try:
        yield store
    finally:
        await store.close()


async def test_apply_diff_and_export_round_trip(state: StateStore) -> None:
    desired = workspace_file.parse(FILE)
    planned = [c.describe() for c in await workspace_apply.plan(state, desired)]
    assert "+ tracking plan default/shop: 1 rules" in planned
    assert "+ tracking plan attachment default/web: shop" in planned
    await workspace_apply.apply(state, desired)
    ws = await state.workspace_by_name("default")
    assert ws is not None
    plan, doc = await plan_store.get_plan(state, ws.id, "shop")
    assert (doc.version, plan.rules[0].key) == (1, "Order Completed")
    (web,) = [s for s in await state.list_sources(ws.id) if s.name == "web"]
    attached = await plan_store.attachment_of(state, web)
    assert attached is not None and attached.enforcement.track_unplanned_events == "block"
    assert await workspace_apply.plan(state, desired) == [], "applying twice changes nothing"

    exported = await workspace_apply.export(state)
    again = workspace_file.parse(exported)
    assert await workspace_apply.plan(state, again) == [], "the export applies as no change"
    assert again.workspaces[0].tracking_plans[0] == desired.workspaces[0].tracking_plans[0]

    changed = FILE.replace("required: [order_id]", "required: [order_id, total]").replace(
        "track_unplanned_events: block", "track_unplanned_events: allow"
    )
    updates = [c.describe() for c in await workspace_apply.plan(state, workspace_file.parse(changed))]
    assert any("version 1 -> 2" in u and "properties.total now required" in u for u in updates)
    assert any("track_unplanned_events block -> allow" in u for u in updates)
    await workspace_apply.apply(state, workspace_file.parse(changed))
    assert [d.version for d in await state.document_history(ws.id, plan_format.PLAN_KIND, "shop")] == [1, 2]


@pytest.mark.parametrize(
    ("edit", "line", "words"),
    [
        (("type: TRACK", "type: TRAK"), 8, "TRAK"),
        (("plan: shop", "plan: shop\n          colour: blue"), 24, "colour"),
        (("track_unplanned_events: block", "track_unplanned_events: maybe"), 24, "maybe"),
        (("forward_blocked_to: quarantine", "forward_blocked_to: nowhere"), 24, "nowhere"),
        (("order_id: {type: string}", "order_id: {type: strin}"), 12, "jsonSchema"),
    ],
)
def test_errors_point_at_the_file(edit: tuple[str, str], line: int, words: str) -> None:
    with pytest.raises(ConfigFileError) as info:
        workspace_file.parse(FILE.replace(*edit), "ws.yaml")
    assert words in str(info.value)
    assert info.value.line == line
