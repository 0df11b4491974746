"""Deletion and suppression end to end (issue 6): a user with events in the log, a profile,
warehouse rows (DuckDB and the real PostgreSQL), JSONL and Parquet files and a webhook; a
SUPPRESS_WITH_DELETE through the regulations API; every store clean and the regulation
FINISHED, with a report per store; the user's new events refused at ingest (the SDK still
gets 200, nothing stored, the refusal counted); UNSUPPRESS lets them in again."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest
from pg_warehouse_support import fresh_database, postgres_is_up

from eventyard.log import topics
from eventyard.privacy.regulations import DESTINATION_PREFIX
from eventyard.state.base import DestinationConfig
from eventyard.testing.asgi import basic, call
from eventyard.testing.harness import AppHarness, running_app
from eventyard.testing.recorder import WebhookRecorder
from eventyard.testing.services import require_service
from eventyard.testing.wait import eventually_async

pytestmark = pytest.mark.slow


def bearer(h: AppHarness) -> dict[str, str]:
    return {"Authorization": f"Bearer {h.admin_token}", "Content-Type": "application/json"}


def track(user: str, n: int, anonymous: str = "") -> dict[str, Any]:
    event: dict[str, Any] = {"type": "track", "event": "Viewed", "messageId": f"{user}-{n}", "properties": {"n": n}}
    event["userId"] = user
    if anonymous:
        event["anonymousId"] = anonymous
    return event


async def send(h: AppHarness, *events: dict[str, Any]) -> Any:
    resp = await call(h.app, "POST", "/v1/batch", {"batch": list(events)}, {"Authorization": basic(h.write_key)})
    assert resp.status == 200, resp.body
    return resp.json()


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    require_service(postgres_is_up(), "PostgreSQL at 127.0.0.1:5432")
    with fresh_database() as dsn:
        yield dsn


async def _destination(h: AppHarness, name: str, kind: str, settings: dict[str, Any]) -> DestinationConfig:
    state = h.components.state
    config = await state.create_destination(h.source.workspace_id, name, kind, settings=settings)
    await state.set_connection(h.source.id, config.id)
    return config


def _pg_count(dsn: str, user: str) -> int:
    with psycopg.connect(dsn) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.columns WHERE column_name = 'user_id' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        total = 0
        for schema, table in tables:
            row = conn.execute(f'SELECT count(*) FROM "{schema}"."{table}" WHERE user_id = %s', (user,)).fetchone()
            total += int(row[0]) if row else 0
        return total


def _file_users(root: Path) -> list[str]:
    users: list[str] = []
    for path in sorted(root.rglob("*")):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix == ".parquet":
            users += [u for u in pq.read_table(io.BytesIO(path.read_bytes()))["user_id"].to_pylist() if u]
        elif path.suffix == ".jsonl":
            users += [line.split('"userId":"')[1].split('"')[0] for line in path.read_text().splitlines() if line]
    return users


async def test_a_user_is_deleted_everywhere_then_suppressed_then_let_in_again(tmp_path: Path, pg_dsn: str) -> None:
    async with WebhookRecorder() as hook, running_app(tmp_path / "data") as h:
        duck = await _destination(h, "duck", "duckdb", {"path": str(tmp_path / "wh.duckdb"), "batch_age_seconds": 0.1})
        pg = await _destination(h, "pg", "postgres", {"dsn": pg_dsn, "batch_age_seconds": 0.1})
        jsonl = await _destination(h, "lines", "file", {"path": str(tmp_path / "lines"), "max_file_seconds": 3600})
        parquet = await _destination(h, "lake", "file", {"path": str(tmp_path / "lake"), "format": "parquet"})
        web = await _destination(h, "hook", "webhook", {"url": hook.url + "/events", "delete_events": True})
        await send(h, track("ana", 1, "anon-a"), track("bob", 1), track("ana", 2))
        await send(h, track("bob", 2))

        manager = h.components.delivery
        assert manager is not None

        async def delivered() -> int:
            stats = [await h.components.log.stats(topics.deliver(d.id)) for d in (duck, pg, jsonl, parquet, web)]
            return sum(s.acked for s in stats)

        assert await eventually_async(delivered, lambda n: n == 20, within=60) == 20
        assert sorted(_file_users(tmp_path / "lines")) == ["ana", "ana", "bob", "bob"]
        assert sorted(_file_users(tmp_path / "lake")) == ["ana", "ana", "bob", "bob"]
        assert _pg_count(pg_dsn, "ana") >= 2
        identity = h.components.identity
        assert identity is not None
        known = await identity.store.read(lambda tx: tx.lookup(h.source.workspace_id, "users", ["user_id:ana"]))
        assert known  # ana has a profile

        # ------------------------------------------------------------------ delete
        resp = await call(
            h.app,
            "POST",
            "/regulations",
            {"regulationType": "SUPPRESS_WITH_DELETE", "subjectType": "USER_ID", "subjectIds": ["ana"]},
            bearer(h),
        )
        assert resp.status == 200, resp.body
        reg_id = resp.json()["data"]["regulateId"]

        async def regulation() -> dict[str, Any]:
            got = await call(h.app, "GET", f"/regulations/{reg_id}", None, bearer(h))
            return dict(got.json()["data"]["regulation"])

        report = await eventually_async(regulation, lambda r: r["overallStatus"] == "FINISHED", within=60)
        assert report["overallStatus"] == "FINISHED", report
        stores = report["stores"]
        assert set(stores) == {"suppression", "log", "identity"} | {
            DESTINATION_PREFIX + d.id for d in (duck, pg, jsonl, parquet, web)
        }
        assert all(s["status"] == "FINISHED" for s in stores.values()), stores
        assert stores["log"]["removed"]["ingest_records_rewritten"] == 1  # the first request also held bob's event
        assert stores["log"]["removed"]["delivery_jobs_deleted"] == 10
        assert stores["identity"]["removed"]["profiles"] >= 1
        assert stores[DESTINATION_PREFIX + duck.id]["removed"]["rows"] >= 2
        assert stores[DESTINATION_PREFIX + jsonl.id]["removed"]["rows"] == 2
        assert stores[DESTINATION_PREFIX + parquet.id]["removed"]["rows"] == 2
        destination_status = {d["name"]: d["status"] for d in report["streamStatus"][0]["destinationStatus"]}
        assert destination_status == dict.fromkeys(("duck", "pg", "lines", "lake", "hook"), "FINISHED")

        # every store is clean of ana, and still holds bob
        log = h.components.log
        for topic in (topics.INGEST, topics.REJECTED, *(topics.deliver(d.id) for d in (duck, pg, jsonl, parquet, web))):
            payloads = [r.payload for r in await log.read(topic, limit=10_000)]
            assert not any(b'"ana"' in p or b"anon-a" in p for p in payloads), topic
        ingest = b"".join(r.payload for r in await log.read(topics.INGEST))
        assert ingest.count(b'"bob"') == 2
        assert await identity.store.read(lambda tx: tx.lookup(h.source.workspace_id, "users", ["user_id:ana"])) == {}
        assert await identity.store.read(lambda tx: tx.lookup(h.source.workspace_id, "users", ["user_id:bob"]))
        duck_dest: Any = manager.running[duck.id].destination
        result = await duck_dest.query("SELECT user_id FROM web.tracks ORDER BY user_id", 100)
        assert [r[0] for r in result.rows] == ["bob", "bob"]
        assert _pg_count(pg_dsn, "ana") == 0 and _pg_count(pg_dsn, "bob") >= 2
        assert sorted(_file_users(tmp_path / "lines")) == ["bob", "bob"]
        assert sorted(_file_users(tmp_path / "lake")) == ["bob", "bob"]
        deletes = [b for b in hook.json_bodies() if isinstance(b, dict) and b.get("type") == "delete"]
        assert [(d["userId"], d["identifiers"]["anonymousId"]) for d in deletes] == [("ana", "anon-a")]

        # ---------------------------------------------------------------- suppressed
        suppressions = h.components.suppressions
        assert suppressions is not None
        await suppressions.refresh()  # the API refreshed it already; other processes poll within 2 s
        rejected_before = h.components.metrics.events_rejected.labels("suppressed")._value.get()
        answer = await send(h, track("ana", 3), track("bob", 3))
        assert answer == {"success": True, "accepted": 1}  # the SDK is not told
        single = await call(h.app, "POST", "/v1/track", track("ana", 4), {"Authorization": basic(h.write_key)})
        assert single.status == 200 and single.json() == {"success": True}
        assert h.components.metrics.events_rejected.labels("suppressed")._value.get() == rejected_before + 2
        ingest = b"".join(r.payload for r in await log.read(topics.INGEST))
        assert b'"ana"' not in ingest and b"bob-3" in ingest
        refusals = [r.payload for r in await log.read(topics.REJECTED)]
        assert len(refusals) == 2 and all(b'"suppressed"' in p and b'"ana"' not in p for p in refusals)

        # ---------------------------------------------------------------- unsuppress
        resp = await call(
            h.app,
            "POST",
            "/api/v1/regulations",
            {"regulationType": "UNSUPPRESS", "subjectType": "USER_ID", "subjectIds": ["ana"]},
            bearer(h),
        )
        assert resp.status == 200
        await suppressions.refresh()
        suppressed = await call(h.app, "GET", "/suppressions", None, bearer(h))
        assert suppressed.json()["data"]["suppressed"] == []
        assert (await send(h, track("ana", 5))) == {"success": True, "accepted": 1}
        ingest = b"".join(r.payload for r in await log.read(topics.INGEST))
        assert b"ana-5" in ingest
