"""The ``duckdb`` destination: every source's events in Segment's warehouse schema, in a DuckDB file.

One ``deliver`` is one transaction: new columns are added, columns widened, rows appended
from Arrow, ``users`` upserted, values that fit nowhere written to ``discards`` (and reported
through the context, which counts and shows them). Loads are idempotent: a row whose ``id``
(messageId) is already in its table is not loaded again, so a retried or replayed batch does
not duplicate anything.

When the database refuses a load for a reason that will not go away by itself (not a busy or
broken file), the batch is split in halves and each half loaded on its own, down to single
events: the events that load are delivered, the one that keeps failing gets a ``failed``
outcome (``load_refused: ...``) and goes to the dead letters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
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
from eventyard.destinations.duckdb import identity
from eventyard.destinations.duckdb.settings import DuckDBSettings
from eventyard.destinations.duckdb.store import DuckDBStore, Load
from eventyard.errors import ConfigError, Unavailable
from eventyard.warehouse import DUCKDB, Discard, QueryResult, SourceSchemas, TableDescription
from eventyard.warehouse.batch import Grouped, LoadPlan, plan_load
from eventyard.warehouse.identity_tables import IdentityLoad
from eventyard.warehouse.loading import Bisector, discard_reports, flatten_batch, schemas_of
from eventyard.warehouse.workers import PrepareError, PrepareFailed, PreparePool

log = logging.getLogger(__name__)

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
        concurrency=3,
        deletes=True,
        mappable=False,
    )

    settings: DuckDBSettings
    #: What the last ``delete_user`` removed (``{"rows": n}``), for the regulation's report.
    deleted: dict[str, int]

    def __init__(self, settings: Any, context: DestinationContext) -> None:
        super().__init__(settings, context)
        self._store: DuckDBStore | None = None
        self._lock = asyncio.Lock()
        #: Worker processes that flatten and plan large batches (started on first use).
        self.workers = PreparePool(self.settings.prepare_processes)
        self.schemas = SourceSchemas(DUCKDB, self.settings.schemas, self.settings.default_schema)

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
        try:
            await self.workers.close()
        finally:
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
        loaded_at = datetime.fromtimestamp(self.context.clock(), UTC)
        try:
            schemas = await schemas_of(self.schemas, self.context, batch)
        except Exception as exc:
            return [Outcome.retry(f"source_lookup: cannot look up the events' sources: {exc}")] * len(batch)
        store = await self._open()
        # Flattening and planning need no lock: with more than one load in flight (the
        # delivery policy's `concurrency`) they overlap the other load's database work, in a
        # worker process for large batches. The plan is made again under the lock only if a
        # load in between changed a table.
        events = [item.event for item in batch]
        sources = [item.source_id for item in batch]
        loader = None
        if self.workers.wanted(len(batch)):
            generation, tables = store.generation, dict(store.tables)
            try:
                found = await self.workers.run(
                    "eventyard.destinations.duckdb.destination:prepare_elsewhere",
                    events,
                    sources,
                    schemas,
                    loaded_at,
                    tables,
                )
            except PrepareFailed as exc:  # nothing was written: the whole batch is tried again later
                log.warning("a batch of %d events is retried: %s", len(batch), exc)
                return [Outcome.retry(f"prepare_failed: {exc}")] * len(batch)
            except PrepareError as exc:  # prepared here instead, where the error is raised as before
                log.warning("preparing a batch in a worker process failed, preparing it here: %s", exc)
            else:
                flattened, unsupported, plan = found
                loader = _Loader(store, None, loaded_at, flattened, (events, sources, schemas))
                loader.unsupported = unsupported
                if plan is not None:
                    loader._planned = (generation, plan)
        if loader is None:
            loader = await asyncio.to_thread(_Loader.prepare, store, events, sources, schemas, loaded_at)
        if loader.events:
            async with self._lock:
                if self._store is not store:
                    closed = Outcome.retry("warehouse_unavailable: the warehouse was closed during the load")
                    return [closed] * len(batch)
                await asyncio.to_thread(loader.run)
        await self.context.report_discards(discard_reports(batch, loader.discards))
        return loader.outcomes(len(batch))

    async def identity_position(self, workspace_id: str) -> int | None:
        """The last identity change record loaded (``warehouse.identity_tables.IdentityTables``)."""
        store = await self._open()
        async with self._lock:
            return await asyncio.to_thread(identity.position, store, self.settings.identity_schema, workspace_id)

    async def load_identity(self, load: IdentityLoad) -> None:
        """Apply identity changes and move the position, in one transaction."""
        store = await self._open()
        async with self._lock:
            if self._store is not store:
                raise Unavailable("the warehouse was closed during the load")
            await asyncio.to_thread(identity.load, store, self.settings.identity_schema, load)

    async def _open(self) -> DuckDBStore:
        async with self._lock:
            if self._store is None:
                await self.start()
            assert self._store is not None
            return self._store

    async def delete_user(self, subject: DeleteSubject) -> Outcome:
        """Delete the user's rows from every table of every schema (``anonymousId`` identifiers too)."""
        anonymous = [
            v for k, v in subject.identifiers.items() if k.split(".")[0] in ("anonymousId", "anonymous_id") and v
        ]
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
        self.deleted = {"rows": deleted}
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
        return Outcome.retry(f"warehouse_unavailable: the warehouse cannot be written right now: {text}")
    return Outcome.failed(f"load_refused: the warehouse refused the load: {text}")


