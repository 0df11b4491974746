"""Which log, state store and identity store a process uses, from the ``log``/``state`` URLs.

| ``log`` | ``state`` | what runs |
|---|---|---|
| empty or ``sqlite:///path`` | empty or ``sqlite:///path`` | the embedded default (one machine) |
| ``nats://host:4222[,...][?prefix=..&replicas=3]`` | ``postgresql://...[?schema=..]`` | scale-out |
| empty or ``sqlite:///path`` | ``postgresql://...`` | SQLite log, PostgreSQL state |

The JetStream log keeps its queue index and traces in PostgreSQL (see ``log/jetstream.py``),
in the state database, so a NATS log needs a PostgreSQL state. The identity graph follows the
state store unless ``identity_store`` names another place. Called only from
``runtime.components`` (the one place that picks backends).
"""

from __future__ import annotations

from eventyard.errors import ConfigError
from eventyard.log.base import EventLog
from eventyard.log.jetstream_names import LogUrl
from eventyard.log.sqlite import SQLiteEventLog
from eventyard.runtime.settings import Settings
from eventyard.state.base import StateStore
from eventyard.state.identity_base import IdentityStore
from eventyard.state.identity_postgres import PostgresIdentityStore, split_url
from eventyard.state.identity_sqlite import SQLiteIdentityStore
from eventyard.state.postgres import PostgresStateStore, split_state_url
from eventyard.state.sqlite import SQLiteStateStore

_PG = ("postgresql://", "postgres://")
_NATS = ("nats://", "tls://")


def is_postgres(url: str) -> bool:
    return url.startswith(_PG)


def is_nats(url: str) -> bool:
    return url.startswith(_NATS)


def check(settings: Settings) -> None:
    """Raise ``ConfigError`` with what to change when the URLs do not make a deployment."""
    if settings.log and not (is_nats(settings.log) or settings.log.startswith("sqlite:///")):
        raise ConfigError(
            f"`log` = {settings.log!r} is not supported; use nothing (SQLite in the data directory), "
            "sqlite:///path or nats://host:4222"
        )
    if settings.state and not (is_postgres(settings.state) or settings.state.startswith("sqlite:///")):
        raise ConfigError(
            f"`state` = {settings.state!r} is not supported; use nothing (SQLite in the data directory), "
            "sqlite:///path or postgresql://user@host:5432/database"
        )
    if is_nats(settings.log):
        LogUrl(settings.log)
        if not is_postgres(settings.state):
            raise ConfigError(
                "a NATS log (`log` = nats://...) keeps its queue state in PostgreSQL: "
                "set `state` to postgresql://user@host:5432/database as well"
            )
    if is_postgres(settings.state):
        split_state_url(settings.state)


def is_scale_out(settings: Settings) -> bool:
    """Whether processes on several machines can share this deployment."""
    return is_nats(settings.log) and is_postgres(settings.state)


def make_log(settings: Settings) -> EventLog:
    check(settings)
    if is_nats(settings.log):
        from eventyard.log.jetstream import JetStreamEventLog  # nats-py only where it is used

        dsn, _ = split_state_url(settings.state)
        return JetStreamEventLog(settings.log, dsn)
    return SQLiteEventLog(settings.log_path(), synchronous=settings.log_synchronous)


def make_state(settings: Settings) -> StateStore:
    check(settings)
    if is_postgres(settings.state):
        return PostgresStateStore(settings.state)
    return SQLiteStateStore(settings.state_path())


def make_identity_store(settings: Settings) -> IdentityStore:
    """The identity graph's store: ``identity_store`` if set, else beside the state store
    (the state's SQLite file, or schema ``<state schema>_identity`` in its PostgreSQL)."""
    url = settings.identity_store
    if is_postgres(url):
        dsn, schema = split_url(url)
        return PostgresIdentityStore(dsn, schema)
    if url.startswith("sqlite:///"):
        return SQLiteIdentityStore(url[len("sqlite:///") :])
    if is_postgres(settings.state):
        dsn, schema = split_state_url(settings.state)
        return PostgresIdentityStore(dsn, f"{schema}_identity")
    return SQLiteIdentityStore(settings.state_path())
