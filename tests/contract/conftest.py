"""Backends under contract test. A new backend joins every contract test by adding one param."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventyard.log.base import EventLog
from eventyard.log.memory import MemoryEventLog
from eventyard.log.sqlite import SQLiteEventLog
from eventyard.state.base import StateStore
from eventyard.state.sqlite import SQLiteStateStore
from eventyard.testing.clock import FakeClock


@pytest.fixture
def log_clock() -> FakeClock:
    """The clock of the log under test: tests move it instead of sleeping."""
    return FakeClock(time.time())


@pytest.fixture(params=["memory", "sqlite"])
async def event_log(request: pytest.FixtureRequest, tmp_path: Path, log_clock: FakeClock) -> AsyncIterator[EventLog]:
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


@pytest.fixture(params=["sqlite"])
async def state_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    store: StateStore = SQLiteStateStore(tmp_path / "state.sqlite3")
    await store.start()
    try:
        yield store
    finally:
        await store.close()
