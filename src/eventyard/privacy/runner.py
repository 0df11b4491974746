"""The regulation runner: works open regulations off, store by store, in the background.

It runs in the process that runs the route role (it needs the destinations) and finds its
work in the state store, so a restart resumes where the last process stopped: every
regulation that is ``INITIALIZED`` or ``RUNNING`` is looked at again, and every store of it
that is not done is worked on again (each store's part is idempotent, ``privacy.deletion``).

Order within a regulation: the suppression first (normally done when the regulation was
created), then the event log and the destinations, and the identity graph last: it is where
the user's anonymous ids and other identifiers are found, which the log and the destinations
need, so it is erased only once every other store is done.

A store whose part fails is tried again after ``retry_seconds`` (doubling, at most
``max_retry_seconds``; a destination's Retry-After is honoured) and marked ``FAILED`` after
``max_attempts``; meanwhile its status stays ``RUNNING`` with the last error in its detail.
Attempts are counted in memory: a restart gives every open store a fresh set.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from eventyard.aio import pause
from eventyard.log.base import EventLog
from eventyard.privacy.deletion import (
    DestinationSource,
    StoreResult,
    StoreRetry,
    forget_in_destination,
    forget_in_identity,
    forget_in_log,
)
from eventyard.privacy.identity_forget import KnownUser, resolve
from eventyard.privacy.regulations import (
    DESTINATION_PREFIX,
    FAILED,
    IDENTITY_STORE,
    LOG_STORE,
    OPEN,
    RUNNING,
    SUPPRESSION_STORE,
    apply_suppression,
)
from eventyard.state.base import Regulation, StateStore
from eventyard.state.identity_base import IdentityStore

log = logging.getLogger(__name__)


@dataclass
class _Attempts:
    count: int = 0
    due: float = 0.0


@dataclass
class RegulationRunner:
    state: StateStore
    log: EventLog
    identity: IdentityStore | None
    destinations: DestinationSource
    clock: Callable[[], float] = time.time
    poll_seconds: float = 2.0
    retry_seconds: float = 30.0
    max_retry_seconds: float = 3600.0
    max_attempts: int = 12
    _attempts: dict[tuple[str, str], _Attempts] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        """Work regulations off until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.step()
            except Exception:
                log.exception("working on regulations failed; will try again")
            await pause(stop, self.poll_seconds)

    async def step(self) -> int:
        """One pass over every open regulation; returns how many stores were worked on."""
        worked = 0
        for workspace in await self.state.list_workspaces():
            regulations = await self.state.list_regulations(workspace.id, status="INITIALIZED")
            regulations += await self.state.list_regulations(workspace.id, status=RUNNING)
            for reg in sorted(regulations, key=lambda r: r.created_at):
                worked += await self.work(reg)
        return worked

    async def work(self, reg: Regulation) -> int:
        """Do what is due of one regulation; returns how many stores were worked on."""
        worked = 0
        if _is_open(reg, SUPPRESSION_STORE):
            reg = await apply_suppression(self.state, reg)
            worked += 1
        others = [s for s in reg.stores if s not in (SUPPRESSION_STORE, IDENTITY_STORE) and _is_open(reg, s)]
        if not others and not _is_open(reg, IDENTITY_STORE):
            return worked
        users = await self._users(reg)
        if _is_open(reg, LOG_STORE) and self._due(reg, LOG_STORE):
            reg = await self._do(reg, LOG_STORE, forget_in_log(self.log, reg, users))
            worked += 1
        if any(s.startswith(DESTINATION_PREFIX) for s in others):
            configs = {d.id: d for d in await self.state.list_destinations(reg.workspace_id)}
            for store in others:
                if store.startswith(DESTINATION_PREFIX) and self._due(reg, store):
                    config = configs.get(store[len(DESTINATION_PREFIX) :])
                    reg = await self._do(reg, store, forget_in_destination(self.destinations, config, users))
                    worked += 1
        rest = [s for s in reg.stores if s != IDENTITY_STORE and _is_open(reg, s)]
        if not rest and _is_open(reg, IDENTITY_STORE) and self._due(reg, IDENTITY_STORE):
            reg = await self._do(reg, IDENTITY_STORE, forget_in_identity(self.identity, reg))
            worked += 1
        return worked

    async def _users(self, reg: Regulation) -> list[KnownUser]:
        if self.identity is None:
            return [KnownUser(u) for u in reg.subject_ids]
        return await resolve(self.identity, reg.workspace_id, reg.subject_ids)

    def _due(self, reg: Regulation, store: str) -> bool:
        attempts = self._attempts.get((reg.id, store))
        return attempts is None or attempts.due <= self.clock()

    async def _do(self, reg: Regulation, store: str, work: Awaitable[StoreResult]) -> Regulation:
        """Run one store's part and record how it went."""
        if reg.stores[store].status != RUNNING:
            reg = await self.state.set_regulation_store(reg.id, store, RUNNING, detail="working")
        key = (reg.id, store)
        try:
            result = await work
        except Exception as exc:
            return await self._failed(reg, store, exc)
        self._attempts.pop(key, None)
        reg = await self.state.set_regulation_store(
            reg.id, store, result.status, detail=result.detail, removed=result.removed
        )
        log.info("regulation %s: %s %s (%s)", reg.id, store, result.status, result.detail)
        return reg

    async def _failed(self, reg: Regulation, store: str, exc: Exception) -> Regulation:
        key = (reg.id, store)
        attempts = self._attempts.setdefault(key, _Attempts())
        attempts.count += 1
        error = str(exc) if isinstance(exc, StoreRetry) else f"{type(exc).__name__}: {exc}"
        if attempts.count >= self.max_attempts:
            self._attempts.pop(key, None)
            log.error("regulation %s: %s failed for good after %d attempts: %s", reg.id, store, attempts.count, error)
            return await self.state.set_regulation_store(
                reg.id, store, FAILED, detail=f"gave up after {attempts.count} attempts: {error}"
            )
        delay = min(self.max_retry_seconds, self.retry_seconds * 2 ** (attempts.count - 1))
        if isinstance(exc, StoreRetry) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        attempts.due = self.clock() + delay
        log.warning(
            "regulation %s: %s failed (attempt %d), retrying in %gs: %s", reg.id, store, attempts.count, delay, error
        )
        return await self.state.set_regulation_store(
            reg.id, store, RUNNING, detail=f"attempt {attempts.count} failed: {error}; retrying in {delay:g}s"
        )


def _is_open(reg: Regulation, store: str) -> bool:
    found = reg.stores.get(store)
    return found is not None and found.status in OPEN
