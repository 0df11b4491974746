"""The identity store's outbox: one change record per transaction that changed the graph.

``SCHEMA_V2`` adds ``idn_changes(seq, workspace_id, at, body)`` and ``idn_meta`` (one value:
up to which ``seq`` records were purged). ``ChangesSql`` holds the primitives, mixed into
``SqlGraphTx``. A record's ``body`` is ``eventyard.warehouse.identity_tables.Change`` as JSON;
the store keeps it as bytes and never looks inside.

Records are numbered in commit order: SQLite has one writer at a time, and PostgreSQL takes a
transaction-level advisory lock before it numbers a record, so a reader that sees record ``n``
has seen every record before it (the identity feed's position relies on it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: ``{REAL}``, ``{BLOB}``, ``{SERIAL}`` filled in per dialect, as in SCHEMA_V1.
SCHEMA_V2 = """
CREATE TABLE idn_changes (
    seq {SERIAL},
    workspace_id TEXT NOT NULL,
    at {REAL} NOT NULL,
    body {BLOB} NOT NULL
);
CREATE INDEX idn_changes_workspace ON idn_changes (workspace_id, seq);
CREATE INDEX idn_changes_at ON idn_changes (at);
CREATE TABLE idn_meta (
    name TEXT PRIMARY KEY,
    value {REAL} NOT NULL
);
CREATE TABLE idn_feeds (
    name TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    at {REAL} NOT NULL
)
"""

PURGED_UPTO = "changes_purged_upto"
#: Records are kept at most this long (a follower further behind gets a full load) ...
RETENTION_SECONDS = 7 * 86400.0
#: ... and only until every follower that reported within this time has loaded them; with no
#: such follower, this long (nobody would read them: a new follower starts with a full load).
FOLLOWER_SECONDS = 3600.0


class ChangesSql:
    """Outbox primitives over the dialect hooks of ``SqlGraphTx``."""

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _x(self, sql: str, params: Sequence[Any] = ()) -> int:
        raise NotImplementedError

    def _number_changes(self) -> None:
        """Called before a record is numbered (PostgreSQL: take the outbox lock)."""

    def add_change(self, workspace_id: str, at: float, body: bytes) -> None:
        self._number_changes()
        self._x("INSERT INTO idn_changes (workspace_id, at, body) VALUES (?, ?, ?)", (workspace_id, at, body))

    def changes_after(self, workspace_id: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        rows = self._q(
            "SELECT seq, body FROM idn_changes WHERE workspace_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (workspace_id, after, limit),
        )
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def report_position(self, follower: str, position: int, at: float) -> None:
        """A follower (a warehouse) has loaded every record up to ``position``. Purging keeps
        what the followers still need. Written in a durable transaction, it also flushes every
        commit before it to disk (the identity stage commits without waiting for the disk)."""
        self._x(
            "INSERT INTO idn_feeds (name, position, at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position, at = excluded.at",
            (follower, position, at),
        )

    def last_change(self) -> int:
        rows = self._q("SELECT max(seq) FROM idn_changes")
        found = int(rows[0][0] or 0) if rows else 0
        return max(found, self.changes_purged_upto())

    def changes_purged_upto(self) -> int:
        rows = self._q("SELECT value FROM idn_meta WHERE name = ?", (PURGED_UPTO,))
        return int(rows[0][0]) if rows else 0

    def purge_changes(self, older_than: float, followers_since: float | None = None) -> int:
        """Delete the records written before ``older_than``, and (``followers_since``) those
        every follower that reported since then has loaded; with no such follower, those
        written before ``followers_since``. Remembers the highest record gone: a follower
        behind it needs a full load."""

        def highest(sql: str, params: Sequence[Any]) -> int:
            rows = self._q(sql, params)
            return int(rows[0][0]) if rows and rows[0][0] is not None else 0

        upto = highest("SELECT max(seq) FROM idn_changes WHERE at < ?", (older_than,))
        if followers_since is not None:
            found = self._q("SELECT min(position), count(*) FROM idn_feeds WHERE at >= ?", (followers_since,))
            if found and found[0][1]:
                upto = max(upto, int(found[0][0]))
            else:
                upto = max(upto, highest("SELECT max(seq) FROM idn_changes WHERE at < ?", (followers_since,)))
        if upto <= self.changes_purged_upto():
            return 0
        n = self._x("DELETE FROM idn_changes WHERE seq <= ?", (upto,))
        self._x(
            "INSERT INTO idn_meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (PURGED_UPTO, upto),
        )
        return n

    # a full load: the workspace's graph as it is
    def workspace_profiles(self, workspace_id: str) -> list[tuple[str, str, str | None, float]]:
        """(id, collection, merged into, created at) of every profile of the workspace."""
        rows = self._q(
            "SELECT id, collection, merged_into, created_at FROM idn_profiles WHERE workspace_id = ?", (workspace_id,)
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def workspace_identifiers(self, workspace_id: str) -> list[tuple[str, str, str, str, str, float]]:
        """(collection, key, profile id, message id, source id, added at) of every identifier."""
        rows = self._q(
            "SELECT collection, key, profile_id, message_id, source_id, added_at FROM idn_identifiers "
            "WHERE workspace_id = ?",
            (workspace_id,),
        )
        return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def workspace_merges(self, workspace_id: str) -> list[tuple[Any, ...]]:
        """(id, collection, from, into, rule, message id, source id, event ts, at, undone at)."""
        return self._q(
            "SELECT id, collection, from_profile, into_profile, rule, message_id, source_id, event_ts, at, undone_at "
            "FROM idn_merges WHERE workspace_id = ? ORDER BY id",
            (workspace_id,),
        )
