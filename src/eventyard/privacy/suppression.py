"""The suppression list in memory: who is suppressed, per workspace, for the hot paths.

Collect asks it for every event of a workspace that has suppressions (``Suppressed.of``),
and the unify stage ``unify.suppression`` for every event it sees. The list is read from the
state store when it starts and again whenever the store's ``config_version`` changes
(``add_suppressions``/``remove_suppressions`` bump it): a background task checks the version
every ``poll_seconds``, and ``refresh`` can be called to check now. A workspace without
suppressions costs one dictionary miss per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from eventyard.state.base import StateStore

log = logging.getLogger(__name__)

#: The reason code of events refused or dropped because their user is suppressed.
REASON = "suppressed"


class Suppressed:
    """The suppressed ids of one workspace."""

    __slots__ = ("anonymous_ids", "user_ids")

    def __init__(self, user_ids: frozenset[str], anonymous_ids: frozenset[str]) -> None:
        self.user_ids = user_ids
        self.anonymous_ids = anonymous_ids

    def match(self, user_id: Any, anonymous_id: Any) -> str | None:
        """Which field of an event names a suppressed subject (``userId``/``anonymousId``), or ``None``.

        Runs for every event of a workspace with suppressions: set look-ups only, no copies
        of string ids (numeric ids are compared as their text).
        """
        users = self.user_ids
        if users and user_id is not None and (user_id if type(user_id) is str else str(user_id)) in users:
            return "userId"
        anonymous = self.anonymous_ids
        if (
            anonymous
            and anonymous_id is not None
            and (anonymous_id if type(anonymous_id) is str else str(anonymous_id)) in anonymous
        ):
            return "anonymousId"
        return None

    def event(self, event: dict[str, Any]) -> str | None:
        return self.match(event.get("userId"), event.get("anonymousId"))


class SuppressionList:
    """Every workspace's suppressed ids, kept in line with the state store."""

    def __init__(self, state: StateStore, poll_seconds: float = 2.0) -> None:
        self._state = state
        self._poll_seconds = poll_seconds
        self._by_workspace: dict[str, Suppressed] = {}
        self._workspace_of: dict[str, str] = {}
        self._version = -1
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def of(self, workspace_id: str) -> Suppressed | None:
        """The workspace's suppressed ids; ``None`` when it has none (the common, fast case)."""
        return self._by_workspace.get(workspace_id)

    def of_source(self, source_id: str) -> Suppressed | None:
        """The suppressed ids of the workspace a source belongs to (``None``: none, or unknown source)."""
        if not self._by_workspace:
            return None
        workspace_id = self._workspace_of.get(source_id)
        return self._by_workspace.get(workspace_id) if workspace_id is not None else None

    async def start(self) -> None:
        await self.reload()
        self._task = asyncio.create_task(self._poll(), name="eventyard-suppressions")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def refresh(self) -> bool:
        """Reload when the configuration changed since the last load; whether it reloaded."""
        if await self._state.config_version() == self._version:
            return False
        await self.reload()
        return True

    async def reload(self) -> None:
        async with self._lock:
            version = await self._state.config_version()
            users: dict[str, set[str]] = {}
            anonymous: dict[str, set[str]] = {}
            for s in await self._state.list_suppressions():
                target = anonymous if s.subject_type == "ANONYMOUS_ID" else users
                target.setdefault(s.workspace_id, set()).add(s.subject_id)
            self._by_workspace = {
                ws: Suppressed(frozenset(users.get(ws, ())), frozenset(anonymous.get(ws, ())))
                for ws in users.keys() | anonymous.keys()
            }
            self._workspace_of = {s.id: s.workspace_id for s in await self._state.list_sources()}
            self._version = version

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                await self.refresh()
            except Exception:  # keep the last list; the next poll tries again
                log.exception("could not refresh the suppression list from the state store")
