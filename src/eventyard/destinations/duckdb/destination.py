"""The ``duckdb`` destination: every source's events in Segment's warehouse schema, in a DuckDB file.

One ``deliver`` is one transaction: new columns are added, columns widened, rows appended
from Arrow, ``users`` upserted, values that fit nowhere written to ``discards``. Loads are
idempotent: a row whose ``id`` (messageId) is already in its table is not loaded again, so
a retried or replayed batch does not duplicate anything.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from eventyard.destinations.base import (
    Capabilities,
    DeleteSubject,
    DeliveryEvent,
    Destination,
    DestinationContext,
    Outcome,
)
from eventyard.destinations.duckdb.batch import Grouped, discard_counts, plan_load
from eventyard.destinations.duckdb.settings import DuckDBSettings
from eventyard.destinations.duckdb.store import DuckDBStore
from eventyard.errors import ConfigError, Unavailable
from eventyard.warehouse import DUCKDB, QueryResult, TableDescription, flatten_event, schema_name

log = logging.getLogger(__name__)

PLAIN_ID = re.compile(r"[a-z_][a-z0-9_]{0,62}")

#: Driver errors worth another try: the file, the disk or a concurrent writer, not the data.
RETRYABLE = ("IOException", "TransactionException", "OutOfMemoryException", "InterruptException")


class DuckDBDestination(Destination):
    """Loads events into a DuckDB file, one schema per source (see ``docs/destinations/duckdb.md``)."""

    name: ClassVar[str] = "duckdb"
    Settings: ClassVar[type[msgspec.Struct]] = DuckDBSettings
    capabilities: ClassVar[Capabilities] = Capabilities(
        batch_size=5000,
        batch_bytes=64 * 1024 * 1024,
        batch_age_seconds=2.0,
        concurrency=1,
        deletes=True,
        mappable=False,
    )

    settings: DuckDBSettings

    def __init__(self, settings: Any, context: DestinationContext) -> None:
        super().__init__(settings, context)
        self._store: DuckDBStore | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def capabilities_for(cls, settings: Any) -> Capabilities:
        s: DuckDBSettings = settings
        return msgspec.structs.replace(cls.capabilities, batch_size=s.batch_size, batch_age_seconds=s.batch_age_seconds)

    @property
    def path(self) -> Path:
        """The database file."""
        if self.settings.path:
            return Path(self.settings.path).expanduser().absolute()
        return self.context.data_dir / "warehouse.duckdb"

    def schema_of(self, source_id: str) -> str:
        """The schema of a source's tables."""
        if not source_id:
            return schema_name(self.settings.default_schema, DUCKDB)
        if source_id in self.settings.schemas:
            return schema_name(self.settings.schemas[source_id], DUCKDB)
        if PLAIN_ID.fullmatch(source_id):  # an id such as src_3f9a... is used as it is
            return source_id
        return schema_name(source_id, DUCKDB)

    async def start(self) -> None:
        if self._store is not None:
            return
        try:
            import duckdb  # noqa: F401
        except ImportError:
            raise ConfigError("the duckdb destination needs duckdb: pip install duckdb") from None
        try:
            self._store = await asyncio.to_thread(DuckDBStore, self.path, self.settings.memory_limit)
        except Exception as exc:
            raise Unavailable(f"cannot open the warehouse {self.path}: {type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        async with self._lock:
            store, self._store = self._store, None
            if store is not None:
                await asyncio.to_thread(store.close)

    async def check(self) -> None:
        """The file's directory exists (or can be created) and is writable; nothing is written."""
        probe = self.path.parent
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
            raise ConfigError(f"`path` {str(self.path)!r}: {str(probe)!r} is not a writable directory")

    async def deliver(self, batch: Sequence[DeliveryEvent]) -> list[Outcome]:
        outcomes: list[Outcome] = [Outcome.delivered()] * len(batch)
        loaded_at = datetime.fromtimestamp(self.context.clock(), UTC)
        grouped = Grouped()
        for i, item in enumerate(batch):
            try:
                flat = flatten_event(item.event, loaded_at=loaded_at, dialect=DUCKDB)
            except ValueError as exc:
                outcomes[i] = Outcome.failed(str(exc))
                continue
            grouped.add(i, self.schema_of(item.source_id), flat.rows, flat.discards)
        if not grouped.rows:
            return outcomes
        async with self._lock:
            if self._store is None:
                await self.start()
            store = self._store
            assert store is not None
            failed, error = await asyncio.to_thread(_write, store, grouped, loaded_at)
        for i, reason in failed.items():
            outcomes[i] = Outcome.failed(reason)
        if error is not None:
            indices = {i for items in grouped.rows.values() for i, _ in items} - set(failed)
            for i in indices:
                outcomes[i] = error
        return outcomes

    async def delete_user(self, subject: DeleteSubject) -> Outcome:
        """Delete the user's rows from every table of every schema (``anonymousId`` identifiers too)."""
        anonymous = [v for k, v in subject.identifiers.items() if k in ("anonymousId", "anonymous_id")]
        async with self._lock:
            if self._store is None:
                await self.start()
            store = self._store
            assert store is not None
            try:
                deleted = await asyncio.to_thread(store.delete_user, subject.user_id, anonymous)
            except Exception as exc:
                return _classify(exc)
        log.info("deleted %d warehouse rows of a user from %s", deleted, self.path)
        return Outcome.delivered()

    async def query(self, sql: str, max_rows: int) -> QueryResult:
        """Run one read-only statement (``ReadOnlyViolation`` otherwise); see ``DuckDBStore.query``."""
        store = self._require_store()
        return await asyncio.to_thread(store.query, sql, max_rows)

    async def describe(self) -> list[TableDescription]:
        store = self._require_store()
        return await asyncio.to_thread(store.describe)

    def _require_store(self) -> DuckDBStore:
        if self._store is None:
            raise Unavailable(f"the warehouse {self.path} is not open")
        return self._store


def _classify(exc: Exception) -> Outcome:
    text = f"{type(exc).__name__}: {exc}"
    if type(exc).__name__ in RETRYABLE or isinstance(exc, OSError):
        return Outcome.retry(f"the warehouse cannot be written right now: {text}")
    return Outcome.failed(f"the warehouse refused the load: {text}")


def _write(store: DuckDBStore, grouped: Grouped, loaded_at: datetime) -> tuple[dict[int, str], Outcome | None]:
    """Plan and load (in a worker thread); a failed load is planned again once from the catalog."""
    error: Outcome | None = None
    failed: dict[int, str] = {}
    for _ in range(2):
        load, failed = plan_load(grouped, store.columns, DUCKDB)
        try:
            store.load(load, loaded_at)
        except Exception as exc:  # the store rolled back and re-read the catalog
            error = _classify(exc)
            continue
        for (schema, table), n in discard_counts(load).items():
            log.warning("warehouse %s: %d value(s) of %s.%s went to %s.discards", store.path, n, schema, table, schema)
        return failed, None
    return failed, error
