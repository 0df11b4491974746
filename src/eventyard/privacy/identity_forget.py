"""A user in the identity graph: who they are known as, and erasing them.

``resolve`` finds the profile of a user id (and the profiles merged into it) and every
identifier the graph links to it: its anonymous ids are erased from the log and the
destinations together with the user id, and destinations are told its identifiers (email,
phone, ...) so they can find the user on their side. ``forget`` deletes the profiles with
everything about them (``GraphTx.forget_profiles``) and records a change that removes the
user's identifiers from the warehouses' identity tables. Accounts (group profiles) stay; only
the user's links to them go.
"""

from __future__ import annotations

import time

import msgspec

from eventyard.state.identity_base import GraphTx, IdentityStore
from eventyard.warehouse.identity_tables import Change, encode_change

USERS = "users"


class KnownUser(msgspec.Struct):
    """What the identity graph knows of one user id."""

    user_id: str
    #: The user's current profile and the profiles merged into it (empty: unknown to the graph).
    profile_ids: list[str] = []
    anonymous_ids: list[str] = []
    #: Other identifiers by type (``email``, ``phone``, ...), values sorted.
    identifiers: dict[str, list[str]] = {}

    def delete_identifiers(self) -> dict[str, str]:
        """The identifiers of ``DeleteSubject``: ``anonymousId``, ``anonymousId.2``, ... then
        one entry per other identifier (``email``, ``email.2``, ...)."""
        out: dict[str, str] = {}
        for i, value in enumerate(self.anonymous_ids):
            out["anonymousId" if i == 0 else f"anonymousId.{i + 1}"] = value
        for kind, values in sorted(self.identifiers.items()):
            for i, value in enumerate(values):
                out[kind if i == 0 else f"{kind}.{i + 1}"] = value
        return out


def _resolve(tx: GraphTx, workspace_id: str, user_id: str) -> KnownUser:
    found = tx.lookup(workspace_id, USERS, [f"user_id:{user_id}"])
    profile_id = found.get(f"user_id:{user_id}")
    if profile_id is None:
        return KnownUser(user_id)
    members = tx.members(profile_id)
    anonymous: set[str] = set()
    others: dict[str, set[str]] = {}
    for row in tx.load_identifiers(members):
        kind, _, value = row.key.partition(":")
        if kind == "anonymous_id":
            anonymous.add(value)
        elif kind != "user_id":
            others.setdefault(kind, set()).add(value)
    return KnownUser(user_id, members, sorted(anonymous), {k: sorted(v) for k, v in others.items()})


async def resolve(store: IdentityStore, workspace_id: str, user_ids: list[str]) -> list[KnownUser]:
    """What the graph knows of each user id (in order)."""

    def read(tx: GraphTx) -> list[KnownUser]:
        return [_resolve(tx, workspace_id, u) for u in user_ids]

    return await store.read(read)


async def forget(store: IdentityStore, workspace_id: str, user_ids: list[str]) -> dict[str, int]:
    """Delete the users' profiles and everything about them; rows deleted per kind.

    The same transaction writes a change record that deletes the users' identifiers from the
    warehouses' identity tables (``warehouse.identity_tables``; the identity feed applies it).
    """
    at = time.time()

    def write(tx: GraphTx) -> dict[str, int]:
        totals: dict[str, int] = {}
        gone: list[tuple[str, str]] = []
        for user_id in user_ids:
            known = _resolve(tx, workspace_id, user_id)
            gone += [(row.collection, row.key) for row in tx.load_identifiers(known.profile_ids)]
            for kind, n in tx.forget_profiles(known.profile_ids).items():
                totals[kind] = totals.get(kind, 0) + n
        if gone:
            tx.add_change(workspace_id, at, encode_change(Change(deleted=gone)))
        return totals

    return await store.transact(write)
