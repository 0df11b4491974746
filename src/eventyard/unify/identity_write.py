"""Resolve a batch of events against the stored graph and write the result, in one transaction.

``resolve_batch`` runs inside ``IdentityStore.transact``: it looks every identifier of the
batch up in one query, loads the profiles a rule check needs, resolves the events in order on
a ``WorkingGraph`` and writes what changed: new profiles, identifiers, merged profiles (their
identifiers re-pointed, their traits and metadata folded into the survivor), merge records,
refusals (counted once per event position: ``GraphTx.mark_noted``) and the change record for
the warehouses (``identity_changes``). A retried batch finds its identifiers in place and
its refusals counted, and changes nothing.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

from eventyard.state.identity_base import DecisionRow, GraphTx, IdentifierRow, ProfileRow
from eventyard.unify import identity_changes
from eventyard.unify.identifiers import key as make_key
from eventyard.unify.identity_graph import Ident, Item, Outcome, Prof, WorkingGraph
from eventyard.unify.identity_rules import USERS, IdentityRules
from eventyard.unify.profile_records import absorb
from eventyard.warehouse.identity_tables import Change

#: Random bits of profile ids: a generator seeded from the OS once per process (ids need to be
#: unique, not secret; asking the OS for every id was a system call per new profile).
_bits = random.Random(secrets.randbits(128))
os.register_at_fork(after_in_child=lambda: _bits.seed(secrets.randbits(128)))


def new_profile_id() -> str:
    """``prf_`` + milliseconds (hex) + 36 random bits: ids made close in time sort together, so
    new profiles land on the same pages of the indexes instead of all over them."""
    return f"prf_{time.time_ns() // 1_000_000:011x}{_bits.getrandbits(36):09x}"


class Request(msgspec.Struct):
    """One event's identifiers in one collection (a Struct: one per event, cheap to make)."""

    collection: str
    keys: list[str]
    message_id: str
    source_id: str
    ts: float
    rule: str
    #: An alias call's previousId (typed when the graph is known).
    previous_id: str | None = None
    #: Values set aside before resolution (blocked), for the record.
    blocked: list[tuple[str, str]] = []
    #: The event's log position: its refusals are counted once however often it is resolved
    #: (``None``: always counted).
    position: int | None = None


@dataclass
class BatchResult:
    #: Per request: the profile it resolved to (``None`` without identifiers).
    profiles: list[str | None]
    #: Profiles created, per collection.
    created: dict[str, int] = field(default_factory=dict)
    merges: list[tuple[str, str]] = field(default_factory=list)  # (collection, rule)
    refused: list[str] = field(default_factory=list)  # rule per refused identifier


class TxLoader:
    def __init__(self, tx: GraphTx, workspace_id: str, collection: str) -> None:
        self.tx = tx
        self.workspace_id = workspace_id
        self.collection = collection

    def lookup(self, keys: Sequence[str]) -> dict[str, str]:
        return self.tx.lookup(self.workspace_id, self.collection, keys)

    def load(self, profile_ids: Sequence[str]) -> dict[str, Prof]:
        # only what the rules look at: stored identifiers are never written back from here
        out = {
            pid: Prof(pid, created_at, merges, identifiers={})
            for pid, (created_at, merges) in self.tx.profile_heads(profile_ids).items()
        }
        for pid, k, added_at in self.tx.identifier_times(profile_ids):
            prof = out.get(pid)
            if prof is not None and prof.identifiers is not None:
                prof.identifiers[k] = Ident(k, added_at, "", "", pid, 0.0)
        return out


def _typed_previous(graph: WorkingGraph, rules: IdentityRules, previous: str) -> str | None:
    """previousId is a user_id when the graph knows it as one, else an anonymous_id."""
    as_user = make_key("user_id", previous)
    if as_user in graph.key_to_profile and rules.accepts(USERS, "user_id"):
        return as_user
    if rules.accepts(USERS, "anonymous_id"):
        return make_key("anonymous_id", previous)
    return None


def _order(rules: IdentityRules, collection: str, keys: list[str]) -> list[str]:
    ranked = sorted(enumerate(keys), key=lambda p: (rules.rule_of(collection, p[1].partition(":")[0])[0], p[0]))
    return [k for _, k in ranked]


