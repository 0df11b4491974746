"""Settings of the ``duckdb`` destination."""

from __future__ import annotations

import msgspec


class DuckDBSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where the warehouse file is and how events are batched into it."""

    #: The database file; ``""`` means ``warehouse.duckdb`` in the destination's data directory
    #: (``<data dir>/destinations/<destination id>/warehouse.duckdb``).
    path: str = ""
    #: Source id or name -> schema name; other sources get the snake_case of their name
    #: (``"Marketing Site"`` -> ``marketing_site``), or their id when the name is not known.
    schemas: dict[str, str] = {}
    #: Schema of events that carry no source id.
    default_schema: str = "eventyard"
    #: Events per load (one transaction each).
    batch_size: int = 5000
    #: How long an incomplete batch may wait for more events, in seconds.
    batch_age_seconds: float = 2.0
    #: DuckDB memory limit (e.g. ``"1GB"``); ``""`` keeps DuckDB's default (80% of RAM).
    memory_limit: str = ""
    #: Connect every source created later in the same workspace (``eventyard apply``, the API)
    #: to this warehouse. The warehouse made at first start has it on; set it to false to stop.
    auto_connect: bool = False
    #: Schema of the identity tables (profiles, identifiers, merges); see ``docs/identity.md``.
    identity_schema: str = "eventyard_identity"
    #: Worker processes that flatten and plan batches of 500 events or more (started on first
    #: use, stopped with the destination); 0 prepares every batch in a thread of the server.
    prepare_processes: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 100_000:
            raise ValueError("`batch_size` must be between 1 and 100000")
        if not 0 <= self.batch_age_seconds <= 300:
            raise ValueError("`batch_age_seconds` must be between 0 and 300")
        if not 0 <= self.prepare_processes <= 16:
            raise ValueError("`prepare_processes` must be between 0 and 16")
        if not self.identity_schema.replace("_", "").isalnum() or not self.identity_schema[:1].isalpha():
            raise ValueError("`identity_schema` must start with a letter and hold only letters, digits and `_`")
