"""The identity tables of a warehouse: which profile each identifier and each profile id
belongs to now, and every merge. Backend-neutral: the change format, the tables, and the
steps a load runs; the DuckDB and PostgreSQL destinations stage rows and run the SQL.

How changes get here (see ``docs/identity.md``, "Identity tables in the warehouse"):

1. every identity-store transaction that changes the graph also writes one **change
   record** (``Change``, JSON) to the store's outbox (``idn_changes``), in the same
   transaction, so a change and its record commit together or not at all;
2. the identity feed (``eventyard.route.identity_feed``), in the process that delivers to
   the warehouses, reads the records after each warehouse's position and hands them to the
   destination (``IdentityTables.load_identity``) as one ``IdentityLoad``;
3. the destination runs the load's steps **and moves its position** (``_eventyard_feed``)
   in one warehouse transaction: a crash before the commit leaves the position where it was
   and the records are loaded again; nothing is lost and nothing applied twice.

A warehouse that has no position yet (a new destination) or whose position is older than the
outbox keeps (records are purged after a week) gets a **full load**: the current graph,
read in one snapshot, replaces the workspace's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import msgspec

from eventyard.warehouse.types import ColumnType

#: The schema of the identity tables unless a destination names another (``identity_schema``).
DEFAULT_SCHEMA = "eventyard_identity"

T = ColumnType


@dataclass(frozen=True)
class Table:
    name: str
    columns: dict[str, ColumnType]
    #: Columns that identify a row within a workspace (``workspace_id`` comes first anyway).
    key: tuple[str, ...]


#: Every profile id ever issued -> the profile it is part of now (itself unless merged).
PROFILES = Table(
    "profiles",
    {
        "workspace_id": T.TEXT,
        "profile_id": T.TEXT,
        "collection": T.TEXT,
        "canonical_profile_id": T.TEXT,
        "created_at": T.TIMESTAMP,
        "uuid_ts": T.TIMESTAMP,
    },
    ("profile_id",),
)
#: Every identifier -> the (current) profile that holds it.
IDENTIFIERS = Table(
    "identifiers",
    {
        "workspace_id": T.TEXT,
        "collection": T.TEXT,
        "identifier_type": T.TEXT,
        "identifier_value": T.TEXT,
        "profile_id": T.TEXT,
        "first_message_id": T.TEXT,
        "source_id": T.TEXT,
        "added_at": T.TIMESTAMP,
        "uuid_ts": T.TIMESTAMP,
    },
    ("collection", "identifier_type", "identifier_value"),
)
#: Every merge, with the event and rule behind it; a split sets ``undone_at``.
MERGES = Table(
    "merges",
    {
        "workspace_id": T.TEXT,
        "merge_id": T.BIGINT,
        "collection": T.TEXT,
        "from_profile_id": T.TEXT,
        "into_profile_id": T.TEXT,
        "rule": T.TEXT,
        "message_id": T.TEXT,
        "source_id": T.TEXT,
        "event_timestamp": T.TIMESTAMP,
        "merged_at": T.TIMESTAMP,
        "undone_at": T.TIMESTAMP,
        "uuid_ts": T.TIMESTAMP,
    },
    ("merge_id",),
)
#: The last change record loaded, per workspace (moved in the same transaction as the rows).
FEED = Table(
    "_eventyard_feed",
    {"workspace_id": T.TEXT, "last_change": T.BIGINT, "uuid_ts": T.TIMESTAMP},
    (),
)
TABLES = (PROFILES, IDENTIFIERS, MERGES, FEED)


# ----------------------------------------------------------------- the change format


class ProfileChange(msgspec.Struct, array_like=True):
    id: str
    collection: str
    #: The profile it is part of now (its own id unless merged).
    canonical: str
    created_at: float


class IdentifierChange(msgspec.Struct, array_like=True):
    collection: str
    #: ``type:value``
    key: str
    profile_id: str
    message_id: str
    source_id: str
    added_at: float


class MergeChange(msgspec.Struct, array_like=True):
    id: int
    collection: str
    from_profile: str
    into_profile: str
    rule: str
    message_id: str
    source_id: str
    event_ts: float
    at: float
    undone_at: float | None = None


class Change(msgspec.Struct, omit_defaults=True):
    """What one identity-store transaction changed, applied in this order: ``deleted``
    identifiers go, ``profiles`` and ``identifiers`` are written (replacing rows with the same
    key), ``moves`` re-point every profile and identifier of a merged-away profile to the
    survivor, ``merges`` are written. ``full``: the workspace's rows are replaced first."""

    profiles: list[ProfileChange] = []
    identifiers: list[IdentifierChange] = []
    #: (merged-away profile, the profile it is part of now)
    moves: list[tuple[str, str]] = []
    merges: list[MergeChange] = []
    #: (collection, key) of identifiers that no longer exist as they were
    deleted: list[tuple[str, str]] = []
    full: bool = False

    def is_empty(self) -> bool:
        return not (self.profiles or self.identifiers or self.moves or self.merges or self.deleted or self.full)


