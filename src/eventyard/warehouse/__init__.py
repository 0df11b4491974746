"""Shared by warehouse destinations: naming, flattening, column types, schema evolution, discards.

Pure and backend-neutral: nothing here opens a connection or imports a database driver. A
warehouse destination (DuckDB, PostgreSQL, ...) uses it in four steps per batch::

    flat = flatten_event(event, loaded_at=now, dialect=DIALECT)   # -> Flattened(rows, discards)
    rows per (schema_name(source), row.table) ...
    plan = plan_table(table, current_columns, rows, DIALECT)       # -> TablePlan
    apply plan.add / plan.widen as DDL, load plan.rows, write plan.discards to DISCARDS_TABLE

Naming (``naming``)
    ``snake_case`` (Segment's go-snakecase), ``column_name``, ``table_name`` (table of a track
    event), ``schema_name`` (schema of a source); ``Dialect`` carries the identifier length
    limit, the column cap and the reserved words of a backend (``DUCKDB``, ``POSTGRES``).
Flattening (``flatten``)
    ``flatten_event`` turns one normalized event into ``TableRow`` s per Segment's warehouse
    schema: track -> ``tracks`` + ``<event slug>``; identify -> ``identifies`` + ``users``
    (upsert by ``id`` = userId); page, screen, group, alias -> their tables. ``STANDARD_TABLES``,
    ``USERS`` (the one upserted table) and the other table-name constants.
Types (``types``)
    ``ColumnType`` (boolean, bigint, double, timestamp, text), ``infer_type`` of a value,
    ``merge_types`` (the widening lattice bigint -> double -> text), ``coerce`` of a value to
    a column type (raises ``CannotCoerce``).
Schema evolution (``schema``)
    ``plan_table`` compares a table's current columns with a batch of rows and returns a
    ``TablePlan``: columns to add, columns to widen, the rows coerced to the resulting column
    types, and ``Discard`` s for values that fit neither; ``TooManyColumns`` when the backend's
    column cap would be exceeded. ``STANDARD_COLUMN_TYPES``: the fixed types of the standard
    columns (``id`` text, ``received_at`` timestamp, ...), whatever their first value looks like.
    ``DISCARDS_TABLE`` / ``DISCARDS_COLUMNS`` define the table that keeps every value that
    could not be loaded.
"""

from eventyard.warehouse.discards import DISCARDS_COLUMNS, DISCARDS_TABLE, Discard
from eventyard.warehouse.flatten import (
    ALIASES,
    EVENT_COLUMNS,
    GROUPS,
    IDENTIFIES,
    PAGES,
    SCREENS,
    STANDARD_TABLES,
    TRACKS,
    USERS,
    Flattened,
    TableRow,
    flatten_event,
    flatten_object,
)
from eventyard.warehouse.naming import DUCKDB, POSTGRES, Dialect, column_name, schema_name, snake_case, table_name
from eventyard.warehouse.query import QueryResult, ReadOnlyViolation, TableDescription, WarehouseReader
from eventyard.warehouse.schema import STANDARD_COLUMN_TYPES, TablePlan, TooManyColumns, plan_table
from eventyard.warehouse.types import CannotCoerce, ColumnType, coerce, infer_type, merge_types

__all__ = [
    "ALIASES",
    "DISCARDS_COLUMNS",
    "DISCARDS_TABLE",
    "DUCKDB",
    "EVENT_COLUMNS",
    "GROUPS",
    "IDENTIFIES",
    "PAGES",
    "POSTGRES",
    "SCREENS",
    "STANDARD_COLUMN_TYPES",
    "STANDARD_TABLES",
    "TRACKS",
    "USERS",
    "CannotCoerce",
    "ColumnType",
    "Dialect",
    "Discard",
    "Flattened",
    "QueryResult",
    "ReadOnlyViolation",
    "TableDescription",
    "TablePlan",
    "TableRow",
    "TooManyColumns",
    "WarehouseReader",
    "coerce",
    "column_name",
    "flatten_event",
    "flatten_object",
    "infer_type",
    "merge_types",
    "plan_table",
    "schema_name",
    "snake_case",
    "table_name",
]
