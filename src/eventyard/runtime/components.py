"""Settings -> the concrete parts of one process. The only module that picks backends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass, field

from eventyard.collect.sources import SourceDirectory
from eventyard.destinations.base import reset_services, use_services
from eventyard.log import topics
from eventyard.log.base import EventLog
from eventyard.privacy.service import start_regulations
from eventyard.privacy.suppression import SuppressionList
from eventyard.quality.metrics import Metrics
from eventyard.quality.worker_metrics import snapshot_dir
from eventyard.route.fanout import Fanout
from eventyard.route.identity_feed import IdentityFeed
from eventyard.route.manager import DeliveryManager
from eventyard.route.routing import RoutingTable
from eventyard.runtime import backends
from eventyard.runtime.services import ServerServices
from eventyard.runtime.settings import Settings
from eventyard.state.base import StateStore
from eventyard.unify.context import StageContext
from eventyard.unify.identity_service import IdentityService
from eventyard.unify.pii import flush_findings
from eventyard.unify.runner import PipelineRunner

log = logging.getLogger(__name__)


def backlog_topics(event_log: EventLog) -> list[str]:
    return sorted({topics.INGEST, *(t for t in event_log.backlog_topics() if t.startswith(topics.DELIVER_PREFIX))})


# The backends are picked from the ``log`` / ``state`` URLs in ``runtime.backends`` (SQLite,
# or NATS JetStream + PostgreSQL for the scale-out deployment).
make_log = backends.make_log
make_state = backends.make_state
make_identity_store = backends.make_identity_store


@dataclass
class Components:
    settings: Settings
    log: EventLog
    state: StateStore
    metrics: Metrics
    sources: SourceDirectory
    routing: RoutingTable
    fanout: Fanout
    #: The delivery workers of this process (``None`` unless it runs the route role).
    delivery: DeliveryManager | None = None
    #: Identity graph and profiles (unify stages and the Profile API).
    identity: IdentityService | None = None
    #: Suppressed users (collect refuses their events; the unify stage drops stored ones).
    suppressions: SuppressionList | None = None
    #: Whether this process purges old processed records (one of several workers does).
    purge: bool = True
    #: Which of the processes sharing the port this is (0: the first; see ``runtime.workers``).
    worker_index: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _workers: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        await self.state.start()
        await self.log.start()
        await self.sources.start()
        if self.suppressions is not None:
            await self.suppressions.start()
        if self.identity is not None:
            await self.identity.start()
        self._stop = asyncio.Event()
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="eventyard-housekeeping"))
        if self.settings.workers > 1:  # /metrics adds up the workers' counters
            directory = snapshot_dir(self.settings.data_path, self.settings.port)
            shared = self.metrics.share_with_workers(directory, self.worker_index, self.settings.workers)
            self._tasks.append(asyncio.create_task(shared.run(), name="eventyard-worker-metrics"))
        consumer = f"{socket.gethostname()}:{os.getpid()}"
        if self.identity is not None and "unify" in self.settings.roles:
            self._tasks.append(asyncio.create_task(self.identity.housekeeping(), name="eventyard-profile-history"))
        if "unify" in self.settings.roles:
            ctx = StageContext(
                self.state, dedupe_window_seconds=self.settings.dedupe_window_hours * 3600, identity=self.identity
            )
            ctx.suppressions = self.suppressions
            runner = PipelineRunner(self.log, ctx, self.fanout, self.metrics, consumer)
            self._workers.append(asyncio.create_task(runner.run(self._stop), name="eventyard-pipeline"))
        if "route" in self.settings.roles:
            manager = DeliveryManager(self.log, self.state, self.metrics, self.settings.data_path, consumer)
            self.delivery = manager
            # Destinations created by the manager's task get this server's services (discard
            # alerts, source names) through their DestinationContext.
            token = use_services(ServerServices(self.state, self.log, self.metrics))
            try:
                self._workers.append(asyncio.create_task(manager.run(self._stop), name="eventyard-delivery"))
                identity_store = self.identity.store if self.identity is not None else None
                data_path = self.settings.data_path
                self._workers.append(  # deletions and suppressions (docs/privacy.md)
                    start_regulations(self.state, self.log, identity_store, manager, data_path, self._stop)
                )
                if self.identity is not None:  # the warehouses' identity tables (docs/identity.md)
                    feed = IdentityFeed(
                        self.identity.store, lambda: [(r.config, r.destination) for r in manager.running.values()]
                    )
                    self._workers.append(asyncio.create_task(feed.run(self._stop), name="eventyard-identity-feed"))
            finally:
                reset_services(token)

    async def close(self) -> None:
        self._stop.set()
        if self._workers:
            await asyncio.wait(self._workers, timeout=30)
            for task in self._workers:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._workers.clear()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.sources.close()
        if self.suppressions is not None:
            await self.suppressions.close()
        if self.identity is not None:
            await self.identity.close()
        await self.log.close()
        with contextlib.suppress(Exception):  # the PII report's last counts (unify.pii)
            await flush_findings(self.state)
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
                if self.purge and time.time() - last_purge > 3600:
                    last_purge = time.time()
                    await self.state.purge_seen(time.time() - self.settings.dedupe_window_hours * 3600)
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
        lambda: {t: event_log.backlog_estimate(t) for t in backlog_topics(event_log)},
        getattr(event_log, "disk_bytes", lambda: None),
    )
    routing = RoutingTable(state)
    identity = IdentityService(
        make_identity_store(settings),
        state,
        metrics,
        retention_seconds=settings.profile_events_retention_days * 86400,
    )
    fanout = Fanout(routing, metrics)
    return Components(
        settings,
        event_log,
        state,
        metrics,
        SourceDirectory(state),
        routing,
        fanout,
        identity=identity,
        suppressions=SuppressionList(state),
    )
