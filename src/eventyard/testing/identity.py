"""Identity stores for tests: SQLite in a directory, or PostgreSQL in a throwaway schema.

PostgreSQL is the real server at ``EVENTYARD_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``). ``postgres_database`` makes a fresh
database for a test module and drops it afterwards; ``open_store`` gives each test its own
schema in it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from eventyard.quality.metrics import Metrics
from eventyard.spec.pipeline import PipelineEvent
from eventyard.state.base import StateStore
from eventyard.state.identity_base import GraphTx, IdentityStore, ProfileRow
from eventyard.state.identity_postgres import PostgresIdentityStore
from eventyard.state.identity_sqlite import SQLiteIdentityStore
from eventyard.state.sqlite import SQLiteStateStore
from eventyard.testing.services import port_open
from eventyard.unify import profile_views
from eventyard.unify.context import StageContext
from eventyard.unify.identity_service import IdentityService
from eventyard.unify.pipeline import run_pipeline

BACKENDS = ("sqlite", "postgres")


def admin_dsn() -> str:
    return os.environ.get("EVENTYARD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def postgres_available() -> bool:
    parts = urlsplit(admin_dsn())
    if not port_open(parts.hostname or "127.0.0.1", parts.port or 5432):
        return False
    try:
        with psycopg.connect(admin_dsn(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A new database ``eventyard_idtest_<hex>``; yields its DSN and drops it afterwards."""
    name = f"eventyard_idtest_{secrets.token_hex(5)}"
    with psycopg.connect(admin_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(admin_dsn())
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def new_schema() -> str:
    return "idt_" + secrets.token_hex(5)


def make_store(kind: str, directory: Path, dsn: str | None, schema: str) -> IdentityStore:
    if kind == "sqlite":
        return SQLiteIdentityStore(directory / "state.sqlite3")
    if kind == "postgres" and dsn is not None:
        return PostgresIdentityStore(dsn, schema=schema)
    raise ValueError(f"no identity store {kind!r} (PostgreSQL needs a DSN)")


@contextlib.asynccontextmanager
async def open_store(kind: str, directory: Path, dsn: str | None = None) -> AsyncIterator[IdentityStore]:
    """A started store of ``kind``; a PostgreSQL store's schema is dropped afterwards."""
    schema = new_schema()
    store = make_store(kind, directory, dsn, schema)
    await store.start()
    try:
        yield store
    finally:
        await store.close()
        if kind == "postgres" and dsn is not None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def twin(store: IdentityStore) -> IdentityStore:
    """A second store on the same database: what another worker process would open."""
    if isinstance(store, SQLiteIdentityStore):
        return SQLiteIdentityStore(store.path)
    if isinstance(store, PostgresIdentityStore):
        return PostgresIdentityStore(store.dsn, schema=store.schema)
    raise TypeError(f"cannot open a second {type(store).__name__}")


class Unify:
    """The unify stages over a real state store and an identity store, fed event by event.

    ``send`` wraps normalized events (see ``eventyard.testing.events``) as pipeline events of
    ``source`` and runs every stage, as the pipeline runner does for one batch.
    """

    def __init__(self, state: StateStore, identity: IdentityService, source_id: str, workspace_id: str) -> None:
        self.state = state
        self.identity = identity
        self.source_id = source_id
        self.workspace_id = workspace_id
        self.ctx = StageContext(state, identity=identity)
        self._record = 0

    async def send(self, *events: dict[str, Any], record: int | None = None) -> list[PipelineEvent]:
        """Run the stages on ``events``; ``record`` gives them the log records of an earlier
        ``send`` (starting at that id), as when the runner leases a batch again after a crash."""
        batch = []
        for n, event in enumerate(events):
            if record is None:
                self._record += 1
            position = self._record if record is None else record + n
            batch.append(PipelineEvent(position, self.source_id, str(event["messageId"]), event, time.time()))
        result = await run_pipeline(batch, self.ctx)
        assert not result.failed, result.failed
        return result.kept

    async def find(self, ref: str) -> ProfileRow | None:
        def q(tx: GraphTx) -> ProfileRow | None:
            return profile_views.find(tx, self.workspace_id, profile_views.collection_of(ref), ref)

        return await self.identity.store.read(q)

    async def current(self, profile_id: str) -> str:
        """The profile a stamped id belongs to now."""

        def q(tx: GraphTx) -> str:
            row = tx.load_profiles([profile_id]).get(profile_id)
            return profile_id if row is None or row.merged_into is None else row.merged_into

        return await self.identity.store.read(q)

    async def explain(self, ref: str) -> dict[str, Any]:
        row = await self.find(ref)
        assert row is not None, f"no profile {ref}"
        found = row

        def q(tx: GraphTx) -> dict[str, Any]:
            return profile_views.explain(tx, found)

        return await self.identity.store.read(q)

    async def show(self, ref: str, events: int = 100) -> dict[str, Any]:
        row = await self.find(ref)
        assert row is not None, f"no profile {ref}"
        found = row

        def q(tx: GraphTx) -> dict[str, Any]:
            return profile_views.show(tx, found, events)

        return await self.identity.store.read(q)


@contextlib.asynccontextmanager
async def unify(
    kind: str, directory: Path, dsn: str | None = None, metrics: Metrics | None = None
) -> AsyncIterator[Unify]:
    """A workspace with one source, and the unify stages over an identity store of ``kind``."""
    directory.mkdir(parents=True, exist_ok=True)
    state = SQLiteStateStore(directory / "state.sqlite3")
    await state.start()
    try:
        ws = await state.create_workspace("default")
        source = await state.create_source(ws.id, "web")
        async with open_store(kind, directory, dsn) as store:
            service = IdentityService(store, state, metrics or Metrics())
            yield Unify(state, service, source.id, ws.id)
    finally:
        await state.close()
