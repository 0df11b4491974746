"""The PostgreSQL state store's documents, audit trail, regulations and suppressions (mixed
into ``PostgresStateStore``).

Same behaviour as ``governance_sqlite``; the difference is PostgreSQL's: a document's next
version is taken under an advisory lock on its name, so two processes saving the same document
at once get versions n and n+1 instead of a conflict.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import psycopg

from eventyard.errors import NotFound, Terminal
from eventyard.state.base import (
    AuditEntry,
    Document,
    Regulation,
    RegulationStoreStatus,
    Suppression,
    overall_regulation_status,
)
from eventyard.state.group_commit import GroupCommit
from eventyard.state.ids import new_id

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]

_DOC_COLS = "workspace_id, kind, name, version, body, created_at, actor, deleted"
_AUDIT_COLS = "id, at, workspace_id, actor, action, target, origin, detail"
_REG_COLS = (
    "id, workspace_id, regulation_type, subject_type, subject_ids, status, created_at, finished_at, stores, source_id"
)
_STORES = msgspec.json.Decoder(dict[str, RegulationStoreStatus])
_INSERT_AUDIT = (
    "INSERT INTO audit_log (at, workspace_id, actor, action, target, origin, detail) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id"
)


def _text(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _document(row: Any) -> Document:
    return Document(row[0], row[1], row[2], row[3], msgspec.json.decode(row[4]), row[5], row[6], bool(row[7]))


def _audit(row: Any) -> AuditEntry:
    return AuditEntry(row[0], row[1], row[2], row[3], row[4], row[5], row[6], msgspec.json.decode(row[7]))


def _regulation(row: Any) -> Regulation:
    return Regulation(
        id=row[0],
        workspace_id=row[1],
        regulation_type=row[2],
        subject_type=row[3],
        subject_ids=msgspec.json.decode(row[4]),
        status=row[5],
        created_at=row[6],
        finished_at=row[7],
        stores=_STORES.decode(row[8]),
        source_id=row[9],
    )


async def _all(c: Conn, query: str, args: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
    cur = await c.execute(query.encode(), args)
    return list(await cur.fetchall())


async def _latest(c: Conn, workspace_id: str, kind: str, name: str) -> Document | None:
    rows = await _all(
        c,
        f"SELECT {_DOC_COLS} FROM documents WHERE workspace_id = %s AND kind = %s AND name = %s "
        "ORDER BY version DESC LIMIT 1",
        (workspace_id, kind, name),
    )
    return _document(rows[0]) if rows else None


async def _put(
    c: Conn, workspace_id: str, kind: str, name: str, body: dict[str, Any], actor: str, deleted: bool
) -> Document:
    await c.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"doc:{workspace_id}:{kind}:{name}",))
    current = await _latest(c, workspace_id, kind, name)
    if current is not None and current.body == body and current.deleted == deleted:
        return current
    doc = Document(workspace_id, kind, name, current.version + 1 if current else 1, body, time.time(), actor, deleted)
    await c.execute(
        f"INSERT INTO documents ({_DOC_COLS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)".encode(),
        (workspace_id, kind, name, doc.version, _text(body), doc.created_at, actor, deleted),
    )
    return doc


async def _get_regulation(c: Conn, regulation_id: str, lock: bool = False) -> Regulation | None:
    rows = await _all(
        c, f"SELECT {_REG_COLS} FROM regulations WHERE id = %s" + (" FOR UPDATE" if lock else ""), (regulation_id,)
    )
    return _regulation(rows[0]) if rows else None


class GovernanceMixin:
    #: Concurrent audit entries go into one transaction (see ``group_commit``); set up by the store.
    audit_writes: GroupCommit[tuple[AuditEntry, str], int]

    async def _run(self, fn: Callable[[Conn], Awaitable[T]], bump: bool = False) -> T:
        raise NotImplementedError

    async def _rows(self, query: str, args: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._run(lambda c: _all(c, query, args))

    # --------------------------------------------------------------- documents

    async def put_document(
        self, workspace_id: str, kind: str, name: str, body: dict[str, Any], *, actor: str = ""
    ) -> Document:
        return await self._run(lambda c: _put(c, workspace_id, kind, name, body, actor, False), bump=True)

    async def get_document(
        self, workspace_id: str, kind: str, name: str, version: int | None = None
    ) -> Document | None:
        if version is None:
            doc = await self._run(lambda c: _latest(c, workspace_id, kind, name))
            return None if doc is None or doc.deleted else doc
        rows = await self._rows(
            f"SELECT {_DOC_COLS} FROM documents WHERE workspace_id = %s AND kind = %s AND name = %s AND version = %s",
            (workspace_id, kind, name, version),
        )
        return _document(rows[0]) if rows else None

    async def list_documents(self, workspace_id: str | None, kind: str) -> list[Document]:
        where, args = (
            ("kind = %s", [kind]) if workspace_id is None else ("workspace_id = %s AND kind = %s", [workspace_id, kind])
        )
        rows = await self._rows(
            f"SELECT DISTINCT ON (workspace_id, name) {_DOC_COLS} FROM documents WHERE {where} "
            "ORDER BY workspace_id, name, version DESC",
            args,
        )
        return [d for d in map(_document, rows) if not d.deleted]

    async def document_history(self, workspace_id: str, kind: str, name: str) -> list[Document]:
        rows = await self._rows(
            f"SELECT {_DOC_COLS} FROM documents WHERE workspace_id = %s AND kind = %s AND name = %s ORDER BY version",
            (workspace_id, kind, name),
        )
        return [_document(r) for r in rows]

    async def delete_document(self, workspace_id: str, kind: str, name: str, *, actor: str = "") -> bool:
        async def q(c: Conn) -> bool:
            current = await _latest(c, workspace_id, kind, name)
            if current is None or current.deleted:
                return False
            await _put(c, workspace_id, kind, name, current.body, actor, True)
            return True

        return await self._run(q, bump=True)

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
        encoded = _text(entry.detail)  # here, so a detail that cannot be encoded fails alone
        return msgspec.structs.replace(entry, id=await self.audit_writes.submit((entry, encoded)))

    async def write_audit(self, drafts: list[tuple[AuditEntry, str]]) -> list[int]:
        """One group of :attr:`audit_writes`: the entries of concurrent requests in one transaction."""
        rows = [(e.at, e.workspace_id, e.actor, e.action, e.target, e.origin, detail) for e, detail in drafts]

        async def q(c: Conn) -> list[int]:
            if len(rows) == 1:  # alone: a plain statement (a pipeline costs an extra sync)
                return [int((await _all(c, _INSERT_AUDIT, rows[0]))[0][0])]
            cur = c.cursor()
            # pipelined: one round trip for the whole group; one result per row, in the rows' order
            await cur.executemany(_INSERT_AUDIT.encode(), rows, returning=True)
            ids: list[int] = []
            while True:
                row = await cur.fetchone()
                if row is not None:
                    ids.append(int(row[0]))
                if not cur.nextset():
                    return ids

        return await self._run(q)

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
        clauses: list[str] = ["id > %s"]
        args: list[Any] = [after_id]
        for clause, value in (
            ("workspace_id = %s", workspace_id),
            ("at >= %s", since),
            ("at < %s", until),
            ("actor = %s", actor),
        ):
            if value is not None:
                clauses.append(clause)
                args.append(value)
        if action is not None:
            clauses.append("left(action, %s) = %s")
            args += [len(action), action]
        rows = await self._rows(
            f"SELECT {_AUDIT_COLS} FROM audit_log WHERE {' AND '.join(clauses)} ORDER BY id LIMIT %s", [*args, limit]
        )
        return [_audit(r) for r in rows]

    # ------------------------------------------------------------- regulations

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
        now = time.time()
        states = {s: RegulationStoreStatus("INITIALIZED", updated_at=now) for s in stores}
        status = overall_regulation_status(states)
        reg = Regulation(
            new_id("reg"),
            workspace_id,
            regulation_type,
            subject_type,
            list(subject_ids),
            status,
            now,
            now if status == "FINISHED" else None,
            states,
            source_id,
        )
        await self._run(
            lambda c: c.execute(
                f"INSERT INTO regulations ({_REG_COLS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)".encode(),
                (
                    reg.id,
                    workspace_id,
                    regulation_type,
                    subject_type,
                    _text(reg.subject_ids),
                    reg.status,
                    now,
                    reg.finished_at,
                    _text(states),
                    source_id,
                ),
            )
        )
        return reg

    async def get_regulation(self, regulation_id: str) -> Regulation | None:
        return await self._run(lambda c: _get_regulation(c, regulation_id))

    async def list_regulations(
        self, workspace_id: str, *, status: str | None = None, source_id: str | None = None
    ) -> list[Regulation]:
        clauses, args = ["workspace_id = %s"], [workspace_id]
        if status is not None:
            clauses.append("status = %s")
            args.append(status)
        if source_id is not None:
            clauses.append("source_id = %s")
            args.append(source_id)
        rows = await self._rows(
            f"SELECT {_REG_COLS} FROM regulations WHERE {' AND '.join(clauses)} ORDER BY created_at DESC, id DESC",
            args,
        )
        return [_regulation(r) for r in rows]

    async def set_regulation_store(
        self,
        regulation_id: str,
        store: str,
        status: str,
        *,
        detail: str = "",
        removed: dict[str, int] | None = None,
    ) -> Regulation:
        async def q(c: Conn) -> Regulation:
            reg = await _get_regulation(c, regulation_id, lock=True)
            if reg is None:
                raise NotFound(f"regulation {regulation_id} does not exist")
            now = time.time()
            stores = {**reg.stores, store: RegulationStoreStatus(status, detail, removed or {}, now)}
            overall = overall_regulation_status(stores)
            finished = None if overall in {"INITIALIZED", "RUNNING"} else (reg.finished_at or now)
            await c.execute(
                "UPDATE regulations SET status = %s, finished_at = %s, stores = %s WHERE id = %s",
                (overall, finished, _text(stores), regulation_id),
            )
            return msgspec.structs.replace(reg, status=overall, finished_at=finished, stores=stores)

        return await self._run(q)

    async def delete_regulation(self, regulation_id: str) -> bool:
        async def q(c: Conn) -> bool:
            reg = await _get_regulation(c, regulation_id, lock=True)
            if reg is None:
                return False
            if reg.status != "INITIALIZED":
                raise Terminal(
                    f"regulation {regulation_id} is {reg.status}; only an INITIALIZED regulation can be deleted"
                )
            await c.execute("DELETE FROM regulations WHERE id = %s", (regulation_id,))
            return True

        return await self._run(q)

    async def add_suppressions(
        self, workspace_id: str, subject_type: str, subject_ids: list[str], regulation_id: str
    ) -> int:
        async def q(c: Conn) -> int:
            cur = await c.execute(
                "INSERT INTO suppressions (workspace_id, subject_type, subject_id, regulation_id, created_at) "
                "SELECT %s, %s, s, %s, %s FROM unnest(%s::text[]) AS t(s) ON CONFLICT DO NOTHING",
                (workspace_id, subject_type, regulation_id, time.time(), list(subject_ids)),
            )
            return cur.rowcount

        return await self._run(q, bump=True)

    async def remove_suppressions(self, workspace_id: str, subject_type: str, subject_ids: list[str]) -> int:
        async def q(c: Conn) -> int:
            cur = await c.execute(
                "DELETE FROM suppressions WHERE workspace_id = %s AND subject_type = %s AND subject_id = ANY(%s)",
                (workspace_id, subject_type, list(subject_ids)),
            )
            return cur.rowcount

        return await self._run(q, bump=True)

    async def list_suppressions(self, workspace_id: str | None = None) -> list[Suppression]:
        cols = "workspace_id, subject_type, subject_id, regulation_id, created_at"
        if workspace_id is None:
            rows = await self._rows(f"SELECT {cols} FROM suppressions ORDER BY created_at, subject_id")
        else:
            rows = await self._rows(
                f"SELECT {cols} FROM suppressions WHERE workspace_id = %s ORDER BY created_at, subject_id",
                (workspace_id,),
            )
        return [Suppression(*r) for r in rows]
