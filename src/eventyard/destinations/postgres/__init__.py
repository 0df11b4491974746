"""The ``postgres`` destination: Segment's warehouse schema in PostgreSQL, loaded with COPY."""

from eventyard.destinations.postgres.destination import PostgresDestination
from eventyard.destinations.postgres.settings import PostgresSettings

__all__ = ["PostgresDestination", "PostgresSettings"]
