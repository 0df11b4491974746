"""Identity and profiles as one service: the store, each workspace's rules, which workspace a
source belongs to, metrics, and the operator actions (rules, remove, split).

The runtime builds one per process and hands it to the unify stages (``StageContext.identity``)
and to the control API.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from eventyard.quality.metrics import Metrics
from eventyard.state.base import StateStore
from eventyard.state.identity_base import GraphTx, IdentityStore
from eventyard.state.identity_changes import FOLLOWER_SECONDS, RETENTION_SECONDS
from eventyard.unify.identity_rules import IdentityRules, rules_from_json
from eventyard.unify.recompute import RecomputeResult, recompute

log = logging.getLogger(__name__)

#: Seconds a workspace's rules and the source -> workspace map are used before a re-check.
CACHE_SECONDS = 2.0
#: Rows deleted per housekeeping transaction.
PURGE_CHUNK = 20_000


@dataclass
class IdentityService:
    store: IdentityStore
    state: StateStore
    metrics: Metrics | None = None
    #: How long profile event history is kept (0 keeps none).
    retention_seconds: float = 30 * 86400.0
    clock: Callable[[], float] = time.time
    #: Identifier keys the identity stage extracted, by ``id()`` of the pipeline event, for the
    #: profiles stage's history rows (saves extracting twice; refilled for every batch).
    extracted: dict[int, list[str]] = field(default_factory=dict)
    #: (profile, source) pairs known to be stored, so the profiles stage need not write them
    #: again (bounded; cleared when full).
    known_sources: set[tuple[str, str]] = field(default_factory=set)
    _rules: dict[str, tuple[float, IdentityRules]] = field(default_factory=dict)
    _sources: dict[str, str] = field(default_factory=dict)
    _sources_version: int = -1
    _sources_checked: float = 0.0

    async def start(self) -> None:
        await self.store.start()

    async def close(self) -> None:
        await self.store.close()

    # ---------------------------------------------------------------- lookups

    async def workspace_of(self, source_id: str) -> str | None:
        """The workspace of a source (cached; refreshed when the configuration changes)."""
        now = time.monotonic()
        if source_id not in self._sources or now - self._sources_checked > CACHE_SECONDS:
            self._sources_checked = now
            version = await self.state.config_version()
            if version != self._sources_version or source_id not in self._sources:
                self._sources = {s.id: s.workspace_id for s in await self.state.list_sources()}
                self._sources_version = version
        return self._sources.get(source_id)

    async def rules(self, workspace_id: str) -> IdentityRules:
        hit = self._rules.get(workspace_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]

        def q(tx: GraphTx) -> bytes | None:
            return tx.get_rules(workspace_id)

        rules = rules_from_json(await self.store.read(q))
        self._rules[workspace_id] = (now, rules)
        return rules

    async def set_rules(self, workspace_id: str, rules: IdentityRules) -> None:
        raw, at = rules.to_json(), self.clock()

        def q(tx: GraphTx) -> None:
            tx.set_rules(workspace_id, raw, at)

        await self.store.transact(q)
        self._rules.pop(workspace_id, None)

    # -------------------------------------------------------- operator actions

    async def remove_identifier(
        self, workspace_id: str, profile_id: str, identifier: str, block: bool = False
    ) -> RecomputeResult:
        rules = await self.rules(workspace_id)
        now = self.clock()

        def q(tx: GraphTx) -> RecomputeResult:
            return recompute(tx, workspace_id, rules, profile_id, now, remove=identifier, block=block)

        result = await self.store.transact(q)
        self._rules.pop(workspace_id, None)
        if self.metrics is not None:
            self.metrics.identity_operations.labels("remove_identifier").inc()
        return result

    async def split(self, workspace_id: str, profile_id: str, merge_id: int) -> RecomputeResult:
        rules = await self.rules(workspace_id)
        now = self.clock()

        def q(tx: GraphTx) -> RecomputeResult:
            return recompute(tx, workspace_id, rules, profile_id, now, merge_id=merge_id)

        result = await self.store.transact(q)
        if self.metrics is not None:
            self.metrics.identity_operations.labels("split").inc()
        return result

    # ------------------------------------------------------------ housekeeping

    async def purge_history(self) -> int:
        """Delete profile events (and refusal notes) older than the retention, and the change
        records the warehouses no longer need; returns how many events and notes went."""
        cutoff = self.clock() - self.retention_seconds
        total = 0
        while True:

            def q(tx: GraphTx) -> int:
                return tx.purge(cutoff, PURGE_CHUNK)

            n = await self.store.transact(q)
            total += n
            if n < PURGE_CHUNK:
                break
        now = self.clock()

        def purge_changes(tx: GraphTx) -> int:
            return tx.purge_changes(now - RETENTION_SECONDS, now - FOLLOWER_SECONDS)

        await self.store.transact(purge_changes)
        return total

    async def housekeeping(self, every: float = 3600.0) -> None:
        """Purge old history now and then, until cancelled."""
        while True:
            try:
                purged = await self.purge_history()
                if purged:
                    log.info("purged %d profile events past the retention", purged)
            except Exception:
                log.exception("purging profile history failed; will try again")
            await asyncio.sleep(every)
