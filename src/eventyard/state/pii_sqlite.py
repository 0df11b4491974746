"""SQLite queries for PII findings (table ``pii_findings``, migration 5).

Plain functions over a connection inside the store's transaction; ``state.sqlite`` wraps them.
"""

from __future__ import annotations

import sqlite3

import msgspec

from eventyard.state.base import PiiFinding

_COLS = "workspace_id, source_id, path, kind, count, first_seen, last_seen"


def record(c: sqlite3.Connection, findings: list[PiiFinding]) -> None:
    if not findings:
        return
    rows = [[f.workspace_id, f.source_id, f.path, f.kind, f.count, f.first_seen, f.last_seen] for f in findings]
    # One statement for the whole batch (see ``mark_seen`` on why not executemany).
    c.execute(
        f"INSERT INTO pii_findings ({_COLS}) "
        "SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6 "
        "FROM json_each(?) WHERE true "
        "ON CONFLICT (workspace_id, source_id, path, kind) DO UPDATE SET count = count + excluded.count, "
        "first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)",
        (msgspec.json.encode(rows),),
    )


def _where(workspace_id: str | None, source_id: str | None) -> tuple[str, list[str]]:
    clauses, args = [], []
    if workspace_id is not None:
        clauses.append("workspace_id = ?")
        args.append(workspace_id)
    if source_id is not None:
        clauses.append("source_id = ?")
        args.append(source_id)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def list_findings(c: sqlite3.Connection, workspace_id: str | None, source_id: str | None) -> list[PiiFinding]:
    where, args = _where(workspace_id, source_id)
    rows = c.execute(f"SELECT {_COLS} FROM pii_findings{where} ORDER BY source_id, path, kind", args).fetchall()
    return [PiiFinding(*r) for r in rows]


def clear(c: sqlite3.Connection, workspace_id: str, source_id: str | None) -> int:
    where, args = _where(workspace_id, source_id)
    return c.execute(f"DELETE FROM pii_findings{where}", args).rowcount
