"""Shared by warehouse destinations: naming, flattening, column types, schema evolution, discards.

Backend-neutral: nothing here opens a connection or imports a database driver (Arrow is the
interchange). A warehouse destination (DuckDB, PostgreSQL, ...) uses it per batch::

    schemas = await schemas_of(SourceSchemas(DIALECT, ...), context, batch)   # source -> schema
    flat = flatten_event(event, loaded_at=now, dialect=DIALECT)   # -> Flattened(rows, discards)
    plan = plan_load(Grouped.of(...), current_columns, DIALECT)   # -> LoadPlan: a ColumnarPlan per table
    apply plan.add / plan.widen as DDL, load plan.arrays, write the discards to DISCARDS_TABLE,
    drive the loads with a Bisector, report the discards through the context

Naming (``naming``)
    ``snake_case`` (Segment's go-snakecase), ``column_name``, ``table_name`` (table of a track
    event), ``schema_name`` and ``SourceSchemas`` (the schema of each source); ``Dialect``
    carries the identifier length limit, the column cap and the reserved words of a backend
    (``DUCKDB``, ``POSTGRES``).
Flattening (``flatten``)
    ``flatten_event`` turns one normalized event into ``TableRow`` s per Segment's warehouse
    schema: track -> ``tracks`` + ``<event slug>``; identify -> ``identifies`` + ``users``
    (upsert by ``id`` = userId); page, screen, group, alias -> their tables. ``STANDARD_TABLES``,
    ``USERS`` (the one upserted table) and the other table-name constants.
Types (``types``)
    ``ColumnType`` (boolean, bigint, double, timestamp, text), ``infer_type`` of a value,
    ``merge_types`` (the widening lattice bigint -> double -> text), ``coerce`` of a value to
    a column type (raises ``CannotCoerce``).
Schema evolution (``schema``, ``columns``, ``batch``)
    ``plan_columns`` plans a table's batch column by column into typed Arrow arrays: columns to
    add, columns to widen, the values coerced to the resulting types, and ``Discard`` s for values
    that fit neither; ``TooManyColumns`` when the backend's column cap would be exceeded.
    ``plan_table`` is the same rules value by value (the reference the columnar planner is tested
    against). ``plan_load`` plans every table of a batch and fails only the events of a table
    past the cap. ``STANDARD_COLUMN_TYPES``: the fixed types of the standard columns (``id``
    text, ``received_at`` timestamp, ...). ``DISCARDS_TABLE`` / ``DISCARDS_COLUMNS`` define the
    table that keeps every value that could not be loaded.
Loading (``loading``)
    ``Bisector`` isolates the events a database refuses; ``schemas_of`` and ``discard_reports``
    connect a destination's context (source names, discard alerts) to the above.
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
from eventyard.warehouse.naming import (
    DUCKDB,
    POSTGRES,
    Dialect,
    SourceSchemas,
    column_name,
    schema_name,
    snake_case,
    table_name,
)
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
    "SourceSchemas",
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
