"""StateStore on SQLite: the state file and, beside it, the audit trail's file; migrations applied on start."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from eventyard.errors import NotFound, Terminal, Unavailable
from eventyard.spec.limits import Limits
from eventyard.state import governance_sqlite as gov
from eventyard.state import pii_sqlite
from eventyard.state import violations_sqlite as violations
from eventyard.state.audit_sqlite import SQLiteAuditTrail, audit_path_for
from eventyard.state.base import (
    AuditEntry,
    Connection,
    DeliveryPolicy,
    DestinationConfig,
    DestinationHealth,
    Document,
    PiiFinding,
    Regulation,
    Source,
    Suppression,
    Token,
    ViolationCount,
    ViolationSummary,
    Workspace,
)
from eventyard.state.ids import new_id, new_write_key
from eventyard.state.migrations import SQLITE

T = TypeVar("T")

_SOURCE_COLS = "id, workspace_id, name, write_key, enabled, limits, created_at"
_DEST_COLS = "id, workspace_id, name, type, settings, enabled, delivery, actions, created_at"


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


def _source(row: Any) -> Source:
    return Source(
        id=row[0],
        workspace_id=row[1],
        name=row[2],
        write_key=row[3],
        enabled=bool(row[4]),
        limits=msgspec.json.decode(row[5], type=Limits),
        created_at=row[6],
    )


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (a trigger body holds ``;`` of its own)."""
    out: list[str] = []
    buf = ""
    for piece in sql.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n;"):
                out.append(buf)
            buf = ""
    if buf.strip(" \n;"):
        out.append(buf)
    return out


