"""One store's part of a deletion: the log, the identity graph, one destination.

Each function does its store's whole part for every subject of a regulation and answers a
``StoreResult``: the status to record (``FINISHED``, ``NOT_SUPPORTED``, ``FAILED``) with a
detail and what was removed, or raises ``StoreRetry`` when the work should be tried again
later (the store or destination is unreachable, or asked to wait). ``privacy.runner`` records
the results and does the retrying. Every part is idempotent: running it again after a crash
or a retry removes what is left and nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from eventyard.destinations import registry
from eventyard.destinations.base import DeleteSubject, Destination, DestinationContext
from eventyard.log.base import EventLog
from eventyard.privacy import identity_forget
from eventyard.privacy.identity_forget import KnownUser
from eventyard.privacy.log_forget import Subject, rewrite_for, summarize
from eventyard.privacy.regulations import FAILED, FINISHED, NOT_SUPPORTED
from eventyard.state.base import DestinationConfig, Regulation
from eventyard.state.identity_base import IdentityStore

log = logging.getLogger(__name__)


class StoreResult(msgspec.Struct, frozen=True):
    status: str
    detail: str = ""
    removed: dict[str, int] = {}


class StoreRetry(Exception):
    """The store's part failed for now; try again later (``retry_after`` seconds, if known)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


async def forget_in_log(event_log: EventLog, reg: Regulation, users: list[KnownUser]) -> StoreResult:
    """Delete or rewrite every record of the users' events (ingest, refusals, delivery jobs)."""
    anonymous = [a for u in users for a in u.anonymous_ids]
    subject = Subject([u.user_id for u in users], anonymous)
    counts = await event_log.forget(subject.needles(), rewrite_for(subject, reg.source_id))
    removed = summarize(counts)
    what = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in removed.items())
    return StoreResult(FINISHED, f"event log cleaned ({what})", removed)


async def forget_in_identity(store: IdentityStore | None, reg: Regulation) -> StoreResult:
    """Delete the users' profiles with their identifiers, traits, history, merges and links."""
    if store is None:
        return StoreResult(NOT_SUPPORTED, "this process has no identity store")
    removed = await identity_forget.forget(store, reg.workspace_id, reg.subject_ids)
    profiles = removed.get("profiles", 0)
    return StoreResult(FINISHED, f"{profiles} profile(s) deleted with their identifiers and history", removed)


class DestinationSource:
    """Destination instances for deletions: the running one when this process delivers to it
    (a DuckDB file can only be opened once), else a new instance that is closed afterwards."""

    def __init__(self, running: Callable[[], Mapping[str, Destination]], data_dir: Path) -> None:
        self.running = running
        self.data_dir = data_dir

    async def open(self, config: DestinationConfig) -> tuple[Destination, bool]:
        """The destination and whether the caller must close it."""
        found = self.running().get(config.id)
        if found is not None:
            return found, False
        cls = registry.load(config.type)
        settings = msgspec.convert(config.settings, cls.Settings)
        folder = self.data_dir / "destinations" / config.id
        folder.mkdir(parents=True, exist_ok=True)
        destination = cls(settings, DestinationContext(config.id, config.name, folder))
        await destination.start()
        return destination, True


async def forget_in_destination(
    source: DestinationSource, config: DestinationConfig | None, users: list[KnownUser]
) -> StoreResult:
    """Ask one destination to delete each user (``Destination.delete_user``)."""
    if config is None:
        return StoreResult(NOT_SUPPORTED, "the destination no longer exists")
    try:
        cls = registry.load(config.type)
        settings = msgspec.convert(config.settings, cls.Settings)
    except Exception as exc:
        return StoreResult(FAILED, f"the destination's configuration cannot be used: {exc}")
    if not cls.capabilities_for(settings).deletes:
        return StoreResult(NOT_SUPPORTED, f"destination type {config.type!r} (as configured) cannot delete users")
    destination, owned = await source.open(config)
    removed: dict[str, int] = {"users": 0}
    try:
        for user in users:
            outcome = await destination.delete_user(DeleteSubject(user.user_id, user.delete_identifiers()))
            if outcome.kind == "retry":
                raise StoreRetry(f"{config.name}: {outcome.error}", outcome.retry_after)
            if outcome.kind != "delivered":
                return StoreResult(FAILED, f"{config.name}: {outcome.error or outcome.kind}", removed)
            removed["users"] += 1
            extra: Any = getattr(destination, "deleted", None)
            if isinstance(extra, dict):
                for key, n in extra.items():
                    if isinstance(n, int):
                        removed[key] = removed.get(key, 0) + n
    finally:
        if owned:
            try:
                await destination.close()
            except Exception:
                log.exception("closing destination %s after a deletion failed", config.name)
    return StoreResult(FINISHED, f"{config.name} ({config.type}) deleted {removed['users']} user(s)", removed)
