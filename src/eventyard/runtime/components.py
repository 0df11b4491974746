"""Settings -> the concrete parts of one process. The only module that picks backends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from eventyard.collect.sources import SourceDirectory
from eventyard.log.base import EventLog
from eventyard.log.sqlite import SQLiteEventLog
from eventyard.quality.metrics import Metrics
from eventyard.runtime.settings import Settings
from eventyard.state.base import StateStore
from eventyard.state.sqlite import SQLiteStateStore

log = logging.getLogger(__name__)

TOPICS = ("ingest",)


def make_log(settings: Settings) -> EventLog:
    return SQLiteEventLog(settings.log_path(), synchronous=settings.log_synchronous)


def make_state(settings: Settings) -> StateStore:
    return SQLiteStateStore(settings.state_path())


@dataclass
class Components:
    settings: Settings
    log: EventLog
    state: StateStore
    metrics: Metrics
    sources: SourceDirectory
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        await self.state.start()
        await self.log.start()
        await self.sources.start()
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="eventyard-housekeeping"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.sources.close()
        await self.log.close()
        await self.state.close()

    async def _housekeeping(self) -> None:
        """Refresh the backlog estimate every few seconds; purge old processed records hourly."""
        last_purge = 0.0
        retention = self.settings.log_retention_hours * 3600
        while True:
            await asyncio.sleep(5)
            try:
                refresh = getattr(self.log, "refresh_backlog", None)
                if refresh is not None:
                    await refresh()
                if time.time() - last_purge > 3600:
                    last_purge = time.time()
                    purged = await self.log.purge_acked(time.time() - retention)
                    if purged:
                        log.info("purged %d processed records older than the retention", purged)
            except Exception:
                log.exception("log housekeeping failed; will try again")


def build(settings: Settings) -> Components:
    state = make_state(settings)
    event_log = make_log(settings)
    metrics = Metrics()
    metrics.watch_log(
        lambda: {t: event_log.backlog_estimate(t) for t in TOPICS},
        getattr(event_log, "disk_bytes", lambda: None),
    )
    return Components(settings, event_log, state, metrics, SourceDirectory(state))
