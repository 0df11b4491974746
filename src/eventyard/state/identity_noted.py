"""Which events' refusals were already counted (schema version 4).

A batch the pipeline runs again (its log commit failed after the identity stage committed, or
a later stage failed) resolves the same events again; their refused identifiers must not be
counted twice in ``idn_decisions``. ``idn_noted`` holds the log position and messageId of every
event whose refusals were counted (only events with refusals get a row; the messageId keeps a
log that starts again from position 1 from looking like a retry), and ``mark_noted`` tells
which are new, inside the same transaction that counts them. Rows go with the decisions'
housekeeping (``purge``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: ``{REAL}`` per dialect.
SCHEMA_V4 = """
CREATE TABLE idn_noted (
    workspace_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    message_id TEXT NOT NULL,
    at {REAL} NOT NULL,
    PRIMARY KEY (workspace_id, position, message_id)
);
CREATE INDEX idn_noted_at ON idn_noted (at)
"""


class NotedSql:
    """Primitives over the dialect hooks of ``SqlGraphTx``."""

    def _x(self, sql: str, params: Sequence[Any] = ()) -> int:
        raise NotImplementedError

    def _many(self, sql: str, rows: Any) -> None:
        raise NotImplementedError

    def _q_in(
        self, sql: str, before: Sequence[Any], values: Sequence[Any], after: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def mark_noted(self, workspace_id: str, events: Sequence[tuple[int, str]], at: float) -> set[tuple[int, str]]:
        """Mark the events ``(position, message id)``; returns those not marked before."""
        wanted = set(events)
        if not wanted:
            return set()
        rows = self._q_in(
            "SELECT position, message_id FROM idn_noted WHERE workspace_id = ? AND position {in}",
            (workspace_id,),
            sorted({p for p, _ in wanted}),
        )
        fresh = wanted - {(int(r[0]), str(r[1])) for r in rows}
        if fresh:
            self._many(
                "INSERT INTO idn_noted (workspace_id, position, message_id, at) VALUES (?, ?, ?, ?)",
                [(workspace_id, p, m, at) for p, m in sorted(fresh)],
            )
        return fresh

    def purge_noted(self, older_than: float) -> int:
        return self._x("DELETE FROM idn_noted WHERE at < ?", (older_than,))
