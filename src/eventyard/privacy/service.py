"""The regulation runner of a process that runs the route role, wired to its delivery workers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from eventyard.destinations.base import Destination
from eventyard.log.base import EventLog
from eventyard.privacy.deletion import DestinationSource
from eventyard.privacy.runner import RegulationRunner
from eventyard.state.base import StateStore
from eventyard.state.identity_base import IdentityStore


class _Running:
    """What the delivery manager runs: ``running`` maps destination ids to entries with a
    ``destination`` (``route.manager.DeliveryManager.running``)."""

    def __init__(self, manager: object) -> None:
        self.manager = manager

    def __call__(self) -> Mapping[str, Destination]:
        running = getattr(self.manager, "running", {})
        return {dest_id: entry.destination for dest_id, entry in running.items()}


def start_regulations(
    state: StateStore,
    event_log: EventLog,
    identity: IdentityStore | None,
    delivery_manager: object,
    data_dir: Path,
    stop: asyncio.Event,
) -> asyncio.Task[None]:
    """Start working regulations off in the background until ``stop`` is set."""
    runner = RegulationRunner(state, event_log, identity, DestinationSource(_Running(delivery_manager), data_dir))
    return asyncio.create_task(runner.run(stop), name="eventyard-regulations")
