"""A few PostgreSQL connections shared by one destination's concurrent loads.

At most ``size`` connections exist; a load borrows one and gives it back. A connection that
broke (or was left inside a transaction) is closed instead of being reused, and the next load
connects afresh, so a restarted server costs one retried load and nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import psycopg
from psycopg.pq import TransactionStatus

from eventyard.destinations.postgres.settings import PostgresSettings


class Pool:
    """Lazily opened connections, at most ``settings.concurrency``."""

    def __init__(self, settings: PostgresSettings, application_name: str) -> None:
        self.settings = settings
        self.application_name = application_name
        self._idle: list[psycopg.AsyncConnection[tuple[object, ...]]] = []
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._closed = False

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
        """A connection in autocommit mode; use ``conn.transaction()`` for atomic work."""
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self.connect()
            try:
                yield conn
            finally:
                healthy = not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE
                if healthy and not self._closed:
                    self._idle.append(conn)
                else:
                    await _close_quietly(conn)

    async def connect(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        """A new connection with eventyard's session settings (timeouts, UTC, application name)."""
        s = self.settings
        options = (
            f"-c lock_timeout={int(s.lock_timeout_seconds * 1000)}"
            f" -c statement_timeout={int(s.statement_timeout_seconds * 1000)}"
            " -c TimeZone=UTC"
        )
        return await psycopg.AsyncConnection.connect(
            s.dsn,
            autocommit=True,
            connect_timeout=max(1, round(s.connect_timeout_seconds)),
            application_name=self.application_name,
            options=options,
        )

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await _close_quietly(conn)


async def _close_quietly(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    with contextlib.suppress(Exception):
        await conn.close()
