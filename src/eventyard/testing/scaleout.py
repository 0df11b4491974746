"""The scale-out backends in tests: JetStream logs and PostgreSQL state on the real services.

NATS is the server at ``EVENTYARD_TEST_NATS`` (default ``nats://127.0.0.1:4222``, JetStream
on), PostgreSQL the one at ``EVENTYARD_TEST_POSTGRES`` (see ``eventyard.testing.identity``).
Every log gets a unique prefix, so its stream, consumers and index schema are its own and
are dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

from eventyard.log.jetstream import JetStreamEventLog
from eventyard.state.postgres import PostgresStateStore
from eventyard.testing.identity import admin_dsn, postgres_available, postgres_database
from eventyard.testing.services import port_open

__all__ = [
    "admin_dsn",
    "jetstream_log",
    "nats_available",
    "nats_url",
    "postgres_available",
    "postgres_database",
    "postgres_state",
]


def nats_url() -> str:
    return os.environ.get("EVENTYARD_TEST_NATS", "nats://127.0.0.1:4222")


def nats_available() -> bool:
    parts = urlsplit(nats_url())
    return port_open(parts.hostname or "127.0.0.1", parts.port or 4222)


def unique_prefix(what: str = "t") -> str:
    return f"eyt{what}{secrets.token_hex(4)}"


@contextlib.asynccontextmanager
async def jetstream_log(
    dsn: str, clock: Callable[[], float] = time.time, url: str | None = None, prefix: str | None = None
) -> AsyncIterator[JetStreamEventLog]:
    """A started JetStream log with a fresh prefix; its stream and index are dropped after."""
    log = JetStreamEventLog(url or nats_url(), dsn, prefix=prefix or unique_prefix(), clock=clock)
    await log.start()
    try:
        yield log
    finally:
        try:
            await log.drop()
        finally:
            await log.close()


def with_schema(dsn: str, schema: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"


@contextlib.asynccontextmanager
async def postgres_state(dsn: str, schema: str | None = None) -> AsyncIterator[PostgresStateStore]:
    """A started PostgreSQL state store in a fresh schema, dropped afterwards."""
    store = PostgresStateStore(with_schema(dsn, schema or unique_prefix("s")))
    await store.start()
    try:
        yield store
    finally:
        try:
            await store.drop()
        finally:
            await store.close()
