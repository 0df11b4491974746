"""Event history of account (group) profiles.

An event's history row (``idn_events``) belongs to its user profile and is keyed by source and
messageId. A group call also belongs to its account: ``idn_account_events`` (schema version 3)
lists, per account profile, the events it was stamped with, and the account's ``/events``
read the bodies from ``idn_events`` through it. Rows whose event is past the retention are
purged with it (the join would skip them anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: ``{REAL}`` per dialect.
SCHEMA_V3 = """
CREATE TABLE idn_account_events (
    workspace_id TEXT NOT NULL,
    account_profile TEXT NOT NULL,
    source_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    ts {REAL} NOT NULL,
    received {REAL} NOT NULL,
    PRIMARY KEY (workspace_id, source_id, message_id, account_profile)
);
CREATE INDEX idn_account_events_profile ON idn_account_events (account_profile, ts, message_id);
CREATE INDEX idn_account_events_received ON idn_account_events (received)
"""

#: (workspace id, account profile, source id, message id, event ts, received)
AccountEvent = tuple[str, str, str, str, float, float]

_COLS = "e.workspace_id, e.source_id, e.message_id, a.account_profile, a.ts, e.received, e.type, e.name, e.ids"


class AccountEventsSql:
    """Primitives over the dialect hooks of ``SqlGraphTx``."""

    def _x(self, sql: str, params: Sequence[Any] = ()) -> int:
        raise NotImplementedError

    def _many(self, sql: str, rows: Any) -> None:
        raise NotImplementedError

    def _q_in(
        self, sql: str, before: Sequence[Any], values: Sequence[Any], after: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def insert_account_events(self, rows: Sequence[AccountEvent]) -> None:
        """Rows already there (same workspace, source, messageId and account) are left alone."""
        if rows:
            self._many(
                "INSERT INTO idn_account_events (workspace_id, account_profile, source_id, message_id, ts, received) "
                "VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (workspace_id, source_id, message_id, account_profile) DO NOTHING",
                rows,
            )

    def account_event_rows(
        self,
        profile_ids: Sequence[str],
        *,
        start: float | None = None,
        end: float | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
        after: tuple[float, str] | None = None,
        descending: bool = True,
        with_body: bool = True,
    ) -> list[tuple[Any, ...]]:
        """Rows shaped like ``idn_events`` (``profile_id`` is the account) for ``events_of``."""
        if not profile_ids:
            return []
        where = ["a.account_profile {in}"]
        params: list[Any] = []
        if start is not None:
            where.append("a.ts >= ?")
            params.append(start)
        if end is not None:
            where.append("a.ts < ?")
            params.append(end)
        if before is not None:
            where.append("(a.ts < ? OR (a.ts = ? AND a.message_id < ?))")
            params += [before[0], before[0], before[1]]
        if after is not None:
            where.append("(a.ts > ? OR (a.ts = ? AND a.message_id > ?))")
            params += [after[0], after[0], after[1]]
        order = "DESC" if descending else "ASC"
        cols = _COLS + (", e.body" if with_body else "")
        sql = (
            f"SELECT {cols} FROM idn_account_events a JOIN idn_events e ON e.workspace_id = a.workspace_id "
            f"AND e.source_id = a.source_id AND e.message_id = a.message_id WHERE {' AND '.join(where)} "
            f"ORDER BY a.ts {order}, a.message_id {order} LIMIT ?"
        )
        return self._q_in(sql, (), profile_ids, (*params, limit))

    def purge_account_events(self, older_than: float) -> int:
        return self._x("DELETE FROM idn_account_events WHERE received < ?", (older_than,))