class SQLiteStateStore:
    """All calls run on a worker thread over one serialized connection; the audit trail has a
    file, a connection and a thread of its own (:mod:`eventyard.state.audit_sqlite`).

    ``audit_path`` defaults to ``<state file>-audit.sqlite3`` beside the state file; passing the
    state file's own path keeps the trail inside it (one file, one write lock for both).
    """

    def __init__(self, path: str | Path, audit_path: str | Path | None = None) -> None:
        self.path = str(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.audit = SQLiteAuditTrail(audit_path_for(path) if audit_path is None else audit_path)
        #: Concurrent audit entries go into one transaction (``group_commit``; as on PostgreSQL).
        self.audit_writes = self.audit.group

    async def start(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            current = row[0] or 0
            for version, sql in SQLITE:
                if version > current:
                    for statement in _statements(sql):
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            conn.close()
            raise
        try:
            own_file = Path(self.audit.path).resolve() != Path(self.path).resolve()
            self.audit.open(conn if own_file else None)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self.audit.close()
            await asyncio.to_thread(conn.close)

    async def _run(self, fn: Callable[[sqlite3.Connection], T], write: bool = False, bump: bool = True) -> T:
        def call() -> T:
            if self._conn is None:
                raise Unavailable("the state store is not started")
            with self._lock:
                conn = self._conn
                try:
                    if not write:
                        return fn(conn)
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        result = fn(conn)
                        if bump:
                            conn.execute(
                                "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'config_version'"
                            )
                        conn.execute("COMMIT")
                        return result
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                except sqlite3.IntegrityError as exc:
                    raise Terminal(f"conflicts with existing configuration: {exc}") from exc
                except sqlite3.Error as exc:
                    raise Unavailable(f"the state store failed: {exc}") from exc

        return await asyncio.to_thread(call)

    async def config_version(self) -> int:
        def q(c: sqlite3.Connection) -> int:
            return int(c.execute("SELECT value FROM meta WHERE key='config_version'").fetchone()[0])

        return await self._run(q)

    # --------------------------------------------------------------- workspaces

    async def create_workspace(self, name: str) -> Workspace:
        ws = Workspace(id=new_id("ws"), name=name, created_at=time.time())

        def q(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO workspaces VALUES (?, ?, ?)", (ws.id, ws.name, ws.created_at))

        await self._run(q, write=True)
        return ws

    async def list_workspaces(self) -> list[Workspace]:
        def q(c: sqlite3.Connection) -> list[Workspace]:
            rows = c.execute("SELECT id, name, created_at FROM workspaces ORDER BY created_at")
            return [Workspace(*r) for r in rows.fetchall()]

        return await self._run(q)

    async def workspace_by_name(self, name: str) -> Workspace | None:
        def q(c: sqlite3.Connection) -> Workspace | None:
            row = c.execute("SELECT id, name, created_at FROM workspaces WHERE name = ?", (name,)).fetchone()
            return Workspace(*row) if row else None

        return await self._run(q)

    # ------------------------------------------------------------------ sources

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
            id=new_id("src"),
            workspace_id=workspace_id,
            name=name,
            write_key=write_key or new_write_key(),
            enabled=enabled,
            limits=limits or Limits(),
            created_at=time.time(),
        )

        def q(c: sqlite3.Connection) -> None:
            c.execute(
                f"INSERT INTO sources ({_SOURCE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    src.id,
                    src.workspace_id,
                    src.name,
                    src.write_key,
                    int(src.enabled),
                    msgspec.json.encode(src.limits),
                    src.created_at,
                ),
            )

        await self._run(q, write=True)
        return src

    async def update_source(
        self,
        source_id: str,
        *,
        write_key: str | None = None,
        enabled: bool | None = None,
        limits: Limits | None = None,
    ) -> Source:
        def q(c: sqlite3.Connection) -> Source:
            row = c.execute(f"SELECT {_SOURCE_COLS} FROM sources WHERE id = ?", (source_id,)).fetchone()
            if row is None:
                raise NotFound(f"source {source_id} does not exist")
            cur = _source(row)
            new = msgspec.structs.replace(
                cur,
                write_key=write_key if write_key is not None else cur.write_key,
                enabled=enabled if enabled is not None else cur.enabled,
                limits=limits if limits is not None else cur.limits,
            )
            c.execute(
                "UPDATE sources SET write_key = ?, enabled = ?, limits = ? WHERE id = ?",
                (new.write_key, int(new.enabled), msgspec.json.encode(new.limits), source_id),
            )
            return new

        return await self._run(q, write=True)

    async def list_sources(self, workspace_id: str | None = None) -> list[Source]:
        def q(c: sqlite3.Connection) -> list[Source]:
            if workspace_id is None:
                rows = c.execute(f"SELECT {_SOURCE_COLS} FROM sources ORDER BY created_at")
            else:
                rows = c.execute(
                    f"SELECT {_SOURCE_COLS} FROM sources WHERE workspace_id = ? ORDER BY created_at",
                    (workspace_id,),
                )
            return [_source(r) for r in rows.fetchall()]

        return await self._run(q)

    async def source_by_write_key(self, write_key: str) -> Source | None:
        def q(c: sqlite3.Connection) -> Source | None:
            row = c.execute(f"SELECT {_SOURCE_COLS} FROM sources WHERE write_key = ?", (write_key,)).fetchone()
            return _source(row) if row else None

        return await self._run(q)

    # ------------------------------------------------------------------- tokens

    async def add_token(self, name: str, role: str, token_hash: str, workspace_id: str | None = None) -> Token:
        tok = Token(new_id("tok"), name, role, token_hash, workspace_id, time.time())

        def q(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO tokens (id, name, role, token_hash, workspace_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (tok.id, tok.name, tok.role, tok.token_hash, tok.workspace_id, tok.created_at),
            )

        await self._run(q, write=True)
        return tok

    async def token_by_hash(self, token_hash: str) -> Token | None:
        def q(c: sqlite3.Connection) -> Token | None:
            row = c.execute(
                "SELECT id, name, role, token_hash, workspace_id, created_at FROM tokens WHERE token_hash = ?",
                (token_hash,),
            ).fetchone()
            return Token(*row) if row else None

        return await self._run(q)

    async def list_tokens(self) -> list[Token]:
        def q(c: sqlite3.Connection) -> list[Token]:
            rows = c.execute(
                "SELECT id, name, role, token_hash, workspace_id, created_at FROM tokens ORDER BY created_at"
            )
            return [Token(*r) for r in rows.fetchall()]

        return await self._run(q)

    async def delete_token(self, token_id: str) -> bool:
        def q(c: sqlite3.Connection) -> bool:
            return c.execute("DELETE FROM tokens WHERE id = ?", (token_id,)).rowcount > 0

        return await self._run(q, write=True)

    # --------------------------------------------------------------------- meta

    async def get_meta(self, key: str) -> str | None:
        def q(c: sqlite3.Connection) -> str | None:
            row = c.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return row[0] if row else None

        return await self._run(q)

    async def set_meta(self, key: str, value: str) -> None:
        def q(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

        await self._run(q, write=True)

    # ------------------------------------------------------------- destinations

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
            id=new_id("dst"),
            workspace_id=workspace_id,
            name=name,
            type=type,
            settings=settings or {},
            enabled=enabled,
            delivery=delivery or DeliveryPolicy(),
            actions=actions or [],
            created_at=time.time(),
        )

        def q(c: sqlite3.Connection) -> None:
            c.execute(
                f"INSERT INTO destinations ({_DEST_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    dest.id,
                    dest.workspace_id,
                    dest.name,
                    dest.type,
                    msgspec.json.encode(dest.settings),
                    int(dest.enabled),
                    msgspec.json.encode(dest.delivery),
                    msgspec.json.encode(dest.actions),
                    dest.created_at,
                ),
            )

        await self._run(q, write=True)
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
        def q(c: sqlite3.Connection) -> DestinationConfig:
            row = c.execute(f"SELECT {_DEST_COLS} FROM destinations WHERE id = ?", (destination_id,)).fetchone()
            if row is None:
                raise NotFound(f"destination {destination_id} does not exist")
            cur = _destination(row)
            new = msgspec.structs.replace(
                cur,
                settings=settings if settings is not None else cur.settings,
                enabled=enabled if enabled is not None else cur.enabled,
                delivery=delivery if delivery is not None else cur.delivery,
                actions=actions if actions is not None else cur.actions,
            )
            c.execute(
                "UPDATE destinations SET settings = ?, enabled = ?, delivery = ?, actions = ? WHERE id = ?",
                (
                    msgspec.json.encode(new.settings),
                    int(new.enabled),
                    msgspec.json.encode(new.delivery),
                    msgspec.json.encode(new.actions),
                    destination_id,
                ),
            )
            return new

        return await self._run(q, write=True)

    async def list_destinations(self, workspace_id: str | None = None) -> list[DestinationConfig]:
        def q(c: sqlite3.Connection) -> list[DestinationConfig]:
            if workspace_id is None:
                rows = c.execute(f"SELECT {_DEST_COLS} FROM destinations ORDER BY created_at")
            else:
                rows = c.execute(
                    f"SELECT {_DEST_COLS} FROM destinations WHERE workspace_id = ? ORDER BY created_at",
                    (workspace_id,),
                )
            return [_destination(r) for r in rows.fetchall()]

        return await self._run(q)

    async def set_connection(
        self, source_id: str, destination_id: str, filters: list[dict[str, Any]] | None = None
    ) -> Connection:
        conn = Connection(source_id, destination_id, filters or [])

        def q(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO connections (source_id, destination_id, filters) VALUES (?, ?, ?) "
                "ON CONFLICT (source_id, destination_id) DO UPDATE SET filters = excluded.filters",
                (source_id, destination_id, msgspec.json.encode(conn.filters)),
            )

        await self._run(q, write=True)
        return conn

    async def delete_connection(self, source_id: str, destination_id: str) -> bool:
        def q(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "DELETE FROM connections WHERE source_id = ? AND destination_id = ?", (source_id, destination_id)
            )
            return cur.rowcount > 0

        return await self._run(q, write=True)

    async def list_connections(self) -> list[Connection]:
        def q(c: sqlite3.Connection) -> list[Connection]:
            rows = c.execute("SELECT source_id, destination_id, filters FROM connections ORDER BY rowid")
            return [Connection(r[0], r[1], msgspec.json.decode(r[2])) for r in rows.fetchall()]

        return await self._run(q)

    # ------------------------------------------------------------ deduplication

    async def mark_seen(
        self, source_id: str, entries: list[tuple[str, int]], now: float, window_seconds: float
    ) -> set[int]:
        if not entries:
            return set()

        # Two statements per call, whatever the batch size: ids in and rows out as JSON. Row by
        # row (executemany), every SQLite step retook the GIL from a busy event loop, and a
        # batch of 1,000 events took 100-150 ms.
        def q(c: sqlite3.Connection) -> set[int]:
            duplicates: set[int] = set()
            cutoff = now - window_seconds
            found = c.execute(
                "SELECT json_group_array(json_array(message_id, record_id, seen_at)) FROM seen_messages "
                "WHERE source_id = ? AND message_id IN (SELECT value FROM json_each(?))",
                (source_id, msgspec.json.encode([m for m, _ in entries])),
            ).fetchall()[0][0]
            known: dict[str, tuple[int, float]] = {m: (r, at) for m, r, at in msgspec.json.decode(found)}
            fresh: list[tuple[str, int]] = []
            for message_id, record_id in entries:
                prior = known.get(message_id)
                if prior is not None and prior[1] >= cutoff:
                    if prior[0] != record_id:
                        duplicates.add(record_id)
                    continue
                known[message_id] = (record_id, now)  # a repeat inside this batch is a duplicate
                fresh.append((message_id, record_id))
            if fresh:
                c.execute(
                    "INSERT INTO seen_messages (source_id, message_id, record_id, seen_at) "
                    "SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'), ? "
                    "FROM json_each(?) WHERE true "
                    "ON CONFLICT (source_id, message_id) DO UPDATE SET record_id = excluded.record_id, "
                    "seen_at = excluded.seen_at",
                    (source_id, now, msgspec.json.encode(fresh)),
                )
            return duplicates

        return await self._run(q, write=True, bump=False)

    async def purge_seen(self, older_than: float) -> int:
        def q(c: sqlite3.Connection) -> int:
            return c.execute("DELETE FROM seen_messages WHERE seen_at < ?", (older_than,)).rowcount

        return await self._run(q, write=True, bump=False)

    # ----------------------------------------------------------------- health

    async def set_destination_health(self, destination_id: str, status: str, reason: str, since: float) -> None:
        def q(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO destination_health (destination_id, status, reason, since) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (destination_id) DO UPDATE SET status = excluded.status, reason = excluded.reason, "
                "since = excluded.since",
                (destination_id, status, reason, since),
            )

        await self._run(q, write=True, bump=False)

    async def list_destination_health(self) -> list[DestinationHealth]:
        def q(c: sqlite3.Connection) -> list[DestinationHealth]:
            rows = c.execute("SELECT destination_id, status, reason, since FROM destination_health")
            return [DestinationHealth(*r) for r in rows.fetchall()]

        return await self._run(q)

    # ------------------------------------------------------------------- documents

    async def put_document(
        self, workspace_id: str, kind: str, name: str, body: dict[str, Any], *, actor: str = ""
    ) -> Document:
        return await self._run(lambda c: gov.put_document(c, workspace_id, kind, name, body, actor, False), write=True)

    async def get_document(
        self, workspace_id: str, kind: str, name: str, version: int | None = None
    ) -> Document | None:
        return await self._run(lambda c: gov.get_document(c, workspace_id, kind, name, version))

    async def list_documents(self, workspace_id: str | None, kind: str) -> list[Document]:
        return await self._run(lambda c: gov.list_documents(c, workspace_id, kind))

    async def document_history(self, workspace_id: str, kind: str, name: str) -> list[Document]:
        return await self._run(lambda c: gov.document_history(c, workspace_id, kind, name))

    async def delete_document(self, workspace_id: str, kind: str, name: str, *, actor: str = "") -> bool:
        def q(c: sqlite3.Connection) -> bool:
            current = gov.latest_document(c, workspace_id, kind, name)
            if current is None or current.deleted:
                return False
            gov.put_document(c, workspace_id, kind, name, current.body, actor, True)
            return True

        return await self._run(q, write=True)

    # ------------------------------------------------------------------- audit

    async def append_audit(
        self,
        workspace_id: str | None,
        actor: str,
        action: str,
        target: str,
        origin: str,
        detail: dict[str, Any] | None = None,
        *,
        at: float | None = None,
    ) -> AuditEntry:
        when = time.time() if at is None else at
        entry = AuditEntry(0, when, workspace_id, actor, action, target, origin, detail or {})
        encoded = msgspec.json.encode(entry.detail)  # here, so a detail that cannot be encoded fails alone
        return msgspec.structs.replace(entry, id=await self.audit.append(entry, encoded))

    async def list_audit(
        self,
        workspace_id: str | None = None,
        *,
        since: float | None = None,
        until: float | None = None,
        actor: str | None = None,
        action: str | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[AuditEntry]:
        return await asyncio.to_thread(
            self.audit.read, lambda c: gov.list_audit(c, workspace_id, since, until, actor, action, after_id, limit)
        )

    # ------------------------------------------------------------------- regulations

    async def create_regulation(
        self,
        workspace_id: str,
        regulation_type: str,
        subject_type: str,
        subject_ids: list[str],
        *,
        stores: list[str],
        source_id: str = "",
    ) -> Regulation:
        return await self._run(
            lambda c: gov.create_regulation(
                c, workspace_id, regulation_type, subject_type, subject_ids, stores, source_id
            ),
            write=True,
            bump=False,
        )

    async def get_regulation(self, regulation_id: str) -> Regulation | None:
        return await self._run(lambda c: gov.get_regulation(c, regulation_id))

    async def list_regulations(
        self, workspace_id: str, *, status: str | None = None, source_id: str | None = None
    ) -> list[Regulation]:
        return await self._run(lambda c: gov.list_regulations(c, workspace_id, status, source_id))

    async def set_regulation_store(
        self,
        regulation_id: str,
        store: str,
        status: str,
        *,
        detail: str = "",
        removed: dict[str, int] | None = None,
    ) -> Regulation:
        return await self._run(
            lambda c: gov.set_regulation_store(c, regulation_id, store, status, detail, removed or {}),
            write=True,
            bump=False,
        )

    async def delete_regulation(self, regulation_id: str) -> bool:
        return await self._run(lambda c: gov.delete_regulation(c, regulation_id), write=True, bump=False)

    async def add_suppressions(
        self, workspace_id: str, subject_type: str, subject_ids: list[str], regulation_id: str
    ) -> int:
        return await self._run(
            lambda c: gov.add_suppressions(c, workspace_id, subject_type, subject_ids, regulation_id), write=True
        )

    async def remove_suppressions(self, workspace_id: str, subject_type: str, subject_ids: list[str]) -> int:
        return await self._run(
            lambda c: gov.remove_suppressions(c, workspace_id, subject_type, subject_ids), write=True
        )

    async def list_suppressions(self, workspace_id: str | None = None) -> list[Suppression]:
        return await self._run(lambda c: gov.list_suppressions(c, workspace_id))

    # ------------------------------------------------------------------- violations

    async def record_violations(self, counts: list[ViolationCount]) -> None:
        if counts:
            await self._run(lambda c: violations.record(c, counts), write=True, bump=False)

    async def violation_summary(
        self, workspace_id: str, now: float, *, plan: str | None = None, source_id: str | None = None
    ) -> list[ViolationSummary]:
        return await self._run(lambda c: violations.summary(c, workspace_id, now, plan, source_id))

    async def purge_violations(self, older_than: float) -> int:
        return await self._run(lambda c: violations.purge(c, older_than), write=True, bump=False)

    # ------------------------------------------------------------------- PII findings

    async def record_pii_findings(self, findings: list[PiiFinding]) -> None:
        if findings:
            await self._run(lambda c: pii_sqlite.record(c, findings), write=True, bump=False)

    async def list_pii_findings(self, workspace_id: str | None, *, source_id: str | None = None) -> list[PiiFinding]:
        return await self._run(lambda c: pii_sqlite.list_findings(c, workspace_id, source_id))

    async def clear_pii_findings(self, workspace_id: str, *, source_id: str | None = None) -> int:
        return await self._run(lambda c: pii_sqlite.clear(c, workspace_id, source_id), write=True, bump=False)
