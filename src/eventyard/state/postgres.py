"""StateStore on PostgreSQL (psycopg 3, async), in a schema of its own.

``postgresql://user@host:5432/db?schema=eventyard``: the tables live in ``schema`` (created
on start, migrations from ``postgres_migrations`` applied under an advisory lock so several
processes can start at once). Every configuration change bumps ``config_version`` in the same
transaction, like the SQLite store, so every process sees a change by polling one row.

Governance (documents, audit, regulations, suppressions) is in ``postgres_governance``,
violation counts and PII findings in ``postgres_reports``; this module holds the connections
and the core records.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from eventyard.errors import ConfigError, NotFound, Terminal, Unavailable
from eventyard.spec.limits import Limits
from eventyard.state.base import (
    Connection,
    DeliveryPolicy,
    DestinationConfig,
    DestinationHealth,
    Source,
    Token,
    Workspace,
)
from eventyard.state.group_commit import GroupCommit
from eventyard.state.ids import new_id, new_write_key
from eventyard.state.postgres_governance import GovernanceMixin
from eventyard.state.postgres_migrations import POSTGRES
from eventyard.state.postgres_reports import ReportsMixin

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]

_MIGRATION_LOCK = 0x6579_7374  # pg_advisory_xact_lock key while migrating
_SOURCE_COLS = "id, workspace_id, name, write_key, enabled, limits, created_at"
_DEST_COLS = "id, workspace_id, name, type, settings, enabled, delivery, actions, created_at"
_TOKEN_COLS = "id, name, role, token_hash, workspace_id, created_at"


def split_state_url(url: str) -> tuple[str, str]:
    """``postgresql://...?schema=name`` -> (DSN without ``schema``, schema; default ``eventyard``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
        raise ConfigError(
            f"state URL {url!r} is not a PostgreSQL URL; expected postgresql://user@host:5432/database[?schema=name]"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), "eventyard")
    if not schema or not schema.replace("_", "").isalnum():
        raise ConfigError(f"state schema {schema!r} must be letters, digits and `_`")
    rest = [(k, v) for k, v in query if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode(rest))), schema


def _source(row: Any) -> Source:
    return Source(row[0], row[1], row[2], row[3], bool(row[4]), msgspec.json.decode(row[5], type=Limits), row[6])


def _destination(row: Any) -> DestinationConfig:
    return DestinationConfig(
        id=row[0],
        workspace_id=row[1],
        name=row[2],
        type=row[3],
        settings=msgspec.json.decode(row[4]),
        enabled=bool(row[5]),
        delivery=msgspec.json.decode(row[6], type=DeliveryPolicy),
        actions=msgspec.json.decode(row[7]),
        created_at=row[8],
    )


def _text(value: object) -> str:
    return msgspec.json.encode(value).decode()