def resolve_batch(
    tx: GraphTx, workspace_id: str, rules: IdentityRules, requests: Sequence[Request], now: float
) -> BatchResult:
    result = BatchResult(profiles=[None] * len(requests))
    by_collection: dict[str, list[int]] = {}
    for i, r in enumerate(requests):
        by_collection.setdefault(r.collection, []).append(i)
    decisions: dict[tuple[str, str, str], DecisionRow] = {}
    #: (request, profile, key, rule, detail) of every refusal, counted once all are known
    pending: list[tuple[Request, str, str, str, str]] = []
    change = Change()
    for collection, indexes in by_collection.items():
        graph = WorkingGraph(
            workspace_id, collection, rules, TxLoader(tx, workspace_id, collection), now, new_profile_id
        )
        keys: list[str] = []
        for i in indexes:
            r = requests[i]
            keys += r.keys
            if r.previous_id is not None:
                keys += [make_key("user_id", r.previous_id), make_key("anonymous_id", r.previous_id)]
        graph.prefetch(keys)
        known = graph.key_to_profile
        #: events on one known profile already (most): index -> that profile
        fast: list[tuple[int, str]] = []
        #: the others, and every event with a blocked value: index -> where it went
        outcomes: dict[int, Outcome | None] = {}
        items: list[tuple[int, Item]] = []
        check: list[str] = []
        for i in indexes:
            r = requests[i]
            item_keys = r.keys
            if r.previous_id is not None:
                typed = _typed_previous(graph, rules, r.previous_id)
                if typed is not None:
                    item_keys = _order(rules, collection, [*item_keys, typed])
            if not item_keys:
                if r.blocked:
                    outcomes[i] = None
                continue
            first = known.get(item_keys[0])
            if first is not None and all(known.get(k) == first for k in item_keys[1:]):
                # every identifier on one known profile: nothing can change for this event
                # (merges earlier in the batch move whole profiles; ``current`` follows them)
                if r.blocked:
                    outcomes[i] = Outcome(first)
                else:
                    fast.append((i, first))
                continue
            items.append((i, Item(item_keys, r.message_id, r.source_id, r.ts, r.rule)))
            check += graph.needs_checks(item_keys)
        graph.preload(check)
        for i, item in items:
            outcomes[i] = graph.resolve(item)
        _flush(tx, graph, now, change)
        current, profiles = graph.current, result.profiles
        for i, first in fast:
            profiles[i] = current(first)
        for i in sorted(outcomes):
            outcome = outcomes[i]
            r = requests[i]
            if outcome is None:
                if not r.blocked:
                    continue
                pid = ""
                refusals: list[tuple[str, str, str]] = []
            else:
                outcome.profile_id = pid = graph.current(outcome.profile_id)
                result.profiles[i] = pid
                if outcome.created:
                    result.created[collection] = result.created.get(collection, 0) + 1
                if outcome.merged:
                    result.merges += [(collection, r.rule)] * len(outcome.merged)
                if not outcome.refused and not r.blocked:
                    continue
                refusals = [(f.key, f.rule, f.detail) for f in outcome.refused]
            refusals += [(k, reason, "the value is blocked by the identity rules") for k, reason in r.blocked]
            pending += [(r, pid, k, rule, detail) for k, rule, detail in refusals]
    # an event resolved again (its batch is retried) finds its position marked: not counted twice
    positions = [(r.position, r.message_id) for r, *_ in pending if r.position is not None]
    fresh = tx.mark_noted(workspace_id, positions, now) if positions else set()
    for r, pid, k, rule, detail in pending:
        if r.position is not None and (r.position, r.message_id) not in fresh:
            continue
        result.refused.append(rule)
        slot = (pid, k, rule)
        noted = decisions.get(slot)
        if noted is None:
            decisions[slot] = DecisionRow(workspace_id, pid, k, rule, detail, r.message_id, r.source_id, now, 1, now)
        else:
            noted.count += 1
            noted.message_id, noted.source_id, noted.detail = r.message_id, r.source_id, detail
    if decisions:
        tx.note_decisions(list(decisions.values()))
    identity_changes.write(tx, workspace_id, change, now)
    return result


def _flush(tx: GraphTx, graph: WorkingGraph, now: float, change: Change) -> None:
    """Write what ``graph`` changed (and add it to ``change``, the outbox record)."""
    ws = graph.workspace_id
    created = [p for p in graph.profiles.values() if p.is_new]
    if created:
        tx.insert_profiles(
            [
                ProfileRow(
                    id=p.id,
                    workspace_id=ws,
                    collection=graph.collection,
                    created_at=p.created_at,
                    updated_at=now,
                    merged_into=graph.current(p.id) if p.merged_into else None,
                    merges=p.merges,
                )
                for p in created
            ]
        )
    merged = [p for p in graph.profiles.values() if p.merged_into is not None]
    moves = [(p.id, graph.current(p.id)) for p in merged if not p.is_new]
    if moves:
        tx.repoint_identifiers(ws, moves)
        tx.redirect_merged(moves)
    fresh: list[IdentifierRow] = []
    for p in graph.profiles.values():
        if p.merged_into is None and p.identifiers:
            fresh += [
                IdentifierRow(ws, graph.collection, i.key, p.id, i.added_at, i.message_id, i.source_id, i.origin, now)
                for i in p.identifiers.values()
                if i.is_new
            ]
    if fresh:
        tx.upsert_identifiers(fresh)
    if merged:
        survivors: dict[str, list[str]] = {}
        for p in merged:
            survivors.setdefault(graph.current(p.id), []).append(p.id)
        rows = tx.load_profiles([*survivors, *(p.id for p in merged)], traits=True)
        save: list[ProfileRow] = []
        new_traits: list[ProfileRow] = []
        for survivor_id, absorbed in survivors.items():
            survivor = rows[survivor_id]
            before = dict(survivor.traits)
            for pid in absorbed:
                other = rows[pid]
                absorb(survivor, other)
                other.merged_into = survivor_id
                other.updated_at = now
                save.append(other)
            survivor.merges = graph.profiles[survivor_id].merges
            survivor.updated_at = now
            save.append(survivor)
            if survivor.traits != before:
                new_traits.append(survivor)
        tx.save_profiles(save, traits=False)
        if new_traits:
            tx.save_traits([(p.id, p.traits, now) for p in new_traits])
        absorbed_sources = tx.sources_of([p.id for p in merged])
        tx.add_sources(
            [(graph.current(pid), source, at) for pid, pairs in absorbed_sources.items() for source, at in pairs]
        )
    if graph.merges:
        tx.insert_merges(graph.merges)
    identity_changes.add_graph(change, tx, graph, fresh, moves)