_encode = msgspec.json.Encoder()
_decode = msgspec.json.Decoder(Change)


def encode_change(change: Change) -> bytes:
    return _encode.encode(change)


def decode_change(raw: bytes) -> Change:
    return _decode.decode(raw)


# ------------------------------------------------------------------------- the load


@dataclass
class Step:
    """One statement's worth of work against one table.

    ``truncate``: delete the workspace's rows; ``delete``: delete rows whose key is in
    ``rows``; ``upsert``: delete rows with the keys of ``rows``, then insert them; ``repoint``:
    set ``column`` to ``rows[i][1]`` where it is ``rows[i][0]``."""

    kind: str
    table: Table
    columns: list[str] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    column: str = ""

    def types(self) -> list[ColumnType]:
        if self.kind == "repoint":
            return [T.TEXT, T.TEXT]
        return [self.table.columns[c] for c in self.columns]


@dataclass
class IdentityLoad:
    workspace_id: str
    #: The position after this load (the last change record it holds).
    last_change: int
    steps: list[Step]
    loaded_at: datetime
    #: Change records it holds (for logs and metrics).
    changes: int = 0
    #: The position the load starts from (``None``: no position yet). A destination refuses the
    #: load (``PositionMoved``) when its position is another one by then: another process
    #: loaded meanwhile, and the records must be read again from the new position.
    after: int | None = None


class PositionMoved(Exception):
    """The warehouse's position changed between reading it and loading (nothing was changed)."""


def check_position(found: int | None, load: IdentityLoad) -> None:
    if found != load.after:
        raise PositionMoved(f"the identity tables moved from change {load.after} to {found} meanwhile; reading again")


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _split(key: str) -> tuple[str, str]:
    kind, _, value = key.partition(":")
    return kind, value


