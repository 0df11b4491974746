"""``GraphTx`` in SQL, shared by the SQLite and PostgreSQL identity stores.

Statements are written once with ``?`` placeholders and ``{in}`` where a list goes; a
dialect subclass turns them into its driver's form (``IN (?, ?, ...)`` in chunks for
SQLite, ``= ANY(%s)`` with one array for PostgreSQL) and names its column types.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from eventyard.state.identity_accounts import AccountEventsSql
from eventyard.state.identity_base import DecisionRow, EventRow, IdentifierRow, LinkRow, MergeRow, ProfileRow, Touch
from eventyard.state.identity_changes import ChangesSql
from eventyard.state.identity_noted import NotedSql

#: The tables of the identity store. ``{REAL}``, ``{BLOB}``, ``{SERIAL}`` and ``{NOROWID}``
#: are filled in per dialect. Version 1.
SCHEMA_V1 = """
CREATE TABLE idn_rules (
    workspace_id TEXT PRIMARY KEY,
    rules TEXT NOT NULL,
    updated_at {REAL} NOT NULL
);
CREATE TABLE idn_profiles (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    collection TEXT NOT NULL,
    created_at {REAL} NOT NULL,
    updated_at {REAL} NOT NULL,
    merged_into TEXT,
    merges INTEGER NOT NULL DEFAULT 0,
    first_seen {REAL},
    last_seen {REAL},
    first_message_id TEXT,
    first_source_id TEXT,
    last_message_id TEXT,
    last_source_id TEXT
){NOROWID};
CREATE TABLE idn_profile_traits (
    profile_id TEXT PRIMARY KEY,
    traits TEXT NOT NULL
);
CREATE TABLE idn_profile_sources (
    profile_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    first_at {REAL} NOT NULL,
    PRIMARY KEY (profile_id, source_id)
);
CREATE INDEX idn_profiles_merged ON idn_profiles (merged_into) WHERE merged_into IS NOT NULL;
CREATE TABLE idn_identifiers (
    workspace_id TEXT NOT NULL,
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    added_at {REAL} NOT NULL,
    message_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    origin_profile TEXT NOT NULL,
    created_at {REAL} NOT NULL,
    PRIMARY KEY (workspace_id, collection, key)
){NOROWID};
CREATE INDEX idn_identifiers_profile ON idn_identifiers (profile_id, key, added_at);
CREATE TABLE idn_merges (
    id {SERIAL},
    workspace_id TEXT NOT NULL,
    collection TEXT NOT NULL,
    into_profile TEXT NOT NULL,
    from_profile TEXT NOT NULL,
    message_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    detail TEXT NOT NULL,
    identifiers TEXT NOT NULL,
    event_ts {REAL} NOT NULL,
    at {REAL} NOT NULL,
    undone_at {REAL},
    undone_reason TEXT
);
CREATE INDEX idn_merges_into ON idn_merges (into_profile);
CREATE INDEX idn_merges_from ON idn_merges (from_profile);
CREATE TABLE idn_decisions (
    profile_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    key TEXT NOT NULL,
    rule TEXT NOT NULL,
    detail TEXT NOT NULL,
    message_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    first_at {REAL} NOT NULL,
    at {REAL} NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (profile_id, workspace_id, key, rule)
);
CREATE INDEX idn_decisions_at ON idn_decisions (at);
CREATE TABLE idn_events (
    workspace_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    ts {REAL} NOT NULL,
    received {REAL} NOT NULL,
    type TEXT NOT NULL,
    name TEXT,
    ids TEXT NOT NULL,
    body {BLOB} NOT NULL,
    PRIMARY KEY (workspace_id, source_id, message_id)
);
CREATE INDEX idn_events_profile ON idn_events (profile_id, ts, message_id);
CREATE INDEX idn_events_received ON idn_events (received);
CREATE TABLE idn_links (
    workspace_id TEXT NOT NULL,
    user_profile TEXT NOT NULL,
    account_profile TEXT NOT NULL,
    first_at {REAL} NOT NULL,
    last_at {REAL} NOT NULL,
    message_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    PRIMARY KEY (user_profile, account_profile)
);
CREATE INDEX idn_links_account ON idn_links (account_profile);
"""

_PROFILE_COLS = (
    "id, workspace_id, collection, created_at, updated_at, merged_into, merges, first_seen, last_seen, "
    "first_message_id, first_source_id, last_message_id, last_source_id"
)
_IDENT_COLS = "workspace_id, collection, key, profile_id, added_at, message_id, source_id, origin_profile, created_at"
_MERGE_COLS = (
    "workspace_id, collection, into_profile, from_profile, message_id, source_id, rule, detail, identifiers, "
    "event_ts, at, id, undone_at, undone_reason"
)
_DECISION_COLS = "workspace_id, profile_id, key, rule, detail, message_id, source_id, at, count, first_at"
_EVENT_COLS = "workspace_id, source_id, message_id, profile_id, ts, received, type, name, ids"
_LINK_COLS = "workspace_id, user_profile, account_profile, first_at, last_at, message_id, source_id"

_json = msgspec.json.encode
_traits = msgspec.json.Decoder(dict[str, list[Any]])
_ids = msgspec.json.Decoder(list[str])
_idmap = msgspec.json.Decoder(dict[str, str])


def _profile(row: Sequence[Any]) -> ProfileRow:
    return ProfileRow(
        id=row[0],
        workspace_id=row[1],
        collection=row[2],
        created_at=row[3],
        updated_at=row[4],
        merged_into=row[5],
        merges=row[6],
        first_seen=row[7],
        last_seen=row[8],
        first_message_id=row[9],
        first_source_id=row[10],
        last_message_id=row[11],
        last_source_id=row[12],
    )


def _merge(row: Sequence[Any]) -> MergeRow:
    return MergeRow(
        workspace_id=row[0],
        collection=row[1],
        into_profile=row[2],
        from_profile=row[3],
        message_id=row[4],
        source_id=row[5],
        rule=row[6],
        detail=row[7],
        identifiers=_idmap.decode(row[8]),
        event_ts=row[9],
        at=row[10],
        id=row[11],
        undone_at=row[12],
        undone_reason=row[13],
    )


def _event(row: Sequence[Any], body: Any = b"") -> EventRow:
    return EventRow(
        workspace_id=row[0],
        source_id=row[1],
        message_id=row[2],
        profile_id=row[3],
        ts=row[4],
        received=row[5],
        type=row[6],
        name=row[7],
        ids=_ids.decode(row[8]),
        body=bytes(body) if body else b"",
    )


class SqlGraphTx(ChangesSql, AccountEventsSql, NotedSql):
    """The SQL of every primitive; subclasses run statements on their driver."""

    #: How a dialect spells ``least``/``greatest`` of two values.
    LEAST = "min"
    GREATEST = "max"

    # ------------------------------------------------------------ driver hooks

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _x(self, sql: str, params: Sequence[Any] = ()) -> int:
        raise NotImplementedError

    def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _q_in(
        self, sql: str, before: Sequence[Any], values: Sequence[Any], after: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Run ``sql`` whose ``{in}`` stands for membership in ``values``."""
        raise NotImplementedError

    def _x_in(self, sql: str, before: Sequence[Any], values: Sequence[Any], after: Sequence[Any] = ()) -> int:
        raise NotImplementedError

    # ------------------------------------------------------------------- graph

    def lookup(self, workspace_id: str, collection: str, keys: Sequence[str]) -> dict[str, str]:
        if not keys:
            return {}
        rows = self._q_in(
            "SELECT key, profile_id FROM idn_identifiers WHERE workspace_id = ? AND collection = ? AND key {in}",
            (workspace_id, collection),
            keys,
        )
        return {r[0]: r[1] for r in rows}

    def load_profiles(self, ids: Sequence[str], traits: bool = False) -> dict[str, ProfileRow]:
        if not ids:
            return {}
        rows = self._q_in(f"SELECT {_PROFILE_COLS} FROM idn_profiles WHERE id {{in}}", (), ids)
        found = {r[0]: _profile(r) for r in rows}
        if traits:
            for pid, values in self.load_traits(list(found)).items():
                found[pid].traits = values
        return found

    def profile_of(self, workspace_id: str, collection: str, key: str) -> ProfileRow | None:
        # one statement instead of lookup + load_profiles(traits=True): the Profile API reads on
        # the event loop, and every statement there gives up the GIL and must win it back
        cols = ", ".join("p." + c for c in _PROFILE_COLS.split(", "))
        rows = self._q(
            f"SELECT {cols}, t.traits FROM idn_identifiers i JOIN idn_profiles p ON p.id = i.profile_id "
            "LEFT JOIN idn_profile_traits t ON t.profile_id = p.id "
            "WHERE i.workspace_id = ? AND i.collection = ? AND i.key = ?",
            (workspace_id, collection, key),
        )
        if not rows:
            return None
        row = _profile(rows[0])
        if rows[0][-1] is not None:
            row.traits = _traits.decode(rows[0][-1])
        return row

    def load_identifiers(self, profile_ids: Sequence[str]) -> list[IdentifierRow]:
        if not profile_ids:
            return []
        rows = self._q_in(
            f"SELECT {_IDENT_COLS} FROM idn_identifiers WHERE profile_id {{in}} ORDER BY profile_id, key",
            (),
            profile_ids,
        )
        return [IdentifierRow(*r) for r in rows]

    def profile_heads(self, ids: Sequence[str]) -> dict[str, tuple[float, int]]:
        if not ids:
            return {}
        rows = self._q_in("SELECT id, created_at, merges FROM idn_profiles WHERE id {in}", (), ids)
        return {r[0]: (r[1], r[2]) for r in rows}

    def identifier_times(self, profile_ids: Sequence[str]) -> list[tuple[str, str, float]]:
        if not profile_ids:
            return []
        rows = self._q_in(
            "SELECT profile_id, key, added_at FROM idn_identifiers WHERE profile_id {in}", (), profile_ids
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def identifier_page(
        self, profile_id: str, after: str | None, limit: int, types: Sequence[str] | None
    ) -> list[IdentifierRow]:
        sql = f"SELECT {_IDENT_COLS} FROM idn_identifiers WHERE profile_id = ? AND key > ? ORDER BY key LIMIT ?"
        if not types:
            rows = self._q(sql, (profile_id, after or "", limit))
            return [IdentifierRow(*r) for r in rows]
        # Filter by type in Python: a profile holds at most a few thousand identifiers.
        wanted = set(types)
        out: list[IdentifierRow] = []
        cursor = after or ""
        while len(out) < limit:
            rows = self._q(sql, (profile_id, cursor, 500))
            if not rows:
                break
            cursor = rows[-1][2]
            out += [IdentifierRow(*r) for r in rows if r[2].partition(":")[0] in wanted]
        return out[:limit]

    def insert_profiles(self, rows: Sequence[ProfileRow]) -> None:
        self._many(
            f"INSERT INTO idn_profiles ({_PROFILE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    p.id,
                    p.workspace_id,
                    p.collection,
                    p.created_at,
                    p.updated_at,
                    p.merged_into,
                    p.merges,
                    p.first_seen,
                    p.last_seen,
                    p.first_message_id,
                    p.first_source_id,
                    p.last_message_id,
                    p.last_source_id,
                )
                for p in rows
            ),
        )
        with_traits = [(p.id, p.traits, p.updated_at) for p in rows if p.traits]
        if with_traits:
            self.save_traits(with_traits)

    def save_profiles(self, rows: Sequence[ProfileRow], traits: bool) -> None:
        self._many(
            "UPDATE idn_profiles SET updated_at = ?, merged_into = ?, merges = ?, first_seen = ?, last_seen = ?, "
            "first_message_id = ?, first_source_id = ?, last_message_id = ?, last_source_id = ? WHERE id = ?",
            (
                (
                    p.updated_at,
                    p.merged_into,
                    p.merges,
                    p.first_seen,
                    p.last_seen,
                    p.first_message_id,
                    p.first_source_id,
                    p.last_message_id,
                    p.last_source_id,
                    p.id,
                )
                for p in rows
            ),
        )
        if traits:
            self.save_traits([(p.id, p.traits, p.updated_at) for p in rows])

    def upsert_identifiers(self, rows: Sequence[IdentifierRow]) -> None:
        self._many(
            f"INSERT INTO idn_identifiers ({_IDENT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (workspace_id, collection, key) DO UPDATE SET profile_id = excluded.profile_id",
            (
                (
                    r.workspace_id,
                    r.collection,
                    r.key,
                    r.profile_id,
                    r.added_at,
                    r.message_id,
                    r.source_id,
                    r.origin_profile,
                    r.created_at,
                )
                for r in rows
            ),
        )

    def merged_of(self, ids: Sequence[str]) -> dict[str, str]:
        if not ids:
            return {}
        rows = self._q_in("SELECT id, merged_into FROM idn_profiles WHERE id {in} AND merged_into IS NOT NULL", (), ids)
        return {r[0]: r[1] for r in rows}

    def touch_profiles(self, rows: Sequence[Touch]) -> None:
        # one statement per profile: each side changes only when the batch's event is older/newer
        self._many(
            "UPDATE idn_profiles SET "
            "first_message_id = CASE WHEN first_seen IS NULL OR first_seen > ? THEN ? ELSE first_message_id END, "
            "first_source_id = CASE WHEN first_seen IS NULL OR first_seen > ? THEN ? ELSE first_source_id END, "
            "first_seen = CASE WHEN first_seen IS NULL OR first_seen > ? THEN ? ELSE first_seen END, "
            "last_message_id = CASE WHEN last_seen IS NULL OR last_seen <= ? THEN ? ELSE last_message_id END, "
            "last_source_id = CASE WHEN last_seen IS NULL OR last_seen <= ? THEN ? ELSE last_source_id END, "
            "updated_at = CASE WHEN last_seen IS NULL OR last_seen <= ? THEN ? ELSE updated_at END, "
            "last_seen = CASE WHEN last_seen IS NULL OR last_seen <= ? THEN ? ELSE last_seen END "
            "WHERE id = ?",
            (
                (
                    t.first_seen,
                    t.first_message_id,
                    t.first_seen,
                    t.first_source_id,
                    t.first_seen,
                    t.first_seen,
                    t.last_seen,
                    t.last_message_id,
                    t.last_seen,
                    t.last_source_id,
                    t.last_seen,
                    t.at,
                    t.last_seen,
                    t.last_seen,
                    t.profile_id,
                )
                for t in rows
            ),
        )

    def add_sources(self, rows: Sequence[tuple[str, str, float]]) -> None:
        self._many(
            "INSERT INTO idn_profile_sources (profile_id, source_id, first_at) VALUES (?, ?, ?) "
            "ON CONFLICT (profile_id, source_id) DO NOTHING",
            rows,
        )

    def sources_of(self, profile_ids: Sequence[str]) -> dict[str, list[tuple[str, float]]]:
        out: dict[str, list[tuple[str, float]]] = {}
        if profile_ids:
            rows = self._q_in(
                "SELECT profile_id, source_id, first_at FROM idn_profile_sources WHERE profile_id {in} "
                "ORDER BY first_at, source_id",
                (),
                profile_ids,
            )
            for pid, source, at in rows:
                out.setdefault(pid, []).append((source, at))
        return out

    def load_traits(self, ids: Sequence[str]) -> dict[str, dict[str, list[Any]]]:
        """Traits of the profiles that have any."""
        if not ids:
            return {}
        rows = self._q_in("SELECT profile_id, traits FROM idn_profile_traits WHERE profile_id {in}", (), ids)
        return {r[0]: _traits.decode(r[1]) for r in rows}

    def save_traits(self, rows: Sequence[tuple[str, dict[str, list[Any]], float]]) -> None:
        self._many(
            "INSERT INTO idn_profile_traits (profile_id, traits) VALUES (?, ?) "
            "ON CONFLICT (profile_id) DO UPDATE SET traits = excluded.traits",
            ((pid, _json(traits).decode()) for pid, traits, _at in rows),
        )
        self._set_updated_at([(pid, at) for pid, _traits, at in rows])

    def _set_updated_at(self, rows: Sequence[tuple[str, float]]) -> None:
        self._many("UPDATE idn_profiles SET updated_at = ? WHERE id = ?", ((at, pid) for pid, at in rows))

    def repoint_identifiers(self, workspace_id: str, moves: Sequence[tuple[str, str]]) -> None:
        self._many(
            "UPDATE idn_identifiers SET profile_id = ? WHERE profile_id = ? AND workspace_id = ?",
            ((to, src, workspace_id) for src, to in moves),
        )

    def redirect_merged(self, moves: Sequence[tuple[str, str]]) -> None:
        self._many("UPDATE idn_profiles SET merged_into = ? WHERE merged_into = ?", ((to, src) for src, to in moves))

    def delete_identifiers(self, workspace_id: str, collection: str, keys: Sequence[str]) -> None:
        if keys:
            self._x_in(
                "DELETE FROM idn_identifiers WHERE workspace_id = ? AND collection = ? AND key {in}",
                (workspace_id, collection),
                keys,
            )

    def members(self, profile_id: str) -> list[str]:
        rows = self._q("SELECT id FROM idn_profiles WHERE merged_into = ? ORDER BY id", (profile_id,))
        return [profile_id, *(r[0] for r in rows)]

    # ------------------------------------------------------ merges, decisions

    def insert_merges(self, rows: Sequence[MergeRow]) -> None:
        self._many(
            "INSERT INTO idn_merges (workspace_id, collection, into_profile, from_profile, message_id, source_id, "
            "rule, detail, identifiers, event_ts, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    m.workspace_id,
                    m.collection,
                    m.into_profile,
                    m.from_profile,
                    m.message_id,
                    m.source_id,
                    m.rule,
                    m.detail,
                    _json(m.identifiers).decode(),
                    m.event_ts,
                    m.at,
                )
                for m in rows
            ),
        )

    def merges_of(self, profile_ids: Sequence[str]) -> list[MergeRow]:
        if not profile_ids:
            return []
        found: dict[int, MergeRow] = {}
        for column in ("into_profile", "from_profile"):
            for r in self._q_in(f"SELECT {_MERGE_COLS} FROM idn_merges WHERE {column} {{in}}", (), profile_ids):
                found[r[11]] = _merge(r)
        return [found[k] for k in sorted(found)]

    def merge_by_id(self, workspace_id: str, merge_id: int) -> MergeRow | None:
        rows = self._q(
            f"SELECT {_MERGE_COLS} FROM idn_merges WHERE id = ? AND workspace_id = ?", (merge_id, workspace_id)
        )
        return _merge(rows[0]) if rows else None

    def undo_merge(self, merge_id: int, at: float, reason: str) -> None:
        self._x("UPDATE idn_merges SET undone_at = ?, undone_reason = ? WHERE id = ?", (at, reason, merge_id))

    def note_decisions(self, rows: Sequence[DecisionRow]) -> None:
        self._many(
            "INSERT INTO idn_decisions (profile_id, workspace_id, key, rule, detail, message_id, source_id, first_at, "
            "at, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (profile_id, workspace_id, key, rule) DO UPDATE SET "
            "count = idn_decisions.count + excluded.count, at = excluded.at, detail = excluded.detail, "
            "message_id = excluded.message_id, source_id = excluded.source_id",
            (
                (
                    d.profile_id,
                    d.workspace_id,
                    d.key,
                    d.rule,
                    d.detail,
                    d.message_id,
                    d.source_id,
                    d.first_at if d.first_at is not None else d.at,
                    d.at,
                    d.count,
                )
                for d in rows
            ),
        )

    def decisions_of(self, profile_ids: Sequence[str]) -> list[DecisionRow]:
        if not profile_ids:
            return []
        rows = self._q_in(
            f"SELECT {_DECISION_COLS} FROM idn_decisions WHERE profile_id {{in}} ORDER BY at, key", (), profile_ids
        )
        return [DecisionRow(*r) for r in rows]

    # ------------------------------------------------------------------ events

    def insert_events(self, rows: Sequence[EventRow]) -> None:
        self._many(
            f"INSERT INTO idn_events ({_EVENT_COLS}, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (workspace_id, source_id, message_id) DO NOTHING",
            (
                (
                    e.workspace_id,
                    e.source_id,
                    e.message_id,
                    e.profile_id,
                    e.ts,
                    e.received,
                    e.type,
                    e.name,
                    _json(e.ids).decode(),
                    e.body,
                )
                for e in rows
            ),
        )

    def events_of(
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
        accounts: bool = False,
    ) -> list[EventRow]:
        if accounts:
            found = self.account_event_rows(
                profile_ids,
                start=start,
                end=end,
                limit=limit,
                before=before,
                after=after,
                descending=descending,
                with_body=with_body,
            )
            return [_event(r, r[9] if with_body else b"") for r in found]
        if not profile_ids:
            return []
        where = ["profile_id {in}"]
        params: list[Any] = []
        if start is not None:
            where.append("ts >= ?")
            params.append(start)
        if end is not None:
            where.append("ts < ?")
            params.append(end)
        if before is not None:
            where.append("(ts < ? OR (ts = ? AND message_id < ?))")
            params += [before[0], before[0], before[1]]
        if after is not None:
            where.append("(ts > ? OR (ts = ? AND message_id > ?))")
            params += [after[0], after[0], after[1]]
        order = "DESC" if descending else "ASC"
        cols = _EVENT_COLS + (", body" if with_body else "")
        sql = (
            f"SELECT {cols} FROM idn_events WHERE {' AND '.join(where)} ORDER BY ts {order}, message_id {order} LIMIT ?"
        )
        rows = self._q_in(sql, (), profile_ids, (*params, limit))
        return [_event(r, r[9] if with_body else b"") for r in rows]

    def move_events(self, workspace_id: str, keys: Sequence[tuple[str, str]], profile_id: str) -> None:
        self._many(
            "UPDATE idn_events SET profile_id = ? WHERE workspace_id = ? AND source_id = ? AND message_id = ?",
            ((profile_id, workspace_id, s, m) for s, m in keys),
        )

    def delete_events(self, workspace_id: str, keys: Sequence[tuple[str, str]]) -> None:
        self._many(
            "DELETE FROM idn_events WHERE workspace_id = ? AND source_id = ? AND message_id = ?",
            ((workspace_id, s, m) for s, m in keys),
        )

    # ------------------------------------------------------------------- links

    def upsert_links(self, rows: Sequence[LinkRow]) -> None:
        self._many(
            f"INSERT INTO idn_links ({_LINK_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (user_profile, account_profile) DO UPDATE SET "
            f"first_at = {self.LEAST}(idn_links.first_at, excluded.first_at), "
            f"last_at = {self.GREATEST}(idn_links.last_at, excluded.last_at)",
            (
                (r.workspace_id, r.user_profile, r.account_profile, r.first_at, r.last_at, r.message_id, r.source_id)
                for r in rows
            ),
        )

    def links_of(self, profile_ids: Sequence[str], accounts: bool) -> list[LinkRow]:
        if not profile_ids:
            return []
        column = "account_profile" if accounts else "user_profile"
        rows = self._q_in(
            f"SELECT {_LINK_COLS} FROM idn_links WHERE {column} {{in}} ORDER BY first_at, account_profile",
            (),
            profile_ids,
        )
        return [LinkRow(*r) for r in rows]

    def delete_links(self, user_profiles: Sequence[str]) -> None:
        if user_profiles:
            self._x_in("DELETE FROM idn_links WHERE user_profile {in}", (), user_profiles)

    # ---------------------------------------------------- settings, housekeeping

    def get_rules(self, workspace_id: str) -> bytes | None:
        rows = self._q("SELECT rules FROM idn_rules WHERE workspace_id = ?", (workspace_id,))
        return rows[0][0].encode() if rows else None

    def set_rules(self, workspace_id: str, rules: bytes, at: float) -> None:
        self._x(
            "INSERT INTO idn_rules (workspace_id, rules, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (workspace_id) DO UPDATE SET rules = excluded.rules, updated_at = excluded.updated_at",
            (workspace_id, rules.decode(), at),
        )

    def counts(self, workspace_id: str) -> dict[str, int]:
        def one(sql: str) -> int:
            return int(self._q(sql, (workspace_id,))[0][0])

        return {
            "profiles": one("SELECT count(*) FROM idn_profiles WHERE workspace_id = ? AND merged_into IS NULL"),
            "identifiers": one("SELECT count(*) FROM idn_identifiers WHERE workspace_id = ?"),
            "merges": one("SELECT count(*) FROM idn_merges WHERE workspace_id = ? AND undone_at IS NULL"),
            "events": one("SELECT count(*) FROM idn_events WHERE workspace_id = ?"),
        }

    # ------------------------------------------------------------- regulations

    def forget_profiles(self, profile_ids: Sequence[str]) -> dict[str, int]:
        """Delete every row about these profiles (see ``GraphTx.forget_profiles``)."""
        ids = list(profile_ids)
        if not ids:
            return {}

        def gone(sql: str) -> int:
            return self._x_in(sql, (), ids)

        return {
            "events": gone("DELETE FROM idn_events WHERE profile_id {in}"),
            "identifiers": gone("DELETE FROM idn_identifiers WHERE profile_id {in}"),
            "traits": gone("DELETE FROM idn_profile_traits WHERE profile_id {in}"),
            "sources": gone("DELETE FROM idn_profile_sources WHERE profile_id {in}"),
            "merges": gone("DELETE FROM idn_merges WHERE into_profile {in}")
            + gone("DELETE FROM idn_merges WHERE from_profile {in}"),
            "decisions": gone("DELETE FROM idn_decisions WHERE profile_id {in}"),
            "links": gone("DELETE FROM idn_links WHERE user_profile {in}")
            + gone("DELETE FROM idn_links WHERE account_profile {in}"),
            "profiles": gone("DELETE FROM idn_profiles WHERE id {in}"),
        }
