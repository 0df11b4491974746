"""The identity store contract: the graph (identifier -> profile), profiles, merges, the
decisions behind them, per-profile event history and user <-> account links.

Two layers:

- ``GraphTx``: synchronous primitives over one open transaction (plain SQL, no policy). The
  resolution rules (``eventyard.unify``) run on top of them, inside the transaction, so a merge
  and everything it moves commit together or not at all.
- ``IdentityStore``: opens those transactions. ``transact(fn)`` runs ``fn(tx)`` in a write
  transaction and returns its result; a backend that detects a conflict with a concurrent
  writer rolls back and runs ``fn`` again from the start, so ``fn`` must not keep state
  between calls. ``read(fn)`` runs ``fn`` on a consistent read-only view. A commit made with
  ``durable=False`` reaches the disk with the next durable one (see ``IdentityStore.transact``).

Identifier keys are ``type:value`` strings; profile ids are ``prf_<hex>``. Times are Unix
seconds: ``*_at`` of the wall clock, ``ts``/``seen`` of the event's own ``timestamp``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import msgspec

T = TypeVar("T")


class ProfileRow(msgspec.Struct):
    id: str
    workspace_id: str
    collection: str
    created_at: float
    updated_at: float
    #: The profile this one was merged into (always the current one: chains are shortened).
    merged_into: str | None = None
    #: Merges absorbed, counting those of merged profiles (the merge cap applies to it).
    merges: int = 0
    first_seen: float | None = None
    last_seen: float | None = None
    first_message_id: str | None = None
    first_source_id: str | None = None
    last_message_id: str | None = None
    last_source_id: str | None = None
    #: name -> [value, event ts, source id, message id]; only loaded when asked for.
    traits: dict[str, list[Any]] = {}


class Touch(msgspec.Struct):
    """What a batch of events says about one profile's first and last event."""

    profile_id: str
    first_seen: float
    first_message_id: str
    first_source_id: str
    last_seen: float
    last_message_id: str
    last_source_id: str
    at: float


class IdentifierRow(msgspec.Struct):
    workspace_id: str
    collection: str
    key: str
    profile_id: str
    #: Event time of the message that added it (limits over a period count from it).
    added_at: float
    message_id: str
    source_id: str
    #: The profile it was first added to (differs from ``profile_id`` after a merge).
    origin_profile: str
    created_at: float


class MergeRow(msgspec.Struct):
    workspace_id: str
    collection: str
    into_profile: str
    from_profile: str
    message_id: str
    source_id: str
    #: Why: ``shared_identifier`` (flat matching), ``alias`` or ``merge`` (RudderStack).
    rule: str
    detail: str
    #: Identifier key -> the profile it belonged to just before the merge (the link's evidence).
    identifiers: dict[str, str]
    event_ts: float
    at: float
    id: int | None = None
    undone_at: float | None = None
    undone_reason: str | None = None


class DecisionRow(msgspec.Struct):
    """An identifier that was refused (blocked value, limit, cap) or removed by an operator,
    counted once per profile, identifier and rule."""

    workspace_id: str
    profile_id: str
    key: str
    rule: str
    detail: str
    message_id: str
    source_id: str
    at: float
    count: int = 1
    first_at: float | None = None


class EventRow(msgspec.Struct):
    workspace_id: str
    source_id: str
    message_id: str
    profile_id: str
    ts: float
    received: float
    type: str
    name: str | None
    #: The identifier keys the event was resolved with (what a recomputation replays).
    ids: list[str]
    #: The normalized event, JSON.
    body: bytes


class LinkRow(msgspec.Struct):
    workspace_id: str
    user_profile: str
    account_profile: str
    first_at: float
    last_at: float
    message_id: str
    source_id: str


