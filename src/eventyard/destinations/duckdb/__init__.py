"""The ``duckdb`` destination: Segment's warehouse schema in an embedded DuckDB file."""

from eventyard.destinations.duckdb.destination import DuckDBDestination
from eventyard.destinations.duckdb.settings import DuckDBSettings

__all__ = ["DuckDBDestination", "DuckDBSettings"]
