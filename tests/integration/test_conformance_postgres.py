"""The PostgreSQL warehouse destination passes the destination conformance suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pg_warehouse_support import fresh_database, new_prefix, postgres_is_up

from eventyard.destinations.postgres import PostgresDestination, PostgresSettings
from eventyard.testing.conformance import DestinationConformance
from eventyard.testing.services import require_service

#: The tables every delivered event has a row in (a track's event table holds the same ids).
EVENT_TABLES = ("tracks", "identifies", "pages", "screens", "groups", "aliases")


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    require_service(postgres_is_up(), "PostgreSQL on 127.0.0.1:5432")
    with fresh_database() as url:
        yield url


class TestPostgresConformance(DestinationConformance):
    dsn: str
    prefix: str

    @pytest.fixture(autouse=True)
    def target(self, database: str) -> None:
        self.dsn = database
        self.prefix = new_prefix()

    def make_destination(self, tmp_path: Path) -> PostgresDestination:
        settings = PostgresSettings(dsn=self.dsn, schema_prefix=self.prefix, batch_size=1000)
        return PostgresDestination(settings, self.context(tmp_path))

    async def delivered_ids(self) -> set[str]:
        schema = self.prefix + "eventyard"  # events without a source id
        async with await psycopg.AsyncConnection.connect(self.dsn) as conn:
            cur = await conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
            )
            present = {str(r[0]) for r in await cur.fetchall()}
            ids: set[str] = set()
            for table in sorted(present & set(EVENT_TABLES)):
                cur = await conn.execute(f'SELECT id FROM "{schema}"."{table}"')
                ids.update(str(r[0]) for r in await cur.fetchall())
            return ids
