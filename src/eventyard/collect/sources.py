"""Write key -> source lookups for the hot path, served from memory.

The directory loads every source once, then reloads when the state store's configuration
version changes (checked in the background) or when an unknown key arrives (at most once a
second), so sources created by ``eventyard apply`` or the API work within a second, in
every process, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from eventyard.privacy.config import browser_consent_settings
from eventyard.spec.limits import MAX_REQUEST_BYTES
from eventyard.state.base import Source, StateStore

log = logging.getLogger(__name__)


class SourceDirectory:
    def __init__(self, state: StateStore, poll_seconds: float = 2.0) -> None:
        self._state = state
        self._by_key: dict[str, Source] = {}
        self._version = -1
        self._last_miss_reload = 0.0
        self._poll_seconds = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        #: The largest request any source accepts: the cap before the source is known.
        self.max_request_bytes = MAX_REQUEST_BYTES
        #: Source id -> ``consentSettings`` of the analytics.js settings (docs/privacy.md).
        self.consent_settings: dict[str, dict[str, object]] = {}

    async def start(self) -> None:
        await self.reload()
        self._task = asyncio.create_task(self._poll(), name="eventyard-source-directory")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def reload(self) -> None:
        async with self._lock:
            version = await self._state.config_version()
            sources = await self._state.list_sources()
            self._by_key = {s.write_key: s for s in sources}
            self._version = version
            self.max_request_bytes = max([MAX_REQUEST_BYTES, *(s.limits.max_request_bytes for s in sources)])
            self.consent_settings = await browser_consent_settings(self._state)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                if await self._state.config_version() != self._version:
                    await self.reload()
            except Exception:  # keep serving from memory; the next poll tries again
                log.exception("could not refresh sources from the state store")

    def get(self, write_key: str) -> Source | None:
        return self._by_key.get(write_key)

    async def find(self, write_key: str) -> Source | None:
        """Look a key up, reloading (throttled) when it is unknown."""
        found = self._by_key.get(write_key)
        if found is not None:
            return found
        now = time.monotonic()
        if now - self._last_miss_reload >= 1.0:
            self._last_miss_reload = now
            await self.reload()
            return self._by_key.get(write_key)
        return None

    def all(self) -> list[Source]:
        return list(self._by_key.values())