class _Planner:
    def __init__(self, workspace_id: str, loaded_at: datetime) -> None:
        self.ws = workspace_id
        self.at = loaded_at
        self.steps: list[Step] = []
        self._profiles: dict[str, tuple[Any, ...]] = {}
        self._identifiers: dict[tuple[str, str, str], tuple[Any, ...]] = {}
        self._merges: dict[int, tuple[Any, ...]] = {}

    def flush(self) -> None:
        for table, rows in (
            (PROFILES, self._profiles),
            (IDENTIFIERS, self._identifiers),
            (MERGES, self._merges),
        ):
            if rows:
                self.steps.append(Step("upsert", table, list(table.columns), list(rows.values())))
                rows.clear()

    def add(self, change: Change) -> None:
        if change.full:
            self.flush()
            self.steps += [Step("truncate", t) for t in (PROFILES, IDENTIFIERS, MERGES)]
        if change.deleted:
            self.flush()
            self.steps.append(
                Step("delete", IDENTIFIERS, list(IDENTIFIERS.key), [(c, *_split(k)) for c, k in change.deleted])
            )
        for p in change.profiles:
            self._profiles[p.id] = (self.ws, p.id, p.collection, p.canonical, _ts(p.created_at), self.at)
        for i in change.identifiers:
            kind, value = _split(i.key)
            self._identifiers[(i.collection, kind, value)] = (
                self.ws,
                i.collection,
                kind,
                value,
                i.profile_id,
                i.message_id,
                i.source_id,
                _ts(i.added_at),
                self.at,
            )
        if change.moves:
            # rows written so far must be in place before they are re-pointed
            self.flush()
            for column, table in (("canonical_profile_id", PROFILES), ("profile_id", IDENTIFIERS)):
                self.steps.append(Step("repoint", table, rows=[tuple(m) for m in change.moves], column=column))
        for m in change.merges:
            self._merges[m.id] = (
                self.ws,
                m.id,
                m.collection,
                m.from_profile,
                m.into_profile,
                m.rule,
                m.message_id,
                m.source_id,
                _ts(m.event_ts),
                _ts(m.at),
                _ts(m.undone_at),
                self.at,
            )


def plan_identity_load(
    workspace_id: str, changes: Sequence[tuple[int, Change]], loaded_at: datetime, after: int | None = None
) -> IdentityLoad:
    """The steps that bring a warehouse from position ``after`` to after the last change."""
    planner = _Planner(workspace_id, loaded_at)
    for _seq, change in changes:
        planner.add(change)
    planner.flush()
    last = max((seq for seq, _ in changes), default=0)
    return IdentityLoad(workspace_id, last, planner.steps, loaded_at, len(changes), after)


# ---------------------------------------------------------------------------- SQL


def statements(step: Step, target: str, staged: str, quote: Callable[[str], str], param: str) -> list[str]:
    """The SQL of a step: ``target`` is the qualified table, ``staged`` the relation holding
    the step's rows (columns named as ``step.columns``, or ``from_id, to_id`` for a repoint),
    ``param`` the driver's placeholder: every statement binds the workspace id, once."""
    ws = f"t.{quote('workspace_id')} = {param}"
    if step.kind == "truncate":
        return [f"DELETE FROM {target} t WHERE {ws}"]
    if step.kind == "repoint":
        c = quote(step.column)
        return [f"UPDATE {target} t SET {c} = s.to_id FROM {staged} s WHERE {ws} AND t.{c} = s.from_id"]
    match = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in step.table.key)
    delete = f"DELETE FROM {target} t WHERE {ws} AND EXISTS (SELECT 1 FROM {staged} s WHERE {match})"
    if step.kind == "delete":
        return [delete]
    cols = ", ".join(quote(c) for c in step.columns)
    insert = f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {staged} s WHERE s.{quote('workspace_id')} = {param}"
    return [delete, insert]


def staged_columns(step: Step) -> list[str]:
    return ["from_id", "to_id"] if step.kind == "repoint" else step.columns


@runtime_checkable
class IdentityTables(Protocol):
    """A destination that keeps the identity tables (the DuckDB and PostgreSQL warehouses)."""

    async def identity_position(self, workspace_id: str) -> int | None:
        """The last change record loaded for the workspace; ``None`` when never loaded."""
        ...

    async def load_identity(self, load: IdentityLoad) -> None:
        """Run the load's steps and set the position to ``load.last_change``, in one
        transaction; raises when it could not (nothing is then changed)."""
        ...


__all__ = [
    "DEFAULT_SCHEMA",
    "FEED",
    "IDENTIFIERS",
    "MERGES",
    "PROFILES",
    "TABLES",
    "Change",
    "IdentifierChange",
    "IdentityLoad",
    "IdentityTables",
    "MergeChange",
    "PositionMoved",
    "ProfileChange",
    "Step",
    "Table",
    "check_position",
    "decode_change",
    "encode_change",
    "plan_identity_load",
    "staged_columns",
    "statements",
]