class PostgresStateStore(GovernanceMixin, ReportsMixin):
    kind = "postgres"

    def __init__(self, url: str, pool_size: int = 4) -> None:
        self.dsn, self.schema = split_state_url(url)
        self._idle: list[Conn] = []
        self._slots = asyncio.Semaphore(pool_size)
        self._all: list[Conn] = []
        self._started = False
        self.audit_writes = GroupCommit(self.write_audit)

    # ------------------------------------------------------------- connections

    async def _connect(self) -> Conn:
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=10,
                application_name="eventyard-state",
                options=f"-c search_path={self.schema}",
            )
        except psycopg.Error as exc:
            raise Unavailable(f"cannot connect to the state database: {exc}") from exc
        self._all.append(conn)
        return conn

    async def start(self) -> None:
        try:
            connect = psycopg.AsyncConnection.connect(self.dsn, autocommit=True, connect_timeout=10)
            async with await connect as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
                await conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(self.schema)))
                await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                cur = await conn.execute("SELECT max(version) FROM schema_version")
                row = await cur.fetchone()
                current = (row[0] if row else None) or 0
                for version, statements in POSTGRES:
                    if version > current:
                        for statement in statements:
                            await conn.execute(statement.encode())
                        await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
        except psycopg.Error as exc:
            raise Unavailable(f"cannot prepare the state schema {self.schema!r}: {exc}") from exc
        self._started = True

    async def close(self) -> None:
        self._started = False
        conns, self._all, self._idle = self._all, [], []
        for conn in conns:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def drop(self) -> None:
        """Drop the whole schema (tests)."""
        await self._run(
            lambda c: c.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))
        )

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[Conn]:
        if not self._started:
            raise Unavailable("the state store is not started")
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                yield conn
            finally:
                if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    with contextlib.suppress(psycopg.Error):
                        await conn.close()
                else:
                    self._idle.append(conn)

    async def _run(self, fn: Callable[[Conn], Awaitable[T]], bump: bool = False) -> T:
        """``fn`` in one transaction; ``bump`` also counts a configuration change."""
        async with self._conn() as conn:
            try:
                async with conn.transaction():
                    result = await fn(conn)
                    if bump:
                        await conn.execute(
                            "UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'config_version'"
                        )
                    return result
            except (pg_errors.UniqueViolation, pg_errors.ForeignKeyViolation, pg_errors.CheckViolation) as exc:
                raise Terminal(f"conflicts with existing configuration: {exc}") from exc
            except psycopg.Error as exc:
                raise Unavailable(f"the state store failed: {exc}") from exc

    async def _rows(self, query: str, args: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        async def q(c: Conn) -> list[tuple[Any, ...]]:
            cur = await c.execute(query.encode(), args)
            return list(await cur.fetchall())

        return await self._run(q)

    async def _exec(self, query: str, args: tuple[Any, ...] | list[Any] = (), bump: bool = False) -> int:
        async def q(c: Conn) -> int:
            cur = await c.execute(query.encode(), args)
            return cur.rowcount

        return await self._run(q, bump=bump)

    async def config_version(self) -> int:
        rows = await self._rows("SELECT value FROM meta WHERE key = 'config_version'")
        return int(rows[0][0])

    # -------------------------------------------------------------- workspaces

    async def create_workspace(self, name: str) -> Workspace:
        ws = Workspace(id=new_id("ws"), name=name, created_at=time.time())
        await self._exec("INSERT INTO workspaces VALUES (%s, %s, %s)", (ws.id, ws.name, ws.created_at), bump=True)
        return ws

    async def list_workspaces(self) -> list[Workspace]:
        return [
            Workspace(*r) for r in await self._rows("SELECT id, name, created_at FROM workspaces ORDER BY created_at")
        ]

    async def workspace_by_name(self, name: str) -> Workspace | None:
        rows = await self._rows("SELECT id, name, created_at FROM workspaces WHERE name = %s", (name,))
        return Workspace(*rows[0]) if rows else None

    # ----------------------------------------------------------------- sources

    async def create_source(
        self,
        workspace_id: str,
        name: str,
        *,
        write_key: str | None = None,
        enabled: bool = True,
        limits: Limits | None = None,
    ) -> Source:
        src = Source(
            new_id("src"), workspace_id, name, write_key or new_write_key(), enabled, limits or Limits(), time.time()
        )
        await self._exec(
            f"INSERT INTO sources ({_SOURCE_COLS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (src.id, src.workspace_id, src.name, src.write_key, src.enabled, _text(src.limits), src.created_at),
            bump=True,
        )
        return src

    async def update_source(
        self,
        source_id: str,
        *,
        write_key: str | None = None,
        enabled: bool | None = None,
        limits: Limits | None = None,
    ) -> Source:
        async def q(c: Conn) -> Source:
            cur = await c.execute(f"SELECT {_SOURCE_COLS} FROM sources WHERE id = %s FOR UPDATE".encode(), (source_id,))
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"source {source_id} does not exist")
            old = _source(row)
            new = msgspec.structs.replace(
                old,
                write_key=write_key if write_key is not None else old.write_key,
                enabled=enabled if enabled is not None else old.enabled,
                limits=limits if limits is not None else old.limits,
            )
            await c.execute(
                "UPDATE sources SET write_key = %s, enabled = %s, limits = %s WHERE id = %s",
                (new.write_key, new.enabled, _text(new.limits), source_id),
            )
            return new

        return await self._run(q, bump=True)

    async def list_sources(self, workspace_id: str | None = None) -> list[Source]:
        if workspace_id is None:
            rows = await self._rows(f"SELECT {_SOURCE_COLS} FROM sources ORDER BY created_at, id")
        else:
            rows = await self._rows(
                f"SELECT {_SOURCE_COLS} FROM sources WHERE workspace_id = %s ORDER BY created_at, id", (workspace_id,)
            )
        return [_source(r) for r in rows]

    async def source_by_write_key(self, write_key: str) -> Source | None:
        rows = await self._rows(f"SELECT {_SOURCE_COLS} FROM sources WHERE write_key = %s", (write_key,))
        return _source(rows[0]) if rows else None

    # ------------------------------------------------------------------ tokens

    async def add_token(self, name: str, role: str, token_hash: str, workspace_id: str | None = None) -> Token:
        tok = Token(new_id("tok"), name, role, token_hash, workspace_id, time.time())
        await self._exec(
            f"INSERT INTO tokens ({_TOKEN_COLS}) VALUES (%s, %s, %s, %s, %s, %s)",
            (tok.id, tok.name, tok.role, tok.token_hash, tok.workspace_id, tok.created_at),
            bump=True,
        )
        return tok

    async def token_by_hash(self, token_hash: str) -> Token | None:
        rows = await self._rows(f"SELECT {_TOKEN_COLS} FROM tokens WHERE token_hash = %s", (token_hash,))
        return Token(*rows[0]) if rows else None

    async def list_tokens(self) -> list[Token]:
        return [Token(*r) for r in await self._rows(f"SELECT {_TOKEN_COLS} FROM tokens ORDER BY created_at, id")]

    async def delete_token(self, token_id: str) -> bool:
        return await self._exec("DELETE FROM tokens WHERE id = %s", (token_id,), bump=True) > 0

    # -------------------------------------------------------------------- meta

    async def get_meta(self, key: str) -> str | None:
        rows = await self._rows("SELECT value FROM meta WHERE key = %s", (key,))
        return str(rows[0][0]) if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._exec(
            "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
            bump=True,
        )

    # ------------------------------------------------------------ destinations

    async def create_destination(
        self,
        workspace_id: str,
        name: str,
        type: str,
        *,
        settings: dict[str, Any] | None = None,
        enabled: bool = True,
        delivery: DeliveryPolicy | None = None,
        actions: list[dict[str, Any]] | None = None,
    ) -> DestinationConfig:
        dest = DestinationConfig(
            new_id("dst"),
            workspace_id,
            name,
            type,
            settings or {},
            enabled,
            delivery or DeliveryPolicy(),
            actions or [],
            time.time(),
        )
        await self._exec(
            f"INSERT INTO destinations ({_DEST_COLS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                dest.id,
                dest.workspace_id,
                dest.name,
                dest.type,
                _text(dest.settings),
                dest.enabled,
                _text(dest.delivery),
                _text(dest.actions),
                dest.created_at,
            ),
            bump=True,
        )
        return dest

    async def update_destination(
        self,
        destination_id: str,
        *,
        settings: dict[str, Any] | None = None,
        enabled: bool | None = None,
        delivery: DeliveryPolicy | None = None,
        actions: list[dict[str, Any]] | None = None,
    ) -> DestinationConfig:
        async def q(c: Conn) -> DestinationConfig:
            cur = await c.execute(
                f"SELECT {_DEST_COLS} FROM destinations WHERE id = %s FOR UPDATE".encode(), (destination_id,)
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"destination {destination_id} does not exist")
            old = _destination(row)
            new = msgspec.structs.replace(
                old,
                settings=settings if settings is not None else old.settings,
                enabled=enabled if enabled is not None else old.enabled,
                delivery=delivery if delivery is not None else old.delivery,
                actions=actions if actions is not None else old.actions,
            )
            await c.execute(
                "UPDATE destinations SET settings = %s, enabled = %s, delivery = %s, actions = %s WHERE id = %s",
                (_text(new.settings), new.enabled, _text(new.delivery), _text(new.actions), destination_id),
            )
            return new

        return await self._run(q, bump=True)

    async def list_destinations(self, workspace_id: str | None = None) -> list[DestinationConfig]:
        if workspace_id is None:
            rows = await self._rows(f"SELECT {_DEST_COLS} FROM destinations ORDER BY created_at, id")
        else:
            rows = await self._rows(
                f"SELECT {_DEST_COLS} FROM destinations WHERE workspace_id = %s ORDER BY created_at, id",
                (workspace_id,),
            )
        return [_destination(r) for r in rows]

    async def set_connection(
        self, source_id: str, destination_id: str, filters: list[dict[str, Any]] | None = None
    ) -> Connection:
        conn = Connection(source_id, destination_id, filters or [])
        await self._exec(
            "INSERT INTO connections (source_id, destination_id, filters) VALUES (%s, %s, %s) "
            "ON CONFLICT (source_id, destination_id) DO UPDATE SET filters = excluded.filters",
            (source_id, destination_id, _text(conn.filters)),
            bump=True,
        )
        return conn

    async def delete_connection(self, source_id: str, destination_id: str) -> bool:
        n = await self._exec(
            "DELETE FROM connections WHERE source_id = %s AND destination_id = %s",
            (source_id, destination_id),
            bump=True,
        )
        return n > 0

    async def list_connections(self) -> list[Connection]:
        rows = await self._rows("SELECT source_id, destination_id, filters FROM connections ORDER BY n")
        return [Connection(r[0], r[1], msgspec.json.decode(r[2])) for r in rows]

    # ----------------------------------------------------------- deduplication

    async def mark_seen(
        self, source_id: str, entries: list[tuple[str, int]], now: float, window_seconds: float
    ) -> set[int]:
        """Safe with several unify processes at once: the upsert only takes a message id over
        when the stored sighting is outside the window or is the same record, so of two
        processes that see the same message id on different records at once, one wins and
        the other gets its record back as a duplicate."""
        if not entries:
            return set()
        cutoff = now - window_seconds

        async def q(c: Conn) -> set[int]:
            cur = await c.execute(
                "SELECT message_id, record_id, seen_at FROM seen_messages WHERE source_id = %s "
                "AND message_id = ANY(%s)",
                (source_id, list({m for m, _ in entries})),
            )
            known: dict[str, tuple[int, float]] = {m: (r, at) for m, r, at in await cur.fetchall()}
            duplicates: set[int] = set()
            fresh: dict[str, int] = {}
            for message_id, record_id in entries:
                prior = known.get(message_id)
                if prior is not None and prior[1] >= cutoff:
                    if prior[0] != record_id:
                        duplicates.add(record_id)
                    continue
                known[message_id] = (record_id, now)
                fresh[message_id] = record_id
            if fresh:
                cur = await c.execute(
                    "INSERT INTO seen_messages (source_id, message_id, record_id, seen_at) "
                    "SELECT %s, m, r, %s FROM unnest(%s::text[], %s::int8[]) AS t(m, r) "
                    "ON CONFLICT (source_id, message_id) DO UPDATE SET record_id = excluded.record_id, "
                    "seen_at = excluded.seen_at WHERE seen_messages.seen_at < %s "
                    "OR seen_messages.record_id = excluded.record_id RETURNING message_id",
                    (source_id, now, list(fresh), list(fresh.values()), cutoff),
                )
                won = {r[0] for r in await cur.fetchall()}
                duplicates |= {record_id for message_id, record_id in fresh.items() if message_id not in won}
            return duplicates

        return await self._run(q)

    async def purge_seen(self, older_than: float) -> int:
        return await self._exec("DELETE FROM seen_messages WHERE seen_at < %s", (older_than,))

    # ------------------------------------------------------------------ health

    async def set_destination_health(self, destination_id: str, status: str, reason: str, since: float) -> None:
        await self._exec(
            "INSERT INTO destination_health (destination_id, status, reason, since) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (destination_id) DO UPDATE SET status = excluded.status, reason = excluded.reason, "
            "since = excluded.since",
            (destination_id, status, reason, since),
        )

    async def list_destination_health(self) -> list[DestinationHealth]:
        rows = await self._rows("SELECT destination_id, status, reason, since FROM destination_health")
        return [DestinationHealth(*r) for r in rows]
