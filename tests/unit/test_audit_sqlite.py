"""The SQLite audit trail: its own file beside the state (so an entry never waits for the
state file's write lock), grouped commits (concurrent entries share one transaction, a failed
transaction fails exactly its callers, and audited reads stay fail-closed), and the one-time
move of the entries of data directories from before the split."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from eventyard.control.audit_middleware import audit_middleware
from eventyard.errors import Unavailable
from eventyard.quality.metrics import Metrics
from eventyard.state.audit_sqlite import Draft, audit_path_for
from eventyard.state.ids import hash_token
from eventyard.state.sqlite import SQLiteStateStore
from eventyard.testing.asgi import basic, call

TOKEN = "eyt_profile-reader"
PROFILE = "/v1/spaces/default/collections/users/profiles/email:ana@example.com/traits"


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[SQLiteStateStore]:
    store = SQLiteStateStore(tmp_path / "state.sqlite3")
    await store.start()
    yield store
    await store.close()


async def append(store: SQLiteStateStore, n: int, prefix: str = "e") -> list[int]:
    entries = await asyncio.gather(
        *(store.append_audit(None, "tok_1:bench", "profile.read", f"{prefix}{i}", "10.0.0.1") for i in range(n))
    )
    return [e.id for e in entries]


class HeldWrites:
    """Replaces the audit file's group transaction: counts groups, can hold one (on the audit
    thread, until released) and make it fail."""

    def __init__(self, store: SQLiteStateStore, hold: bool = False, fail: int = 0) -> None:
        self.real = store.audit.write
        self.groups: list[int] = []
        self.fail = fail
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, drafts: list[Draft]) -> list[int]:
        self.groups.append(len(drafts))
        self.started.set()
        self.release.wait()
        if self.fail:
            self.fail -= 1
            raise Unavailable("the audit trail cannot be written: disk I/O error")
        return self.real(drafts)


def test_the_trail_has_a_file_of_its_own_beside_the_state() -> None:
    assert audit_path_for("/data/state.sqlite3") == Path("/data/state-audit.sqlite3")
    assert audit_path_for("/srv/other.db") == Path("/srv/other-audit.db")


async def test_concurrent_entries_are_all_written_in_order_with_fewer_commits(state: SQLiteStateStore) -> None:
    writes = HeldWrites(state)
    state.audit.write = writes  # type: ignore[method-assign]
    ids = await append(state, 200)
    assert ids == sorted(ids) and len(set(ids)) == 200
    listed = await state.list_audit(limit=1000)
    assert [e.id for e in listed] == ids
    assert [e.target for e in listed] == [f"e{i}" for i in range(200)]
    assert len(writes.groups) < 200 and sum(writes.groups) == 200
    assert (state.audit_writes.commits, state.audit_writes.items) == (len(writes.groups), 200)


async def test_a_failed_group_fails_exactly_its_callers_and_leaves_no_hole(state: SQLiteStateStore) -> None:
    [first] = await append(state, 1, "before")
    writes = HeldWrites(state, hold=True, fail=1)
    state.audit.write = writes  # type: ignore[method-assign]
    failing = asyncio.gather(*(append(state, 1, f"lost{i}") for i in range(4)), return_exceptions=True)
    await asyncio.to_thread(writes.started.wait)  # the first group is on the audit thread, held
    waiting = asyncio.ensure_future(append(state, 3, "next"))
    writes.release.set()
    results = await failing
    assert all(isinstance(r, Unavailable) and "disk I/O error" in str(r) for r in results)
    assert await waiting == [first + 1, first + 2, first + 3]  # the next group, ids without a gap
    assert writes.groups == [4, 3]
    assert [e.target for e in await state.list_audit()] == ["before0", "next0", "next1", "next2"]


async def test_an_entry_does_not_wait_for_the_state_files_write_lock(state: SQLiteStateStore) -> None:
    other = sqlite3.connect(state.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # e.g. the pipeline's identity transaction, holding the state file
    try:
        entry = await state.append_audit(None, "tok_1:ci", "profile.read", "email:a@x.io", "10.0.0.1")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert [e.id for e in await state.list_audit()] == [entry.id]


async def secret_traits(request: Request) -> Response:
    return JSONResponse({"traits": {"email": "ana@example.com"}})


async def test_reads_whose_group_fails_are_all_refused_and_send_no_data(state: SQLiteStateStore) -> None:
    await state.create_workspace("default")
    await state.add_token("reader", "profiles", hash_token(TOKEN))
    metrics = Metrics()
    app = Starlette(
        routes=[Route("/v1/spaces/{space}/collections/{collection}/profiles/{ref:path}/{what}", secret_traits)],
        middleware=[audit_middleware(state, metrics, False)],
    )
    headers = {"authorization": basic(TOKEN)}
    assert (await call(app, "GET", PROFILE, None, headers)).status == 200  # caches warm, trail works

    writes = HeldWrites(state, fail=100)  # every transaction fails until told otherwise
    state.audit.write = writes  # type: ignore[method-assign]
    refused = await asyncio.gather(*(call(app, "GET", PROFILE, None, headers) for _ in range(6)))
    assert writes.groups == [6]  # the six entries went into one transaction, and it failed
    for r in refused:
        assert r.status == 503 and r.headers["retry-after"] == "5"
        assert r.json()["error"]["code"] == "audit_unavailable"
        assert b"ana@example.com" not in r.body
    failures = metrics.registry.get_sample_value("eventyard_audit_write_failures_total", {"kind": "read"})
    assert failures == 6

    writes.fail = 0
    answered = await asyncio.gather(*(call(app, "GET", PROFILE, None, headers) for _ in range(3)))
    assert [r.status for r in answered] == [200, 200, 200] and writes.groups == [6, 3]
    entries = await state.list_audit()
    assert [e.action for e in entries] == ["profile.read"] * 4  # the warm-up and the three answered
    assert [e.id for e in entries] == [1, 2, 3, 4]


# ------------------------------------------------------------------ data directories from before the split


async def old_layout(path: Path, n: int) -> list[Any]:
    """A state file that holds its own trail, as every data directory did before the split."""
    store = SQLiteStateStore(path, audit_path=path)
    await store.start()
    try:
        for i in range(n):
            await store.append_audit("ws_1", "cli:root", "config.apply", f"t{i}", "cli:vm", {"i": i}, at=100.0 + i)
        return await store.list_audit(limit=1000)
    finally:
        await store.close()


async def test_entries_of_an_older_data_directory_move_to_the_audit_file_with_their_ids(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    before = await old_layout(path, 7)
    assert [e.id for e in before] == list(range(1, 8))
    store = SQLiteStateStore(path)
    await store.start()
    try:
        assert await store.list_audit() == before
        new = await store.append_audit(None, "cli:root", "config.export", "*", "cli:vm")
        assert new.id == 8  # the sequence goes on
    finally:
        await store.close()
    state_db = sqlite3.connect(path)
    try:
        assert state_db.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit_log'").fetchone() is None
    finally:
        state_db.close()
    audit_db = sqlite3.connect(audit_path_for(path))
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            audit_db.execute("DELETE FROM audit_log WHERE id = 1")
    finally:
        audit_db.close()
    again = SQLiteStateStore(path)  # later starts find nothing left to move
    await again.start()
    try:
        assert [e.id for e in await again.list_audit()] == list(range(1, 9))
    finally:
        await again.close()


async def test_a_move_cut_short_is_finished_on_the_next_start_without_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    before = await old_layout(path, 5)
    audit_db = sqlite3.connect(audit_path_for(path))  # the copy got as far as entry 3 last time
    try:
        audit_db.executescript(
            "CREATE TABLE audit_log (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, workspace_id TEXT, "
            "actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, origin TEXT NOT NULL, "
            "detail TEXT NOT NULL DEFAULT '{}');"
        )
        state_db = sqlite3.connect(path)
        rows = state_db.execute("SELECT * FROM audit_log WHERE id <= 3").fetchall()
        state_db.close()
        audit_db.executemany("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        audit_db.commit()
    finally:
        audit_db.close()
    store = SQLiteStateStore(path)
    await store.start()
    try:
        assert await store.list_audit() == before
    finally:
        await store.close()
