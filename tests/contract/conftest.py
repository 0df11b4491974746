"""Backends under contract test. A new backend joins every contract test by adding one param."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from eventyard.log.base import EventLog
from eventyard.log.memory import MemoryEventLog
from eventyard.log.sqlite import SQLiteEventLog
from eventyard.state.base import StateStore
from eventyard.state.sqlite import SQLiteStateStore
from eventyard.testing.clock import FakeClock
from eventyard.testing.scaleout import (
    jetstream_log,
    nats_available,
    postgres_available,
    postgres_database,
    postgres_state,
)
from eventyard.testing.services import require_service


@pytest.fixture(scope="session")
def scaleout_pg() -> Iterator[str]:
    """A throwaway PostgreSQL database for the scale-out backends, dropped after the run."""
    require_service(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    with postgres_database() as dsn:
        yield dsn


@pytest.fixture
def log_clock() -> FakeClock:
    """The clock of the log under test: tests move it instead of sleeping."""
    return FakeClock(time.time())


@pytest.fixture(params=["memory", "sqlite", "jetstream"])
async def event_log(request: pytest.FixtureRequest, tmp_path: Path, log_clock: FakeClock) -> AsyncIterator[EventLog]:
    if request.param == "jetstream":
        require_service(nats_available(), "NATS JetStream at 127.0.0.1:4222")
        async with jetstream_log(request.getfixturevalue("scaleout_pg"), clock=log_clock) as js_log:
            yield js_log
        return
    factories = {
        "memory": lambda: MemoryEventLog(clock=log_clock),
        "sqlite": lambda: SQLiteEventLog(tmp_path / "log.sqlite3", clock=log_clock),
    }
    log: EventLog = factories[request.param]()
    await log.start()
    try:
        yield log
    finally:
        await log.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def state_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    if request.param == "postgres":
        async with postgres_state(request.getfixturevalue("scaleout_pg")) as pg_store:
            yield pg_store
        return
    store: StateStore = SQLiteStateStore(tmp_path / "state.sqlite3")
    await store.start()
    try:
        yield store
    finally:
        await store.close()
