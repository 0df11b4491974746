"""The audit middleware on a small app: when entries cannot be written (reads fail closed,
changes are logged, counted and then refused), where a request comes from (X-Forwarded-For
only behind a trusted proxy), and what a change's entry takes from its answer."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from eventyard.control.audit_middleware import audit_middleware
from eventyard.quality.metrics import Metrics
from eventyard.state.base import AuditEntry, StateStore
from eventyard.state.ids import hash_token
from eventyard.state.sqlite import SQLiteStateStore
from eventyard.testing.asgi import call

TOKEN = "eyt_small-app-owner"


class SmallApp:
    def __init__(self, state: StateStore, trust_forwarded_for: bool = False) -> None:
        self.calls = 0
        self.metrics = Metrics()

        async def secret_data(request: Request) -> Response:
            return JSONResponse({"email": "ana@example.com"})

        async def change(request: Request) -> Response:
            self.calls += 1
            return JSONResponse({"id": "d_new", "token": "eyt_secret-of-the-new-thing"}, 201)

        async def boom(request: Request) -> Response:
            raise RuntimeError("endpoint bug")

        self.app = Starlette(
            routes=[
                Route("/api/v1/sources/{source}/events", secret_data),
                Route("/api/v1/destinations", change, methods=["POST"]),
                Route("/api/v1/destinations/{d}", boom, methods=["DELETE"]),
            ],
            middleware=[audit_middleware(state, self.metrics, trust_forwarded_for)],
        )

    def failures(self, kind: str) -> float:
        value = self.metrics.registry.get_sample_value("eventyard_audit_write_failures_total", {"kind": kind})
        return value or 0.0

    async def request(self, method: str, path: str, **headers: str) -> Any:
        return await call(self.app, method, path, {}, {"authorization": f"Bearer {TOKEN}", **headers})


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[SQLiteStateStore]:
    store = SQLiteStateStore(tmp_path / "state.sqlite3")
    await store.start()
    await store.create_workspace("default")
    await store.add_token("ops", "owner", hash_token(TOKEN))
    yield store
    await store.close()


def break_audit(monkeypatch: pytest.MonkeyPatch, state: SQLiteStateStore) -> None:
    async def broken(*args: Any, **kwargs: Any) -> AuditEntry:
        raise OSError("disk full")

    monkeypatch.setattr(state, "append_audit", broken)


async def test_a_read_whose_entry_cannot_be_written_sends_no_data(
    state: SQLiteStateStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    small = SmallApp(state)
    break_audit(monkeypatch, state)
    with caplog.at_level(logging.ERROR, "eventyard.audit"):
        r = await small.request("GET", "/api/v1/sources/web/events")
    assert r.status == 503 and r.headers["retry-after"] == "5"
    assert r.json()["code"] == "audit_unavailable"
    assert b"ana@example.com" not in r.body
    assert small.failures("read") == 1
    assert "disk full" in caplog.text and "event.read" in caplog.text


async def test_a_change_whose_entry_fails_is_logged_then_changes_wait_for_the_trail(
    state: SQLiteStateStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    small = SmallApp(state)
    with monkeypatch.context() as patch:
        break_audit(patch, state)
        with caplog.at_level(logging.ERROR, "eventyard.audit"):
            first = await small.request("POST", "/api/v1/destinations")
        # committed before its entry failed: the caller gets the real answer, the log the entry
        assert first.status == 201 and small.calls == 1
        assert small.failures("change") == 1
        assert '"action": "destination.create"' in caplog.text and '"target": "d_new"' in caplog.text
        refused = await small.request("POST", "/api/v1/destinations")
        assert refused.status == 503 and small.calls == 1
        assert small.failures("change") == 2
    # the trail works again: the next change is refused once, and that refusal is recorded
    again = await small.request("POST", "/api/v1/destinations")
    assert again.status == 503 and small.calls == 1
    third = await small.request("POST", "/api/v1/destinations")
    assert third.status == 201 and small.calls == 2
    found = [(e.action, e.detail["status"], e.detail.get("refused")) for e in await state.list_audit()]
    assert found == [("destination.create", 503, "audit_unavailable"), ("destination.create", 201, None)]


async def test_a_change_takes_the_new_id_from_its_answer_and_nothing_else(state: SQLiteStateStore) -> None:
    small = SmallApp(state)
    assert (await small.request("POST", "/api/v1/destinations")).status == 201
    [entry] = await state.list_audit()
    assert (entry.action, entry.target, entry.actor) == ("destination.create", "d_new", entry.actor)
    assert entry.actor.endswith(":ops")
    assert "eyt_secret" not in repr(entry)


async def test_an_endpoint_that_crashes_is_recorded_as_500(state: SQLiteStateStore) -> None:
    small = SmallApp(state)
    with pytest.raises(RuntimeError, match="endpoint bug"):
        await small.request("DELETE", "/api/v1/destinations/d1")
    [entry] = await state.list_audit()
    assert (entry.action, entry.target, entry.detail["status"]) == ("destination.delete", "d1", 500)


@pytest.mark.parametrize(
    ("trusted", "forwarded", "origin", "proxy"),
    [
        (False, "198.51.100.1", "203.0.113.7", None),
        (True, "198.51.100.1", "198.51.100.1", "203.0.113.7"),
        (True, "6.6.6.6, 198.51.100.1", "198.51.100.1", "203.0.113.7"),
        (True, "", "203.0.113.7", None),
    ],
)
async def test_origin_honours_x_forwarded_for_only_behind_a_trusted_proxy(
    state: SQLiteStateStore, trusted: bool, forwarded: str, origin: str, proxy: str | None
) -> None:
    small = SmallApp(state, trust_forwarded_for=trusted)
    await small.request("GET", "/api/v1/sources/web/events", **{"x-forwarded-for": forwarded})
    [entry] = await state.list_audit()
    assert entry.origin == origin
    assert entry.detail.get("proxy") == proxy