def prepare_elsewhere(
    events: Sequence[Mapping[str, Any]],
    sources: Sequence[str],
    schemas: dict[str, str],
    loaded_at: datetime,
    tables: dict[tuple[str, str], dict[str, Any]],
) -> tuple[list[int], dict[int, Outcome], LoadPlan | None]:
    """In a worker process: the events flattened, those that cannot be loaded, and the plan
    against ``tables`` (``None`` when planning fails: planned again under the lock)."""
    grouped, unsupported = flatten_batch(events, sources, schemas, loaded_at, DUCKDB)
    plan = None
    if grouped.events:
        with contextlib.suppress(Exception):
            plan = plan_load(grouped, lambda schema, table: tables.get((schema, table), {}), DUCKDB)
    return grouped.events, unsupported, plan


class _Loader:
    """One ``deliver``'s loads, in worker threads: the whole batch, then halves of it on a refusal."""

    def __init__(
        self,
        store: DuckDBStore,
        grouped: Grouped | None,
        loaded_at: datetime,
        events: list[int],
        source: tuple[Sequence[Mapping[str, Any]], Sequence[str], dict[str, str]] | None = None,
    ) -> None:
        self.store = store
        #: ``None`` when a worker process flattened the batch: flattened again here only if the
        #: batch must be planned again (``source`` says from what).
        self._grouped = grouped
        self._source = source
        self.loaded_at = loaded_at
        self._events = events
        self.bisector = Bisector(sorted(events))
        #: Events that cannot be loaded at all (an unknown event type).
        self.unsupported: dict[int, Outcome] = {}
        #: Discards of the loads that committed, with their events.
        self.discards: list[tuple[int, str, Discard]] = []
        self._planned: tuple[int, LoadPlan] | None = None

    @classmethod
    def prepare(
        cls,
        store: DuckDBStore,
        events: Sequence[Mapping[str, Any]],
        sources: Sequence[str],
        schemas: dict[str, str],
        loaded_at: datetime,
    ) -> _Loader:
        """Flatten the batch and plan it against the tables as they are now."""
        grouped, unsupported = flatten_batch(events, sources, schemas, loaded_at, DUCKDB)
        loader = cls(store, grouped, loaded_at, grouped.events)
        loader.unsupported = unsupported
        if grouped.events:
            generation = store.generation
            with contextlib.suppress(Exception):  # planned again under the lock, where errors count
                loader._planned = (generation, loader._plan(grouped.events))
        return loader

    @property
    def grouped(self) -> Grouped:
        if self._grouped is None:
            assert self._source is not None
            self._grouped, _ = flatten_batch(*self._source, self.loaded_at, DUCKDB)
        return self._grouped

    @property
    def events(self) -> list[int]:
        return self._events

    def run(self) -> None:
        self.bisector.run(self._load)

    def outcomes(self, size: int) -> list[Outcome]:
        outcomes = [Outcome.delivered()] * size
        for i, outcome in (self.unsupported | self.bisector.outcomes).items():
            outcomes[i] = outcome
        return outcomes

    def _plan(self, indices: list[int]) -> LoadPlan:
        grouped = self.grouped if len(indices) == len(self._events) else self.grouped.subset(indices)
        return plan_load(grouped, self.store.columns, DUCKDB)

    def _load(self, indices: list[int]) -> tuple[dict[int, str], Outcome | None]:
        planned, self._planned = self._planned, None
        try:
            if planned is not None and planned[0] == self.store.generation and len(indices) == len(self.events):
                plan = planned[1]
            else:
                plan = self._plan(indices)
        except Exception as exc:  # a value that cannot be converted at all (text that is not UTF-8)
            return {}, Outcome.failed(f"load_refused: the rows cannot be written: {type(exc).__name__}: {exc}")
        try:
            self.store.load(Load(plan.plans, plan.discard_rows()), self.loaded_at)
        except Exception as exc:  # the store rolled back and re-read the catalog
            return plan.failed, _classify(exc)
        self.discards.extend((i, schema, d) for schema, found in plan.discards.items() for i, d in found)
        return plan.failed, None
