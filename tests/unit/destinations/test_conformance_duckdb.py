"""The duckdb destination passes the destination conformance suite against a real DuckDB file."""

from __future__ import annotations

from pathlib import Path

from eventyard.destinations.duckdb import DuckDBDestination, DuckDBSettings
from eventyard.testing.conformance import DestinationConformance

EVENT_TABLES = ("tracks", "identifies", "pages", "screens", "groups", "aliases")


class TestDuckDBConformance(DestinationConformance):
    destination: DuckDBDestination

    def make_destination(self, tmp_path: Path) -> DuckDBDestination:
        self.destination = DuckDBDestination(DuckDBSettings(), self.context(tmp_path))
        return self.destination

    async def delivered_ids(self) -> set[str]:
        tables = [t for t in await self.destination.describe() if t.table in EVENT_TABLES]
        if not tables:
            return set()
        union = " UNION ALL ".join(f'SELECT id FROM "{t.schema}"."{t.table}"' for t in tables)
        result = await self.destination.query(union, 100_000)
        return {row[0] for row in result.rows}