class GraphTx(Protocol):
    """Primitives inside one transaction. Lists may be long; backends chunk as they need."""

    # graph
    def lookup(self, workspace_id: str, collection: str, keys: Sequence[str]) -> dict[str, str]:
        """key -> profile id of the keys that exist."""
        ...

    def load_profiles(self, ids: Sequence[str], traits: bool = False) -> dict[str, ProfileRow]: ...

    def profile_of(self, workspace_id: str, collection: str, key: str) -> ProfileRow | None:
        """The profile (with its traits) the identifier ``key`` is on, as stored (it may have
        been merged into another one since); ``None`` when the key is unknown. One statement."""
        ...

    def load_identifiers(self, profile_ids: Sequence[str]) -> list[IdentifierRow]: ...

    def profile_heads(self, ids: Sequence[str]) -> dict[str, tuple[float, int]]:
        """profile id -> (created at, merges): what the merge rules need of a profile."""
        ...

    def identifier_times(self, profile_ids: Sequence[str]) -> list[tuple[str, str, float]]:
        """(profile id, key, added at) of the profiles' identifiers: what the limits need."""
        ...

    def identifier_page(
        self, profile_id: str, after: str | None, limit: int, types: Sequence[str] | None
    ) -> list[IdentifierRow]:
        """Identifiers of one profile ordered by key, after ``after``."""
        ...

    def insert_profiles(self, rows: Sequence[ProfileRow]) -> None: ...

    def save_profiles(self, rows: Sequence[ProfileRow], traits: bool) -> None:
        """Write every mutable column of existing profiles (``traits`` too when asked)."""
        ...

    def upsert_identifiers(self, rows: Sequence[IdentifierRow]) -> None:
        """Insert; an existing key only changes its ``profile_id``."""
        ...

    def merged_of(self, ids: Sequence[str]) -> dict[str, str]:
        """Of the given profiles, those merged away -> the profile they are part of now."""
        ...

    def touch_profiles(self, rows: Sequence[Touch]) -> None:
        """Widen first/last seen (each side only when the new event is older/newer)."""
        ...

    def add_sources(self, rows: Sequence[tuple[str, str, float]]) -> None:
        """(profile id, source id, first time); known pairs are left alone."""
        ...

    def sources_of(self, profile_ids: Sequence[str]) -> dict[str, list[tuple[str, float]]]:
        """profile id -> [(source id, first time)], oldest first."""
        ...

    def load_traits(self, ids: Sequence[str]) -> dict[str, dict[str, list[Any]]]: ...

    def save_traits(self, rows: Sequence[tuple[str, dict[str, list[Any]], float]]) -> None:
        """(profile id, traits, updated at)."""
        ...

    def repoint_identifiers(self, workspace_id: str, moves: Sequence[tuple[str, str]]) -> None:
        """Every identifier of each ``from`` profile now belongs to its ``to`` profile."""
        ...

    def redirect_merged(self, moves: Sequence[tuple[str, str]]) -> None:
        """Profiles merged into each ``from`` profile now point at its ``to`` profile."""
        ...

    def delete_identifiers(self, workspace_id: str, collection: str, keys: Sequence[str]) -> None: ...

    def members(self, profile_id: str) -> list[str]:
        """The profile and every profile merged into it."""
        ...

    # merges and decisions
    def insert_merges(self, rows: Sequence[MergeRow]) -> None: ...

    def merges_of(self, profile_ids: Sequence[str]) -> list[MergeRow]:
        """Merges into or from any of the profiles, oldest first."""
        ...

    def merge_by_id(self, workspace_id: str, merge_id: int) -> MergeRow | None: ...

    def undo_merge(self, merge_id: int, at: float, reason: str) -> None: ...

    def note_decisions(self, rows: Sequence[DecisionRow]) -> None:
        """Add each row, or count it again when (workspace, profile, key, rule) is known."""
        ...

    def decisions_of(self, profile_ids: Sequence[str]) -> list[DecisionRow]: ...

    def mark_noted(self, workspace_id: str, events: Sequence[tuple[int, str]], at: float) -> set[tuple[int, str]]:
        """Mark events ``(log position, message id)`` whose refusals are being counted; returns
        those not marked before (a batch run again counts nothing twice)."""
        ...

    # events
    def insert_events(self, rows: Sequence[EventRow]) -> None:
        """Events already stored (same workspace, source and messageId) are left alone."""
        ...

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
        """Events of the profiles by (ts, message id); ``before``/``after`` are exclusive cursors.
        ``accounts``: the profiles are account profiles (their group calls)."""
        ...

    def insert_account_events(self, rows: Sequence[tuple[str, str, str, str, float, float]]) -> None:
        """(workspace, account profile, source id, message id, ts, received) of events that
        belong to an account too (their bodies are the user's history rows)."""
        ...

    def move_events(self, workspace_id: str, keys: Sequence[tuple[str, str]], profile_id: str) -> None:
        """Give the events ``(source id, message id)`` to another profile."""
        ...

    def delete_events(self, workspace_id: str, keys: Sequence[tuple[str, str]]) -> None: ...

    # links
    def upsert_links(self, rows: Sequence[LinkRow]) -> None: ...

    def links_of(self, profile_ids: Sequence[str], accounts: bool) -> list[LinkRow]:
        """Links of user profiles (``accounts=False``) or of account profiles."""
        ...

    def delete_links(self, user_profiles: Sequence[str]) -> None: ...

    # settings and housekeeping
    def get_rules(self, workspace_id: str) -> bytes | None: ...

    def set_rules(self, workspace_id: str, rules: bytes, at: float) -> None: ...

    def purge(self, older_than: float, limit: int) -> int:
        """Delete up to ``limit`` events received before ``older_than`` (and decisions last
        seen before it); returns how many rows went."""
        ...

    def counts(self, workspace_id: str) -> dict[str, int]:
        """Numbers of profiles (current), identifiers, merges and stored events."""
        ...

    # the outbox of graph changes (``state/identity_changes.py``)
    def add_change(self, workspace_id: str, at: float, body: bytes) -> None:
        """Write one change record, numbered after every record committed before."""
        ...

    def changes_after(self, workspace_id: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        """(seq, body) of the workspace's records after ``after``, oldest first."""
        ...

    def report_position(self, follower: str, position: int, at: float) -> None:
        """A follower has loaded every record up to ``position`` (kept for purging). In a
        durable transaction it flushes every commit before it too."""
        ...

    def last_change(self) -> int:
        """The highest record number written so far (0 when none)."""
        ...

    def changes_purged_upto(self) -> int:
        """Records up to this number may have been purged (0 when none were)."""
        ...

    def purge_changes(self, older_than: float, followers_since: float | None = None) -> int:
        """Delete records older than ``older_than`` or loaded by every follower that reported
        since ``followers_since`` (with none: older than ``followers_since``)."""
        ...

    def workspace_profiles(self, workspace_id: str) -> list[tuple[str, str, str | None, float]]: ...

    def workspace_identifiers(self, workspace_id: str) -> list[tuple[str, str, str, str, str, float]]: ...

    def workspace_merges(self, workspace_id: str) -> list[tuple[Any, ...]]: ...

    # regulations
    def forget_profiles(self, profile_ids: Sequence[str]) -> dict[str, int]:
        """Delete every row about these profiles (regulations): the profiles, their traits,
        sources, identifiers, stored events, merges into or out of them, decisions and links
        on either side; rows deleted per kind (``profiles``, ``identifiers``, ``events``, ...).
        Pass a profile together with the profiles merged into it (``members``). The outbox of
        graph changes is left as it is (its records are purged by age)."""
        ...


class IdentityStore(Protocol):
    """Where the graph lives; see the module docstring."""

    #: ``sqlite`` or ``postgres``: shown by status and the benchmarks.
    kind: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def transact(self, fn: Callable[[GraphTx], T], durable: bool = True) -> T:
        """``durable=False`` lets the commit return before it is flushed to disk (SQLite
        ``synchronous=NORMAL`` in WAL mode, PostgreSQL ``synchronous_commit=off``): a crash of
        the process loses nothing, a power failure may lose it. The next durable commit (in
        log order) flushes it too, so a caller that ends a unit of work with a durable commit
        pays one flush for all of it."""
        ...

    async def read(self, fn: Callable[[GraphTx], T]) -> T: ...

    async def read_now(self, fn: Callable[[GraphTx], T]) -> T:
        """A short read (a few index lookups) answered with the least waiting: SQLite runs it
        on the calling thread (the event loop) without waiting for any lock, falling back to
        ``read`` when it would have to wait; PostgreSQL is ``read``. Same snapshot semantics."""
        ...


__all__ = [
    "DecisionRow",
    "EventRow",
    "GraphTx",
    "IdentifierRow",
    "IdentityStore",
    "LinkRow",
    "MergeRow",
    "ProfileRow",
    "Touch",
]
