"""SQLite queries for documents, the audit trail, regulations and suppressions.

Plain functions over a connection inside the store's transaction; ``state.sqlite`` wraps them.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import msgspec

from eventyard.errors import NotFound, Terminal
from eventyard.state.base import (
    AuditEntry,
    Document,
    Regulation,
    RegulationStoreStatus,
    Suppression,
    overall_regulation_status,
)
from eventyard.state.ids import new_id

_DOC_COLS = "workspace_id, kind, name, version, body, created_at, actor, deleted"
_AUDIT_COLS = "id, at, workspace_id, actor, action, target, origin, detail"
_REG_COLS = (
    "id, workspace_id, regulation_type, subject_type, subject_ids, status, created_at, finished_at, stores, source_id"
)
_STORES = msgspec.json.Decoder(dict[str, RegulationStoreStatus])


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


# ------------------------------------------------------------------ documents


def latest_document(c: sqlite3.Connection, workspace_id: str, kind: str, name: str) -> Document | None:
    row = c.execute(
        f"SELECT {_DOC_COLS} FROM documents WHERE workspace_id = ? AND kind = ? AND name = ? "
        "ORDER BY version DESC LIMIT 1",
        (workspace_id, kind, name),
    ).fetchone()
    return _document(row) if row else None


def put_document(
    c: sqlite3.Connection, workspace_id: str, kind: str, name: str, body: dict[str, Any], actor: str, deleted: bool
) -> Document:
    current = latest_document(c, workspace_id, kind, name)
    if current is not None and current.body == body and current.deleted == deleted:
        return current
    version = current.version + 1 if current else 1
    doc = Document(workspace_id, kind, name, version, body, time.time(), actor, deleted)
    c.execute(
        f"INSERT INTO documents ({_DOC_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (workspace_id, kind, name, version, msgspec.json.encode(body), doc.created_at, actor, int(deleted)),
    )
    return doc


def get_document(
    c: sqlite3.Connection, workspace_id: str, kind: str, name: str, version: int | None
) -> Document | None:
    if version is None:
        doc = latest_document(c, workspace_id, kind, name)
        return None if doc is None or doc.deleted else doc
    row = c.execute(
        f"SELECT {_DOC_COLS} FROM documents WHERE workspace_id = ? AND kind = ? AND name = ? AND version = ?",
        (workspace_id, kind, name, version),
    ).fetchone()
    return _document(row) if row else None


def list_documents(c: sqlite3.Connection, workspace_id: str | None, kind: str) -> list[Document]:
    where, args = (
        ("kind = ?", [kind]) if workspace_id is None else ("workspace_id = ? AND kind = ?", [workspace_id, kind])
    )
    rows = c.execute(
        f"SELECT {_DOC_COLS} FROM documents d WHERE {where} AND version = ("
        "SELECT max(version) FROM documents m WHERE m.workspace_id = d.workspace_id "
        "AND m.kind = d.kind AND m.name = d.name) AND deleted = 0 ORDER BY workspace_id, name",
        args,
    ).fetchall()
    return [_document(r) for r in rows]


def document_history(c: sqlite3.Connection, workspace_id: str, kind: str, name: str) -> list[Document]:
    rows = c.execute(
        f"SELECT {_DOC_COLS} FROM documents WHERE workspace_id = ? AND kind = ? AND name = ? ORDER BY version",
        (workspace_id, kind, name),
    ).fetchall()
    return [_document(r) for r in rows]


# ------------------------------------------------------------------ audit


def list_audit(
    c: sqlite3.Connection,
    workspace_id: str | None,
    since: float | None,
    until: float | None,
    actor: str | None,
    action: str | None,
    after_id: int,
    limit: int,
) -> list[AuditEntry]:
    clauses: list[str] = ["id > ?"]
    args: list[Any] = [after_id]
    for clause, value in (
        ("workspace_id = ?", workspace_id),
        ("at >= ?", since),
        ("at < ?", until),
        ("actor = ?", actor),
    ):
        if value is not None:
            clauses.append(clause)
            args.append(value)
    if action is not None:
        clauses.append("substr(action, 1, ?) = ?")
        args += [len(action), action]
    rows = c.execute(
        f"SELECT {_AUDIT_COLS} FROM audit_log WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ?", (*args, limit)
    ).fetchall()
    return [_audit(r) for r in rows]


# ------------------------------------------------------------------ regulations


def create_regulation(
    c: sqlite3.Connection,
    workspace_id: str,
    regulation_type: str,
    subject_type: str,
    subject_ids: list[str],
    stores: list[str],
    source_id: str,
) -> Regulation:
    now = time.time()
    states = {s: RegulationStoreStatus("INITIALIZED", updated_at=now) for s in stores}
    reg = Regulation(
        new_id("reg"),
        workspace_id,
        regulation_type,
        subject_type,
        list(subject_ids),
        overall_regulation_status(states),
        now,
        None,
        states,
        source_id,
    )
    if reg.status == "FINISHED":
        reg = msgspec.structs.replace(reg, finished_at=now)
    c.execute(
        f"INSERT INTO regulations ({_REG_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            reg.id,
            workspace_id,
            regulation_type,
            subject_type,
            msgspec.json.encode(reg.subject_ids),
            reg.status,
            now,
            reg.finished_at,
            msgspec.json.encode(states),
            source_id,
        ),
    )
    return reg


def get_regulation(c: sqlite3.Connection, regulation_id: str) -> Regulation | None:
    row = c.execute(f"SELECT {_REG_COLS} FROM regulations WHERE id = ?", (regulation_id,)).fetchone()
    return _regulation(row) if row else None


def list_regulations(
    c: sqlite3.Connection, workspace_id: str, status: str | None, source_id: str | None
) -> list[Regulation]:
    clauses, args = ["workspace_id = ?"], [workspace_id]
    if status is not None:
        clauses.append("status = ?")
        args.append(status)
    if source_id is not None:
        clauses.append("source_id = ?")
        args.append(source_id)
    rows = c.execute(
        f"SELECT {_REG_COLS} FROM regulations WHERE {' AND '.join(clauses)} ORDER BY created_at DESC, id DESC",
        args,
    ).fetchall()
    return [_regulation(r) for r in rows]


def set_regulation_store(
    c: sqlite3.Connection, regulation_id: str, store: str, status: str, detail: str, removed: dict[str, int]
) -> Regulation:
    reg = get_regulation(c, regulation_id)
    if reg is None:
        raise NotFound(f"regulation {regulation_id} does not exist")
    now = time.time()
    stores = {**reg.stores, store: RegulationStoreStatus(status, detail, removed, now)}
    overall = overall_regulation_status(stores)
    finished = None if overall in {"INITIALIZED", "RUNNING"} else (reg.finished_at or now)
    c.execute(
        "UPDATE regulations SET status = ?, finished_at = ?, stores = ? WHERE id = ?",
        (overall, finished, msgspec.json.encode(stores), regulation_id),
    )
    return msgspec.structs.replace(reg, status=overall, finished_at=finished, stores=stores)


def delete_regulation(c: sqlite3.Connection, regulation_id: str) -> bool:
    reg = get_regulation(c, regulation_id)
    if reg is None:
        return False
    if reg.status != "INITIALIZED":
        raise Terminal(f"regulation {regulation_id} is {reg.status}; only an INITIALIZED regulation can be deleted")
    c.execute("DELETE FROM regulations WHERE id = ?", (regulation_id,))
    return True


def add_suppressions(
    c: sqlite3.Connection, workspace_id: str, subject_type: str, subject_ids: list[str], regulation_id: str
) -> int:
    now = time.time()
    cur = c.executemany(
        "INSERT OR IGNORE INTO suppressions (workspace_id, subject_type, subject_id, regulation_id, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [(workspace_id, subject_type, s, regulation_id, now) for s in subject_ids],
    )
    return cur.rowcount


def remove_suppressions(c: sqlite3.Connection, workspace_id: str, subject_type: str, subject_ids: list[str]) -> int:
    cur = c.executemany(
        "DELETE FROM suppressions WHERE workspace_id = ? AND subject_type = ? AND subject_id = ?",
        [(workspace_id, subject_type, s) for s in subject_ids],
    )
    return cur.rowcount


def list_suppressions(c: sqlite3.Connection, workspace_id: str | None) -> list[Suppression]:
    cols = "workspace_id, subject_type, subject_id, regulation_id, created_at"
    if workspace_id is None:
        rows = c.execute(f"SELECT {cols} FROM suppressions ORDER BY created_at").fetchall()
    else:
        rows = c.execute(
            f"SELECT {cols} FROM suppressions WHERE workspace_id = ? ORDER BY created_at", (workspace_id,)
        ).fetchall()
    return [Suppression(*r) for r in rows]
