"""The PostgreSQL warehouse destination: Segment's warehouse schema, loaded with COPY.

Events become rows of Segment's tables (``tracks``, ``identifies``, ``users``, ``pages``,
``screens``, ``groups``, ``aliases`` and one table per track event) in one schema per source,
through ``eventyard.warehouse``. Each ``deliver`` is one transaction: schema changes, COPY
through staging tables, ``INSERT ... ON CONFLICT`` on the primary key (so a replay adds
nothing) and the discards. psycopg is imported in ``start``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from eventyard.destinations.base import (
    Capabilities,
    DeleteSubject,
    DeliveryEvent,
    Destination,
    DestinationContext,
    Outcome,
)
from eventyard.destinations.postgres.settings import PostgresSettings
from eventyard.errors import ConfigError, Unavailable
from eventyard.warehouse import POSTGRES, SourceSchemas
from eventyard.warehouse.identity_tables import IdentityLoad
from eventyard.warehouse.loading import discard_reports, schemas_of

if TYPE_CHECKING:
    from eventyard.destinations.postgres.loader import Loader


class PostgresDestination(Destination):
    """Loads events into PostgreSQL in micro-batches."""

    name: ClassVar[str] = "postgres"
    Settings: ClassVar[type[msgspec.Struct]] = PostgresSettings
    capabilities: ClassVar[Capabilities] = Capabilities(
        batch_size=5000,
        batch_bytes=64 * 1024 * 1024,
        batch_age_seconds=2.0,
        concurrency=3,
        deletes=True,
        mappable=False,
    )

    settings: PostgresSettings
    #: What the last ``delete_user`` removed (``{"rows": n}``), for the regulation's report.
    deleted: dict[str, int]
    _loader: Loader | None = None

    def __init__(self, settings: Any, context: DestinationContext) -> None:
        super().__init__(settings, context)
        s: PostgresSettings = settings
        self.schemas = SourceSchemas(POSTGRES, s.schemas, s.default_schema, prefix=s.schema_prefix)

    @classmethod
    def capabilities_for(cls, settings: Any) -> Capabilities:
        s: PostgresSettings = settings
        return msgspec.structs.replace(
            cls.capabilities,
            batch_size=s.batch_size,
            batch_age_seconds=s.batch_age_seconds,
            concurrency=s.concurrency,
        )

    async def start(self) -> None:
        if self._loader is None:
            self._loader = _new_loader(self.settings, self.context.name)

    async def close(self) -> None:
        loader, self._loader = self._loader, None
        if loader is not None:
            await loader.close()

    async def deliver(self, batch: Sequence[DeliveryEvent]) -> list[Outcome]:
        if not batch:
            return []
        loader = await self._started()
        try:
            schemas = await schemas_of(self.schemas, self.context, batch)
        except Exception as exc:
            return [Outcome.retry(f"source_lookup: cannot look up the events' sources: {exc}")] * len(batch)
        result = await loader.load(batch, schemas, datetime.fromtimestamp(self.context.clock(), UTC))
        outcomes = [Outcome.delivered()] * len(batch)
        for i, outcome in result.outcomes.items():
            outcomes[i] = outcome
        await self.context.report_discards(discard_reports(batch, result.discards))
        return outcomes

    async def delete_user(self, subject: DeleteSubject) -> Outcome:
        """Delete the user's rows from every table of every schema this warehouse manages."""
        loader = await self._started()
        from eventyard.destinations.postgres.classify import is_transient, outcome_for

        try:
            deleted = await loader.delete_user(subject)
        except Exception as exc:
            if is_transient(exc) or _is_driver_error(exc):
                return outcome_for(exc, "deleting the user's rows")
            raise
        self.deleted = {"rows": deleted}
        return Outcome.delivered()

    async def check(self) -> None:
        """Connect and run ``SELECT 1``; nothing is created."""
        loader = _new_loader(self.settings, f"{self.context.name}-check")
        from eventyard.destinations.postgres.classify import describe, is_transient

        try:
            await loader.check()
        except Exception as exc:
            if is_transient(exc):
                raise Unavailable(f"cannot reach the warehouse: {describe(exc)}") from None
            if _is_driver_error(exc):
                raise ConfigError(f"the warehouse refuses the connection: {describe(exc)}") from None
            raise
        finally:
            await loader.close()

    async def identity_position(self, workspace_id: str) -> int | None:
        """The last identity change record loaded (``warehouse.identity_tables.IdentityTables``)."""
        from eventyard.destinations.postgres import identity

        loader = await self._started()
        async with loader.pool.connection() as conn:
            return await identity.position(conn, self.settings.identity_schema, workspace_id)

    async def load_identity(self, load: IdentityLoad) -> None:
        """Apply identity changes and move the position, in one transaction."""
        from eventyard.destinations.postgres import identity

        loader = await self._started()
        async with loader.pool.connection() as conn:
            await identity.load(conn, self.settings.identity_schema, load)

    async def _started(self) -> Loader:
        if self._loader is None:
            await self.start()
        assert self._loader is not None
        return self._loader


def _is_driver_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("psycopg")


def _new_loader(settings: PostgresSettings, name: str) -> Loader:
    try:
        from eventyard.destinations.postgres.loader import Loader
    except ImportError as exc:
        raise ConfigError(f"the postgres destination needs psycopg 3 (pip install 'psycopg[binary]'): {exc}") from None
    return Loader(settings, f"eventyard-{name}")
