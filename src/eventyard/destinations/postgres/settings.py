"""Settings of the PostgreSQL warehouse destination."""

from __future__ import annotations

import re

import msgspec

from eventyard.destinations.base import Secret

_PREFIX = re.compile(r"^[a-z][a-z0-9_]{0,19}$")


class PostgresSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where the warehouse lives and how events are loaded into it."""

    #: A libpq connection string, e.g. ``postgresql://loader:pw@127.0.0.1:5432/analytics``
    #: or ``host=127.0.0.1 dbname=analytics user=loader``. Secret: it may hold a password.
    dsn: Secret
    #: Put before every schema name, e.g. ``ey_`` gives ``ey_web`` for the source ``web``.
    schema_prefix: str = ""
    #: Source id or name -> schema name; other sources get the snake_case of their name.
    schemas: dict[str, str] = {}
    #: Schema of events that carry no source id.
    default_schema: str = "eventyard"
    #: Most events per load (one transaction).
    batch_size: int = 5000
    #: How long a load waits to fill a batch, in seconds.
    batch_age_seconds: float = 2.0
    #: Loads in flight at once, each on its own connection.
    concurrency: int = 3
    connect_timeout_seconds: float = 10.0
    #: A load waiting this long for a lock (another loader, an analyst's long query) is retried later.
    lock_timeout_seconds: float = 30.0
    #: A statement running this long is cancelled and its load retried later.
    statement_timeout_seconds: float = 90.0
    #: Schema of the identity tables (profiles, identifiers, merges); see ``docs/identity.md``.
    identity_schema: str = "eventyard_identity"
    #: Worker processes that flatten and plan batches of 500 events or more (started on first
    #: use, stopped with the destination); 0 prepares every batch in a thread of the server.
    prepare_processes: int = 2

    def __post_init__(self) -> None:
        dsn = self.dsn.strip()
        if not (dsn.startswith(("postgresql://", "postgres://")) or "=" in dsn):
            raise ValueError("`dsn` must be a postgresql:// URL or key=value connection string")
        if self.schema_prefix and not _PREFIX.match(self.schema_prefix):
            raise ValueError("`schema_prefix` must be lower snake_case, start with a letter, at most 20 characters")
        if not 1 <= self.batch_size <= 100_000:
            raise ValueError("`batch_size` must be between 1 and 100000")
        if not 0 <= self.batch_age_seconds <= 300:
            raise ValueError("`batch_age_seconds` must be between 0 and 300")
        if not 1 <= self.concurrency <= 32:
            raise ValueError("`concurrency` must be between 1 and 32")
        if not 0 <= self.prepare_processes <= 16:
            raise ValueError("`prepare_processes` must be between 0 and 16")
        if not self.identity_schema.replace("_", "").isalnum() or not self.identity_schema[:1].isalpha():
            raise ValueError("`identity_schema` must start with a letter and hold only letters, digits and `_`")
        for name in ("connect_timeout_seconds", "lock_timeout_seconds", "statement_timeout_seconds"):
            if not 0 < getattr(self, name) <= 600:
                raise ValueError(f"`{name}` must be more than 0 and at most 600")
