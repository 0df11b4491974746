"""The audit trail of the SQLite state store, in a database file of its own.

The trail sits beside the state file: ``state.sqlite3`` keeps its trail in
``state-audit.sqlite3`` (see :func:`audit_path_for`). A file of its own has a write lock of its
own: an audited read commits its entry without waiting for the pipeline's transactions on the
state file (identity resolution, deduplication), which hold that file's lock for tens of
milliseconds at a time.

Entries are written by one connection on one thread of their own, in groups
(:class:`~eventyard.state.group_commit.GroupCommit`): every entry that arrives while a commit
runs goes into the next transaction, so concurrent audited requests share one fsync instead of
queueing for one each. A caller's entry is durable (``synchronous=FULL``) before its
``append`` returns; when a group's transaction fails, every caller of that group gets the
error and none of the group's entries exists.

The table, its triggers (no ``UPDATE``, no ``DELETE``) and its ids are those the state file
had: data directories from before the split have their entries moved over once, ids kept
(:func:`move_from_state`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from eventyard.errors import Unavailable
from eventyard.state.base import AuditEntry
from eventyard.state.group_commit import GroupCommit
from eventyard.state.sqlite_connect import connect

T = TypeVar("T")

_COLS = "id, at, workspace_id, actor, action, target, origin, detail"

#: The same table, index and triggers as the state file's migration 3 created.
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        workspace_id TEXT,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        origin TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX IF NOT EXISTS audit_log_workspace ON audit_log (workspace_id, id)",
    """CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
)
#: Rows copied per statement when a state file's entries are moved over.
_MOVE_CHUNK = 5000

#: An entry to write (its ``id`` is not known yet) and its detail as JSON.
Draft = tuple[AuditEntry, bytes]


def audit_path_for(state_path: str | Path) -> Path:
    """``.../state.sqlite3`` -> ``.../state-audit.sqlite3``."""
    path = Path(state_path)
    return path.with_name(f"{path.stem}-audit{path.suffix}")


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    return row is not None


def move_from_state(audit: sqlite3.Connection, state: sqlite3.Connection) -> int:
    """Move the entries a state file still holds (data directories from before the split) into
    the audit file, with their ids, then drop the state file's table. Returns how many moved.

    The copy commits first; the state's table is dropped only after every one of its entries
    was found in the audit file. A crash in between repeats the rest of the move on the next
    start (entries already copied are skipped by id).
    """
    if not _has_table(state, "audit_log"):
        return 0
    moved = 0
    audit.execute("BEGIN IMMEDIATE")
    try:
        last = audit.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0]
        while True:
            rows = state.execute(
                f"SELECT {_COLS} FROM audit_log WHERE id > ? ORDER BY id LIMIT ?", (last, _MOVE_CHUNK)
            ).fetchall()
            if not rows:
                break
            audit.executemany(f"INSERT INTO audit_log ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            last, moved = rows[-1][0], moved + len(rows)
        count, top = state.execute("SELECT count(*), coalesce(max(id), 0) FROM audit_log").fetchone()
        copied = audit.execute("SELECT count(*) FROM audit_log WHERE id <= ?", (top,)).fetchone()[0]
        if copied != count:
            raise Unavailable(
                f"moving the audit trail to its own file: {count} entries in the state file, {copied} copied; "
                "nothing was removed, the next start tries again"
            )
        audit.execute("COMMIT")
    except BaseException:
        audit.execute("ROLLBACK")
        raise
    state.execute("BEGIN IMMEDIATE")
    try:
        if _has_table(state, "audit_log"):  # another process may have finished the move meanwhile
            state.execute("DROP TABLE audit_log")  # its triggers and index go with it
        state.execute("COMMIT")
    except BaseException:
        state.execute("ROLLBACK")
        raise
    return moved


def write_group(conn: sqlite3.Connection, drafts: list[Draft]) -> list[int]:
    """Insert ``drafts`` in one transaction (one fsync); their ids, in order."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        ids: list[int] = []
        for entry, detail in drafts:
            cur = conn.execute(
                "INSERT INTO audit_log (at, workspace_id, actor, action, target, origin, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (entry.at, entry.workspace_id, entry.actor, entry.action, entry.target, entry.origin, detail),
            )
            assert cur.lastrowid is not None
            ids.append(cur.lastrowid)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return ids


class SQLiteAuditTrail:
    """The audit file: one writer connection on its own thread (grouped commits), one reader."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._thread: ThreadPoolExecutor | None = None
        self.group: GroupCommit[Draft, int] = GroupCommit(self._commit)

    def open(self, state: sqlite3.Connection | None) -> None:
        """Create the table if needed and move a state file's entries over (blocking; at start)."""
        writer = connect(self.path, read_only=False)  # synchronous=FULL: an entry is on disk before its caller goes on
        try:
            writer.execute("BEGIN IMMEDIATE")
            try:
                for statement in SCHEMA:
                    writer.execute(statement)
                writer.execute("COMMIT")
            except BaseException:
                writer.execute("ROLLBACK")
                raise
            if state is not None:
                move_from_state(writer, state)
            reader = connect(self.path, read_only=True)
        except BaseException:
            writer.close()
            raise
        self._writer, self._reader = writer, reader
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eventyard-audit")

    async def close(self) -> None:
        writer, reader, thread = self._writer, self._reader, self._thread
        self._writer = self._reader = self._thread = None
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(thread, lambda: writer.close() if writer else None)
            thread.shutdown(wait=True)
        if reader is not None:
            with self._read_lock:
                reader.close()

    async def append(self, entry: AuditEntry, detail: bytes) -> int:
        """Write ``entry`` (with ``detail`` as JSON) in the next group; its id once durable."""
        return await self.group.submit((entry, detail))

    async def _commit(self, drafts: list[Draft]) -> list[int]:
        thread = self._thread
        if thread is None:
            raise Unavailable("the state store is not started")
        return await asyncio.get_running_loop().run_in_executor(thread, self.write, drafts)

    def write(self, drafts: list[Draft]) -> list[int]:
        """One group's transaction, on the audit thread (tests replace it to make it fail)."""
        conn = self._writer
        if conn is None:
            raise Unavailable("the state store is not started")
        try:
            return write_group(conn, drafts)
        except sqlite3.Error as exc:
            raise Unavailable(f"the audit trail cannot be written: {exc}") from exc

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` over the reader connection (blocking; callers use a worker thread)."""
        with self._read_lock:
            conn = self._reader
            if conn is None:
                raise Unavailable("the state store is not started")
            try:
                return fn(conn)
            except sqlite3.Error as exc:
                raise Unavailable(f"the audit trail cannot be read: {exc}") from exc
