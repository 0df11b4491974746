"""What the control API needs from a warehouse destination to run read-only SQL and describe it.

A warehouse destination that can answer queries implements ``WarehouseReader``; the control
API finds running destinations that do, so it never imports a backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class ReadOnlyViolation(ValueError):
    """The SQL is not a single read-only statement; the message says what was refused."""


@dataclass
class QueryResult:
    """Result of a read-only query: column names, rows (JSON-ready values) and whether rows were cut."""

    columns: list[str]
    rows: list[list[Any]]
    truncated: bool = False


@dataclass
class TableDescription:
    """One warehouse table: ``columns`` maps each column to its type name."""

    schema: str
    table: str
    columns: dict[str, str] = field(default_factory=dict)
    rows: int | None = None


@runtime_checkable
class WarehouseReader(Protocol):
    """A warehouse that answers read-only SQL (``ReadOnlyViolation`` for anything else)."""

    async def query(self, sql: str, max_rows: int) -> QueryResult: ...

    async def describe(self) -> list[TableDescription]: ...
