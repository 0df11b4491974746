"""Runs one delivery worker per enabled destination and keeps them in line with the configuration.

When a destination is added, changed (settings, policy) or removed, its worker is started,
restarted or stopped; jobs stay in the queue meanwhile, so nothing is lost across a change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from eventyard.aio import pause
from eventyard.destinations import registry
from eventyard.destinations.base import Destination, DestinationContext
from eventyard.log.base import EventLog
from eventyard.quality.metrics import Metrics
from eventyard.route.health import HealthTracker
from eventyard.route.worker import DestinationWorker, WorkerOptions
from eventyard.state.base import DestinationConfig, StateStore

log = logging.getLogger(__name__)


@dataclass
class _Running:
    config: DestinationConfig
    destination: Destination
    worker: DestinationWorker
    stop: asyncio.Event
    task: asyncio.Task[None]


class DeliveryManager:
    def __init__(
        self,
        log: EventLog,
        state: StateStore,
        metrics: Metrics,
        data_dir: Path,
        consumer: str,
        clock: Callable[[], float] = time.time,
        poll_seconds: float = 1.0,
    ) -> None:
        self.log = log
        self.state = state
        self.metrics = metrics
        self.data_dir = data_dir
        self.consumer = consumer
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.running: dict[str, _Running] = {}
        self._version = -1

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.sync()
                except Exception:
                    log.exception("could not bring delivery workers in line with the configuration")
                await pause(stop, self.poll_seconds)
        finally:
            for dest_id in list(self.running):
                await self._stop(dest_id)

    async def sync(self) -> None:
        version = await self.state.config_version()
        if version == self._version:
            return
        wanted = {d.id: d for d in await self.state.list_destinations() if d.enabled}
        for dest_id in list(self.running):
            if dest_id not in wanted or wanted[dest_id] != self.running[dest_id].config:
                await self._stop(dest_id)
        for dest_id, config in wanted.items():
            if dest_id not in self.running:
                await self._start(config)
        self._version = version

    async def _start(self, config: DestinationConfig) -> None:
        try:
            cls = registry.load(config.type)
            settings = msgspec.convert(config.settings, cls.Settings)
            folder = self.data_dir / "destinations" / config.id
            folder.mkdir(parents=True, exist_ok=True)
            destination = cls(settings, DestinationContext(config.id, config.name, folder, self.clock))
            await destination.start()
        except Exception as exc:
            # Jobs keep waiting in the queue; the operator sees the error and the backlog.
            log.error("destination %s (%s) cannot start: %s", config.name, config.type, exc)
            await self.state.set_destination_health(config.id, "degraded", f"cannot start: {exc}", self.clock())
            self.metrics.destination_degraded.labels(config.name).set(1)
            return

        async def report(status: str, reason: str) -> None:
            self.metrics.destination_degraded.labels(config.name).set(1 if status == "degraded" else 0)
            await self.state.set_destination_health(config.id, status, reason, self.clock())

        worker = DestinationWorker(
            config=config,
            destination=destination,
            options=WorkerOptions.of(config, cls.capabilities_for(settings)),
            log=self.log,
            metrics=self.metrics,
            health=HealthTracker(config.id, config.name, report),
            consumer=self.consumer,
            clock=self.clock,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop), name=f"eventyard-deliver-{config.name}")
        self.running[config.id] = _Running(config, destination, worker, stop, task)
        self.metrics.destination_degraded.labels(config.name).set(0)
        log.info("delivering to %s (%s)", config.name, config.type)

    async def _stop(self, dest_id: str) -> None:
        running = self.running.pop(dest_id)
        running.stop.set()
        try:
            await asyncio.wait_for(running.task, 30)
        except (TimeoutError, Exception):
            running.task.cancel()
        try:
            await running.destination.close()
        except Exception:
            log.exception("closing destination %s failed", running.config.name)
