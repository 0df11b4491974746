"""Reverse what the graph did: remove an identifier from a profile, or split a merge.

Both rebuild the profile from its events. The events of the profile (and of every profile
merged into it) are replayed, oldest first, into an empty scratch graph under the current
rules, with one change:

- **remove** ``type:value``: the identifier no longer links anything. Events that carried
  only it go, with it, to a profile of their own; with ``block`` it is also added to the
  workspace's blocked values and such events leave the profile history (the log keeps them).
- **split** merge ``#id``: the event that caused the merge is replayed without merging, so
  the two sides stay apart unless other events link them too; then nothing is changed and the
  answer names those events.

Identifiers whose events are past the history's retention cannot be replayed; they stay
together, on the side of the profile they were first added to. Each resulting part becomes a
profile: the side that was merged away gets its old id back (earlier stamps point to it
again), the part with the highest-priority identifier keeps the profile's id, others get new
ids. Traits and metadata are recomputed from each part's events; values whose events are gone
stay with the profile that keeps the id. Everything happens in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from eventyard.errors import NotFound, Terminal
from eventyard.state.identity_base import DecisionRow, EventRow, GraphTx, IdentifierRow, LinkRow, MergeRow, ProfileRow
from eventyard.unify import identity_changes, stamp
from eventyard.unify.identifiers import split_key
from eventyard.unify.identity_graph import EmptyLoader, Item, WorkingGraph
from eventyard.unify.identity_rules import USERS, IdentityRules
from eventyard.unify.identity_write import new_profile_id
from eventyard.unify.profile_records import event_traits, see, set_trait

#: Most events one recomputation replays.
MAX_EVENTS = 200_000

REMOVED = "operator_removed"
SPLIT = "operator_split"


@dataclass
class Part:
    profile_id: str
    identifiers: list[str]
    events: int
    #: ``kept`` (the profile's id), ``restored`` (a merged-away id back) or ``new``.
    status: str


@dataclass
class RecomputeResult:
    profile_id: str
    parts: list[Part] = field(default_factory=list)
    #: Events that left the history (their only identifier was removed and blocked).
    detached_events: int = 0
    #: Blocked values added to the rules (``remove --block``).
    rules: IdentityRules | None = None


_decode = msgspec.json.Decoder()


def _from_side(merges: Sequence[MergeRow], split: MergeRow) -> set[str]:
    """The merged-away profile of ``split`` and every profile merged into it before."""
    side = {split.from_profile}
    changed = True
    while changed:
        changed = False
        for m in merges:
            earlier = m.id is not None and split.id is not None and m.id < split.id and m.undone_at is None
            if earlier and m.into_profile in side and m.from_profile not in side:
                side.add(m.from_profile)
                changed = True
    return side


def recompute(
    tx: GraphTx,
    workspace_id: str,
    rules: IdentityRules,
    profile_id: str,
    now: float,
    *,
    remove: str | None = None,
    block: bool = False,
    merge_id: int | None = None,
) -> RecomputeResult:
    found = tx.load_profiles([profile_id], traits=True).get(profile_id)
    if found is None or found.workspace_id != workspace_id:
        raise NotFound(f"no profile {profile_id}")
    if found.merged_into is not None:
        raise Terminal(f"profile {profile_id} was merged into {found.merged_into}; operate on that one")
    if found.collection != USERS:
        raise Terminal("only user profiles can be recomputed (account profiles keep no event history)")
    row: ProfileRow = found
    members = tx.members(profile_id)
    idents = {i.key: i for i in tx.load_identifiers([profile_id])}
    split: MergeRow | None = None
    from_side: set[str] = set()
    if remove is not None and remove not in idents:
        raise NotFound(f"profile {profile_id} does not hold {remove}")
    if merge_id is not None:
        split = tx.merge_by_id(workspace_id, merge_id)
        if split is None:
            raise NotFound(f"no merge #{merge_id}")
        if split.undone_at is not None:
            raise Terminal(f"merge #{merge_id} was already split")
        if split.from_profile not in members:
            raise Terminal(f"merge #{merge_id} is not part of profile {profile_id}")
        from_side = _from_side(tx.merges_of(members), split)
    if block and remove is not None:
        value = split_key(remove)[1]
        rules = msgspec.structs.replace(rules, blocked_values=[*rules.blocked_values, value])
    events = tx.events_of(members, limit=MAX_EVENTS + 1, descending=False)
    if len(events) > MAX_EVENTS:
        raise Terminal(f"profile {profile_id} has more than {MAX_EVENTS} stored events; too many to recompute")

    graph = WorkingGraph(workspace_id, USERS, rules, EmptyLoader(), now, new_profile_id)
    seen_keys = {k for e in events for k in e.ids}
    orphans = [k for k in idents if k not in seen_keys and k != remove]
    # identifiers without retained events stay together, per side of a split
    groups: dict[bool, list[str]] = {}
    for k in orphans:
        groups.setdefault(idents[k].origin_profile in from_side, []).append(k)
    order = {k: rules.rule_of(USERS, split_key(k)[0])[0] for k in idents}
    for keys in groups.values():
        keys.sort(key=lambda k: (order[k], k))
        graph.resolve(Item(keys, "", "", min(idents[k].added_at for k in keys), trusted=True))
    cut = (split.source_id, split.message_id) if split is not None else None
    placed: list[tuple[EventRow, str | None]] = []
    for e in events:
        keys = [k for k in e.ids if k in idents and k != remove]
        if not keys and remove is not None and remove in e.ids and not block:
            keys = [remove]  # the removed identifier goes to a profile of its own with its events
        no_merge = cut == (e.source_id, e.message_id)
        outcome = graph.resolve(Item(keys, e.message_id, e.source_id, e.ts, no_merge=no_merge))
        placed.append((e, outcome.profile_id if outcome is not None else None))

    # name the parts
    parts = {pid: p for pid, p in graph.profiles.items() if p.merged_into is None}
    names: dict[str, str] = {}
    status: dict[str, str] = {}
    if split is not None:
        from_keys = {k for k, p in split.identifiers.items() if p in from_side}
        into_keys = {k for k, p in split.identifiers.items() if p not in from_side}
        from_parts = {graph.key_to_profile[k] for k in from_keys if k in graph.key_to_profile}
        into_parts = {graph.key_to_profile[k] for k in into_keys if k in graph.key_to_profile}
        if from_parts & into_parts:
            linking = sorted({m.message_id for m in graph.merges if m.message_id})
            raise Terminal(
                f"merge #{merge_id} cannot be split: other events link the two sides too "
                f"({', '.join(linking[:10]) or 'none retained'}); remove an identifier instead"
            )
        for pid in sorted(from_parts):
            names[pid], status[pid] = split.from_profile, "restored"
            break
    ranked = sorted(
        (p for p in parts if p not in names and parts[p].identifiers),
        key=lambda p: min((order.get(k, 1 << 30), k) for k in parts[p].identifiers or {}),
    )
    if ranked:
        names[ranked[0]], status[ranked[0]] = profile_id, "kept"
    for pid in parts:
        if pid not in names:
            names[pid], status[pid] = new_profile_id(), "new"

    result = RecomputeResult(profile_id, rules=rules if block and remove is not None else None)
    _write(tx, workspace_id, row, members, idents, graph, names, status, placed, remove, from_side, split, now, result)
    notes = []
    if remove is not None:
        detail = "removed by an operator" + (" and blocked" if block else "")
        notes.append(DecisionRow(workspace_id, profile_id, remove, REMOVED, detail, "", "", now))
    if split is not None:
        assert split.id is not None
        tx.undo_merge(split.id, now, "split by an operator")
        owner = {k: part.profile_id for part in result.parts for k in part.identifiers}
        for k in split.identifiers:
            detail = f"merge #{split.id} was split"
            notes.append(DecisionRow(workspace_id, owner.get(k, profile_id), k, SPLIT, detail, "", "", now))
    if notes:
        tx.note_decisions(notes)
    if result.rules is not None:
        tx.set_rules(workspace_id, result.rules.to_json(), now)
    touched = {*members, *(part.profile_id for part in result.parts)}
    change = identity_changes.resync_change(tx, touched, [(USERS, k) for k in idents])
    identity_changes.write(tx, workspace_id, change, now)
    return result


def _write(
    tx: GraphTx,
    ws: str,
    row: ProfileRow,
    members: list[str],
    idents: dict[str, IdentifierRow],
    graph: WorkingGraph,
    names: dict[str, str],
    status: dict[str, str],
    placed: list[tuple[EventRow, str | None]],
    removed: str | None,
    from_side: set[str],
    split: MergeRow | None,
    now: float,
    result: RecomputeResult,
) -> None:
    pid = row.id
    final = {scratch: names[graph.current(scratch)] for scratch in graph.profiles}
    # identifiers
    tx.delete_identifiers(ws, USERS, list(idents))
    rows: list[IdentifierRow] = []
    for key, ident in idents.items():
        scratch = graph.key_to_profile.get(key)
        if scratch is not None:
            rows.append(msgspec.structs.replace(ident, profile_id=final[scratch]))
    tx.upsert_identifiers(rows)

    # events and their contents per part
    retained = {e.message_id for e, _ in placed}
    contents: dict[str, ProfileRow] = {}
    by_part: dict[str, list[tuple[str, str]]] = {}
    detached: list[tuple[str, str]] = []
    links: dict[tuple[str, str], LinkRow] = {}
    part_sources: dict[tuple[str, str], float] = {}
    for name in {*names.values(), pid}:
        contents[name] = ProfileRow(name, ws, USERS, row.created_at if name == pid else now, now)
    kept = contents[pid]
    for trait, entry in row.traits.items():
        if entry[3] not in retained:
            kept.traits[trait] = entry
    if row.first_seen is not None and row.first_message_id not in retained:
        see(kept, row.first_seen, row.first_message_id or "", row.first_source_id or "")
    for e, scratch in placed:
        if scratch is None and removed is not None and removed in e.ids:
            detached.append((e.source_id, e.message_id))
            continue
        name = final[scratch] if scratch is not None else pid
        by_part.setdefault(name, []).append((e.source_id, e.message_id))
        target = contents[name]
        see(target, e.ts, e.message_id, e.source_id)
        if (name, e.source_id) not in part_sources or e.ts < part_sources[(name, e.source_id)]:
            part_sources[(name, e.source_id)] = e.ts
        event: dict[str, Any] = _decode.decode(e.body) if e.body else {}
        for trait, value in (event_traits(event) or {}).items():
            set_trait(target.traits, trait, value, e.ts, e.source_id, e.message_id)
        account = stamp.stamped(event)[1] if e.type == "group" else None
        if account is not None:
            link = links.get((name, account))
            if link is None:
                links[(name, account)] = LinkRow(ws, name, account, e.ts, e.ts, e.message_id, e.source_id)
            else:
                link.first_at, link.last_at = min(link.first_at, e.ts), max(link.last_at, e.ts)
    for name, keys in by_part.items():
        tx.move_events(ws, keys, name)
    tx.add_sources([(name, source, at) for (name, source), at in part_sources.items()])
    if detached:
        tx.delete_events(ws, detached)
    result.detached_events = len(detached)

    # links: re-derived from group calls; links without retained evidence stay with the kept profile
    old_links = tx.links_of(members, accounts=False)
    tx.delete_links(members)
    for link in old_links:
        if not any(account == link.account_profile for _, account in links):
            links[(pid, link.account_profile)] = LinkRow(
                ws, pid, link.account_profile, link.first_at, link.last_at, link.message_id, link.source_id
            )
    if links:
        tx.upsert_links(list(links.values()))

    # profile rows
    existing = tx.load_profiles(list(contents))
    insert: list[ProfileRow] = []
    save: list[ProfileRow] = []
    merges_of = {names[s]: graph.profiles[s].merges for s in names}
    for name, content in contents.items():
        content.merges = merges_of.get(name, 0)
        if name in existing:
            content.created_at = existing[name].created_at
            save.append(content)
        else:
            insert.append(content)
    if insert:
        tx.insert_profiles(insert)
    if save:
        tx.save_profiles(save, traits=True)
    # profiles merged away earlier follow their side
    if split is not None:
        moved = [m for m in members if m in from_side and m not in (split.from_profile, pid)]
        follow = list(tx.load_profiles(moved).values())
        for m in follow:
            m.merged_into = split.from_profile
            m.updated_at = now
        if follow:
            tx.save_profiles(follow, traits=False)
    result.parts = [
        Part(
            name,
            sorted(k for k, s in graph.key_to_profile.items() if names[graph.current(s)] == name),
            len(by_part.get(name, [])),
            status[scratch],
        )
        for scratch, name in names.items()
    ]
    result.parts.sort(key=lambda p: (p.status != "kept", p.profile_id))
