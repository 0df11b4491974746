"""The identity feed: the identity store's change records into every warehouse that keeps the
identity tables (``eventyard.warehouse.identity_tables``).

It runs in the process that delivers (the ``route`` role), beside the delivery workers, and
uses their destination objects, so a DuckDB file keeps its single writer. Every poll, for
each running destination that implements ``IdentityTables``: ask for its position, read the
records of its workspace after it from the store (a read, never a lease: any number of
warehouses follow the same outbox), and hand them over as one ``IdentityLoad``; the
destination applies them and moves its position in one transaction. A failed load changes
nothing and is tried again on the next poll. A warehouse without a position, or behind what
the store still keeps, gets a full load from one snapshot of the graph.

Nothing here knows how identities are resolved: route does not import unify.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from eventyard.aio import pause
from eventyard.destinations.base import Destination
from eventyard.state.base import DestinationConfig
from eventyard.state.identity_base import GraphTx, IdentityStore
from eventyard.state.identity_changes import FOLLOWER_SECONDS, RETENTION_SECONDS
from eventyard.warehouse.identity_tables import (
    Change,
    IdentifierChange,
    IdentityLoad,
    IdentityTables,
    MergeChange,
    ProfileChange,
    decode_change,
    plan_identity_load,
)

log = logging.getLogger(__name__)

#: Change records per load (a record holds one pipeline batch's changes).
RECORDS_PER_LOAD = 200
#: An idle follower reports its position (and the feed purges) about this often, in seconds.
REPORT_SECONDS = 60.0

Running = Callable[[], Sequence[tuple[DestinationConfig, Destination]]]


def full_change(tx: GraphTx, workspace_id: str) -> tuple[int, Change]:
    """The workspace's whole graph as one change, and the last record it includes."""
    last = tx.last_change()
    change = Change(full=True)
    change.profiles = [
        ProfileChange(pid, c, into or pid, at) for pid, c, into, at in tx.workspace_profiles(workspace_id)
    ]
    change.identifiers = [IdentifierChange(*row) for row in tx.workspace_identifiers(workspace_id)]
    change.merges = [MergeChange(*row) for row in tx.workspace_merges(workspace_id)]
    return last, change


class IdentityFeed:
    def __init__(
        self,
        store: IdentityStore,
        running: Running,
        clock: Callable[[], float] = time.time,
        poll_seconds: float = 1.0,
        records_per_load: int = RECORDS_PER_LOAD,
    ) -> None:
        self.store = store
        self.running = running
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.records_per_load = records_per_load
        #: destination id -> the last error, while it keeps failing (for status and tests).
        self.errors: dict[str, str] = {}
        #: destination id -> (position, time) last reported to the store.
        self._reported: dict[str, tuple[int, float]] = {}
        self._purged = -1e18

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sync()
            await pause(stop, self.poll_seconds)

    async def sync(self) -> int:
        """One round over every identity-keeping destination; returns the records loaded."""
        total = 0
        for config, destination in self.running():
            if not isinstance(destination, IdentityTables):
                continue
            try:
                total += await self.sync_one(config.id, config.workspace_id, destination)
            except Exception as exc:
                text = f"{type(exc).__name__}: {exc}"
                if self.errors.get(config.id) != text:
                    log.warning("identity tables of %s not loaded (will try again): %s", config.name, text)
                self.errors[config.id] = text
            else:
                self.errors.pop(config.id, None)
        return total

    async def sync_one(self, follower: str, workspace_id: str, destination: IdentityTables) -> int:
        """Bring one destination (``follower``: its id) up to date; returns the records loaded."""
        position = await destination.identity_position(workspace_id)

        def purged(tx: GraphTx) -> int:
            return tx.changes_purged_upto()

        if position is None or position < await self.store.read(purged):

            def full(tx: GraphTx) -> tuple[int, Change]:
                return full_change(tx, workspace_id)

            last, change = await self.store.read(full)
            await self._flush(follower, position or 0)
            await destination.load_identity(plan_identity_load(workspace_id, [(last, change)], self._now(), position))
            log.info("identity tables of workspace %s fully loaded up to change %d", workspace_id, last)
            position = last
        loaded = 0
        while True:
            after = position

            def records(tx: GraphTx, after: int = after) -> list[tuple[int, bytes]]:
                return tx.changes_after(workspace_id, after, self.records_per_load)

            found = await self.store.read(records)
            if not found:
                if self.clock() - self._reported.get(follower, (0, -1e18))[1] > REPORT_SECONDS:
                    await self._flush(follower, position)  # still following: keep its records
                return loaded
            await self._flush(follower, position)
            load: IdentityLoad = plan_identity_load(
                workspace_id, [(seq, decode_change(body)) for seq, body in found], self._now(), position
            )
            await destination.load_identity(load)
            loaded += len(found)
            position = load.last_change
            if len(found) < self.records_per_load:
                return loaded

    async def _flush(self, follower: str, position: int) -> None:
        """Report the follower's position (purging keeps what it still needs) in a durable
        transaction, which also makes sure what was read is on disk before a warehouse gets
        it: the identity stage commits without waiting for the disk (its batch's next commit
        flushes it), and a record lost to a power failure after its load would be written
        again differently. Every minute or so the same transaction purges what no follower
        needs any more."""
        at = self.clock()
        purge = at - self._purged > REPORT_SECONDS

        def mark(tx: GraphTx) -> None:
            tx.report_position(follower, position, at)
            if purge:
                tx.purge_changes(at - RETENTION_SECONDS, at - FOLLOWER_SECONDS)

        await self.store.transact(mark)
        self._reported[follower] = (position, at)
        if purge:
            self._purged = at

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)
