"""Read-side views of profiles, shared by the Segment-compatible Profile API and the admin API
(``eventyard profile show|explain``). Each function runs inside ``IdentityStore.read``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from eventyard.state.identity_base import EventRow, GraphTx, IdentifierRow, ProfileRow
from eventyard.unify.identifiers import split_key
from eventyard.unify.identity_rules import ACCOUNTS, USERS

#: Reference types that name a profile by its own id rather than by an identifier.
PROFILE_ID_TYPES = ("segment_id", "profile_id")

_decode = msgspec.json.Decoder()


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_ref(ref: str) -> tuple[str, str]:
    """``type:value`` -> (type, value); a bare ``prf_...`` is a profile id. ``ValueError`` otherwise."""
    if ref.startswith("prf_") and ":" not in ref:
        return "profile_id", ref
    type_, sep, value = ref.partition(":")
    if not sep or not type_ or not value:
        raise ValueError(f"{ref!r} is not `type:value` (for example user_id:42 or email:ana@example.com)")
    return type_.strip().lower(), value


def find(tx: GraphTx, workspace_id: str, collection: str, ref: str) -> ProfileRow | None:
    """The current profile a reference points to (following merges), or ``None``."""
    type_, value = parse_ref(ref)
    row: ProfileRow | None
    if type_ in PROFILE_ID_TYPES:
        row = tx.load_profiles([value], traits=True).get(value)
    else:
        if type_ == "email":
            value = value.strip().lower()
        row = tx.profile_of(workspace_id, collection, f"{type_}:{value}")
    if row is not None and row.merged_into is not None:
        row = tx.load_profiles([row.merged_into], traits=True).get(row.merged_into)
    if row is None or row.workspace_id != workspace_id or row.collection != collection:
        return None
    return row


def collection_of(ref: str) -> str:
    """Admin references name accounts by ``group_id:...``; everything else is a user."""
    return ACCOUNTS if ref.startswith("group_id:") else USERS


# ------------------------------------------------------------------ Profile API


def trait_page(
    row: ProfileRow, include: Sequence[str] | None, after: str | None, limit: int, verbose: bool
) -> tuple[dict[str, Any], str | None]:
    """Traits sorted by name, ``limit`` of them after ``after``; returns (traits, next cursor)."""
    names = sorted(n for n in row.traits if (not include or n in include) and (after is None or n > after))
    page, more = names[:limit], len(names) > limit
    out: dict[str, Any] = {}
    for name in page:
        value, ts, source_id, _message_id = row.traits[name]
        out[name] = {"value": value, "source_id": source_id, "updated_at": iso(ts)} if verbose else value
    return out, (page[-1] if more and page else None)


def external_id_view(ident: IdentifierRow) -> dict[str, Any]:
    type_, value = split_key(ident.key)
    return {
        "id": value,
        "type": type_,
        "source_id": ident.source_id,
        "collection": ident.collection,
        "created_at": iso(ident.created_at),
        "encoding": "none",
        "first_message_id": ident.message_id,
    }


def event_view(e: EventRow, profile_id: str, collection: str) -> dict[str, Any]:
    body: dict[str, Any] = _decode.decode(e.body) if e.body else {}
    out: dict[str, Any] = {
        "type": e.type,
        "message_id": e.message_id,
        "source_id": e.source_id,
        "timestamp": body.get("timestamp") or iso(e.ts),
        "received_at": body.get("receivedAt") or iso(e.received),
    }
    if e.type == "track":
        out["event"] = e.name
    elif e.type in ("page", "screen"):
        out["name"] = e.name
    for key in ("properties", "traits", "context", "userId", "anonymousId", "groupId", "previousId"):
        if key in body:
            out[_snake(key)] = body[key]
    out["related"] = {collection: profile_id}
    return out


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def source_ids(tx: GraphTx, members: list[str]) -> list[str]:
    """Sources that sent events of the profile (or of profiles merged into it), first first."""
    pairs = [pair for found in tx.sources_of(members).values() for pair in found]
    return list(dict.fromkeys(source for source, _ in sorted(pairs, key=lambda p: (p[1], p[0]))))


def metadata_view(row: ProfileRow, members: list[str], sources: list[str], expires_at: float | None) -> dict[str, Any]:
    return {
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "expires_at": iso(expires_at),
        "first_message_id": row.first_message_id,
        "first_source_id": row.first_source_id,
        "last_message_id": row.last_message_id,
        "last_source_id": row.last_source_id,
        # eventyard's additions
        "profile_id": row.id,
        "first_seen_at": iso(row.first_seen),
        "last_seen_at": iso(row.last_seen),
        "source_ids": sources,
        "merged_profile_ids": [m for m in members if m != row.id],
    }


def links_view(tx: GraphTx, row: ProfileRow, limit: int) -> list[dict[str, Any]]:
    """Linked profiles of the other collection with their identifiers."""
    members = tx.members(row.id)
    accounts_side = row.collection == ACCOUNTS
    links = tx.links_of(members, accounts=accounts_side)
    others = list(dict.fromkeys((lk.user_profile if accounts_side else lk.account_profile) for lk in links))
    current = {pid: (p.merged_into or pid) for pid, p in tx.load_profiles(others).items()}
    targets = list(dict.fromkeys(current.get(p, p) for p in others))[:limit]
    by_profile: dict[str, list[IdentifierRow]] = {}
    for ident in tx.load_identifiers(targets):
        by_profile.setdefault(ident.profile_id, []).append(ident)
    to_collection = USERS if accounts_side else ACCOUNTS
    return [
        {
            "to_collection": to_collection,
            "profile_id": pid,
            "external_ids": [external_id_view(i) for i in by_profile.get(pid, [])],
        }
        for pid in targets
    ]


# ------------------------------------------------------------------ admin views


def show(tx: GraphTx, row: ProfileRow, events: int) -> dict[str, Any]:
    members = tx.members(row.id)
    return {
        "profile_id": row.id,
        "collection": row.collection,
        "merges": row.merges,
        "metadata": metadata_view(row, members, source_ids(tx, members), None),
        "traits": {name: entry[0] for name, entry in sorted(row.traits.items())},
        "identifiers": [external_id_view(i) for i in tx.load_identifiers([row.id])],
        "links": links_view(tx, row, 100),
        "events": [
            event_view(e, row.id, row.collection)
            for e in tx.events_of(members, limit=events, descending=True, with_body=True)
        ],
    }


def explain(tx: GraphTx, row: ProfileRow) -> dict[str, Any]:
    """Why the profile holds each identifier, every merge that shaped it and every refusal."""
    members = tx.members(row.id)
    merges = tx.merges_of(members)
    brought_by: dict[str, int] = {}
    for m in merges:
        if m.undone_at is None and m.id is not None:
            brought_by[m.from_profile] = m.id
    identifiers = []
    for ident in tx.load_identifiers([row.id]):
        entry: dict[str, Any] = {
            "identifier": ident.key,
            "added_at": iso(ident.added_at),
            "message_id": ident.message_id,
            "source_id": ident.source_id,
            "first_profile": ident.origin_profile,
        }
        if ident.origin_profile != row.id:
            entry["via_merge"] = brought_by.get(ident.origin_profile)
        identifiers.append(entry)
    return {
        "profile_id": row.id,
        "collection": row.collection,
        "created_at": iso(row.created_at),
        "members": members,
        "identifiers": identifiers,
        "merges": [
            {
                "id": m.id,
                "at": iso(m.at),
                "event_time": iso(m.event_ts),
                "into": m.into_profile,
                "from": m.from_profile,
                "rule": m.rule,
                "message_id": m.message_id,
                "source_id": m.source_id,
                "detail": m.detail,
                "identifiers": m.identifiers,
                "undone_at": iso(m.undone_at),
                "undone_reason": m.undone_reason,
            }
            for m in merges
        ],
        "refused": [
            {
                "identifier": d.key,
                "rule": d.rule,
                "detail": d.detail,
                "count": d.count,
                "first_at": iso(d.first_at),
                "last_at": iso(d.at),
                "last_message_id": d.message_id,
                "last_source_id": d.source_id,
            }
            for d in tx.decisions_of(members)
        ],
    }
