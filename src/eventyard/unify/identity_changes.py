"""Change records of the identity graph, written in the transaction that makes the change.

Every identity-store transaction that changes which profile an identifier or a profile id
belongs to adds one record (``warehouse.identity_tables.Change``) to the store's outbox
(``GraphTx.add_change``): the identity stage for a batch (``batch_change``), ``eventyard
profile remove`` and ``split`` for the profiles they rebuilt (``resync_change``). The identity
feed carries the records to the warehouses' identity tables; see ``docs/identity.md``.
"""

from __future__ import annotations

from collections.abc import Iterable

from eventyard.state.identity_base import GraphTx, IdentifierRow, MergeRow
from eventyard.unify.identity_graph import WorkingGraph
from eventyard.warehouse.identity_tables import (
    Change,
    IdentifierChange,
    MergeChange,
    ProfileChange,
    encode_change,
)


def merge_change(m: MergeRow) -> MergeChange:
    assert m.id is not None
    return MergeChange(
        m.id,
        m.collection,
        m.from_profile,
        m.into_profile,
        m.rule,
        m.message_id,
        m.source_id,
        m.event_ts,
        m.at,
        m.undone_at,
    )


def identifier_change(i: IdentifierRow) -> IdentifierChange:
    return IdentifierChange(i.collection, i.key, i.profile_id, i.message_id, i.source_id, i.added_at)


def add_graph(
    change: Change,
    tx: GraphTx,
    graph: WorkingGraph,
    identifiers: Iterable[IdentifierRow],
    moves: list[tuple[str, str]],
) -> None:
    """What ``identity_write._flush`` wrote for one collection's graph, after it wrote it."""
    for p in graph.profiles.values():
        if p.is_new:
            canonical = graph.current(p.id) if p.merged_into else p.id
            change.profiles.append(ProfileChange(p.id, graph.collection, canonical, p.created_at))
    change.identifiers += [identifier_change(i) for i in identifiers]
    change.moves += moves
    if graph.merges:
        # read back for their numbers (merges are rare next to events)
        written = {(m.from_profile, m.into_profile, m.message_id) for m in graph.merges}
        froms = sorted({m.from_profile for m in graph.merges})
        change.merges += [
            merge_change(m)
            for m in tx.merges_of(froms)
            if (m.from_profile, m.into_profile, m.message_id) in written and m.at == graph.now
        ]


def write(tx: GraphTx, workspace_id: str, change: Change, now: float) -> None:
    if not change.is_empty():
        tx.add_change(workspace_id, now, encode_change(change))


def resync_change(tx: GraphTx, profile_ids: Iterable[str], old_keys: Iterable[tuple[str, str]]) -> Change:
    """The current state of some profiles, after an operator rebuilt them: their rows, their
    identifiers (``old_keys`` (collection, key) they held before are deleted first) and every
    merge into or from them."""
    ids = sorted(set(profile_ids))
    rows = tx.load_profiles(ids)
    change = Change(deleted=sorted(set(old_keys)))
    change.profiles = [ProfileChange(p.id, p.collection, p.merged_into or p.id, p.created_at) for p in rows.values()]
    current = [p.id for p in rows.values() if p.merged_into is None]
    change.identifiers = [identifier_change(i) for i in tx.load_identifiers(current)]
    change.merges = [merge_change(m) for m in tx.merges_of(ids)]
    return change
