"""The embedded warehouse inside a running app: schemas named after sources, discards raising a
metric, a trace step, an overview alert and a warning, and new sources joining the warehouse."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from eventyard.control import workspace_apply, workspace_file
from eventyard.runtime.bootstrap import WAREHOUSE_NAME, ensure_defaults
from eventyard.state.sqlite import SQLiteStateStore
from eventyard.testing.asgi import basic, call
from eventyard.testing.harness import AppHarness
from eventyard.testing.wait import eventually_async


async def api(h: AppHarness, method: str, path: str, body: Any = None, ok: bool = True) -> Any:
    resp = await call(h.app, method, path, body, {"Authorization": f"Bearer {h.admin_token}"})
    assert resp.status == 200 or not ok, resp.body
    return resp.json()


async def track(h: AppHarness, message_id: str, properties: dict[str, Any]) -> None:
    body = {"userId": "u1", "event": "Trial Started", "properties": properties, "messageId": message_id}
    sent = await call(h.app, "POST", "/v1/track", body, {"Authorization": basic(h.write_key)})
    assert sent.status == 200


async def test_discards_raise_a_metric_a_trace_step_an_alert_and_a_warning(
    harness: AppHarness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = harness.components.state
    dest = await state.create_destination(
        harness.source.workspace_id,
        "wh",
        "duckdb",
        settings={"path": str(tmp_path / "wh.duckdb"), "batch_age_seconds": 0},
    )
    await state.set_connection(harness.source.id, dest.id)
    caplog.set_level(logging.WARNING, logger="eventyard.warehouse")
    await track(harness, "ok-1", {"paid": True})

    async def tracks() -> Any:
        sql = {"sql": "SELECT count(*) FROM web.trial_started"}
        return await api(harness, "POST", "/api/v1/sql", sql, ok=False)  # no table yet: an error

    # the schema is the source's name ("web"), not its id
    await eventually_async(tracks, lambda r: r.get("rows") == [[1]])
    await track(harness, "bad-1", {"paid": "not really"})

    async def trace() -> Any:
        return await api(harness, "GET", "/api/v1/trace/bad-1", ok=False)  # 404 until it is stored

    found = await eventually_async(trace, lambda t: "delivered" in [s["step"] for s in t.get("steps", [])])
    [step] = [s for s in found["steps"] if s["step"] == "discarded"]
    assert step["reason"] == "not_boolean" and step["destination"] == "wh"
    assert step["detail"] == "web.trial_started.paid (see web.discards)"

    metrics = (await call(harness.app, "GET", "/metrics")).body.decode()
    assert (
        'eventyard_warehouse_discards_total{column="paid",destination="wh",reason="not_boolean",'
        'schema="web",table="trial_started"} 1.0'
    ) in metrics

    overview = await api(harness, "GET", "/api/v1/overview?window=600")
    [wh] = [d for d in overview["destinations"] if d["name"] == "wh"]
    assert wh["totals"]["discarded"] == {"not_boolean": 1}
    [alert] = wh["alerts"]
    assert alert["code"] == "warehouse_discards" and alert["count"] == 1 and "not_boolean 1" in alert["message"]
    assert any("went to the discards table" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


WORKSPACE = """
workspaces:
  - name: default
    sources:
      - name: default
      - name: mobileApp
      - name: partner-feed
    destinations:
      - name: hook
        type: webhook
        settings: {url: "http://127.0.0.1:9/hook"}
    connections:
      - source: partner-feed
        destination: hook
"""


async def test_new_sources_join_the_embedded_warehouse(tmp_path: Path) -> None:
    state = SQLiteStateStore(tmp_path / "state.sqlite3")
    await state.start()
    try:
        boot = await ensure_defaults(state, tmp_path, None)
        [warehouse] = [d for d in await state.list_destinations() if d.name == WAREHOUSE_NAME]
        assert warehouse.settings["auto_connect"] is True
        desired = workspace_file.parse(WORKSPACE)
        planned = [c.describe() for c in await workspace_apply.plan(state, desired)]
        assert "+ connection default/mobileApp -> warehouse: automatic: the destination has auto_connect" in planned
        await workspace_apply.apply(state, desired)
        names = {s.id: s.name for s in await state.list_sources()}
        dests = {d.id: d.name for d in await state.list_destinations()}
        links = {(names[c.source_id], dests[c.destination_id]) for c in await state.list_connections()}
        assert links == {
            ("default", "warehouse"),
            ("mobileApp", "warehouse"),
            ("partner-feed", "warehouse"),
            ("partner-feed", "hook"),
        }
        assert await workspace_apply.plan(state, desired) == []  # applying again changes nothing
        assert boot.created
    finally:
        await state.close()


async def test_auto_connect_off_leaves_new_sources_alone(tmp_path: Path) -> None:
    state = SQLiteStateStore(tmp_path / "state.sqlite3")
    await state.start()
    try:
        await ensure_defaults(state, tmp_path, None)
        opted_out = WORKSPACE.replace(
            "    destinations:\n",
            "    destinations:\n      - name: warehouse\n"
            "        type: duckdb\n        settings: {auto_connect: false}\n",
        )
        await workspace_apply.apply(state, workspace_file.parse(opted_out))
        names = {s.id: s.name for s in await state.list_sources()}
        dests = {d.id: d.name for d in await state.list_destinations()}
        links = {(names[c.source_id], dests[c.destination_id]) for c in await state.list_connections()}
        assert ("mobileApp", "warehouse") not in links and ("default", "warehouse") in links
    finally:
        await state.close()
