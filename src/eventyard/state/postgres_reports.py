"""The PostgreSQL state store's reports: tracking-plan violation counts and PII findings
(mixed into ``PostgresStateStore``; same behaviour as ``violations_sqlite`` and ``pii_sqlite``).

A batch is added up per row before its upsert: one PostgreSQL statement may not update a row
twice, and two findings of one (source, path, kind) in a batch are common.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg

from eventyard.state.base import VIOLATION_BUCKET_SECONDS, PiiFinding, ViolationCount, ViolationSummary

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]

_VKEY = "workspace_id, source_id, plan, event_type, event_name, field, violation_type"
_PII_COLS = "workspace_id, source_id, path, kind, count, first_seen, last_seen"
HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY


async def _all(c: Conn, query: str, args: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
    cur = await c.execute(query.encode(), args)
    return list(await cur.fetchall())


async def _count(c: Conn, query: str, args: tuple[Any, ...] | list[Any] = ()) -> int:
    cur = await c.execute(query.encode(), args)
    return cur.rowcount


def _where(workspace_id: str | None, source_id: str | None) -> tuple[str, list[str]]:
    clauses, args = [], []
    if workspace_id is not None:
        clauses.append("workspace_id = %s")
        args.append(workspace_id)
    if source_id is not None:
        clauses.append("source_id = %s")
        args.append(source_id)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


class ReportsMixin:
    async def _run(self, fn: Callable[[Conn], Awaitable[T]], bump: bool = False) -> T:
        raise NotImplementedError

    # -------------------------------------------------------------- violations

    async def record_violations(self, counts: list[ViolationCount]) -> None:
        if not counts:
            return
        buckets: dict[tuple[Any, ...], list[Any]] = {}
        for v in counts:
            bucket = math.floor(v.at / VIOLATION_BUCKET_SECONDS) * VIOLATION_BUCKET_SECONDS
            key = (v.workspace_id, v.source_id, v.plan, v.event_type, v.event_name, v.field, v.violation_type, bucket)
            row = buckets.get(key)
            if row is None:
                buckets[key] = [v.count, v.at, v.description]
            else:
                row[0] += v.count
                if v.at >= row[1]:
                    row[1], row[2] = v.at, v.description
        keys = list(buckets)
        columns = [[k[i] for k in keys] for i in range(8)]
        values = [[buckets[k][i] for k in keys] for i in range(3)]
        types = ["text"] * 7 + ["float8"]
        arrays = ", ".join(f"%s::{t}[]" for t in [*types, "int8", "float8", "text"])
        await self._run(
            lambda c: c.execute(
                f"INSERT INTO plan_violations ({_VKEY}, bucket, count, last_seen, description) "
                f"SELECT * FROM unnest({arrays}) "
                f"ON CONFLICT ({_VKEY}, bucket) DO UPDATE SET count = plan_violations.count + excluded.count, "
                "last_seen = GREATEST(plan_violations.last_seen, excluded.last_seen), "
                "description = CASE WHEN excluded.last_seen >= plan_violations.last_seen "
                "THEN excluded.description ELSE plan_violations.description END".encode(),
                [*columns, *values],
            )
        )

    async def violation_summary(
        self, workspace_id: str, now: float, *, plan: str | None = None, source_id: str | None = None
    ) -> list[ViolationSummary]:
        where = ["workspace_id = %s", "bucket >= %s"]
        args: list[Any] = [workspace_id, now - WEEK]
        if plan is not None:
            where.append("plan = %s")
            args.append(plan)
        if source_id is not None:
            where.append("source_id = %s")
            args.append(source_id)
        rows = await self._run(
            lambda c: _all(
                c,
                "SELECT source_id, plan, event_type, event_name, field, violation_type, "
                "(array_agg(description ORDER BY last_seen DESC))[1], max(last_seen), "
                "sum(CASE WHEN bucket >= %s THEN count ELSE 0 END), sum(CASE WHEN bucket >= %s THEN count ELSE 0 END), "
                f"sum(count) FROM plan_violations WHERE {' AND '.join(where)} "
                f"GROUP BY {_VKEY} ORDER BY max(last_seen) DESC, event_name, field",
                [now - HOUR, now - DAY, *args],
            )
        )
        return [
            ViolationSummary(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], int(r[8]), int(r[9]), int(r[10]))
            for r in rows
        ]

    async def purge_violations(self, older_than: float) -> int:
        async def q(c: Conn) -> int:
            cur = await c.execute("DELETE FROM plan_violations WHERE bucket < %s", (older_than,))
            return cur.rowcount

        return await self._run(q)

    # ------------------------------------------------------------ PII findings

    async def record_pii_findings(self, findings: list[PiiFinding]) -> None:
        if not findings:
            return
        rows: dict[tuple[str, str, str, str], list[Any]] = {}
        for f in findings:
            key = (f.workspace_id, f.source_id, f.path, f.kind)
            row = rows.get(key)
            if row is None:
                rows[key] = [f.count, f.first_seen, f.last_seen]
            else:
                row[0] += f.count
                row[1] = min(row[1], f.first_seen)
                row[2] = max(row[2], f.last_seen)
        keys = list(rows)
        columns = [[k[i] for k in keys] for i in range(4)] + [[rows[k][i] for k in keys] for i in range(3)]
        await self._run(
            lambda c: c.execute(
                f"INSERT INTO pii_findings ({_PII_COLS}) SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], "
                "%s::text[], %s::int8[], %s::float8[], %s::float8[]) "
                "ON CONFLICT (workspace_id, source_id, path, kind) DO UPDATE SET "
                "count = pii_findings.count + excluded.count, "
                "first_seen = LEAST(pii_findings.first_seen, excluded.first_seen), "
                "last_seen = GREATEST(pii_findings.last_seen, excluded.last_seen)".encode(),
                columns,
            )
        )

    async def list_pii_findings(self, workspace_id: str | None, *, source_id: str | None = None) -> list[PiiFinding]:
        where, args = _where(workspace_id, source_id)
        rows = await self._run(
            lambda c: _all(c, f"SELECT {_PII_COLS} FROM pii_findings{where} ORDER BY source_id, path, kind", args)
        )
        return [PiiFinding(r[0], r[1], r[2], r[3], int(r[4]), r[5], r[6]) for r in rows]

    async def clear_pii_findings(self, workspace_id: str, *, source_id: str | None = None) -> int:
        where, args = _where(workspace_id, source_id)
        return await self._run(lambda c: _count(c, f"DELETE FROM pii_findings{where}", args))
